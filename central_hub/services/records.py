"""Read side of what ingest stored: events, dead letters, tracks."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.db.schema import dead_letters, events
from central_hub.errors import NotFoundError

__all__ = ["DeadLetterView", "EventView", "RecordService"]


class EventView(BaseModel):
    """A stored event as the API shows it (the snapshot by its evidence hash)."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    device_id: str
    camera_id: str
    seq: int
    kind: str
    code: str
    started_at: datetime
    detected_at: datetime
    received_at: datetime
    dwell_s: float
    confidence: float
    lat: float
    lon: float
    location_source: str
    zone: str
    model_name: str
    model_version: str
    plate_text: str | None
    snapshot_sha256: str | None
    #: The clean frame (admins only, at ``/api/v1/frames/{sha256}``).
    frame_sha256: str | None = None
    frame_faces: list[list[float]] | None = None
    objects: list[dict[str, Any]]
    case_id: int | None
    #: Raised by a shadow candidate: compared, never filed.
    shadow: bool = False
    #: Why it was stored but not filed: the service day it fell in (null when filed).
    not_filed_reason: str | None = None


class DeadLetterView(BaseModel):
    """A message ingest could not accept: why, and its raw bytes (base64)."""

    model_config = ConfigDict(frozen=True)

    id: int
    received_at: datetime
    topic: str
    device_id: str | None
    reason: str
    fields: list[str]
    raw_b64: str
    raw_size: int


def event_view(row: sa.Row[Any]) -> EventView:
    """Build the API view of an ``events`` row."""
    return EventView.model_validate(row._asdict())


class RecordService:
    """Queries over events and dead letters."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def events(
        self,
        *,
        device_id: str | None = None,
        code: str | None = None,
        case_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
        shadow: bool = False,
    ) -> list[EventView]:
        """Events, newest detection first, filtered; ``shadow``: a shadow candidate's
        would-be events instead of the real ones."""
        q = events.select().where(events.c.shadow.is_(shadow))
        if device_id is not None:
            q = q.where(events.c.device_id == device_id)
        if code is not None:
            q = q.where(events.c.code == code)
        if case_id is not None:
            q = q.where(events.c.case_id == case_id)
        if since is not None:
            q = q.where(events.c.detected_at >= since)
        if until is not None:
            q = q.where(events.c.detected_at < until)
        q = q.order_by(events.c.detected_at.desc(), events.c.event_id.desc())
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q.limit(limit).offset(offset))).all()
        return [event_view(r) for r in rows]

    async def event(self, event_id: str) -> EventView:
        """One event; NotFoundError when unknown."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(events.select().where(events.c.event_id == event_id))).first()
        if row is None:
            raise NotFoundError(f"no event {event_id!r}")
        return event_view(row)

    async def dead_letters(self, *, limit: int = 100, offset: int = 0) -> list[DeadLetterView]:
        """Dead letters, newest first."""
        q = dead_letters.select().order_by(dead_letters.c.id.desc()).limit(limit).offset(offset)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        return [
            DeadLetterView(
                id=r.id,
                received_at=r.received_at,
                topic=r.topic,
                device_id=r.device_id,
                reason=r.reason,
                fields=list(r.fields),
                raw_b64=base64.b64encode(r.raw).decode("ascii"),
                raw_size=len(r.raw),
            )
            for r in rows
        ]

    async def dead_letter_count(self) -> int:
        """How many dead letters are stored."""
        async with self.engine.connect() as conn:
            q = sa.select(sa.func.count()).select_from(dead_letters)
            return int((await conn.execute(q)).scalar_one())
