"""A retention pass on a real database (SQLite and PostgreSQL) and real image folders:
what the city no longer keeps goes, rows and files; what is still in use stays (issue
#17: no retention of evidence, snapshots, GPS tracks or dead letters)."""

from __future__ import annotations

import io
import math
import os
import struct
import time
import wave
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from central_hub.db.schema import audits, cases, dead_letters, events, snapshots, tracks
from central_hub.domain.retention import RetentionPolicy
from central_hub.hub import Hub
from central_hub.services.retention import apply_retention
from central_hub.testing import FakeClock, ListSource, inbound, make_event
from central_hub.workers.ingest import IngestWorker
from simulators.polling import eventually

pytestmark = pytest.mark.integration

POLICY = RetentionPolicy(
    evidence_days=30,
    frames_days=10,
    snapshots_days=5,
    tracks_days=5,
    dead_letters_days=2,
    shadow_days=3,
)


def _jpeg(n: int) -> bytes:
    return b"\xff\xd8\xff\xe0" + bytes([n]) * 12 + b"\xff\xd9"


def _age_files(*roots: Path, days: float = 2.0) -> None:
    """Make every stored file older than the sweep's grace (they were written just now)."""
    then = time.time() - days * 86400
    for root in roots:
        for path in root.rglob("*.jpg"):
            os.utime(path, (then, then))


async def test_a_pass_drops_what_the_policy_no_longer_keeps(hub: Hub, clock: FakeClock) -> None:
    now = clock.now
    source = ListSource()
    worker = IngestWorker(
        hub.engine, source, hub.evidence, hub.filer, lambda: clock.now, frames=hub.frames
    )
    closed_ev = make_event("pole-1", at=now - timedelta(days=60), snapshot=_jpeg(1), seq=1)
    open_ev = make_event(
        "pole-2", code="0505", at=now - timedelta(days=60), snapshot=_jpeg(2), seq=1
    )
    old_frame = make_event("pole-3", at=now - timedelta(days=20), frame=_jpeg(3), seq=1)
    new_frame = make_event("pole-4", at=now - timedelta(days=1), frame=_jpeg(4), seq=1)
    for ev in (closed_ev, open_ev, old_frame, new_frame):
        await worker.process([inbound(ev)])
    assert worker.stats.events_new == 4
    async with hub.engine.begin() as conn:
        by_event = dict((await conn.execute(sa.select(events.c.event_id, events.c.case_id))).all())
        closed_case, open_case = by_event[closed_ev.event_id], by_event[open_ev.event_id]
        assert closed_case != open_case
        await conn.execute(
            cases.update()
            .where(cases.c.id == closed_case)
            .values(stage="closed", closed_at=now - timedelta(days=40))
        )
        # A handler's photo on each case's trail, a snapshot row old and new, tracks and
        # dead letters old and new.
        photo_closed = await hub.evidence.put(_jpeg(5))
        photo_open = await hub.evidence.put(_jpeg(6))
        for case_id, sha in ((closed_case, photo_closed), (open_case, photo_open)):
            await conn.execute(
                audits.insert().values(
                    case_id=case_id,
                    at=now - timedelta(days=50),
                    from_stage="dispatched",
                    to_stage="handled",
                    action="handle",
                    actor="h",
                    role="handler",
                    reason="",
                    attachments=[sha],
                )
            )
        snap_old, snap_new = await hub.evidence.put(_jpeg(7)), await hub.evidence.put(_jpeg(8))
        for cmd, sha, age in (("c-old", snap_old, 9), ("c-new", snap_new, 1)):
            await conn.execute(
                snapshots.insert().values(
                    cmd_id=cmd,
                    device_id="pole-1",
                    camera_id="cam-1",
                    sha256=sha,
                    width=64,
                    height=48,
                    received_at=now - timedelta(days=age),
                )
            )
        for batch, age in (("t-old", 9), ("t-new", 1)):
            at = now - timedelta(days=age)
            await conn.execute(
                tracks.insert().values(
                    batch_id=batch, device_id="truck-1", received_at=at, first_ts=at,
                    last_ts=at, points=[],
                )
            )  # fmt: skip
        for age in (3, 1):
            await conn.execute(
                dead_letters.insert().values(
                    received_at=now - timedelta(days=age), topic="t", device_id="pole-1",
                    reason="r", fields=[], raw=b"x",
                )
            )  # fmt: skip
    stray_old = await hub.evidence.put(_jpeg(9))  # an upload never attached
    _age_files(hub.evidence.root, hub.frames.root)
    stray_fresh = await hub.evidence.put(_jpeg(10))  # uploaded a moment ago

    dry = await apply_retention(hub.engine, hub.evidence, hub.frames, POLICY, now, dry_run=True)
    assert dry.events_evidence_dropped == 1
    assert dry.evidence_files_deleted == 4  # closed case: snapshot + photo; old snap; stray
    assert hub.evidence.path_of(stray_old).exists()  # a dry run changes nothing

    report = await apply_retention(hub.engine, hub.evidence, hub.frames, POLICY, now)
    assert report.events_evidence_dropped == 1
    assert report.frames_dropped == 1
    assert report.snapshots_deleted == 1
    assert report.tracks_deleted == 1
    assert report.dead_letters_deleted == 1
    assert report.evidence_files_deleted == 4
    assert report.frame_files_deleted == 1

    def exists(store_sha: tuple[str, str]) -> bool:
        store, sha = store_sha
        return (hub.evidence if store == "e" else hub.frames).path_of(sha).exists()

    closed_row, open_row, old_f, new_f = [
        await _event(hub, e.event_id) for e in (closed_ev, open_ev, old_frame, new_frame)
    ]
    assert closed_row.snapshot_sha256 is None
    assert open_row.snapshot_sha256 is not None  # its case is open: kept, however old
    assert old_f.frame_sha256 is None
    assert new_f.frame_sha256 is not None
    gone = [("e", photo_closed), ("e", snap_old), ("e", stray_old)]
    kept = [
        ("e", open_row.snapshot_sha256), ("e", photo_open), ("e", snap_new),
        ("e", stray_fresh), ("f", new_f.frame_sha256),
    ]  # fmt: skip
    assert not any(exists(x) for x in gone), [x for x in gone if exists(x)]
    assert all(exists(x) for x in kept), [x for x in kept if not exists(x)]
    # The case and its trail stay (statistics, accountability); the trail keeps the hash.
    async with hub.engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(cases))).scalar() == 4
        trail = (
            (
                await conn.execute(
                    sa.select(audits.c.attachments).where(audits.c.case_id == closed_case)
                )
            )
            .scalars()
            .all()
        )
    assert [photo_closed] in trail
    # A second pass finds nothing more.
    again = await apply_retention(hub.engine, hub.evidence, hub.frames, POLICY, now)
    assert again.evidence_files_deleted == again.events_evidence_dropped == 0
    assert await eventually(lambda: True, 1)


async def _event(hub: Hub, event_id: str) -> sa.Row[tuple[str | None, str | None]]:
    async with hub.engine.connect() as conn:
        return (
            await conn.execute(
                sa.select(events.c.snapshot_sha256, events.c.frame_sha256).where(
                    events.c.event_id == event_id
                )
            )
        ).one()


def test_the_cli_reports_a_pass_as_json(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "central_hub.cli", "--data-dir", str(tmp_path / "hub"),
         "retention", "--dry-run"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "XH_HUB_RETENTION_TRACKS_DAYS": "0"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["dry_run"] is True
    assert report["tracks_deleted"] == 0
    assert "tracks_deleted" in report
    bad = subprocess.run(
        [sys.executable, "-m", "central_hub.cli", "--data-dir", str(tmp_path / "hub"),
         "retention"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "XH_HUB_RETENTION_TRACKS_DAYS": "-3"},
    )  # fmt: skip
    assert bad.returncode == 2
    assert "retention_tracks_days" in bad.stderr


async def test_citizen_contacts_and_photos_go_after_their_case_closed(
    hub: Hub, clock: FakeClock
) -> None:
    """A citizen reporter's contact is cleared CITIZEN_CONTACT_DAYS after the case closed
    (the report stays, for statistics); its photo goes with the case's evidence and is
    kept while the case is open or recent, however old the report."""
    from central_hub.db.schema import citizen_reports
    from central_hub.domain.open311 import ReportInput
    from central_hub.services.citizen_reports import CitizenReports, Open311Keys

    now = clock.now
    key, _ = await Open311Keys(hub.engine, hub.clock).add("app")
    reports = CitizenReports(hub.engine, hub.filer, hub.clock)

    async def submit(lat: float, n: int, days_ago: float) -> tuple[int, int, str]:
        sha = await hub.evidence.put(_jpeg(40 + n))
        done = await reports.submit(
            ReportInput(
                service_code="0507", lat=lat, lon=121.2615, location_source="gps",
                email=f"c{n}@example.com", phone="13812345678", first_name="三",
                last_name="张", device_id="dev", account_id="acct",
            ),
            key=key, photo_sha256=sha, now=now - timedelta(days=days_ago),
        )  # fmt: skip
        return done.id, done.case_id, sha

    long_closed = await submit(28.6472, 1, 400)
    recently_closed = await submit(28.6452, 2, 100)
    still_open = await submit(28.6432, 3, 400)
    async with hub.engine.begin() as conn:
        for (_, case_id, _), closed_days_ago in ((long_closed, 200), (recently_closed, 20)):
            await conn.execute(
                cases.update()
                .where(cases.c.id == case_id)
                .values(stage="closed", closed_at=now - timedelta(days=closed_days_ago))
            )
    _age_files(hub.evidence.root)
    policy = RetentionPolicy(evidence_days=180, citizen_contact_days=90)

    dry = await apply_retention(hub.engine, hub.evidence, hub.frames, policy, now, dry_run=True)
    assert (dry.citizen_contacts_cleared, dry.citizen_photos_dropped) == (1, 1)
    report = await apply_retention(hub.engine, hub.evidence, hub.frames, policy, now)
    assert report.citizen_contacts_cleared == 1  # closed 200 days ago; not 20, not open
    assert report.citizen_photos_dropped == 1
    assert report.evidence_files_deleted == 1

    async with hub.engine.connect() as conn:
        rows = {r.id: r for r in (await conn.execute(citizen_reports.select())).all()}
    gone, kept_closed, kept_open = (rows[x[0]] for x in (long_closed, recently_closed, still_open))
    assert (gone.email, gone.phone, gone.first_name, gone.last_name) == (None,) * 4
    assert (gone.device_id, gone.account_id) == (None, None)
    assert gone.contact_cleared_at == now
    assert gone.code == "0507"
    assert gone.case_id == long_closed[1]
    assert gone.photo_sha256 is None
    assert not hub.evidence.path_of(long_closed[2]).exists()
    assert kept_open.email == "c3@example.com"
    assert kept_open.contact_cleared_at is None
    assert kept_open.photo_sha256 is not None
    assert hub.evidence.path_of(still_open[2]).exists()
    assert kept_closed.email == "c2@example.com"  # closed 20 days ago: within 90
    assert kept_closed.photo_sha256 is not None  # within the evidence days
    assert hub.evidence.path_of(recently_closed[2]).exists()
    again = await apply_retention(hub.engine, hub.evidence, hub.frames, policy, now)
    assert again.citizen_contacts_cleared == again.citizen_photos_dropped == 0


def _wav(frequency: int) -> bytes:
    """A second of a tone as units play it (16 kHz mono 16-bit: stored unconverted)."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(
            b"".join(
                struct.pack("<h", int(8000 * math.sin(2 * math.pi * frequency * n / 16_000)))
                for n in range(16_000)
            )
        )
    return out.getvalue()


async def test_recorded_voice_goes_when_no_recent_or_open_command_names_it(
    hub: Hub, clock: FakeClock
) -> None:
    await hub.devices.register("pole-1", "pole")
    voice = hub.voice
    old = await voice.send("pole-1", _wav(440), actor="op")  # sent once, long ago
    again = await voice.send("pole-1", _wav(550), actor="op")  # sent long ago and lately
    never = await voice.store(_wav(660))  # stored, never sent (a send that failed)
    clock.advance(days=90)
    await voice.send("pole-1", _wav(550), actor="op")
    clock.advance(days=10)
    fresh = await voice.store(_wav(770))  # stored moments ago: within the grace
    then = (clock.now - timedelta(days=100)).timestamp()
    for sha in (old.params["sha256"], again.params["sha256"], never.sha256):
        os.utime(voice.path(sha), (then, then))
    policy = RetentionPolicy(voice_days=90)

    dry = await apply_retention(
        hub.engine, hub.evidence, hub.frames, policy, clock.now, voice=voice.root, dry_run=True
    )
    assert dry.voice_clips_deleted == 2
    assert len(list(voice.root.glob("*.wav"))) == 4
    report = await apply_retention(
        hub.engine, hub.evidence, hub.frames, policy, clock.now, voice=voice.root
    )
    assert report.voice_clips_deleted == 2
    assert not voice.path(old.params["sha256"]).exists()
    assert not voice.path(never.sha256).exists()
    assert voice.path(again.params["sha256"]).exists()
    assert voice.path(fresh.sha256).exists()
    # Who said what stays: the three commands are still there.
    assert len(await hub.commands.list_for("pole-1")) == 3
    # Kept for ever with 0 days.
    keep = RetentionPolicy(voice_days=0)
    kept = await apply_retention(
        hub.engine,
        hub.evidence,
        hub.frames,
        keep,
        clock.now + timedelta(days=900),
        voice=voice.root,
    )
    assert kept.voice_clips_deleted == 0
