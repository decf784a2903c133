"""The metrics page (``/stats``, titled 统计 Statistics): the standard metrics with charts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import Response

from central_hub.console.metrics_cache import MetricsKey
from central_hub.console.present import bar_chart, donut_arc, rate_bars
from central_hub.console.render import page
from central_hub.console.security import ReaderDep
from central_hub.console.state import ConsoleState, console_state
from central_hub.domain.errors import MetricsError

__all__ = ["Period", "parse_period", "router"]

router = APIRouter()

#: The longest period the page computes.
MAX_DAYS = 366
#: Counts shown in the table, in order.
COUNTS = (
    "reported",
    "registered",
    "dispatched",
    "handled",
    "closed",
    "returned",
    "cancelled",
    "from_ai",
    "from_citizens",
    "citizen_registered",
    "overdue_unhandled",
)
RATES = (
    "registration_rate",
    "dispatch_rate",
    "closure_rate",
    "on_time_closure_rate",
    "rework_rate",
    "disposal_rate",
    "recognition_share",
    "citizen_registration_share",
)
SERIES = ("reported", "closed")


@dataclass(frozen=True)
class Period:
    """Local calendar days ``first`` to ``last`` inclusive, and their UTC bounds."""

    first: date
    last: date
    start: datetime
    end: datetime


def parse_period(first: str, last: str, today: date, zone: ZoneInfo) -> Period:
    """The period from two ``YYYY-MM-DD`` strings (empty: the 7 days up to ``today``).

    Raises ValueError naming what is wrong.
    """
    try:
        last_d = date.fromisoformat(last) if last else today
        first_d = date.fromisoformat(first) if first else last_d - timedelta(days=6)
    except ValueError as exc:
        raise ValueError(f"dates are YYYY-MM-DD: {exc}") from exc
    if last_d < first_d:
        raise ValueError(f"the period ends ({last_d}) before it starts ({first_d})")
    if (last_d - first_d).days + 1 > MAX_DAYS:
        raise ValueError(f"a period has at most {MAX_DAYS} days")
    start = datetime.combine(first_d, time(), zone)
    end = datetime.combine(last_d + timedelta(days=1), time(), zone)
    return Period(first_d, last_d, start, end)


def default_view(state: ConsoleState) -> MetricsKey:
    """The view the statistics page opens with: the last 7 days, whole district."""
    today = state.hub.clock().astimezone(state.zone).date()
    period = parse_period("", "", today, state.zone)
    return MetricsKey(period.start, period.end, None)


@router.get("/stats", response_model=None)
async def metrics_page(
    request: Request,
    who: ReaderDep,
    start: str = "",
    end: str = "",
    cell: str = "",
    refresh: bool = False,
) -> Response:
    """The metrics table, counts per day, rate bars and the recognition-share donut."""
    state = console_state(request)
    now = state.hub.clock()
    zone = state.zone
    error = None
    try:
        period = parse_period(start, end, now.astimezone(zone).date(), zone)
    except ValueError as exc:
        error = f"{who.t('stats.bad_period')} ({exc})"
        period = parse_period("", "", now.astimezone(zone).date(), zone)
    if cell and cell not in state.hub.grid:
        error = f"{who.t('stats.area')}: {cell!r} ?"
        cell = ""
    try:
        view = await state.metrics.get(
            MetricsKey(period.start, period.end, cell or None), force=refresh
        )
    except MetricsError as exc:
        return page(request, who, "error.html", 422, message=str(exc))
    metrics, daily = view.metrics, view.daily
    parking = (
        await state.hub.parking.months(period.start, period.end)
        if state.hub.parking is not None
        else []
    )
    chart = bar_chart(
        [(d.day.strftime("%m-%d"), {s: getattr(d, s) for s in SERIES}) for d in daily], SERIES
    )
    return page(
        request,
        who,
        "stats.html",
        422 if error else 200,
        error=error,
        period=period,
        cell=cell,
        cells=[c for c in state.hub.grid.cells() if c.level != "street"],
        metrics=metrics,
        counts=COUNTS,
        rates=rate_bars([(k, getattr(metrics, k)) for k in RATES]),
        chart=chart,
        series=SERIES,
        donut=donut_arc(metrics.recognition_share),
        computed_at=view.computed_at,
        parking=parking,
    )
