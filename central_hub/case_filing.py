"""Files stored events as cases, inside the ingest transaction, using the domain's pure plan.

The database pre-filters candidate cases (same code, open, a bounding box around the
event and the merge window); :func:`central_hub.domain.filing.plan_filing` decides.
Two hub workers filing reports of the same new problem at the same instant may open two
cases (no cross-worker lock); an operator merges or cancels the extra one.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from central_hub.db.schema import audits, cases
from central_hub.domain.calendar import WorkCalendar
from central_hub.domain.catalogue import Catalogue
from central_hub.domain.filing import EventFacts, OpenCase, plan_filing
from central_hub.domain.grid import Grid
from central_hub.domain.workflow import FINAL_STAGES
from edge_agent.protocol import Event

log = logging.getLogger(__name__)

__all__ = ["FILING_ACTION", "SYSTEM_ROLE", "CaseFiler"]

#: The audit action recorded when a case is opened by filing.
FILING_ACTION = "file"
#: The audit role of the hub itself (filing is not a person's action).
SYSTEM_ROLE = "system"
_METRES_PER_DEGREE = 111_320.0


class CaseFiler:
    """An :class:`central_hub.ingest.EventFiler` backed by the catalogue, grid and calendar."""

    def __init__(self, catalogue: Catalogue, grid: Grid, calendar: WorkCalendar) -> None:
        self.catalogue = catalogue
        self.grid = grid
        self.calendar = calendar

    async def _candidates(self, conn: AsyncConnection, facts: EventFacts) -> list[OpenCase]:
        entry = self.catalogue.get(facts.code)
        window = timedelta(hours=entry.merge_window_h)
        dlat = entry.merge_radius_m / _METRES_PER_DEGREE
        dlon = dlat / max(math.cos(math.radians(facts.lat)), 0.01)
        q = sa.select(
            cases.c.id, cases.c.code, cases.c.lat, cases.c.lon, cases.c.stage, cases.c.last_event_at
        ).where(
            cases.c.code == facts.code,
            cases.c.stage.not_in([s.value for s in FINAL_STAGES]),
            cases.c.last_event_at >= facts.detected_at - window,
            cases.c.last_event_at <= facts.detected_at + window,
            cases.c.lat.between(facts.lat - dlat, facts.lat + dlat),
            cases.c.lon.between(facts.lon - dlon, facts.lon + dlon),
        )
        rows = (await conn.execute(q.limit(50))).all()
        return [
            OpenCase(
                case_id=r.id,
                code=r.code,
                lat=r.lat,
                lon=r.lon,
                stage=r.stage,
                last_event_at=r.last_event_at,
            )
            for r in rows
        ]

    async def file(self, conn: AsyncConnection, event: Event, now: datetime) -> int:
        """File ``event``: merge into an open case or open one; return the case id."""
        return await self.file_facts(conn, EventFacts.from_event(event), now)

    async def file_facts(self, conn: AsyncConnection, facts: EventFacts, now: datetime) -> int:
        """File any report (AI event, and later citizen or inspector reports)."""
        candidates = await self._candidates(conn, facts)
        plan = plan_filing(facts, candidates, self.catalogue, self.grid, self.calendar, now)
        if plan.merge_into is not None:
            case_id = int(plan.merge_into)
            await conn.execute(
                cases.update()
                .where(cases.c.id == case_id)
                .values(
                    event_count=cases.c.event_count + 1,
                    last_event_at=sa.case(
                        (cases.c.last_event_at < facts.detected_at, facts.detected_at),
                        else_=cases.c.last_event_at,
                    ),
                    updated_at=now,
                )
            )
            return case_id
        result = await conn.execute(
            cases.insert()
            .values(
                source=plan.source,
                code=plan.code,
                major=plan.major,
                category=plan.category_name,
                title=plan.title[:200],
                line=plan.line,
                grid_cell_id=plan.grid_cell_id,
                squad_id=plan.squad_id,
                stage=plan.initial_stage.value,
                lat=facts.lat,
                lon=facts.lon,
                reported_at=plan.reported_at,
                deadline=plan.deadline,
                limit_kind=plan.limit.kind,
                limit_amount=plan.limit.amount,
                verification_required=plan.verification_required,
                event_count=1,
                last_event_at=facts.detected_at,
                updated_at=now,
            )
            .returning(cases.c.id)
        )
        case_id = int(result.scalar_one())
        await conn.execute(
            audits.insert().values(
                case_id=case_id,
                at=now,
                from_stage=None,
                to_stage=plan.initial_stage.value,
                action=FILING_ACTION,
                actor=facts.device_id or facts.source,
                role=SYSTEM_ROLE,
                reason=f"filed from {facts.source} report {facts.event_id}",
                attachments=[],
            )
        )
        return case_id
