"""``spot.recheck``: is the reminded car still there? Answered in the ack, with a frame.

The hub sends it when the wait after a move-your-car reminder is over, naming the camera,
the zone, the plate and the box of the original event. The unit watches a few fresh
frames (:meth:`edge_agent.vision.pipeline.VisionService.recheck`), sends the last one on
the ``snapshot`` channel (the hub files it with the case), and acks ``succeeded`` with a
detail that starts with the answer: ``still_there: …`` or ``cleared: …``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from edge_agent import protocol
from edge_agent.agent.snapshot import send_snapshot
from edge_agent.link.commands import CommandFailed, CommandRefused
from edge_agent.link.outbox import Outbox

if TYPE_CHECKING:  # only units with cameras load the vision package
    from edge_agent.vision.recheck import RecheckResult

__all__ = ["Recheck", "RecheckParams", "run_recheck"]

_Name = Annotated[str, StringConstraints(min_length=1, max_length=64)]
_Unit = Annotated[float, Field(ge=0.0, le=1.0)]


class RecheckParams(BaseModel):
    """A ``spot.recheck`` command's parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    camera_id: _Name
    zone: _Name
    plate: Annotated[str, StringConstraints(min_length=1, max_length=16)] | None = None
    box: tuple[_Unit, _Unit, _Unit, _Unit] | None = None


#: The vision service's ``recheck``: camera, zone, plate, box -> (answer, JPEG).
Recheck = Callable[
    [str, str, str | None, tuple[float, float, float, float] | None],
    Awaitable[tuple["RecheckResult", bytes]],
]


async def run_recheck(
    command: protocol.Command,
    recheck: Recheck,
    *,
    outbox: Outbox,
    clock: Callable[[], datetime],
) -> str:
    """Carry out ``command`` with the vision service's ``recheck``; the ack's detail.

    Bad parameters are refused (acked ``rejected``) before the camera is touched; a
    camera or zone the unit does not have, or no frames in time, fail the command.
    """
    try:
        params = RecheckParams.model_validate(command.params)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in exc.errors()
        )
        raise CommandRefused(f"spot.recheck: {problems}") from exc
    from edge_agent.vision.errors import VisionError  # only units with cameras load vision

    try:
        result, jpeg = await recheck(params.camera_id, params.zone, params.plate, params.box)
    except (KeyError, VisionError) as exc:
        raise CommandFailed(f"recheck of {params.camera_id}/{params.zone} failed: {exc}") from exc

    async def grab(_camera_id: str) -> bytes:
        return jpeg

    await send_snapshot(command, params.camera_id, grab, outbox=outbox, clock=clock)
    detail = f"{result.outcome}: seen in {result.seen} of {result.frames} frames"
    return f"{detail}, plate {result.plate}" if result.plate else detail
