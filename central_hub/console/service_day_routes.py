"""The service-day page: the city's upcoming service days, what each unit was sent, and
the events the hub stored but did not file because they fell in one (operators,
dispatchers and admins)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response

from central_hub.console.render import page
from central_hub.console.security import ReaderDep
from central_hub.console.state import console_state

__all__ = ["router"]

router = APIRouter()


@dataclass(frozen=True)
class _Row:
    """One upcoming window as the page shows it (local times)."""

    start: datetime
    end: datetime
    name: str
    what: str
    where: str
    active: bool


@router.get("/service-days", response_model=None)
async def service_days_page(request: Request, who: ReaderDep, days: int = 120) -> Response:
    """Upcoming service days (the next ``days``), the units' pushes and held-back events."""
    hub = console_state(request).hub
    service = hub.service_days
    cal = service.calendar
    days = max(1, min(days, 800))
    now = hub.clock()
    rows = [
        _Row(
            start=s.window.start.astimezone(cal.zone),
            end=s.window.end.astimezone(cal.zone),
            name=s.service_day.name,
            what=s.service_day.what(),
            where=s.service_day.places(),
            active=s.window.contains(now),
        )
        for s in cal.upcoming(now, days)
    ]
    units = [u for u in await service.push(dry_run=True) if u.exemptions or u.note]
    held = await service.held()
    return page(
        request,
        who,
        "service_days.html",
        rows=rows,
        days=days,
        units=units,
        held=held,
        configured=bool(cal.days),
        calendar_label=service.label,
        zone=cal.zone,
    )
