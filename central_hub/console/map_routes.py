"""The live map page, its marker data, the live-update stream and evidence images."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse, Response, StreamingResponse

from central_hub.console.live import TOPICS
from central_hub.console.metrics_routes import default_view
from central_hub.console.present import DEVICE_COLOURS, STAGE_COLOURS
from central_hub.console.queries import device_positions
from central_hub.console.render import page
from central_hub.console.security import READERS, ViewerDep
from central_hub.console.state import ConsoleState, console_state
from central_hub.errors import NotFoundError
from central_hub.services.cases import CaseFilter

log = logging.getLogger(__name__)

__all__ = ["map_data", "router"]

router = APIRouter()


@router.get("/", response_model=None)
async def map_page(request: Request, who: ViewerDep) -> Response:
    """The live map: the grid drawn from its GeoJSON, cases and devices as markers."""
    state = console_state(request)
    proj = state.projection
    if who.may(*READERS):
        state.metrics.warm(default_view(state))  # the statistics page opens at once
    return page(
        request,
        who,
        "map.html",
        shapes=state.shapes,
        width=proj.width,
        height=round(proj.height, 1),
    )


async def map_data(
    state: ConsoleState,
    *,
    with_devices: bool,
    view: tuple[float, float, float, float] | None = None,
) -> dict[str, Any]:
    """Open cases in ``view`` (an SVG view box ``x y w h``; the whole map without one)
    and, for roles that may see them, devices, projected onto the map.

    At most ``map_case_limit`` cases, newest first; ``cases_in_view`` says how many are
    open there, so the page can tell the operator to zoom in when some are not drawn.
    """
    proj = state.projection
    within = proj.view_bounds(*view) if view is not None else None
    flt = CaseFilter(open_only=True, within=within, limit=state.settings.map_case_limit)
    found = await state.hub.cases.find(flt)
    in_view = len(found)
    if in_view >= flt.limit:
        in_view = await state.hub.cases.count(flt)
    markers = []
    for c in found:
        if c.lat is None or c.lon is None:
            continue
        x, y = proj.to_xy(c.lat, c.lon)
        markers.append(
            {
                "id": c.id,
                "x": x,
                "y": y,
                "stage": c.stage.value,
                "colour": STAGE_COLOURS.get(c.stage.value, "#444"),
                "overdue": c.overdue,
                "title": f"#{c.id} {c.title}",
            }
        )
    devices_out = []
    if with_devices:
        devices = await state.hub.devices.all()
        positions = await device_positions(state.hub.engine, devices)
        for d in devices:
            pos = positions.get(d.device_id)
            if pos is None:
                continue
            x, y = proj.to_xy(*pos)
            shown = "degraded" if d.state == "online" and d.health == "degraded" else d.state
            devices_out.append(
                {
                    "id": d.device_id,
                    "x": x,
                    "y": y,
                    "state": shown,
                    "colour": DEVICE_COLOURS.get(shown, "#aaa"),
                }
            )
    return {"cases": markers, "cases_in_view": in_view, "devices": devices_out}


@router.get("/data/map", response_model=None)
async def map_json(request: Request, who: ViewerDep, view: str | None = None) -> Response:
    """Marker data for the map page (JSON); ``view=x,y,w,h`` limits cases to that view box."""
    state = console_state(request)
    box = None
    if view is not None:
        box = _view_box(view)
        if box is None:
            detail = (
                f"view must be x,y,w,h: four finite numbers, w and h positive; got {view[:80]!r}"
            )
            return JSONResponse({"detail": detail}, status.HTTP_422_UNPROCESSABLE_CONTENT)
    data = await map_data(state, with_devices=who.may(*READERS), view=box)
    return JSONResponse(data, headers={"Cache-Control": "no-store"})


def _view_box(text: str) -> tuple[float, float, float, float] | None:
    """``x,y,w,h`` as four finite numbers with w and h positive, else None."""
    try:
        x, y, w, h = (float(p) for p in text.split(","))
    except ValueError:
        return None
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        return None
    return x, y, w, h


@router.get("/live", response_model=None)
async def live(request: Request, who: ViewerDep, topics: str = ",".join(TOPICS)) -> Response:
    """Server-sent events: ``event: change`` with the changed topics as data.

    A stream ends after ``live_stream_max_s`` (the browser reconnects by itself), so a
    hub shutdown never waits long on open pages.
    """
    state = console_state(request)
    wanted = frozenset(t for t in topics.split(",") if t in TOPICS) or frozenset(TOPICS)
    if not who.may(*READERS):
        wanted -= {"devices", "commands"}

    async def stream() -> AsyncIterator[str]:
        yield "retry: 1000\n\n"
        end = time.monotonic() + state.settings.live_stream_max_s
        async with state.feed.listen() as queue:
            yield ": listening\n\n"
            while time.monotonic() < end and not state.feed.closed.is_set():
                changed: frozenset[str] = frozenset()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(5.0, max(0.1, end - time.monotonic()))):
                        changed = await queue.get()
                if await request.is_disconnected():
                    return
                hit = changed & wanted
                if hit:
                    yield f"event: change\ndata: {','.join(sorted(hit))}\n\n"
                else:
                    yield ": keepalive\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/evidence/{sha256}", response_model=None)
async def evidence(request: Request, who: ViewerDep, sha256: str) -> Response:
    """An evidence image (snapshot or handling photo) by its SHA-256."""
    state = console_state(request)
    try:
        data = await state.hub.evidence.get(sha256)
    except NotFoundError:
        return Response("no such evidence", status_code=404, media_type="text/plain")
    log.info("evidence %s viewed by %s", sha256[:12], who.user.name)
    return Response(
        data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"}
    )
