"""The AI events operators have judged, each with the label their verdict gives.

The read side of :mod:`central_hub.domain.labels`: cases filed from AI reports and
decided (verified or cancelled) in a period, their decisions read from the audit trail,
and every event of those cases with its detections, model and evidence hash. This is what
a retraining set is cut from.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.db.schema import audits, cases, events
from central_hub.domain.labels import DECISIONS, Verdict, VerdictStep, label_of
from central_hub.errors import InvalidInputError
from central_hub.services.records import EventView, event_view

__all__ = ["LabelledEvent", "labelled_events"]


class LabelledEvent(BaseModel):
    """An AI event and the label its case's verification gave it."""

    model_config = ConfigDict(frozen=True)

    event: EventView
    label: str  # true_positive, or false_positive:<verdict>
    positive: bool
    verdict: Verdict | None
    decided_at: datetime
    decided_by: str


async def labelled_events(
    engine: AsyncEngine, since: datetime, until: datetime, *, limit: int = 1000
) -> list[LabelledEvent]:
    """Events of AI cases whose verification was decided in ``[since, until)``, oldest
    decision first; at most ``limit`` cases' events (a page: ask again from the last
    ``decided_at``)."""
    if since.tzinfo is None or until.tzinfo is None or until <= since:
        raise InvalidInputError("since and until must carry a time zone, since before until")
    decided = (
        sa.select(audits.c.case_id, sa.func.min(audits.c.at).label("first"))
        .join(cases, cases.c.id == audits.c.case_id)
        .where(cases.c.source == "ai", audits.c.action.in_(DECISIONS))
        .group_by(audits.c.case_id)
        .subquery()
    )
    async with engine.connect() as conn:
        case_ids = [
            int(r.case_id)
            for r in await conn.execute(
                sa.select(decided.c.case_id)
                .where(decided.c.first >= since, decided.c.first < until)
                .order_by(decided.c.first, decided.c.case_id)
                .limit(limit)
            )
        ]
        if not case_ids:
            return []
        trails: dict[int, list[VerdictStep]] = {}
        for r in await conn.execute(
            sa.select(
                audits.c.case_id, audits.c.action, audits.c.at, audits.c.actor, audits.c.verdict
            ).where(audits.c.case_id.in_(case_ids), audits.c.action.in_(DECISIONS))
        ):
            verdict = Verdict(r.verdict) if r.verdict else None
            trails.setdefault(int(r.case_id), []).append(
                VerdictStep(r.action, r.at, r.actor, verdict)
            )
        rows = (
            await conn.execute(
                events.select()
                .where(events.c.case_id.in_(case_ids))
                .order_by(events.c.case_id, events.c.detected_at)
            )
        ).all()
    labels = {case_id: label_of(trail) for case_id, trail in trails.items()}
    out: list[LabelledEvent] = []
    for row in rows:
        label = labels.get(int(row.case_id))
        if label is None:
            continue
        out.append(
            LabelledEvent(
                event=event_view(row),
                label=label.name,
                positive=label.positive,
                verdict=label.verdict,
                decided_at=label.decided_at,
                decided_by=label.by,
            )
        )
    out.sort(key=lambda e: (e.decided_at, e.event.case_id or 0, e.event.detected_at))
    return out
