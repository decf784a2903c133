"""Backup a working hub (SQLite) and restore it into an empty one (SQLite or PostgreSQL).

Everything must come back: every row of every table, every evidence image, and a
restored PostgreSQL hub must go on numbering cases after the restored ones. A damaged
archive or a database that already holds data is refused with a clear message and
nothing written.
"""

from __future__ import annotations

import tarfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.adapters.evidence import EvidenceStore
from central_hub.adapters.mqtt import Inbound
from central_hub.cli import main
from central_hub.db.schema import cases, metadata
from central_hub.domain.workflow import Action, Role
from central_hub.hub import Hub, build_hub
from central_hub.services.backup import BackupError, backup, restore
from central_hub.services.users import User
from central_hub.settings import HubSettings
from central_hub.testing import FakeClock, ListSource, RecordingPublisher, inbound, make_event
from central_hub.workers.ingest import IngestWorker
from edge_agent.protocol import Channel, topic
from simulators.fleet import small_jpeg

pytestmark = pytest.mark.integration


@pytest.fixture
async def working_hub(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Hub]:
    """A hub on SQLite with cases through the workflow, evidence, users, a device, a
    command and a dead letter."""
    settings = HubSettings(data_dir=tmp_path / "source")
    hub = await build_hub(settings, clock=clock, mqtt=False, publisher=RecordingPublisher())
    worker = IngestWorker(
        hub.engine, ListSource(), hub.evidence, hub.filer, clock, frames=hub.frames
    )
    messages: list[Inbound] = [
        inbound(
            make_event(
                f"pole-{n % 3}",
                seq=n + 1,
                at=clock.now,
                lat=28.640 + 0.001 * n,
                lon=121.255,
                snapshot=small_jpeg(seed=n),
                frame=small_jpeg(seed=100 + n) if n < 3 else None,
            )
        )
        for n in range(12)
    ]
    messages.append(Inbound(topic("pole-1", Channel.EVENT), b"\xff not json", 1, False, 0))
    await worker.process(messages)
    admin, _ = await hub.users.add("root", Role.ADMIN)
    await hub.users.add("li.na", Role.OPERATOR)
    await hub.devices.register("pole-1", "pole")
    await hub.devices.set_desired("pole-1", {"speaker": {"volume": 70}})
    await hub.commands.enqueue("pole-1", "speaker.say", {"text": "请勿占道经营"}, actor="root")
    first = min(c.id for c in await _cases(hub.engine))
    for action in (Action.START_VERIFY, Action.VERIFY, Action.DISPATCH):
        clock.advance(minutes=5)
        await hub.cases.transition(first, action, User(id=admin.id, name="root", role=Role.ADMIN))
    yield hub
    await hub.close()


async def _cases(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(sa.select(cases))).all())


async def _everything(engine: AsyncEngine) -> dict[str, list[dict[str, Any]]]:
    out = {}
    async with engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows = await conn.execute(sa.select(table).order_by(*table.primary_key.columns))
            out[table.name] = [dict(r._mapping) for r in rows]
    return out


def _images(store: EvidenceStore) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in store.root.glob("*/*/*.jpg")}


async def test_a_backup_restores_every_row_and_image(
    working_hub: Hub, db: AsyncEngine, tmp_path: Path, clock: FakeClock
) -> None:
    archive = tmp_path / "hub.tar"
    made = await backup(working_hub.engine, working_hub.evidence, archive, working_hub.frames)
    assert made.tables["events"] == 12
    assert made.tables["dead_letters"] == 1
    assert made.evidence_files == 12 + 3  # snapshots and clean frames
    assert not archive.with_name("hub.tar.partial").exists()

    target = EvidenceStore(tmp_path / "restored-evidence")
    with pytest.raises(BackupError, match="holds clean frames"):
        await restore(db, target, archive)  # no frames store: nothing written
    assert _images(target) == {}
    frames = EvidenceStore(tmp_path / "restored-frames")
    got = await restore(db, target, archive, frames)
    assert got.tables == made.tables
    before, after = await _everything(working_hub.engine), await _everything(db)
    assert after == before
    assert sum(len(rows) for rows in after.values()) > 40
    assert _images(target) == _images(working_hub.evidence)
    assert _images(frames) == _images(working_hub.frames)
    assert len(_images(frames)) == 3
    assert not set(_images(frames)) & set(_images(target))  # kept apart, as before

    # The restored hub goes on: a new problem gets the next case number.
    settings = HubSettings(data_dir=tmp_path / "restored")
    hub = await build_hub(
        settings, clock=clock, mqtt=False, engine=db, run_migrations=False,
        publisher=RecordingPublisher(),
    )  # fmt: skip
    worker = IngestWorker(db, ListSource(), target, hub.filer, clock)
    await worker.process([inbound(make_event("pole-9", at=clock.now, lat=28.655, lon=121.27))])
    numbers = sorted(c.id for c in await _cases(db))
    assert numbers[-1] == max(c["id"] for c in before["cases"]) + 1

    with pytest.raises(BackupError, match="already holds data"):
        await restore(db, target, archive, frames)


async def test_a_damaged_archive_is_refused_before_anything_is_written(
    working_hub: Hub, db: AsyncEngine, tmp_path: Path
) -> None:
    archive = tmp_path / "hub.tar"
    await backup(working_hub.engine, working_hub.evidence, archive)
    with tarfile.open(archive) as tar:
        image = next(m for m in tar.getmembers() if m.name.startswith("evidence/"))
        offset = image.offset_data
    raw = bytearray(archive.read_bytes())
    raw[offset + 100] ^= 0xFF  # one flipped bit in one image
    damaged = tmp_path / "damaged.tar"
    damaged.write_bytes(bytes(raw))
    target = EvidenceStore(tmp_path / "ev")
    with pytest.raises(BackupError, match=f"{image.name} is damaged"):
        await restore(db, target, damaged)
    assert all(rows == [] for rows in (await _everything(db)).values())
    assert _images(target) == {}

    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(BackupError, match="not a readable backup archive"):
        await restore(db, target, tmp_path / "junk.tar")


def test_the_cli_backs_up_and_restores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, target = tmp_path / "a", tmp_path / "b"
    assert main(["--data-dir", str(source), "migrate"]) == 0
    assert main(["--data-dir", str(source), "user", "add", "li.na", "--role", "operator"]) == 0
    archive = tmp_path / "out" / "hub.tar"
    assert main(["--data-dir", str(source), "backup", str(archive)]) == 0
    assert "backed up" in capsys.readouterr().out
    assert main(["--data-dir", str(target), "restore", str(archive)]) == 0
    assert "restored" in capsys.readouterr().out
    assert main(["--data-dir", str(target), "user", "list"]) == 0
    assert capsys.readouterr().out.splitlines() == ["li.na\toperator"]
    assert main(["--data-dir", str(target), "restore", str(archive)]) == 1
    assert "already holds data (users)" in capsys.readouterr().err
