"""Shadow candidates against the models that run, per camera, over a period.

Reads the shadow events (``events.shadow``) of ``[since, until)``, the real events of the
same cameras in that period (widened by the matching window) with their cases' verdicts
(the first decision of the audit trail, :func:`central_hub.domain.labels.label_of`), and
compares them with :func:`central_hub.domain.shadow.compare`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.db.schema import audits, events
from central_hub.domain.labels import DECISIONS, Verdict, VerdictStep, label_of
from central_hub.domain.shadow import Seen, compare
from central_hub.errors import InvalidInputError

__all__ = ["CameraShadow", "shadow_report"]


class CameraShadow(BaseModel):
    """One camera's shadow candidate against its running model (see ``domain.shadow``)."""

    model_config = ConfigDict(frozen=True)

    device_id: str
    camera_id: str
    shadow_models: list[str]
    real_models: list[str]
    real: int
    judged: int
    true_positives: int
    false_alarms: int
    shadow: int
    kept: int
    missed: int
    repeated: int
    spared: int
    new: int


async def shadow_report(
    engine: AsyncEngine, since: datetime, until: datetime, *, window_s: float = 60.0
) -> list[CameraShadow]:
    """Every camera with shadow events in ``[since, until)``, by device and camera."""
    if since.tzinfo is None or until.tzinfo is None or until <= since:
        raise InvalidInputError("since and until must carry a time zone, since before until")
    pad = timedelta(seconds=window_s)
    cols = (
        events.c.device_id,
        events.c.camera_id,
        events.c.code,
        events.c.detected_at,
        events.c.model_name,
        events.c.model_version,
        events.c.case_id,
    )
    async with engine.connect() as conn:
        shadow_rows = (
            await conn.execute(
                sa.select(*cols).where(
                    events.c.shadow.is_(True),
                    events.c.detected_at >= since,
                    events.c.detected_at < until,
                )
            )
        ).all()
        cameras = sorted({(r.device_id, r.camera_id) for r in shadow_rows})
        if not cameras:
            return []
        real_rows = (
            await conn.execute(
                sa.select(*cols).where(
                    events.c.shadow.is_(False),
                    events.c.device_id.in_(sorted({d for d, _ in cameras})),
                    events.c.detected_at >= since - pad,
                    events.c.detected_at < until + pad,
                )
            )
        ).all()
        case_ids = sorted({int(r.case_id) for r in real_rows if r.case_id is not None})
        trails: dict[int, list[VerdictStep]] = {}
        for start in range(0, len(case_ids), 500):
            for a in await conn.execute(
                sa.select(
                    audits.c.case_id, audits.c.action, audits.c.at, audits.c.actor, audits.c.verdict
                ).where(
                    audits.c.case_id.in_(case_ids[start : start + 500]),
                    audits.c.action.in_(DECISIONS),
                )
            ):
                trails.setdefault(int(a.case_id), []).append(
                    VerdictStep(a.action, a.at, a.actor, Verdict(a.verdict) if a.verdict else None)
                )
    labels = {case_id: label_of(trail) for case_id, trail in trails.items()}
    out: list[CameraShadow] = []
    for device_id, camera_id in cameras:
        mine = [r for r in shadow_rows if (r.device_id, r.camera_id) == (device_id, camera_id)]
        theirs = [r for r in real_rows if (r.device_id, r.camera_id) == (device_id, camera_id)]
        real = []
        for r in theirs:
            label = labels.get(int(r.case_id)) if r.case_id is not None else None
            real.append(Seen(r.code, r.detected_at, None if label is None else label.positive))
        result = compare(real, [Seen(r.code, r.detected_at) for r in mine], window_s)
        out.append(
            CameraShadow(
                device_id=device_id,
                camera_id=camera_id,
                shadow_models=sorted({f"{r.model_name}@{r.model_version}" for r in mine}),
                real_models=sorted({f"{r.model_name}@{r.model_version}" for r in theirs}),
                **result.__dict__,
            )
        )
    return out
