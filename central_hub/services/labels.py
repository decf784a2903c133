"""The AI events operators have judged, each with the label their verdict gives.

The read side of :mod:`central_hub.domain.labels`: cases filed from AI reports and
decided (verified or cancelled) in a period, their decisions read from the audit trail,
and every event of those cases with its detections, model and evidence hash. This is what
a retraining set is cut from.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from central_hub.db.schema import audits, box_corrections, cases, events
from central_hub.domain.labels import DECISIONS, Verdict, VerdictStep, label_of
from central_hub.errors import InvalidInputError, NotFoundError
from central_hub.services.records import EventView, event_view

__all__ = [
    "BoxObject",
    "Correction",
    "LabelledEvent",
    "corrections_of",
    "labelled_events",
    "recent_labels",
    "save_correction",
]


class BoxObject(BaseModel):
    """One box an operator drew or kept: a label and a normalised x1, y1, x2, y2."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    label: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    box: tuple[
        Annotated[float, Field(ge=0, le=1)],
        Annotated[float, Field(ge=0, le=1)],
        Annotated[float, Field(ge=0, le=1)],
        Annotated[float, Field(ge=0, le=1)],
    ]

    @model_validator(mode="after")
    def _has_area(self) -> BoxObject:
        x1, y1, x2, y2 = self.box
        if x2 <= x1 or y2 <= y1:
            raise ValueError("a box needs x2 > x1 and y2 > y1")
        return self


class Correction(BaseModel):
    """The boxes an operator set on an event's frame, who and when (the newest counts)."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    objects: list[BoxObject]
    by: str
    at: datetime


async def save_correction(
    engine: AsyncEngine, event_id: str, objects: Sequence[BoxObject], *, by: str, now: datetime
) -> Correction:
    """Record ``objects`` as what the event's frame shows (all of it: an empty list says
    nothing there is one of the model's objects). Shadow events are refused."""
    if len(objects) > 64:
        raise InvalidInputError("at most 64 boxes on one frame")
    async with engine.begin() as conn:
        row = (
            await conn.execute(sa.select(events.c.shadow).where(events.c.event_id == event_id))
        ).first()
        if row is None:
            raise NotFoundError(f"no event {event_id}")
        if row.shadow:
            raise InvalidInputError("a shadow event is compared, not labelled")
        await conn.execute(
            box_corrections.insert().values(
                event_id=event_id,
                objects=[o.model_dump(mode="json") for o in objects],
                user_name=by,
                at=now,
            )
        )
    return Correction(event_id=event_id, objects=list(objects), by=by, at=now)


async def _corrections(conn: AsyncConnection, event_ids: Sequence[str]) -> dict[str, Correction]:
    found: dict[str, Correction] = {}
    for start in range(0, len(event_ids), 500):
        rows = await conn.execute(
            box_corrections.select()
            .where(box_corrections.c.event_id.in_(event_ids[start : start + 500]))
            .order_by(box_corrections.c.id)
        )
        for r in rows:  # the newest last: it wins
            found[r.event_id] = Correction(
                event_id=r.event_id,
                objects=[BoxObject.model_validate(o) for o in r.objects],
                by=r.user_name,
                at=r.at,
            )
    return found


async def recent_labels(engine: AsyncEngine, events_read: int = 500) -> set[str]:
    """The labels of the objects in the newest ``events_read`` real events."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(events.c.objects)
            .where(events.c.shadow.is_(False))
            .order_by(events.c.detected_at.desc())
            .limit(events_read)
        )
        return {str(o.get("label")) for r in rows for o in r.objects if isinstance(o, dict)}


async def corrections_of(engine: AsyncEngine, event_ids: Sequence[str]) -> dict[str, Correction]:
    """The newest correction of each of ``event_ids`` that has one."""
    async with engine.connect() as conn:
        return await _corrections(conn, list(event_ids))


class LabelledEvent(BaseModel):
    """An AI event and the label its case's verification gave it."""

    model_config = ConfigDict(frozen=True)

    event: EventView
    label: str  # true_positive, or false_positive:<verdict>
    positive: bool
    verdict: Verdict | None
    decided_at: datetime
    decided_by: str
    #: Who corrected the boxes on its frame (``event.objects`` are then theirs).
    corrected_by: str | None = None


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
        fixed = await _corrections(conn, [r.event_id for r in rows])
    labels = {case_id: label_of(trail) for case_id, trail in trails.items()}
    out: list[LabelledEvent] = []
    for row in rows:
        label = labels.get(int(row.case_id))
        if label is None:
            continue
        view = event_view(row)
        correction = fixed.get(view.event_id)
        if correction is not None:
            objects: list[dict[str, Any]] = [o.model_dump(mode="json") for o in correction.objects]
            view = view.model_copy(update={"objects": objects})
        out.append(
            LabelledEvent(
                event=view,
                label=label.name,
                positive=label.positive,
                verdict=label.verdict,
                decided_at=label.decided_at,
                decided_by=label.by,
                corrected_by=correction.by if correction is not None else None,
            )
        )
    out.sort(key=lambda e: (e.decided_at, e.event.case_id or 0, e.event.detected_at))
    return out
