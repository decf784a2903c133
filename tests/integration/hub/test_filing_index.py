"""The index of open cases a filer keeps between batches never files against a stale case.

On SQLite a :class:`CaseFiler` keeps the open cases it has read and filed for the next
batch, for as long as the database's filing token is the one its last batch left. These
tests change cases behind its back (closed, moved, deleted by other code, or a filing
rolled back) and check that the next report sees the database as it is. They run on
PostgreSQL too, where the filer keeps nothing between batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from central_hub.db.schema import audits, cases, events
from central_hub.domain.calendar import WorkCalendar
from central_hub.domain.catalogue import Catalogue
from central_hub.domain.errors import DomainError
from central_hub.domain.filing import EventFacts
from central_hub.domain.grid import Grid
from central_hub.services.case_filing import FILING_TOKEN_TRIGGERS, CaseFiler

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
SPOT = (28.6472, 121.2615)
ELSEWHERE = (28.6520, 121.2700)  # about a kilometre away


def _filer() -> CaseFiler:
    return CaseFiler(Catalogue.load(), Grid.load_sample(), WorkCalendar.load())


def report(n: int, at: tuple[float, float] = SPOT) -> EventFacts:
    return EventFacts(f"ev-{n}", "0504", *at, NOW - timedelta(minutes=10 - n), device_id="p-1")


async def file(db: AsyncEngine, filer: CaseFiler, *facts: EventFacts) -> list[int]:
    async with db.begin() as conn:
        got = await filer.file_many(conn, list(facts), NOW)
    assert all(isinstance(g, int) for g in got), got
    return [int(g) for g in got]  # type: ignore[arg-type]


async def exists(db: AsyncEngine, case_id: int) -> bool:
    async with db.connect() as conn:
        return bool(await conn.scalar(sa.select(sa.func.count()).where(cases.c.id == case_id)))


@contextmanager
def candidate_reads(db: AsyncEngine) -> Iterator[list[str]]:
    """The candidate queries run meanwhile (both databases' read the squares' cases)."""
    seen: list[str] = []

    def listen(_c: object, _cur: object, sql: str, *_: object) -> None:
        if "FROM json_each" in sql or "CROSS JOIN LATERAL" in sql:
            seen.append(sql)

    sa.event.listen(db.sync_engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        sa.event.remove(db.sync_engine, "before_cursor_execute", listen)


async def test_a_case_closed_meanwhile_is_not_merged_into(db: AsyncEngine) -> None:
    filer = _filer()
    (first,) = await file(db, filer, report(0))
    assert await file(db, filer, report(1)) == [first]  # the index (SQLite) has it
    async with db.begin() as conn:  # an operator closes it
        await conn.execute(cases.update().where(cases.c.id == first).values(stage="closed"))
    (second,) = await file(db, filer, report(2))
    assert second != first
    assert await file(db, filer, report(3)) == [second]


async def test_a_case_moved_or_deleted_meanwhile_is_looked_for_where_it_is(
    db: AsyncEngine,
) -> None:
    from central_hub.services.case_filing import place_key

    filer = _filer()
    (moved,) = await file(db, filer, report(0))
    (gone,) = await file(db, filer, report(1, ELSEWHERE))
    async with db.begin() as conn:  # an operator puts the first case where it really is
        await conn.execute(
            cases.update()
            .where(cases.c.id == moved)
            .values(
                lat=ELSEWHERE[0] + 0.003,
                lon=ELSEWHERE[1],
                place_key=place_key(ELSEWHERE[0] + 0.003, ELSEWHERE[1]),
            )
        )
        await conn.execute(sa.delete(audits).where(audits.c.case_id == gone))
        await conn.execute(sa.delete(cases).where(cases.c.id == gone))
    (at_old_place,) = await file(db, filer, report(2))
    assert at_old_place != moved
    assert await file(db, filer, report(3, (ELSEWHERE[0] + 0.003, ELSEWHERE[1]))) == [moved]
    (where_gone_was,) = await file(db, filer, report(4, ELSEWHERE))
    assert where_gone_was != gone
    assert await exists(db, where_gone_was)


class Abandon(Exception):
    """A filing's transaction given up after filing."""


async def test_a_filing_rolled_back_leaves_no_case_behind_in_the_index(db: AsyncEngine) -> None:
    filer = _filer()
    await file(db, filer, report(0, ELSEWHERE))  # the index holds a token now (SQLite)

    filed: list[int | DomainError] = []

    async def file_and_abandon(conn: AsyncConnection, facts: EventFacts) -> None:
        filed.extend(await filer.file_many(conn, [facts], NOW))
        raise Abandon  # e.g. the events' insert failed after filing

    with pytest.raises(Abandon):
        async with db.begin() as conn:
            await file_and_abandon(conn, report(1))
    (lost,) = filed
    assert isinstance(lost, int)
    assert not await exists(db, lost)
    (kept,) = await file(db, filer, report(2))
    assert await exists(db, kept)
    # The same inside one transaction: a savepoint rolled back, then the next filing.
    async with db.begin() as conn:
        with pytest.raises(Abandon):
            async with conn.begin_nested():
                await file_and_abandon(conn, report(3, (SPOT[0] + 0.002, SPOT[1])))
        undone = filed[-1]
        (again,) = await filer.file_many(conn, [report(4, (SPOT[0] + 0.002, SPOT[1]))], NOW)
        assert isinstance(again, int)
        await conn.execute(
            events.insert().values(
                event_id="ev-4", device_id="p-1", camera_id="c", seq=4, kind="k", code="0504",
                started_at=NOW, detected_at=NOW, received_at=NOW, dwell_s=1.0, confidence=0.9,
                lat=SPOT[0], lon=SPOT[1], location_source="fixed", zone="z", model_name="m",
                model_version="1", objects=[], case_id=again,
            )
        )  # fmt: skip
    assert await exists(db, again)
    assert isinstance(undone, int)
    assert undone == again or not await exists(db, undone)


async def test_the_index_spares_the_read_only_while_the_token_holds(db: AsyncEngine) -> None:
    filer = _filer()
    await file(db, filer, report(0))
    with candidate_reads(db) as reads:
        await file(db, filer, report(1))
    if db.dialect.name != "sqlite":
        assert len(reads) == 1  # PostgreSQL: every batch reads its squares
        return
    assert reads == []  # SQLite: the squares were read by the first batch
    async with db.begin() as conn:  # a migration that rebuilt cases would drop a trigger
        await conn.exec_driver_sql(f"DROP TRIGGER {FILING_TOKEN_TRIGGERS[2]}")
    with candidate_reads(db) as reads:
        (first,) = await file(db, filer, report(2))
        await file(db, filer, report(3))
    assert len(reads) == 2  # without its triggers the token is not trusted
    async with db.begin() as conn:  # and a change no trigger announces is still seen
        await conn.execute(cases.update().where(cases.c.id == first).values(stage="closed"))
    assert await file(db, filer, report(4)) != [first]


async def test_a_second_filer_sees_the_cases_the_first_opened(db: AsyncEngine) -> None:
    """Two workers (two hub processes on one SQLite file, or two pools): each one's index
    learns of the other's cases, though both read the square while it was empty."""
    one, two = _filer(), _filer()
    first_a, first_b = await file(db, one, report(0, ELSEWHERE)), await file(db, two, report(1))
    assert first_a != first_b  # a kilometre apart; `two` has read SPOT's square: one case
    (by_one,) = await file(db, one, report(2, (SPOT[0] + 0.0003, SPOT[1])))  # 33 m north
    assert await file(db, two, report(3, (SPOT[0] + 0.0003, SPOT[1]))) == [by_one]
    assert await file(db, one, report(4)) == first_b
