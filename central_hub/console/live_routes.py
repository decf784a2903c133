"""Live view in the console: a camera's frames as a multipart MJPEG stream, the newest
frame's overlay (zones, detections) as JSON, the device page's panel and its audit.

An ``<img>`` showing ``/devices/{id}/live/{camera}/stream`` is one viewer: opening it
joins the camera's audience (the first viewer makes the hub ask the unit), closing the
page closes the request and leaves it (the last one stops the unit). Readers (operators,
dispatchers, admins) may watch; each view is audited with the case it was opened from.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from central_hub.console.security import ReaderDep
from central_hub.console.state import console_state
from central_hub.errors import NotFoundError
from central_hub.services.devices import DeviceView
from central_hub.services.live import LiveViews

log = logging.getLogger(__name__)

__all__ = ["BOUNDARY", "cameras_of", "live_context", "router"]

router = APIRouter()

#: The multipart boundary of the MJPEG stream.
BOUNDARY = "xhlive"


def cameras_of(device: DeviceView) -> list[str]:
    """The cameras a device reports in its telemetry or runs in its desired config."""
    found = set((device.telemetry or {}).get("cameras") or {})
    vision = (device.desired_config or {}).get("vision") or {}
    found |= {c["id"] for c in vision.get("cameras") or [] if isinstance(c, dict) and "id" in c}
    return sorted(str(c) for c in found)


async def live_context(
    live: LiveViews | None, device: DeviceView, case_id: int | None = None
) -> dict[str, Any]:
    """What the device page's live panel shows: the cameras, and who watched them (of
    one case when ``case_id``)."""
    if live is None:
        return {"live_on": False, "live_cameras": cameras_of(device), "live_views": []}
    if case_id is not None:
        views = await live.history(device_id=device.device_id, case_id=case_id)
    else:
        views = await live.history(device_id=device.device_id)
    return {"live_on": True, "live_cameras": cameras_of(device), "live_views": views}


def _part(jpeg: bytes, seq: int, ts: str) -> bytes:
    head = (
        f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
        f"X-Seq: {seq}\r\nX-Capture-Ts: {ts}\r\n\r\n"
    )
    return head.encode("ascii") + jpeg + b"\r\n"


async def _camera(request: Request, device_id: str, camera_id: str) -> LiveViews | Response:
    """The live views when the camera is one of the device's, else the refusal."""
    state = console_state(request)
    live = state.hub.live
    if live is None:
        return JSONResponse({"detail": "live view needs the hub's broker connection"}, 503)
    try:
        device = await state.hub.devices.get(device_id)
    except NotFoundError:
        return JSONResponse({"detail": f"no device {device_id!r}"}, 404)
    if camera_id not in cameras_of(device):
        return JSONResponse({"detail": f"device {device_id!r} has no camera {camera_id!r}"}, 404)
    return live


@router.get("/devices/{device_id}/live/{camera_id}/stream", response_model=None)
async def live_stream(
    request: Request, who: ReaderDep, device_id: str, camera_id: str, case: int | None = None
) -> Response:
    """The camera's frames as ``multipart/x-mixed-replace`` JPEGs while the request lasts
    (each part carries ``X-Seq`` and ``X-Capture-Ts``, the unit's capture time)."""
    found = await _camera(request, device_id, camera_id)
    if isinstance(found, Response):
        return found
    live = found
    if case is not None and not await live.case_exists(case):
        return JSONResponse({"detail": f"no case {case}"}, 404)

    async def parts() -> AsyncIterator[bytes]:
        async with live.watch(device_id, camera_id, user=who.user.name, case_id=case) as viewer:
            async for frame in viewer.frames_until_closed():
                yield _part(frame.jpeg_bytes(), frame.seq, frame.ts.isoformat())

    return StreamingResponse(
        parts(),
        media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
        headers={"Cache-Control": "no-store"},
    )


@router.get("/devices/{device_id}/live/{camera_id}/overlay", response_model=None)
async def live_overlay(
    request: Request, who: ReaderDep, device_id: str, camera_id: str
) -> Response:
    """The newest frame's zones and detections (normalised), its size, rate and capture
    time; ``{"seq": null}`` while nobody watches or no frame came yet."""
    found = await _camera(request, device_id, camera_id)
    if isinstance(found, Response):
        return found
    frame = found.latest_of(device_id, camera_id)
    if frame is None:
        return JSONResponse({"seq": None, "viewers": found.viewers(device_id, camera_id)})
    body: dict[str, Any] = {
        "seq": frame.seq,
        "ts": frame.ts.isoformat(),
        "width": frame.width,
        "height": frame.height,
        "fps": frame.fps,
        "zones": {name: [list(p) for p in poly] for name, poly in frame.zones.items()},
        "objects": [o.model_dump(mode="json") for o in frame.objects],
        "viewers": found.viewers(device_id, camera_id),
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
