"""The device page's talk button (高空喊话): a recorded message sent to the unit.

The browser records while the button is held (MediaRecorder: WebM or Ogg Opus) and posts
the audio itself here on release, with the session's CSRF token; the hub's one way in for
messages (:meth:`central_hub.services.voice.VoiceService.send`) stores and converts it and
queues the signed ``speaker.play_clip``. The answer is the command, whose state the panel
follows as the speak panel does (``/data/commands/{cmd_id}``).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse, Response

from central_hub.api.voice import read_limited, voice_of
from central_hub.console.security import CommanderDep
from central_hub.console.state import console_state
from central_hub.errors import HubError, NotFoundError, TooLargeError

log = logging.getLogger(__name__)

__all__ = ["router"]

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
