"""Filing has one path: a failed batch and a lost race go through the real filer again.

Both tests run on SQLite and PostgreSQL. A batch that the database refuses because of one
event files the others and dead-letters that one; two workers given the same event at
once (an MQTT redelivery to another hub worker) file it once, whichever of them loses.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from central_hub.adapters.evidence import EvidenceStore
from central_hub.db.schema import audits, cases, dead_letters, devices, events
from central_hub.domain.calendar import WorkCalendar
from central_hub.domain.catalogue import Catalogue
from central_hub.domain.errors import DomainError
from central_hub.domain.filing import EventFacts
from central_hub.domain.grid import Grid
from central_hub.services.case_filing import CaseFiler
from central_hub.testing import ListSource, inbound, make_event, make_status
from central_hub.workers import ingest
from central_hub.workers.ingest import EventFiler, IngestWorker
from edge_agent.protocol import Event

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
LAT, LON = 28.6472, 121.2615
#: Long enough for the second worker to reach the lock the first one holds.
LOCK_WAIT_S = 10.0


def _filer() -> CaseFiler:
    return CaseFiler(Catalogue.load(), Grid.load_sample(), WorkCalendar.load())


def _worker(db: AsyncEngine, where: Path, filer: EventFiler) -> IngestWorker:
    return IngestWorker(db, ListSource(), EvidenceStore(where), filer, lambda: NOW)


async def _rows(db: AsyncEngine, table: sa.Table) -> list[sa.Row[tuple[object, ...]]]:
    async with db.connect() as conn:
        order = table.primary_key.columns.values()[0]
        return list((await conn.execute(table.select().order_by(order))).all())


async def _block_case_for(db: AsyncEngine, event: Event) -> None:
    """A case (not from an AI event) that already claims ``event``'s id as its first report.

    It is elsewhere and of another code, so the event does not merge into it: filing the
    event opens a case, which the unique ``first_report_id`` refuses.
    """
    async with db.begin() as conn:
        await conn.execute(
            cases.insert().values(
                source="citizen",
                code="0505",
                major="05",
                category="blocker",
                title="a case that claims the event's id",
                line="city",
                stage="registered",
                lat=LAT - 0.01,
                lon=LON - 0.01,
                reported_at=NOW - timedelta(hours=1),
                deadline=None,
                limit_kind="hours",
                limit_amount=2.0,
                verification_required=False,
                event_count=1,
                last_event_at=NOW - timedelta(hours=1),
                updated_at=NOW - timedelta(hours=1),
                first_report_id=event.event_id,
            )
        )


async def test_one_refused_event_leaves_the_rest_of_its_batch_filed(
    db: AsyncEngine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    at = NOW - timedelta(minutes=30)
    first = make_event("pole-1", seq=1, at=at, lat=LAT, lon=LON)
    bad = make_event("pole-1", seq=2, at=at, lat=LAT + 0.002, lon=LON)  # ~220 m away
    again = make_event("pole-2", seq=1, at=at, lat=LAT + 0.00004, lon=LON)  # ~4 m: merges
    far = make_event("pole-1", seq=3, at=at, lat=LAT - 0.002, lon=LON)
    await _block_case_for(db, bad)
    worker = _worker(db, tmp_path / "ev", _filer())
    batch = [inbound(e) for e in (first, bad, again, far)]
    await worker.process([*batch, inbound(make_status("pole-1", "online", NOW))])

    # The multi-row insert failed as a whole, so every event went through the filer alone.
    assert "one by one" in caplog.text
    letters = await _rows(db, dead_letters)
    assert [r.raw for r in letters] == [inbound(bad).payload]
    assert letters[0].reason.startswith("storage refused: ")
    assert "first_report_id" in letters[0].reason
    rows = await _rows(db, cases)
    filed = {r.first_report_id: r for r in rows}
    assert set(filed) == {bad.event_id, first.event_id, far.event_id}  # the blocker, two new
    assert filed[first.event_id].event_count == 2
    assert filed[far.event_id].event_count == 1
    linked = {r.event_id: r.case_id for r in await _rows(db, events)}
    assert linked == {
        first.event_id: filed[first.event_id].id,
        again.event_id: filed[first.event_id].id,
        far.event_id: filed[far.event_id].id,
    }
    # One filing audit per new case, none for the merge or for the refused event.
    trail = await _rows(db, audits)
    assert sorted((a.case_id, a.action, a.reason) for a in trail) == sorted(
        (filed[e.event_id].id, "file", f"filed from ai report {e.event_id}") for e in (first, far)
    )
    assert len(await _rows(db, devices)) == 1  # the status in the same batch was stored
    assert worker.stats.events_new == 3
    assert worker.stats.events_duplicate == 0
    assert worker.stats.dead_lettered == 1
    assert worker.stats.stored == 4


class _HeldFiler:
    """The real filer, then a pause: its worker keeps the transaction open until released."""

    def __init__(self, inner: EventFiler) -> None:
        self.inner = inner
        self.filed = asyncio.Event()
        self.release = asyncio.Event()

    async def file_many(
        self, conn: AsyncConnection, batch: list[EventFacts], now: datetime
    ) -> list[int | DomainError]:
        """File through the real filer, then wait for the test to release the worker."""
        result = await self.inner.file_many(conn, batch, now)
        self.filed.set()
        await self.release.wait()
        return result


async def _until_a_backend_waits_for_a_lock(db: AsyncEngine) -> None:
    """On PostgreSQL, wait until some session is blocked on a lock (the second worker).

    SQLite has one writer at a time (every transaction begins IMMEDIATE): the second
    worker waits for the first one's commit before it reads anything, so there is no
    interleaving to wait for; give it a moment to start waiting for the lock.
    """
    if db.dialect.name != "postgresql":
        await asyncio.sleep(0.2)
        return
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with asyncio.timeout(LOCK_WAIT_S):
        while True:
            async with db.connect() as conn:
                if (await conn.execute(query)).scalar_one() > 0:
                    return
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("with_another", [False, True], ids=["alone", "with-another"])
@pytest.mark.parametrize("repeat", [False, True], ids=["new-problem", "repeat-report"])
async def test_two_workers_given_the_same_event_file_it_once(
    db: AsyncEngine, tmp_path: Path, repeat: bool, with_another: bool
) -> None:
    """Worker A files ``event`` and holds its transaction; worker B gets the same event.

    On PostgreSQL B reads before A commits, so it files the event too and then waits for
    A's row locks: on the new case's ``first_report_id`` (a new problem: the insert is
    refused) or on the case both merge into and then the event's id (a repeat report:
    fewer events stored than filed). Either way B loses the race and retries through the
    same filing path, which then finds the event stored.
    """
    filer = _filer()
    earlier = make_event("pole-9", seq=1, at=NOW - timedelta(minutes=10), lat=LAT, lon=LON)
    if repeat:  # an open case at the place for both workers to merge the event into
        await _worker(db, tmp_path / "ev0", filer).process([inbound(earlier)])
    event = make_event("pole-1", seq=1, at=NOW - timedelta(minutes=5), lat=LAT, lon=LON + 3e-5)
    other = make_event("pole-2", seq=1, at=NOW - timedelta(minutes=5), lat=LAT - 0.002, lon=LON)
    held = _HeldFiler(filer)
    a = _worker(db, tmp_path / "ev-a", held)
    b = _worker(db, tmp_path / "ev-b", filer)
    b_batch = [inbound(event), inbound(other)] if with_another else [inbound(event)]
    async with asyncio.timeout(3 * LOCK_WAIT_S), asyncio.TaskGroup() as tasks:
        tasks.create_task(a.process([inbound(event)]), name="worker A")
        await held.filed.wait()
        tasks.create_task(b.process(b_batch), name="worker B")
        await _until_a_backend_waits_for_a_lock(db)
        held.release.set()

    assert await _rows(db, dead_letters) == []
    rows = await _rows(db, cases)
    by_first = {r.first_report_id: r for r in rows}
    expected = {(earlier if repeat else event).event_id} | (
        {other.event_id} if with_another else set()
    )
    assert set(by_first) == expected
    shared = by_first[(earlier if repeat else event).event_id]
    assert shared.event_count == (2 if repeat else 1)  # counted once, by A
    linked = {r.event_id: r.case_id for r in await _rows(db, events)}
    assert linked[event.event_id] == shared.id
    assert len(linked) == 1 + int(repeat) + int(with_another)
    trail = await _rows(db, audits)
    assert sorted(a.case_id for a in trail) == sorted(r.id for r in rows)  # one each
    assert (a.stats.events_new, a.stats.events_duplicate) == (1, 0)
    assert (b.stats.events_new, b.stats.events_duplicate) == (int(with_another), 1)
    assert a.stats.dead_lettered == b.stats.dead_lettered == 0


class _StealingFiler:
    """The real filer, but for its first ``times`` calls the first event is stored meanwhile.

    It stores the event row inside the worker's savepoint, as another worker's commit would
    appear to it: the worker stores fewer events than it filed and loses the race. The
    savepoint's rollback takes the row away again, so every try loses until ``times`` ends.
    """

    def __init__(self, inner: EventFiler, times: int) -> None:
        self.inner = inner
        self.times = times
        self.calls = 0

    async def file_many(
        self, conn: AsyncConnection, batch: list[EventFacts], now: datetime
    ) -> list[int | DomainError]:
        """File through the real filer; while stealing, store the first event's row too."""
        self.calls += 1
        result = await self.inner.file_many(conn, batch, now)
        if self.calls <= self.times:
            facts = batch[0]
            await conn.execute(
                events.insert().values(
                    event_id=facts.event_id,
                    device_id="pole-other",
                    camera_id="cam-1",
                    seq=1,
                    kind="shop_front_overflow",
                    code=facts.code,
                    started_at=facts.detected_at,
                    detected_at=facts.detected_at,
                    received_at=now,
                    dwell_s=0.0,
                    confidence=0.5,
                    lat=facts.lat,
                    lon=facts.lon,
                    location_source="fixed",
                    zone="door-line",
                    model_name="xh-det",
                    model_version="1",
                    objects=[],
                )
            )
        return result


@pytest.mark.parametrize("steals", [1, ingest.RACE_ATTEMPTS])
async def test_a_lost_race_files_again_and_then_retries_the_batch(
    db: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, steals: int
) -> None:
    """A lost race runs the events again through the real filer; cases and audits once.

    After ``RACE_ATTEMPTS`` lost races in a row the whole batch is retried, as when the
    database is unavailable.
    """
    monkeypatch.setattr(ingest, "RETRY_DELAY_S", 0.0)
    thief = _StealingFiler(_filer(), steals)
    worker = _worker(db, tmp_path / "ev", thief)
    near = make_event("pole-1", seq=1, at=NOW, lat=LAT, lon=LON)
    far = make_event("pole-1", seq=2, at=NOW, lat=LAT - 0.002, lon=LON)
    await worker.process([inbound(near), inbound(far)])

    assert thief.calls == steals + 1
    assert worker.stats.batch_retries == (1 if steals == ingest.RACE_ATTEMPTS else 0)
    rows = await _rows(db, cases)
    assert sorted(r.first_report_id for r in rows) == sorted([near.event_id, far.event_id])
    assert all(r.event_count == 1 for r in rows)
    linked = {r.event_id: r.case_id for r in await _rows(db, events)}
    assert sorted(linked.values()) == sorted(r.id for r in rows)
    assert sorted(a.case_id for a in await _rows(db, audits)) == sorted(r.id for r in rows)
    assert (worker.stats.events_new, worker.stats.events_duplicate) == (2, 0)
    assert await _rows(db, dead_letters) == []
