"""``/api/v1/devices/{id}/voice``: an operator's recorded message to a unit's loudspeaker.

The body is the audio itself (``audio/webm``, ``audio/ogg`` or ``audio/wav``), as the
console's talk button sends it. The units' own download route, ``GET
/api/v1/voice/clips/{sha256}`` with a ``speaker.play_clip`` command's token, is
:func:`install_clip_downloads`; it takes no user token, so it is left out of the document.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated

from fastapi import APIRouter, FastAPI, Query, Request, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from central_hub.api.deps import CurrentUser, HubDep, RowId, get_hub, guard
from central_hub.domain.workflow import Role
from central_hub.errors import StorageError, TooLargeError
from central_hub.services.commands import CommandView
from central_hub.services.voice import VoiceService
from central_hub.services.voice_schedules import ScheduleView, VoiceSchedules
from edge_agent.protocol import MAX_WIRE_INT

__all__ = ["ScheduleRequest", "install_clip_downloads", "read_limited", "router"]

router = APIRouter(tags=["devices"])


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refused with :class:`TooLargeError` past ``limit`` bytes."""
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise TooLargeError(f"a recorded message is limited to {limit} bytes")
    return bytes(data)


def voice_of(hub_voice: VoiceService | None) -> VoiceService:
    """The hub's voice service (absent only in hubs built without it)."""
    if hub_voice is None:
        raise StorageError("this hub has no voice clip store")
    return hub_voice


@router.post(
    "/devices/{device_id}/voice",
    status_code=status.HTTP_202_ACCEPTED,
    **guard(Role.OPERATOR, Role.ADMIN),
)
async def send_voice(
    device_id: str,
    request: Request,
    hub: HubDep,
    user: CurrentUser,
    case_id: Annotated[int | None, Query(ge=1, le=MAX_WIRE_INT)] = None,
) -> CommandView:
    """Store a recorded message (WebM/Ogg Opus or WAV; converted to 16 kHz mono WAV) and
    queue a signed ``speaker.play_clip`` for the device; 202 with the command, whose state
    follows the unit's acks. ``case_id`` links the message to the case it was sent from."""
    voice = voice_of(hub.voice)
    data = await read_limited(request, voice.limits.max_upload_bytes)
    return await voice.send(device_id, data, actor=user.name, case_id=case_id)


class ScheduleRequest(BaseModel):
    """An announcement to every loudspeaker of a grid area at set local times."""

    model_config = ConfigDict(extra="forbid")

    area: str = Field(min_length=1, max_length=64)
    template: str = Field(min_length=1, max_length=64)
    variables: dict[str, str] = Field(default_factory=dict)
    times: list[str] = Field(min_length=1, max_length=24)
    weekdays: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7], max_length=7)
    start_date: date
    end_date: date | None = None


def schedules_of(hub_schedules: VoiceSchedules | None) -> VoiceSchedules:
    """The hub's schedules (absent only in hubs built without them)."""
    if hub_schedules is None:
        raise StorageError("this hub keeps no voice schedules")
    return hub_schedules


@router.post(
    "/voice/schedules",
    status_code=status.HTTP_201_CREATED,
    **guard(Role.OPERATOR, Role.ADMIN),
)
async def create_schedule(body: ScheduleRequest, hub: HubDep, user: CurrentUser) -> ScheduleView:
    """Announce a notice template to a grid area's loudspeakers at ``times`` (local HH:MM)
    on ``weekdays`` (1 = Monday) from ``start_date`` to ``end_date``; each slot once."""
    return await schedules_of(hub.voice_schedules).create(
        area=body.area,
        template=body.template,
        variables=body.variables,
        times=body.times,
        weekdays=body.weekdays,
        start_date=body.start_date,
        end_date=body.end_date,
        actor=user.name,
    )


@router.get("/voice/schedules", **guard(Role.OPERATOR, Role.DISPATCHER, Role.ADMIN))
async def list_schedules(hub: HubDep) -> list[ScheduleView]:
    """Every schedule with its latest announced slots, newest first."""
    return await schedules_of(hub.voice_schedules).all()


@router.post("/voice/schedules/{schedule_id}/cancel", **guard(Role.OPERATOR, Role.ADMIN))
async def cancel_schedule(schedule_id: RowId, hub: HubDep) -> ScheduleView:
    """Stop a schedule; what it announced stays on record."""
    return await schedules_of(hub.voice_schedules).cancel(schedule_id)


def install_clip_downloads(app: FastAPI) -> None:
    """Add ``GET /api/v1/voice/clips/{sha256}``: a unit fetches a clip with its token."""

    @app.get("/api/v1/voice/clips/{sha256}", include_in_schema=False, response_model=None)
    async def download(request: Request, sha256: str) -> Response:
        hub = get_hub(request)
        given = request.headers.get("authorization", "")
        token = given.removeprefix("Bearer ").strip() if given.startswith("Bearer ") else None
        path = await voice_of(hub.voice).authorize(sha256, token)
        data = await asyncio.to_thread(path.read_bytes)
        return Response(data, media_type="audio/wav", headers={"Cache-Control": "no-store"})
