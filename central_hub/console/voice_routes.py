"""The device page's talk button (高空喊话): a recorded message sent to the unit.

The browser records while the button is held (MediaRecorder: WebM or Ogg Opus) and posts
the audio itself here on release, with the session's CSRF token; the hub's one way in for
messages (:meth:`central_hub.services.voice.VoiceService.send`) stores and converts it and
queues the signed ``speaker.play_clip``. The answer is the command, whose state the panel
follows as the speak panel does (``/data/commands/{cmd_id}``).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse, RedirectResponse, Response

from central_hub.api.voice import read_limited, schedules_of, voice_of
from central_hub.console.render import page
from central_hub.console.security import CommanderDep, ReaderDep
from central_hub.console.state import console_state
from central_hub.errors import HubError, NotFoundError, TooLargeError

log = logging.getLogger(__name__)

__all__ = ["parse_schedule_form", "router"]

router = APIRouter()


@router.get("/data/voice-phrases", response_model=None)
async def phrases(request: Request, who: CommanderDep) -> Response:
    """The phrase library for the picker: per event code its names and sentences."""
    hub = console_state(request).hub
    out = []
    for code, texts in hub.voice_phrases.by_code.items():
        entry = hub.catalogue.get(code)
        out.append(
            {"code": code, "name_zh": entry.name_zh, "name_en": entry.name_en, "phrases": texts}
        )
    return JSONResponse(out)


@router.get("/voice/clips/{sha256}", response_model=None)
async def clip(request: Request, sha256: str, who: ReaderDep) -> Response:
    """A message as it was sent (16 kHz WAV), for the audit: who said what to whom."""
    state = console_state(request)
    try:
        path = voice_of(state.hub.voice).path(sha256)
        data = await asyncio.to_thread(path.read_bytes)
    except (NotFoundError, FileNotFoundError):
        return JSONResponse({"detail": f"no clip {sha256[:64]!r}"}, status.HTTP_404_NOT_FOUND)
    return Response(data, media_type="audio/wav", headers={"Cache-Control": "private"})


@router.post("/devices/{device_id}/voice", response_model=None)
async def talk(request: Request, device_id: str, who: CommanderDep) -> Response:
    """Send the recorded message in the body to the device; 202 with the command."""
    state = console_state(request)
    try:
        voice = voice_of(state.hub.voice)
        data = await read_limited(request, voice.limits.max_upload_bytes)
        case = request.query_params.get("case_id", "")
        cmd = await voice.send(
            device_id,
            data,
            actor=who.user.name,
            case_id=int(case) if case.isdigit() else None,
        )
    except NotFoundError as exc:
        return JSONResponse({"detail": str(exc)}, status.HTTP_404_NOT_FOUND)
    except TooLargeError as exc:
        return JSONResponse({"detail": str(exc)}, status.HTTP_413_CONTENT_TOO_LARGE)
    except HubError as exc:
        return JSONResponse({"detail": str(exc)}, status.HTTP_422_UNPROCESSABLE_CONTENT)
    log.info("console: %s sent a recorded message to %s", who.user.name, device_id)
    return JSONResponse(cmd.model_dump(mode="json"), status.HTTP_202_ACCEPTED)


# --------------------------------------------------------------- scheduled announcements


def parse_schedule_form(
    form: dict[str, str], weekdays: list[str]
) -> tuple[dict[str, Any], list[str]]:
    """The new-schedule form as :meth:`VoiceSchedules.create` arguments, or its problems."""
    problems: list[str] = []
    variables: dict[str, str] = {}
    for number, line in enumerate(form.get("variables", "").splitlines(), 1):
        if not line.strip():
            continue
        name, eq, value = line.partition("=")
        if not eq or not name.strip():
            problems.append(f"variables line {number}: NAME=VALUE")
            continue
        variables[name.strip()] = value.strip()
    days = []
    for value in weekdays:
        if not value.isdigit():
            problems.append(f"weekdays: {value!r} is not a day number")
        else:
            days.append(int(value))
    dates: dict[str, date | None] = {}
    for key in ("start_date", "end_date"):
        raw = form.get(key, "").strip()
        try:
            dates[key] = date.fromisoformat(raw) if raw else None
        except ValueError:
            problems.append(f"{key}: {raw!r} is not a date (YYYY-MM-DD)")
    if dates.get("start_date") is None and not any(p.startswith("start_date") for p in problems):
        problems.append("start_date: required")
    args: dict[str, Any] = {
        "area": form.get("area", "").strip(),
        "template": form.get("template", "").strip(),
        "variables": variables,
        "times": [t.strip() for t in form.get("times", "").split(",") if t.strip()],
        "weekdays": days,
        **dates,
    }
    return args, problems


async def _schedules_page(
    request: Request,
    who: ReaderDep,
    *,
    problems: list[str] | None = None,
    form: dict[str, str] | None = None,
    code: int = 200,
) -> Response:
    hub = console_state(request).hub
    return page(
        request,
        who,
        "voice_schedules.html",
        status_code=code,
        schedules=await schedules_of(hub.voice_schedules).all(),
        templates=await hub.notices.templates(),
        problems=problems or [],
        form=form or {},
    )


@router.get("/voice-schedules", response_model=None)
async def schedules_page(request: Request, who: ReaderDep) -> Response:
    """Scheduled announcements with their latest slots, and the form for a new one."""
    return await _schedules_page(request, who)


@router.post("/voice-schedules", response_model=None)
async def add_schedule(request: Request, who: CommanderDep) -> Response:
    """Keep a new schedule; problems re-render the page with the form kept."""
    state = console_state(request)
    raw = await request.form(max_part_size=64 * 1024)
    form = {
        k: v for k, v in raw.items() if isinstance(v, str) and k not in ("csrf_token", "weekday")
    }
    weekdays = [str(v) for v in raw.getlist("weekday")]
    form["weekdays"] = ",".join(weekdays)
    args, problems = parse_schedule_form(form, weekdays)
    if not problems:
        try:
            await schedules_of(state.hub.voice_schedules).create(**args, actor=who.user.name)
        except HubError as exc:
            problems = [str(exc)]
        else:
            return RedirectResponse(state.url("/voice-schedules"), status.HTTP_303_SEE_OTHER)
    return await _schedules_page(
        request, who, problems=problems, form=form, code=status.HTTP_422_UNPROCESSABLE_CONTENT
    )


@router.post("/voice-schedules/{schedule_id}/cancel", response_model=None)
async def cancel_schedule(request: Request, schedule_id: int, who: CommanderDep) -> Response:
    """Stop a schedule."""
    state = console_state(request)
    try:
        await schedules_of(state.hub.voice_schedules).cancel(schedule_id)
    except NotFoundError:
        return page(request, who, "error.html", 404, message=who.t("err.not_found"))
    return RedirectResponse(state.url("/voice-schedules"), status.HTTP_303_SEE_OTHER)
