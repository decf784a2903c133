"""Service days on the hub, on SQLite and PostgreSQL: an event in one is stored with its
reason and not filed; the calendar pushed to the units it concerns as signed config."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.adapters.evidence import EvidenceStore
from central_hub.cli import main
from central_hub.db.schema import cases, dead_letters, events
from central_hub.domain.service_days import ServiceDays
from central_hub.hub import Hub
from central_hub.services.service_days import ServiceDayGate, ServiceDayService
from central_hub.testing import FakeClock, ListSource, RecordingPublisher, inbound, make_event
from central_hub.workers.ingest import IngestWorker
from central_hub.workers.service_days import ServiceDayWorker
from edge_agent.config import parse_config
from edge_agent.config_apply import check_pushed, merge_pushed
from edge_agent.protocol import Channel, topic, verify_desired
from simulators.polling import eventually

# 2026-11-28 is a Saturday; 08:00-17:00 in Shanghai is 00:00-09:00 UTC.
DOC = """\
version: 1
timezone: Asia/Shanghai
service_days:
  - name: 县前街便民服务日
    zones: [pole-1/cam-1/door-line]
    suspends: [shop_front]
    dates:
      - {date: 2026-11-28, from: "08:00", to: "17:00"}
  - name: square by cell
    cells: [hy-st-11]
    suspends: ["0501"]
    dates:
      - {date: 2026-11-29, from: "08:00", to: "17:00"}
"""
OPENS = datetime(2026, 11, 28, 0, 0, tzinfo=UTC)
CLOSES = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
LATER = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)  # ingest's clock: after every event here


def calendar() -> ServiceDays:
    return ServiceDays.parse_text(DOC)


async def ingest(hub: Hub, db: AsyncEngine, tmp_path: Path, *evs: Any) -> None:
    worker = IngestWorker(
        db,
        ListSource(),
        EvidenceStore(tmp_path / "ev"),
        hub.filer,
        lambda: LATER,
        held_back=ServiceDayGate(calendar(), hub.grid),
    )
    await worker.process([inbound(e, mid=n) for n, e in enumerate(evs)])


async def test_an_event_in_a_service_day_is_stored_with_its_reason_and_not_filed(
    hub: Hub, db: AsyncEngine, tmp_path: Path
) -> None:
    inside = make_event("pole-1", code="0504", seq=1, at=OPENS + timedelta(hours=2))
    at_end = make_event("pole-1", code="0504", seq=2, at=CLOSES)  # the window is over
    before = make_event("pole-1", code="0504", seq=3, at=OPENS - timedelta(seconds=1))
    other_code = make_event("pole-1", code="0505", seq=4, at=OPENS + timedelta(hours=2)).model_copy(
        update={"kind": "illegal_parking"}
    )
    other_unit = make_event("pole-2", code="0504", seq=1, at=OPENS + timedelta(hours=2))
    # the cell-based entry: an event located in hy-st-11 (the market pole) the next day
    by_cell = make_event("pole-9", code="0501", seq=1, at=OPENS + timedelta(days=1, hours=1))
    elsewhere = make_event(
        "pole-9", code="0501", seq=2, at=OPENS + timedelta(days=1, hours=1), lat=28.6400
    )
    await ingest(
        hub, db, tmp_path, inside, at_end, before, other_code, other_unit, by_cell, elsewhere
    )
    async with db.connect() as conn:
        rows = {
            r.event_id: r
            for r in await conn.execute(
                sa.select(events.c.event_id, events.c.case_id, events.c.not_filed_reason)
            )
        }
        n_cases = (await conn.execute(sa.select(sa.func.count()).select_from(cases))).scalar()
        n_dead = (await conn.execute(sa.select(sa.func.count()).select_from(dead_letters))).scalar()
    assert len(rows) == 7  # every event stored, nothing lost
    assert n_dead == 0
    held = rows[inside.event_id]
    assert held.case_id is None
    assert "县前街便民服务日" in held.not_filed_reason
    assert "2026-11-28 08:00" in held.not_filed_reason
    assert "2026-11-28 17:00" in held.not_filed_reason
    assert rows[by_cell.event_id].case_id is None
    assert "square by cell" in rows[by_cell.event_id].not_filed_reason
    for filed in (at_end, before, other_code, other_unit, elsewhere):
        assert rows[filed.event_id].case_id is not None, filed
        assert rows[filed.event_id].not_filed_reason is None
    assert n_cases is not None
    assert n_cases >= 2
    # the API's event record carries the reason
    view = await hub.records.event(inside.event_id)
    assert view.not_filed_reason == held.not_filed_reason


async def test_the_held_events_list_shows_them_newest_first(
    hub: Hub, db: AsyncEngine, tmp_path: Path, clock: FakeClock
) -> None:
    first = make_event("pole-1", code="0504", seq=1, at=OPENS + timedelta(hours=1))
    second = make_event("pole-1", code="0504", seq=2, at=OPENS + timedelta(hours=3))
    await ingest(hub, db, tmp_path, first, second)
    service = ServiceDayService(db, hub.devices, calendar(), hub.grid, clock)
    held = await service.held()
    assert [h.event_id for h in held] == [second.event_id, first.event_id]
    assert held[0].zone == "door-line"
    assert "县前街便民服务日" in held[0].reason


def _unit_config(device_id: str) -> dict[str, Any]:
    return {
        "device": {"id": device_id, "kind": "pole"},
        "mqtt": {"host": "localhost"},
        "hub": {"public_key": "kEahCuDnT/5oZfSHa3DSOTOS0Z9jLgULXr+CK0R8Px0="},
    }


async def test_push_sends_each_unit_its_exemptions_signed_and_only_when_they_change(
    hub: Hub, db: AsyncEngine, tmp_path: Path, clock: FakeClock
) -> None:
    clock.now = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
    for device_id in ("pole-1", "pole-2", "pole-9"):
        await hub.devices.register(device_id, "pole")
    # pole-9's camera cam-7 is known by where its last event was (the market: hy-st-11)
    await ingest(hub, db, tmp_path, make_event("pole-9", code="0505", at=clock.now))
    await hub.devices.set_desired("pole-2", {"telemetry": {"interval_s": 15}})
    publisher = hub.devices.publisher
    assert isinstance(publisher, RecordingPublisher)
    publisher.sent.clear()
    service = ServiceDayService(db, hub.devices, calendar(), hub.grid, clock)

    dry = await service.push(dry_run=True)
    assert [(o.device_id, o.exemptions, o.note) for o in dry] == [
        ("pole-1", 1, "would push"),
        ("pole-2", 0, ""),
        ("pole-9", 1, "would push"),
    ]
    assert publisher.sent == []

    outcomes = {o.device_id: o for o in await service.push()}
    assert outcomes["pole-1"].version == 1
    assert outcomes["pole-2"].version is None  # nothing concerns it: its config untouched
    assert outcomes["pole-9"].version == 1
    assert [t for t, *_ in publisher.sent] == [
        topic("pole-1", Channel.CONFIG_DESIRED),
        topic("pole-9", Channel.CONFIG_DESIRED),
    ]
    key = hub.key.public_key()
    desired = verify_desired(publisher.sent[0][1], public_key=key, device_id="pole-1")
    section = desired.config["service_days"]
    assert section["calendar"] == f"service_days@{calendar().digest}"
    [sent] = section["exemptions"]
    assert (sent["camera"], sent["zone"], sent["kinds"]) == ("cam-1", "door-line", ["shop_front"])
    assert sent["start"] == "2026-11-28T08:00:00+08:00"
    # the unit takes it: it validates as its config's service_days section
    unit = parse_config(_unit_config("pole-1"), tmp_path)
    new = check_pushed(merge_pushed(_unit_config("pole-1"), desired.config, 1), unit, tmp_path)
    assert new.service_days.exemptions[0].end == CLOSES
    nine = verify_desired(publisher.sent[1][1], public_key=key, device_id="pole-9")
    [by_cell] = nine.config["service_days"]["exemptions"]
    assert (by_cell["camera"], by_cell["zone"], by_cell["codes"]) == ("cam-1", None, ["0501"])

    # pushing again changes nothing; a calendar with one day less pushes what is left
    publisher.sent.clear()
    again = await service.push()
    assert all(o.version is None for o in again)
    assert publisher.sent == []
    clock.now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)  # the first day is over
    assert all(o.version is None for o in await service.push())
    fewer = ServiceDays.parse_text(DOC.split("  - name: square by cell", maxsplit=1)[0])
    smaller = ServiceDayService(db, hub.devices, fewer, hub.grid, clock)
    outcomes = {o.device_id: o for o in await smaller.push()}
    assert outcomes["pole-9"].version == 2  # its exemption was withdrawn: an empty section
    nine = verify_desired(publisher.sent[-1][1], public_key=key, device_id="pole-9")
    assert nine.config["service_days"]["exemptions"] == []


async def test_push_keeps_the_units_other_desired_sections(
    hub: Hub, db: AsyncEngine, clock: FakeClock
) -> None:
    clock.now = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
    await hub.devices.register("pole-1", "pole")
    await hub.devices.set_desired("pole-1", {"telemetry": {"interval_s": 15}})
    service = ServiceDayService(db, hub.devices, calendar(), hub.grid, clock)
    [outcome] = await service.push()
    assert outcome.version == 2
    view = await hub.devices.get("pole-1")
    assert view.desired_config is not None
    assert view.desired_config["telemetry"] == {"interval_s": 15}
    assert len(view.desired_config["service_days"]["exemptions"]) == 1


async def test_the_worker_pushes_at_start_and_again_each_period(
    hub: Hub, db: AsyncEngine, clock: FakeClock
) -> None:
    clock.now = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
    await hub.devices.register("pole-1", "pole")
    service = ServiceDayService(db, hub.devices, calendar(), hub.grid, clock)
    worker = ServiceDayWorker(service, every_s=0.2)
    task = asyncio.create_task(worker.run())
    # Stop it while it sleeps after its second pass: cancelling it in the middle of a
    # write left SQLite's lock held by the abandoned transaction (database is locked).
    assert await eventually(lambda: worker.passes >= 2, 10, every_s=0.005)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    view = await hub.devices.get("pole-1")
    assert view.desired_version == 1  # pushed once; the later passes found it unchanged
    assert view.desired_config is not None
    assert view.desired_config["service_days"]["exemptions"][0]["name"] == "县前街便民服务日"


def test_cli_check_lists_the_windows_or_every_problem_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    soon = (datetime.now(UTC) + timedelta(days=10)).date().isoformat()
    good = tmp_path / "days.yaml"
    good.write_text(DOC.replace("2026-11-28", soon), encoding="utf-8")
    data = ["--data-dir", str(tmp_path / "hub")]
    assert main([*data, "service-days", "check", str(good), "--days", "30"]) == 0
    out = capsys.readouterr().out
    assert f"{good}: valid; 2 service days, 2 windows (Asia/Shanghai)" in out
    assert f"{soon} 08:00-17:00 县前街便民服务日: shop_front at pole-1/cam-1/door-line" in out
    assert "square by cell" not in out  # long past
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        DOC.replace("[shop_front]", "[shop_front, juggling]").replace("hy-st-11", "hy-st-99"),
        encoding="utf-8",
    )
    assert main([*data, "service-days", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: 2 problem(s)" in err
    assert "line 6: service_days.0.suspends: " in err
    assert "'juggling' is neither an event code" in err
    assert "line 10: service_days.1.cells: " in err
    assert "not a cell of the grid: hy-st-99" in err
    # the packaged sample passes against the sample district
    assert main([*data, "service-days", "check"]) == 0
