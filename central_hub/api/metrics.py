"""``/api/v1/metrics``: DOMAIN.md's metrics for a period and grid subtree."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from central_hub.api.deps import HubDep, QueryTime, guard
from central_hub.domain.metrics import DailyCounts, Metrics
from central_hub.domain.parking import ParkingMonth
from central_hub.domain.workflow import Role
from central_hub.errors import InvalidInputError

router = APIRouter(prefix="/metrics", tags=["metrics"])

_READERS = (Role.OPERATOR, Role.DISPATCHER, Role.ADMIN)
Start = Annotated[QueryTime, Query(description="period start (inclusive), with a zone")]
End = Annotated[QueryTime, Query(description="period end (exclusive), with a zone")]
Cell = Annotated[str | None, Query(description="a grid cell; its whole subtree")]
At = Annotated[QueryTime | None, Query(description="evaluate as of this time (default now)")]


@router.get("", **guard(*_READERS))
async def get_metrics(
    hub: HubDep, start: Start, end: End, cell: Cell = None, at: At = None
) -> Metrics:
    """Registration, dispatch, closure, on-time, rework, disposal rates and their counts."""
    return await hub.metrics.metrics(start, end, cell_id=cell, now=at)


@router.get("/daily", **guard(*_READERS))
async def get_daily(
    hub: HubDep, start: Start, end: End, cell: Cell = None, at: At = None
) -> list[DailyCounts]:
    """Per-day counts of reports and transitions, for charts."""
    return await hub.metrics.daily(start, end, cell_id=cell, now=at)


@router.get("/parking", **guard(*_READERS))
async def get_parking(hub: HubDep, start: Start, end: End) -> list[ParkingMonth]:
    """The move-your-car loop per local month: reminders sent, cars that moved after one
    (``share_moved``, the bureau's 28,723 of 47,995) and cars registered for enforcement
    (``enforcement_rate``), each counted in the month it happened."""
    if end <= start:
        raise InvalidInputError("end must be after start")
    if hub.parking is None:
        return []
    return await hub.parking.months(start, end)
