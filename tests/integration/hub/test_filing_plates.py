"""Cars parked side by side are separate cases (``cases.plate``): through the real ingest
worker and filer, on SQLite and PostgreSQL, in one batch and across batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.adapters.evidence import EvidenceStore
from central_hub.db.schema import cases, events
from central_hub.domain.calendar import WorkCalendar
from central_hub.domain.catalogue import Catalogue
from central_hub.domain.grid import Grid
from central_hub.services.case_filing import CaseFiler
from central_hub.testing import ListSource, inbound, make_event
from central_hub.workers.ingest import IngestWorker
from edge_agent.protocol import Event

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
LAT, LON = 28.6455, 121.2650
#: About a metre of latitude in degrees.
M_LAT = 1 / 111_195


def _worker(db: AsyncEngine, where: Path) -> IngestWorker:
    filer = CaseFiler(Catalogue.load(), Grid.load_sample(), WorkCalendar.load())
    return IngestWorker(db, ListSource(), EvidenceStore(where), filer, lambda: NOW)


def parked(seq: int, plate: str | None, metres: float, minutes: int) -> Event:
    """A car in a no-parking box, ``metres`` north of the spot, seen ``minutes`` ago."""
    return make_event(
        "pole-7", code="0505", seq=seq, at=NOW - timedelta(minutes=minutes),
        lat=LAT + metres * M_LAT, lon=LON, plate=plate,
    )  # fmt: skip


async def test_two_cars_nose_to_tail_are_two_cases_and_each_keeps_its_own(
    db: AsyncEngine, tmp_path: Path
) -> None:
    worker = _worker(db, tmp_path)

    # One batch: car A, car B 5 m behind it (0505 merges within 15 m), A seen again.
    await worker.process(
        [
            inbound(parked(1, "浙J·A1234", 0, 30)),
            inbound(parked(2, "浙J·B5678", 5, 29)),
            inbound(parked(3, "浙J·A1234", 1, 28)),
        ]
    )
    # A later batch: B again (separators differ), and a car whose plate was unreadable,
    # which cannot be told apart and joins the nearest case, as any report does.
    await worker.process([inbound(parked(4, "浙JB5678", 5, 20)), inbound(parked(5, None, 4, 19))])
    async with db.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(cases.c.id, cases.c.plate, cases.c.event_count).order_by(cases.c.id)
            )
        ).all()
        seen = await conn.execute(sa.select(events.c.seq, events.c.case_id))
        filed = {r.seq: r.case_id for r in seen}
    assert [(r.plate, r.event_count) for r in rows] == [("浙J·A1234", 2), ("浙J·B5678", 3)]
    a, b = rows[0].id, rows[1].id
    assert filed == {1: a, 2: b, 3: a, 4: b, 5: b}


async def test_a_case_opened_before_its_plate_was_read_takes_the_first_one(
    db: AsyncEngine, tmp_path: Path
) -> None:
    worker = _worker(db, tmp_path)

    # The car arrives unread, then is read in the same batch: the case takes the plate,
    # and another car beside it is another case.
    await worker.process(
        [
            inbound(parked(1, None, 0, 30)),
            inbound(parked(2, "浙J·C9999", 0, 29)),
            inbound(parked(3, "浙J·D1111", 3, 28)),
        ]
    )
    # Across batches: a third car arrives unread further along and is read later; a
    # fourth parks beside it.
    await worker.process([inbound(parked(4, None, 40, 20))])
    await worker.process(
        [inbound(parked(5, "浙J·E2222", 40, 19)), inbound(parked(6, "浙J·F3333", 43, 18))]
    )
    async with db.connect() as conn:
        rows = (
            await conn.execute(sa.select(cases.c.plate, cases.c.event_count).order_by(cases.c.id))
        ).all()
    assert [tuple(r) for r in rows] == [
        ("浙J·C9999", 2),
        ("浙J·D1111", 1),
        ("浙J·E2222", 2),
        ("浙J·F3333", 1),
    ]
