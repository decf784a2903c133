"""Correcting an event's boxes (operators and admins): draw, move, resize, relabel, delete.

The page shows the event's snapshot (the frame the unit saw, with the public blurring)
and its boxes: the newest correction, else the unit's detections. It works by mouse and
by keyboard (``static/boxes.js``); saving sends every box, and the set replaces the
detections wherever labels are read (``central_hub.services.labels``), so a retraining
set takes the operator's boxes.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from central_hub.console.render import page
from central_hub.console.security import CommanderDep
from central_hub.console.state import console_state
from central_hub.errors import InvalidInputError, NotFoundError
from central_hub.services.labels import (
    BoxObject,
    corrections_of,
    recent_labels,
    save_correction,
)
from edge_agent.protocol import error_lines

log = logging.getLogger(__name__)

__all__ = ["BoxesRequest", "router"]

router = APIRouter()


class BoxesRequest(BaseModel):
    """What the editor saves: every box on the frame."""

    model_config = ConfigDict(extra="forbid")

    objects: list[BoxObject] = Field(max_length=64)


@router.get("/events/{event_id}/boxes", response_model=None)
async def boxes_page(request: Request, event_id: str, who: CommanderDep) -> Response:
    """The box editor for one event."""
    hub = console_state(request).hub
    try:
        event = await hub.records.event(event_id)
    except NotFoundError:
        return page(request, who, "error.html", 404, message=who.t("err.not_found"))
    correction = (await corrections_of(hub.engine, [event_id])).get(event_id)
    if correction is not None:
        objects = [o.model_dump(mode="json") for o in correction.objects]
    else:
        objects = [{"label": o["label"], "box": o["box"]} for o in event.objects]
    # Offered as you type (any label of the right form is accepted): what units reported.
    labels = sorted({*await recent_labels(hub.engine), *(str(o["label"]) for o in objects)})
    return page(
        request,
        who,
        "boxes.html",
        event=event,
        objects=objects,
        labels=labels,
        correction=correction,
    )


@router.post("/events/{event_id}/boxes", response_model=None)
async def save_boxes(request: Request, event_id: str, who: CommanderDep) -> Response:
    """Save the boxes (JSON ``{objects: [{label, box}]}``); 422 names what is wrong."""
    hub = console_state(request).hub
    try:
        body = BoxesRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        return JSONResponse(
            {"detail": "; ".join(error_lines(exc))}, status.HTTP_422_UNPROCESSABLE_CONTENT
        )
    try:
        saved = await save_correction(
            hub.engine, event_id, body.objects, by=who.user.name, now=hub.clock()
        )
    except NotFoundError as exc:
        return JSONResponse({"detail": str(exc)}, status.HTTP_404_NOT_FOUND)
    except InvalidInputError as exc:
        return JSONResponse({"detail": str(exc)}, status.HTTP_422_UNPROCESSABLE_CONTENT)
    log.info(
        "console: %s corrected %d box(es) of event %s", who.user.name, len(body.objects), event_id
    )
    out: dict[str, Any] = {"saved": len(saved.objects), "by": saved.by, "at": saved.at.isoformat()}
    return JSONResponse(out)
