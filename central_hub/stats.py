"""Metrics for any period and grid subtree, computed from the audit trail by the pure domain."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.db.schema import audits, cases
from central_hub.domain.grid import Grid
from central_hub.domain.metrics import (
    AuditFact,
    CaseFacts,
    DailyCounts,
    Metrics,
    compute_metrics,
    daily_counts,
)
from central_hub.domain.workflow import Stage

__all__ = ["MetricsService"]


class _ReadUTC(sa.TypeDecorator[datetime]):
    """Reads a UTCDateTime column fast: SQLite's ISO text through ``fromisoformat``.

    Used only to read facts (tens of thousands of rows per statistics view), where the
    generic DateTime parser dominated the time; PostgreSQL's datetimes pass through.
    """

    impl = sa.String
    cache_ok = True

    def process_result_value(self, value: object, dialect: Dialect) -> datetime | None:
        """An aware UTC datetime (None stays None)."""
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if not isinstance(value, datetime):
            raise TypeError(f"not a datetime from the database: {value!r}")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc(column: sa.ColumnElement[datetime]) -> sa.ColumnElement[datetime]:
    return sa.type_coerce(column, _ReadUTC()).label(column.key)


class MetricsService:
    """Loads case and audit facts and hands them to :mod:`central_hub.domain.metrics`."""

    def __init__(self, engine: AsyncEngine, grid: Grid, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.grid = grid
        self.clock = clock

    async def _facts(
        self, start: datetime, end: datetime, cells: set[str] | None = None
    ) -> tuple[list[CaseFacts], list[AuditFact]]:
        # Cases reported before the end that were still open at the start, or reported in it.
        relevant = sa.and_(
            cases.c.reported_at < end,
            sa.or_(
                cases.c.reported_at >= start,
                cases.c.closed_at.is_(None),
                cases.c.closed_at >= start,
            ),
        )
        if cells is not None:  # the domain filters by cell too; this only reads less
            relevant = sa.and_(relevant, cases.c.grid_cell_id.in_(sorted(cells)))
        # Only the columns the facts need: JSON and text columns cost the most to read.
        case_cols = [
            cases.c.id,
            cases.c.source,
            cases.c.code,
            cases.c.grid_cell_id,
            _utc(cases.c.reported_at),
            _utc(cases.c.deadline),
        ]
        audit_cols = [
            audits.c.case_id,
            _utc(audits.c.at),
            audits.c.from_stage,
            audits.c.to_stage,
            audits.c.action,
            audits.c.actor,
            audits.c.role,
        ]
        async with self.engine.connect() as conn:
            case_rows = (await conn.execute(sa.select(*case_cols).where(relevant))).all()
            audit_rows = (
                await conn.execute(
                    sa.select(*audit_cols)
                    .where(audits.c.case_id.in_(sa.select(cases.c.id).where(relevant)))
                    .order_by(audits.c.id)
                )
            ).all()
        initial: dict[int, str] = {}
        facts_audits = []
        for a in audit_rows:
            if a.from_stage is None:
                initial.setdefault(a.case_id, a.to_stage)
            facts_audits.append(
                AuditFact(
                    case_id=a.case_id,
                    at=a.at,
                    from_stage=a.from_stage,
                    to_stage=a.to_stage,
                    action=a.action,
                    actor=a.actor,
                    role=a.role,
                )
            )
        facts_cases = [
            CaseFacts(
                case_id=c.id,
                source=c.source,
                code=c.code,
                grid_cell_id=c.grid_cell_id,
                reported_at=c.reported_at,
                deadline=c.deadline,
                initial_stage=Stage(initial.get(c.id, Stage.REPORTED.value)),
            )
            for c in case_rows
        ]
        return facts_cases, facts_audits

    def _cells(self, cell_id: str | None) -> set[str] | None:
        return self.grid.subtree(cell_id) if cell_id is not None else None

    async def metrics(
        self,
        period_start: datetime,
        period_end: datetime,
        *,
        cell_id: str | None = None,
        now: datetime | None = None,
    ) -> Metrics:
        """Every DOMAIN.md metric for ``[period_start, period_end)`` in ``cell_id``'s subtree."""
        facts, trail = await self._facts(period_start, period_end)
        return compute_metrics(
            facts,
            trail,
            period_start=period_start,
            period_end=period_end,
            now=now or self.clock(),
            cell_ids=self._cells(cell_id),
        )

    async def overview(
        self,
        period_start: datetime,
        period_end: datetime,
        *,
        cell_id: str | None = None,
        now: datetime | None = None,
    ) -> tuple[Metrics, list[DailyCounts]]:
        """:meth:`metrics` and :meth:`daily` from one read, computed off the event loop."""
        cells = self._cells(cell_id)
        facts, trail = await self._facts(period_start, period_end, cells)
        at = now or self.clock()

        def compute() -> tuple[Metrics, list[DailyCounts]]:
            return (
                compute_metrics(
                    facts,
                    trail,
                    period_start=period_start,
                    period_end=period_end,
                    now=at,
                    cell_ids=cells,
                ),
                daily_counts(
                    facts,
                    trail,
                    period_start=period_start,
                    period_end=period_end,
                    now=at,
                    cell_ids=cells,
                ),
            )

        return await asyncio.to_thread(compute)

    async def daily(
        self,
        period_start: datetime,
        period_end: datetime,
        *,
        cell_id: str | None = None,
        now: datetime | None = None,
    ) -> list[DailyCounts]:
        """Per-day flows for charts."""
        facts, trail = await self._facts(period_start, period_end)
        return daily_counts(
            facts,
            trail,
            period_start=period_start,
            period_end=period_end,
            now=now or self.clock(),
            cell_ids=self._cells(cell_id),
        )
