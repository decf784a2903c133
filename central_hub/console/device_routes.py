"""Devices: the list with health, the detail with config versions and the speak panel."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from central_hub.console.live_routes import live_context
from central_hub.console.render import page, page_html
from central_hub.console.security import CommanderDep, ReaderDep
from central_hub.console.state import console_state
from central_hub.errors import CommandError, NotFoundError
from central_hub.services.devices import DeviceView
from edge_agent.protocol import error_lines

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_CLIPS", "SpeakRequest", "clips_of", "router"]

router = APIRouter()

#: Clips offered when a device's desired config names none (the packaged chime and
#: the phrases of the sample pole config).
DEFAULT_CLIPS = ("chime", "no-vending", "no-parking", "keep-door-clear")
#: How long a speak command may wait for an offline device.
SPEAK_TTL = timedelta(minutes=10)


class SpeakRequest(BaseModel):
    """What the speak panel sends: a clip id or a sentence, not both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clip: str = Field(default="", max_length=64)
    text: str = Field(default="", max_length=200)

    @model_validator(mode="after")
    def _one(self) -> SpeakRequest:
        if bool(self.clip.strip()) == bool(self.text.strip()):
            raise ValueError("give a clip or a text, exactly one of the two")
        return self

    def command(self) -> tuple[str, dict[str, Any]]:
        """The command kind and parameters."""
        if self.clip.strip():
            return "speaker.play", {"clip": self.clip.strip()}
        return "speaker.say", {"text": self.text.strip()}


def clips_of(device: DeviceView) -> list[str]:
    """The clip and phrase ids a device's desired config names, else the defaults."""
    speaker = (device.desired_config or {}).get("speaker") or {}
    names = {*(speaker.get("clips") or {}), *(speaker.get("phrases") or {})}
    return sorted(names) if names else list(DEFAULT_CLIPS)


def _telemetry(device: DeviceView) -> dict[str, Any]:
    return device.telemetry or {}


@router.get("/devices", response_model=None)
async def devices_page(request: Request, who: ReaderDep, partial: bool = False) -> Response:
    """Every device with presence, health and config versions; ``partial=1``: the rows."""
    state = console_state(request)
    devices = await state.hub.devices.all()
    extra: dict[str, Any] = {"devices": devices, "tel": _telemetry}
    if partial:
        return HTMLResponse(page_html(request, who, "_device_rows.html", **extra))
    return page(request, who, "devices.html", **extra)


@router.get("/devices/{device_id}", response_model=None)
async def device_page(
    request: Request,
    who: ReaderDep,
    device_id: str,
    partial: str = "",
    live: str = "",
    case: int | None = None,
) -> Response:
    """One device: health, config desired vs reported, commands, the speak and live
    panels; ``live=CAMERA`` opens that camera's live view (``case``: from that case)."""
    state = console_state(request)
    try:
        device = await state.hub.devices.get(device_id)
    except NotFoundError:
        return page(request, who, "error.html", 404, message=who.t("err.not_found"))
    commands = await state.hub.commands.list_for(device_id, limit=20)
    extra: dict[str, Any] = {"device": device, "commands": commands, "tel": _telemetry}
    if partial == "commands":
        return HTMLResponse(page_html(request, who, "_command_rows.html", **extra))
    if partial == "health":
        return HTMLResponse(page_html(request, who, "_device_health.html", **extra))
    extra |= await live_context(state.hub.live, device, case)
    extra |= {"live_open": live, "live_case": case}
    return page(request, who, "device.html", clips=clips_of(device), **extra)


@router.post("/devices/{device_id}/speak", response_model=None)
async def speak(
    request: Request,
    device_id: str,
    who: CommanderDep,
) -> Response:
    """Queue a ``speaker.play`` or ``speaker.say`` command (JSON body); 202 with the command."""
    state = console_state(request)
    try:
        body = SpeakRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        problems = "; ".join(error_lines(exc))
        return JSONResponse({"detail": problems}, status.HTTP_422_UNPROCESSABLE_CONTENT)
    kind, params = body.command()
    try:
        cmd = await state.hub.commands.enqueue(
            device_id, kind, params, ttl=SPEAK_TTL, actor=who.user.name
        )
    except NotFoundError as exc:
        return JSONResponse({"detail": str(exc)}, status.HTTP_404_NOT_FOUND)
    except CommandError as exc:
        return JSONResponse({"detail": str(exc)}, status.HTTP_422_UNPROCESSABLE_CONTENT)
    log.info("console: %s queued %s for %s", who.user.name, kind, device_id)
    return JSONResponse(cmd.model_dump(mode="json"), status.HTTP_202_ACCEPTED)


@router.get("/data/commands/{cmd_id}", response_model=None)
async def command_state(
    request: Request,
    cmd_id: str,
    who: ReaderDep,
) -> Response:
    """One command's state, for the speak panel."""
    state = console_state(request)
    try:
        cmd = await state.hub.commands.get(cmd_id)
    except NotFoundError as exc:
        return JSONResponse({"detail": str(exc)}, status.HTTP_404_NOT_FOUND)
    data = cmd.model_dump(mode="json")
    data["label"] = who.t(f"cmd.{cmd.state.value}")
    data["final"] = cmd.state.final
    return JSONResponse(data)
