"""The ingest worker against a real database (SQLite and PostgreSQL): idempotency, dead letters."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.adapters.evidence import EvidenceStore
from central_hub.adapters.mqtt import Inbound
from central_hub.db.schema import dead_letters, devices, events, tracks
from central_hub.services.throttle import RateBudget
from central_hub.testing import TINY_JPEG, ListSource, inbound, make_event, make_status
from central_hub.workers.ingest import IngestWorker
from edge_agent.protocol import Channel, Telemetry, Track, generate_signing_key, topic, uuid7

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


def _worker(db: AsyncEngine, tmp_path: Path) -> tuple[IngestWorker, ListSource]:
    source = ListSource()
    worker = IngestWorker(db, source, EvidenceStore(tmp_path / "ev"), None, lambda: NOW)
    return worker, source


async def _count(db: AsyncEngine, table: sa.Table) -> int:
    async with db.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


async def test_same_event_three_times_is_one_row(db: AsyncEngine, tmp_path: Path) -> None:
    worker, _ = _worker(db, tmp_path)
    ev = make_event(snapshot=TINY_JPEG, at=NOW)
    for _ in range(3):
        await worker.process([inbound(ev)])
    await worker.process([inbound(ev), inbound(ev)])  # duplicates inside one batch too
    assert await _count(db, events) == 1
    assert worker.stats.events_new == 1
    assert worker.stats.events_duplicate == 4
    async with db.connect() as conn:
        row = (await conn.execute(events.select())).one()
    assert row.detected_at == NOW
    assert EvidenceStore(tmp_path / "ev").get_sync(row.snapshot_sha256) == TINY_JPEG


async def test_malformed_goes_to_dead_letters_with_reason_and_bytes(
    db: AsyncEngine, tmp_path: Path
) -> None:
    worker, _ = _worker(db, tmp_path)
    good = make_event(at=NOW)
    bad = [
        Inbound(topic(good.device_id, Channel.EVENT), b"\xff\xfe not json", 1, False, 1),
        Inbound(topic(good.device_id, Channel.EVENT), b'{"schema":"xh.event/1"}', 1, False, 2),
        Inbound("xh/v1/dev/BAD_ID/event", b"{}", 1, False, 3),
        Inbound(topic("pole-2", Channel.EVENT), inbound(good).payload, 1, False, 4),
        Inbound(topic(good.device_id, Channel.STATUS), b"", 1, True, 5),
        Inbound(topic(good.device_id, Channel.EVENT), b"\x00" * 10, 1, False, 6),
    ]
    await worker.process([*bad, inbound(good)])
    assert await _count(db, events) == 1
    async with db.connect() as conn:
        rows = (await conn.execute(dead_letters.select().order_by(dead_letters.c.id))).all()
    assert [r.raw for r in rows] == [m.payload for m in bad]
    assert "not UTF-8 JSON" in rows[0].reason
    assert "missing required field 'event_id'" in rows[1].reason
    assert "event_id" in rows[1].fields
    assert "invalid device id" in rows[2].reason
    assert "does not match topic device" in rows[3].reason
    assert rows[3].device_id == "pole-2"
    assert worker.stats.dead_lettered == len(bad)


async def test_status_telemetry_and_stale_retained_status(db: AsyncEngine, tmp_path: Path) -> None:
    worker, _ = _worker(db, tmp_path)
    await worker.process([inbound(make_status("pole-1", "online", NOW))])
    # an older retained "offline" must not override the newer "online"
    await worker.process([inbound(make_status("pole-1", "offline", NOW - timedelta(minutes=5)))])
    tel = Telemetry(
        device_id="pole-1",
        ts=NOW,
        uptime_s=10,
        fps=4,
        inference_ms=20,
        outbox_depth=3,
        outbox_bytes=100,
        evicted=0,
    )
    await worker.process([inbound(tel)])
    async with db.connect() as conn:
        row = (await conn.execute(devices.select())).one()
    assert row.state == "online"
    assert row.telemetry["outbox_depth"] == 3
    await worker.process([inbound(make_status("pole-1", "offline", NOW + timedelta(seconds=1)))])
    async with db.connect() as conn:
        assert (await conn.execute(sa.select(devices.c.state))).scalar_one() == "offline"
    # A heartbeat redelivered late does not replace a newer one (it only marks the unit seen).
    late = tel.model_copy(update={"ts": NOW - timedelta(minutes=1), "outbox_depth": 99})
    await worker.process([inbound(late)])
    async with db.connect() as conn:
        assert (await conn.execute(devices.select())).one().telemetry["outbox_depth"] == 3


async def test_a_units_last_will_outranks_its_own_connection_but_not_a_later_one(
    db: AsyncEngine, tmp_path: Path
) -> None:
    """A unit stamps every status of a connection, its will included, with the
    connection's start: the will (published when the connection dies) replaces that
    connection's statuses; a late will of an earlier connection changes nothing."""
    later = NOW + timedelta(hours=2)  # the hub reads them after both connections began
    worker = IngestWorker(db, ListSource(), EvidenceStore(tmp_path / "ev"), None, lambda: later)

    async def state() -> str:
        async with db.connect() as conn:
            return str((await conn.execute(sa.select(devices.c.state))).scalar_one())

    async def status(st: str, connection: datetime) -> str:
        await worker.process([inbound(make_status("pole-1", st, connection))])
        return await state()

    first, second = NOW, NOW + timedelta(hours=1)
    assert await status("online", first) == "online"  # birth
    assert await status("degraded", first) == "degraded"  # sent again on that connection
    assert await status("offline", first) == "offline"  # its will: the unit is gone
    assert await status("online", second) == "online"  # back, a new connection
    assert await status("offline", first) == "online", "connection 1's will again: stale"
    assert await status("offline", second) == "offline"  # connection 2's own will


async def test_track_batches_are_idempotent(db: AsyncEngine, tmp_path: Path) -> None:
    worker, _ = _worker(db, tmp_path)
    tr = Track.model_validate(
        {
            "device_id": "truck-1",
            "batch_id": uuid7(),
            "points": [{"ts": NOW, "lat": 28.645, "lon": 121.26}],
        }
    )
    await worker.process([inbound(tr), inbound(tr)])
    assert await _count(db, tracks) == 1


async def test_migrations_match_the_tables(db: AsyncEngine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from central_hub.db.migrate import current_revision, head_revision
    from central_hub.db.schema import metadata
    from central_hub.services.case_filing import FILING_TOKEN_TABLE, FILING_TOKEN_TRIGGERS

    def outside_metadata(obj: object, name: str | None, kind: str, *_: object) -> bool:
        # The filing token is derived state kept by triggers, outside the schema's tables.
        return not (kind == "table" and name == FILING_TOKEN_TABLE)

    opts = {"include_object": outside_metadata}
    async with db.connect() as conn:
        diff = await conn.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync, opts=opts), metadata)
        )
        triggers = (
            (
                await conn.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'cases'"
                )
            )
            .scalars()
            .all()
            if db.dialect.name == "sqlite"
            else []
        )
    assert diff == []
    assert await current_revision(db) == head_revision()
    if db.dialect.name == "sqlite":  # a migration that rebuilds cases would drop them
        assert sorted(triggers) == sorted(FILING_TOKEN_TRIGGERS)


async def test_acks_only_move_a_command_forward(db: AsyncEngine, tmp_path: Path) -> None:
    from central_hub.services.commands import CommandService, CommandState
    from central_hub.services.devices import DeviceService
    from central_hub.testing import RecordingPublisher
    from edge_agent.protocol import CommandAck

    clock = lambda: NOW  # noqa: E731
    await DeviceService(db, None, clock, generate_signing_key()).register("pole-1", "pole")
    svc = CommandService(db, generate_signing_key(), RecordingPublisher(), clock)
    cmd = await svc.enqueue("pole-1", "speaker.stop", actor="op")
    worker, _ = _worker(db, tmp_path)

    def ack(state: str) -> Inbound:
        return inbound(
            CommandAck(cmd_id=cmd.cmd_id, device_id="pole-1", state=state, detail=state, ts=NOW)
        )

    await worker.process([ack("succeeded")])
    await worker.process([ack("received"), ack("failed")])  # late and conflicting acks
    assert (await svc.get(cmd.cmd_id)).state is CommandState.SUCCEEDED
    # An ack from another device for this command changes nothing either.
    other = CommandAck(cmd_id=cmd.cmd_id, device_id="pole-2", state="rejected", ts=NOW)
    await worker.process([inbound(other)])
    assert (await svc.get(cmd.cmd_id)).state is CommandState.SUCCEEDED


async def test_two_dispatchers_send_each_command_once(db: AsyncEngine, tmp_path: Path) -> None:
    """Every hub process runs a dispatcher: two flushing at once send each command once,
    and one whose broker refuses puts its claim back for the next pass."""
    from central_hub.errors import BrokerError
    from central_hub.services.commands import CommandService, CommandState
    from central_hub.testing import RecordingPublisher

    class SlowPublisher(RecordingPublisher):
        async def publish(
            self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
        ) -> None:
            await asyncio.sleep(0.002)  # let the other dispatcher run meanwhile
            await super().publish(topic, payload, qos=qos, retain=retain)

    class RefusingPublisher(RecordingPublisher):
        async def publish(
            self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
        ) -> None:
            raise BrokerError("broker gone")

    clock = lambda: NOW  # noqa: E731
    worker, _ = _worker(db, tmp_path)
    await worker.process([inbound(make_status("pole-1", "online", NOW))])
    key = generate_signing_key()
    one, two = SlowPublisher(), SlowPublisher()
    first, second = CommandService(db, key, one, clock), CommandService(db, key, two, clock)
    queued = [await first.enqueue("pole-1", "speaker.stop", actor="op") for _ in range(20)]
    refused = CommandService(db, key, RefusingPublisher(), clock)
    assert await refused.flush() == 0
    assert (await first.get(queued[0].cmd_id)).state is CommandState.QUEUED
    counts = await asyncio.gather(first.flush(), second.flush())
    assert sum(counts) == 20
    assert min(counts) > 0, "one dispatcher sent everything: the race was not run"
    payloads = [p for _, p, _, _ in one.sent + two.sent]
    assert len(payloads) == len(set(payloads)) == 20
    assert {(await first.get(c.cmd_id)).state for c in queued} == {CommandState.SENT}


class _BrokenFiler:
    """A filer with a bug: every call raises."""

    async def file_many(self, conn: object, batch: list[object], now: datetime) -> list[int]:
        raise RuntimeError("filer bug")


@pytest.mark.logs_exceptions("central_hub.workers.ingest")
async def test_a_bug_in_filing_dead_letters_instead_of_stopping(
    db: AsyncEngine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = ListSource()
    worker = IngestWorker(db, source, EvidenceStore(tmp_path / "ev"), _BrokenFiler(), lambda: NOW)
    ev = make_event(at=NOW)
    await worker.process([inbound(ev), inbound(make_status("pole-1", "online", NOW))])
    async with db.connect() as conn:
        rows = (await conn.execute(dead_letters.select())).all()
    assert [r.reason for r in rows] == ["internal error: RuntimeError: filer bug"]
    assert rows[0].raw == inbound(ev).payload
    assert await _count(db, events) == 0  # rolled back with its savepoint
    assert await _count(db, devices) == 1  # the status in the same batch was stored
    assert "internal error storing a message" in caplog.text


async def test_merging_within_a_batch_and_across_batches(db: AsyncEngine, tmp_path: Path) -> None:
    from central_hub.db.schema import cases
    from central_hub.domain.calendar import WorkCalendar
    from central_hub.domain.catalogue import Catalogue
    from central_hub.domain.grid import Grid
    from central_hub.services.case_filing import CaseFiler

    filer = CaseFiler(Catalogue.load(), Grid.load_sample(), WorkCalendar.load())
    worker = IngestWorker(db, ListSource(), EvidenceStore(tmp_path / "ev"), filer, lambda: NOW)
    lat, lon = 28.6472, 121.2615
    at = NOW - timedelta(minutes=30)
    same_a = make_event("pole-1", code="0504", seq=1, at=at, lat=lat, lon=lon)
    same_b = make_event("pole-2", code="0504", seq=1, at=at, lat=lat + 0.00004, lon=lon)  # ~4 m
    other_code = make_event("pole-1", code="0505", seq=2, at=at, lat=lat, lon=lon)
    far = make_event("pole-1", code="0504", seq=3, at=at, lat=lat + 0.001, lon=lon)  # ~110 m
    await worker.process([inbound(e) for e in (same_a, same_b, other_code, far)])
    later = make_event("pole-1", code="0504", seq=4, at=NOW, lat=lat, lon=lon + 0.00003)
    await worker.process([inbound(later)])
    async with db.connect() as conn:
        rows = (await conn.execute(cases.select().order_by(cases.c.id))).all()
        linked = dict((await conn.execute(sa.select(events.c.event_id, events.c.case_id))).all())
    assert [(r.code, r.event_count) for r in rows] == [("0504", 3), ("0505", 1), ("0504", 1)]
    first = rows[0].id
    assert {linked[e.event_id] for e in (same_a, same_b, later)} == {first}
    assert rows[0].last_event_at == NOW
    assert rows[0].first_report_id == same_a.event_id
    assert linked[far.event_id] == rows[2].id


async def test_a_late_report_merged_later_keeps_the_cases_last_report(
    db: AsyncEngine, tmp_path: Path
) -> None:
    """A report detected before the case's last one (a unit that was offline) merges in a
    later batch: the count grows, the last report stays the later one, the case is
    touched now, and its first plate read is kept while a case without one takes it."""
    from central_hub.db.schema import cases
    from central_hub.domain.calendar import WorkCalendar
    from central_hub.domain.catalogue import Catalogue
    from central_hub.domain.grid import Grid
    from central_hub.services.case_filing import CaseFiler

    clock = [NOW - timedelta(minutes=5)]
    filer = CaseFiler(Catalogue.load(), Grid.load_sample(), WorkCalendar.load())
    worker = IngestWorker(db, ListSource(), EvidenceStore(tmp_path / "ev"), filer, lambda: clock[0])
    lat, lon = 28.6472, 121.2615
    spots = [(lat, lon), (lat + 0.002, lon)]  # about 220 m apart: two cases
    first = [
        make_event("pole-1", code="0504", seq=n, at=clock[0], lat=a, lon=b, plate=plate)
        for n, ((a, b), plate) in enumerate(zip(spots, ["浙J11111", None], strict=True))
    ]
    await worker.process([inbound(e) for e in first])
    clock[0] = NOW
    late = [  # no plate read where the case has one (another plate would be another car)
        make_event("pole-2", code="0504", seq=n, at=NOW - timedelta(minutes=20), lat=a, lon=b,
                   plate=plate)
        for n, ((a, b), plate) in enumerate(zip(spots, [None, "浙J22222"], strict=True))
    ]  # fmt: skip
    await worker.process([inbound(e) for e in late])
    async with db.connect() as conn:
        rows = (await conn.execute(cases.select().order_by(cases.c.id))).all()
    assert [(r.event_count, r.last_event_at, r.updated_at) for r in rows] == [
        (2, NOW - timedelta(minutes=5), NOW),
        (2, NOW - timedelta(minutes=5), NOW),
    ]
    assert [r.plate for r in rows] == ["浙J11111", "浙J22222"]


async def test_merging_across_the_squares_cases_are_keyed_by(
    db: AsyncEngine, tmp_path: Path
) -> None:
    """Many places in one batch, each report of the next batch in the neighbouring square
    of its case (a few metres across a square's edge): every one merges."""
    from central_hub.db.schema import cases
    from central_hub.domain.calendar import WorkCalendar
    from central_hub.domain.catalogue import Catalogue
    from central_hub.domain.grid import Grid
    from central_hub.services.case_filing import PLACE_SQUARE_DEG, CaseFiler, place_key

    filer = CaseFiler(Catalogue.load(), Grid.load_sample(), WorkCalendar.load())
    worker = IngestWorker(db, ListSource(), EvidenceStore(tmp_path / "ev"), filer, lambda: NOW)
    at = NOW - timedelta(minutes=30)
    edge = 1e-6  # degrees: about 0.1 m inside a square's corner
    # A 6 x 6 lattice of square corners 0.0008 degrees apart (~85 m: one case each).
    corners = [
        (round(28.645 / PLACE_SQUARE_DEG + 2 * i) * PLACE_SQUARE_DEG,
         round(121.255 / PLACE_SQUARE_DEG + 2 * j) * PLACE_SQUARE_DEG)
        for i in range(6) for j in range(6)
    ]  # fmt: skip
    first = [
        make_event("pole-1", code="0504", seq=n, at=at, lat=lat - edge, lon=lon - edge)
        for n, (lat, lon) in enumerate(corners)
    ]
    await worker.process([inbound(e) for e in first])
    again = [
        make_event("pole-2", code="0504", seq=n, at=NOW, lat=lat + 2 * edge, lon=lon + 2 * edge)
        for n, (lat, lon) in enumerate(corners)
    ]
    for a, b in zip(first, again, strict=True):  # the test's premise: other squares
        assert place_key(a.location.lat, a.location.lon) != place_key(
            b.location.lat, b.location.lon
        )
    await worker.process([inbound(e) for e in again])
    async with db.connect() as conn:
        rows = (await conn.execute(cases.select().order_by(cases.c.id))).all()
        linked = dict((await conn.execute(sa.select(events.c.event_id, events.c.case_id))).all())
    assert len(rows) == len(corners)
    assert all(r.event_count == 2 and r.last_event_at == NOW for r in rows)
    assert [r.place_key for r in rows] == [place_key(e.location.lat, e.location.lon) for e in first]
    for a, b in zip(first, again, strict=True):
        assert linked[a.event_id] == linked[b.event_id]


async def test_selftest_events_are_stored_without_a_case(db: AsyncEngine, tmp_path: Path) -> None:
    """A technician's uplink check arrives (visible as events) but opens no case."""
    from central_hub.db.schema import cases
    from central_hub.domain.calendar import WorkCalendar
    from central_hub.domain.catalogue import Catalogue
    from central_hub.domain.grid import Grid
    from central_hub.services.case_filing import CaseFiler
    from edge_agent.agent.selftest import selftest_event

    filer = CaseFiler(Catalogue.load(), Grid.load_sample(), WorkCalendar.load())
    worker = IngestWorker(db, ListSource(), EvidenceStore(tmp_path / "ev"), filer, lambda: NOW)
    checks = [selftest_event("pole-1", n, n, NOW, None) for n in range(1, 4)]
    real = make_event("pole-1", code="0504", seq=4, at=NOW)
    await worker.process([inbound(e) for e in (*checks, real)])  # the batch path
    await worker.process([inbound(selftest_event("pole-1", 5, 5, NOW, None))])
    async with db.connect() as conn:
        linked = dict((await conn.execute(sa.select(events.c.code, events.c.case_id))).all())
        stored = (
            await conn.execute(sa.select(sa.func.count()).where(events.c.code == "0000"))
        ).scalar_one()
    assert stored == 4
    assert linked["0000"] is None
    assert linked["0504"] is not None
    assert await _count(db, cases) == 1
    assert await _count(db, dead_letters) == 0
    assert worker.stats.dead_lettered == 0


async def test_a_status_or_event_from_the_far_future_is_dead_lettered(
    db: AsyncEngine, tmp_path: Path
) -> None:
    """A status dated 9999 would keep a stopped unit online for ever (issue #17, finding 5);
    an event a day ahead would be filed as if it happened then. Both are refused, named."""
    worker, _ = _worker(db, tmp_path)
    far = datetime(9999, 1, 1, tzinfo=UTC)
    await worker.process(
        [
            inbound(make_status("pole-1", "online", far)),
            inbound(make_event(at=NOW + timedelta(days=1))),
            inbound(make_event(seq=2, at=NOW + timedelta(minutes=5))),  # drift: accepted
        ]
    )
    tel = Telemetry(
        device_id="truck-1", ts=NOW, uptime_s=1, fps=1, inference_ms=1, outbox_depth=0,
        outbox_bytes=0, evicted=0,
        gps={"ts": far, "lat": 28.6, "lon": 121.2},
    )  # fmt: skip
    await worker.process([inbound(tel)])
    assert await _count(db, events) == 1
    async with db.connect() as conn:
        rows = (await conn.execute(dead_letters.select().order_by(dead_letters.c.id))).all()
        device = (
            await conn.execute(devices.select().where(devices.c.device_id == "pole-1"))
        ).first()
    assert [r.fields for r in rows] == [["ts"], ["started_at"], ["gps.ts"]]
    assert "is more than 0:10:00 after the hub's clock" in rows[0].reason
    assert "NTP" in rows[1].reason
    assert device is None or device.state != "online"
    # The unit's next real status counts.
    await worker.process([inbound(make_status("pole-1", "offline", NOW))])
    async with db.connect() as conn:
        assert (await conn.execute(devices.select())).one().state == "offline"


async def test_a_huge_refused_payload_is_kept_truncated(db: AsyncEngine, tmp_path: Path) -> None:
    worker, _ = _worker(db, tmp_path)
    junk = b"{" + b"x" * (1024 * 1024)
    await worker.process([Inbound(topic("pole-1", Channel.EVENT), junk, 1, False, 1)])
    async with db.connect() as conn:
        row = (await conn.execute(dead_letters.select())).one()
    assert len(row.raw) == 64 * 1024
    assert f"raw payload of {len(junk)} bytes kept truncated" in row.reason


async def test_one_devices_flood_of_refusals_is_kept_only_up_to_its_budget(
    db: AsyncEngine, tmp_path: Path
) -> None:
    """Issue #17, finding 6: dead letters had no rate limit, so one unit could fill the
    database with refusals. Each device now keeps a burst and a trickle; the rest are
    counted, and the next one kept says how many were dropped; other devices are not
    affected."""
    seconds = [0.0]
    worker, _ = _worker(db, tmp_path)
    worker.dead_letter_budget = RateBudget(per_minute=6, burst=5, clock=lambda: seconds[0])
    junk = [Inbound(topic("pole-1", Channel.EVENT), b"not json", 1, False, i) for i in range(40)]
    await worker.process(junk)
    await worker.process([Inbound(topic("pole-2", Channel.STATUS), b"[]", 1, False, 99)])
    assert await _count(db, dead_letters) == 6
    assert worker.stats.dead_lettered == 41
    assert worker.stats.dead_letters_not_kept == 35
    seconds[0] = 10.0  # one more allowed for pole-1 (6 a minute)
    await worker.process([Inbound(topic("pole-1", Channel.EVENT), b"{", 1, False, 100)])
    async with db.connect() as conn:
        rows = (await conn.execute(dead_letters.select().order_by(dead_letters.c.id))).all()
    assert [r.device_id for r in rows].count("pole-1") == 6
    assert [r.device_id for r in rows].count("pole-2") == 1
    assert "35 more from this device were refused and not kept" in rows[-1].reason
