"""``/api/v1/events``, ``/api/v1/labels``, ``/api/v1/evidence`` and ``/api/v1/frames``:
stored events, the labels operators' verdicts give them, their public images, and the
clean frames kept for retraining (admins only, every read recorded)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Response, UploadFile
from pydantic import BaseModel

from central_hub.api.deps import ALL_ROLES, CurrentUser, HubDep, Offset, QueryTime, guard
from central_hub.console.errors import UploadRefused
from central_hub.console.uploads import normalise_photo
from central_hub.db.schema import frame_reads
from central_hub.domain.workflow import Role
from central_hub.errors import InvalidInputError, TooLargeError
from central_hub.services.labels import LabelledEvent, labelled_events
from central_hub.services.records import EventView
from edge_agent.protocol import MAX_WIRE_INT

router = APIRouter(tags=["events"])

#: Largest evidence upload accepted (a handler's photo).
MAX_UPLOAD_BYTES = 5 * 1024 * 1024


class EvidenceRef(BaseModel):
    """Where an uploaded image is kept: its SHA-256, to attach to a transition."""

    sha256: str
    size: int


@router.get("/labels", **guard(Role.ADMIN))
async def list_labels(
    hub: HubDep,
    since: QueryTime,
    until: QueryTime,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> list[LabelledEvent]:
    """AI events whose case was verified or cancelled in [since, until), each with the
    label the operator's decision gives it (``true_positive``, or
    ``false_positive:<verdict>``), its detections and evidence hash; at most ``limit``
    cases, oldest decision first. For building retraining sets; admins only."""
    return await labelled_events(hub.engine, since, until, limit=limit)


@router.get("/events", **guard(*ALL_ROLES))
async def list_events(
    hub: HubDep,
    device_id: str | None = None,
    code: str | None = None,
    case_id: Annotated[int | None, Query(ge=1, le=MAX_WIRE_INT)] = None,
    since: QueryTime | None = None,
    until: QueryTime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
    shadow: bool = False,
) -> list[EventView]:
    """Events, newest detection first; ``shadow=true``: a shadow candidate's would-be
    events (never filed) instead."""
    return await hub.records.events(
        shadow=shadow,
        device_id=device_id,
        code=code,
        case_id=case_id,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )


@router.get("/events/{event_id}", **guard(*ALL_ROLES))
async def get_event(event_id: str, hub: HubDep) -> EventView:
    """One event."""
    return await hub.records.event(event_id)


@router.get(
    "/evidence/{sha256}",
    response_class=Response,
    **guard(*ALL_ROLES, responses={200: {"content": {"image/jpeg": {}}}}),
)
async def get_evidence(sha256: str, hub: HubDep) -> Response:
    """An evidence image by its SHA-256."""
    data = await hub.evidence.get(sha256)
    return Response(data, media_type="image/jpeg")


@router.get(
    "/frames/{sha256}",
    response_class=Response,
    **guard(Role.ADMIN, responses={200: {"content": {"image/jpeg": {}}}}),
)
async def get_frame(sha256: str, hub: HubDep, user: CurrentUser) -> Response:
    """An event's clean frame (no boxes, no blur) by its SHA-256: admins only, and each
    read is recorded (who, when) before the image is sent."""
    data = await hub.frames.get(sha256)
    async with hub.engine.begin() as conn:
        await conn.execute(
            frame_reads.insert().values(sha256=sha256, user_name=user.name, at=hub.clock())
        )
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.post("/evidence", **guard(Role.OPERATOR, Role.HANDLER, Role.ADMIN))
async def upload_evidence(file: UploadFile, hub: HubDep) -> EvidenceRef:
    """Store a photo (a handler's: JPEG, PNG or WebP) and return its hash for a
    transition's attachments. It is decoded and re-encoded as a JPEG without metadata, as
    the console does: bytes that only start like a JPEG are refused, and a phone's GPS
    position (EXIF) never becomes evidence."""
    data = await file.read(MAX_UPLOAD_BYTES + 1)
    try:
        # The console's photo handling, shared: one way in for evidence images.
        photo = await asyncio.to_thread(normalise_photo, data, limit=MAX_UPLOAD_BYTES)
    except UploadRefused as exc:
        if exc.status == 413:
            raise TooLargeError(f"evidence is limited to {MAX_UPLOAD_BYTES} bytes") from exc
        raise InvalidInputError(f"evidence must be a JPEG, PNG or WebP photo: {exc}") from exc
    return EvidenceRef(sha256=await hub.evidence.put(photo), size=len(photo))
