"""Two workers filing reports of the same new problems at the same instant give one case each.

Each of 100 problems (a shop's goods past its door line, 200 m apart across the sample
district) is reported twice at the same moment, once to each of two ingest workers with
their own connection pools, in rounds of 10 problems that both workers file concurrently.
Without the filing's advisory locks PostgreSQL opens two cases for most problems (both
workers find no open case, both insert); with them the second report waits for the first
worker's commit and merges. On SQLite the IMMEDIATE transactions serialise the workers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.adapters.evidence import EvidenceStore
from central_hub.db.engine import create_engine
from central_hub.db.migrate import migrate
from central_hub.db.schema import cases, events
from central_hub.domain.calendar import WorkCalendar
from central_hub.domain.catalogue import Catalogue
from central_hub.domain.grid import Grid
from central_hub.services.case_filing import CaseFiler
from central_hub.testing import FakeClock, ListSource, inbound, make_event
from central_hub.workers.ingest import IngestWorker

pytestmark = pytest.mark.integration

PROBLEMS = 100
ROUND = 10


@pytest.fixture
async def two_pools(
    db_url: str, schema_scope: Callable[[str], AbstractAsyncContextManager[str | None]]
) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """Two engines (two connection pools, as two hub processes have) on one database."""
    async with schema_scope(db_url) as schema:
        first = create_engine(db_url, pg_schema=schema)
        await migrate(first)
        second = create_engine(db_url, pg_schema=schema)
        yield first, second
        await first.dispose()
        await second.dispose()


async def test_racing_workers_open_one_case_per_problem(
    two_pools: tuple[AsyncEngine, AsyncEngine], tmp_path: Path, clock: FakeClock
) -> None:
    filer = CaseFiler(Catalogue.load(), Grid.load_sample(), WorkCalendar.load())
    workers = [
        IngestWorker(engine, ListSource(), EvidenceStore(tmp_path / "ev"), filer, clock)
        for engine in two_pools
    ]
    spots = [(28.639 + 0.002 * (n // 10), 121.251 + 0.002 * (n % 10)) for n in range(PROBLEMS)]
    at = clock.now - timedelta(minutes=1)
    for start in range(0, PROBLEMS, ROUND):
        batches = [
            [
                inbound(make_event(device, at=at, lat=lat, lon=lon, seq=n + 1))
                for n, (lat, lon) in enumerate(spots[start : start + ROUND], start)
            ]
            for device in ("pole-a", "pole-b")
        ]
        await asyncio.gather(*(w.process(b) for w, b in zip(workers, batches, strict=True)))

    async with two_pools[0].connect() as conn:
        stored = await conn.scalar(sa.select(sa.func.count()).select_from(events))
        rows = (await conn.execute(sa.select(cases.c.lat, cases.c.lon, cases.c.event_count))).all()
        unfiled = await conn.scalar(
            sa.select(sa.func.count()).select_from(events).where(events.c.case_id.is_(None))
        )
    assert stored == 2 * PROBLEMS
    assert unfiled == 0
    per_spot: dict[tuple[float, float], list[int]] = {}
    for lat, lon, count in rows:
        per_spot.setdefault((round(lat, 6), round(lon, 6)), []).append(count)
    doubled = {spot: counts for spot, counts in per_spot.items() if counts != [2]}
    assert len(per_spot) == PROBLEMS
    assert not doubled, f"{len(doubled)} problems were not one case of two reports: {doubled}"
    assert sum(w.stats.events_new for w in workers) == 2 * PROBLEMS
