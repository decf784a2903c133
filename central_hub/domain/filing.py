"""Case filing as a pure decision: open a new case for an event, or merge it into one.

The service gives :func:`plan_filing` the event's facts, the open cases it found near the
event (any reasonable pre-filter: same code, a bounding box; the plan re-checks every
rule), the catalogue, the grid, the calendar and the current time, and stores what the
returned :class:`FilingPlan` says.

Merge rule: an event joins an open case when all of these hold —

* the case has the same code;
* the case is open (any stage but ``closed`` and ``cancelled``: a new report of a problem
  being handled or checked is evidence that it persists, not a new problem);
* the case's place is within the code's ``merge_radius_m`` (haversine distance);
* the event was detected within the code's ``merge_window_h`` of the case's last event
  (before or after it: a truck's outbox delivers late and out of order).

Among several such cases the nearest wins, then the one with the latest event, then the
smallest id. Otherwise the plan opens a new case: category, line and time limit from the
catalogue, grid cell from the location, the owning squad for the line, the deadline
counted from the report time (the event's detection, or ``now`` if the device clock runs
ahead; DOMAIN.md starts the time limit at dispatch, so the service recomputes it with
:func:`~central_hub.domain.calendar.deadline` when it dispatches), and the initial
stage: ``reported`` when the report needs a person's verification (AI and citizen
sources, or a code that requires it), else ``registered``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from central_hub.domain.calendar import WorkCalendar, deadline
from central_hub.domain.catalogue import Catalogue, Line, TimeLimit
from central_hub.domain.errors import FilingError
from central_hub.domain.grid import Grid, GridCell
from central_hub.domain.service_objects import normalise_plate
from central_hub.domain.workflow import Stage, is_open, needs_verification
from edge_agent.protocol import Event

__all__ = [
    "EARTH_RADIUS_M",
    "CaseSource",
    "EventFacts",
    "FilingPlan",
    "OpenCase",
    "haversine_m",
    "plan_filing",
    "same_vehicle",
]

#: Mean Earth radius (IUGG), metres.
EARTH_RADIUS_M = 6_371_008.8

CaseSource = Literal["ai", "citizen", "inspector", "referral"]
_SOURCES = ("ai", "citizen", "inspector", "referral")


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two (lat, lon) points in degrees."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True)
class EventFacts:
    """What filing needs to know about one report (an AI event, a citizen report, ...)."""

    event_id: str
    code: str
    lat: float
    lon: float
    detected_at: datetime
    source: CaseSource = "ai"
    device_id: str | None = None
    kind: str | None = None
    #: The vehicle's licence plate as the unit read it (None: no plate, or unreadable).
    plate: str | None = None

    @classmethod
    def from_event(cls, event: Event) -> EventFacts:
        """The facts of a validated wire event (source ``ai``)."""
        return cls(
            event_id=event.event_id,
            code=event.code,
            lat=event.location.lat,
            lon=event.location.lon,
            detected_at=event.detected_at,
            source="ai",
            device_id=event.device_id,
            kind=event.kind,
            plate=event.plate.text if event.plate else None,
        )


@dataclass(frozen=True)
class OpenCase:
    """A case the service found near the event; ``last_event_at`` is its latest report."""

    case_id: int | str
    code: str
    lat: float | None
    lon: float | None
    stage: Stage | str
    last_event_at: datetime
    plate: str | None = None


@dataclass(frozen=True)
class FilingPlan:
    """What to do with an event.

    ``merge_into`` is the case to attach the event to (then only ``distance_m`` and the
    identification fields matter), or None to open a new case described by the rest.
    ``squad_id`` is None when the place is outside the grid or no squad owns the line
    there; ``grid_cell_id`` is None outside the grid (the case is still filed, for a
    person to place). ``deadline`` is None when the plan merges (the case keeps its own:
    the working-time walk is not done for a report that opens nothing).
    """

    merge_into: int | str | None
    code: str
    major: str
    category_name: str
    title: str
    line: Line
    limit: TimeLimit
    grid_cell_id: str | None
    squad_id: str | None
    reported_at: datetime
    deadline: datetime | None
    initial_stage: Stage
    verification_required: bool
    source: CaseSource
    distance_m: float | None = None

    @property
    def is_new_case(self) -> bool:
        """Whether the plan opens a new case (rather than merging)."""
        return self.merge_into is None


def _aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise FilingError(f"{name}: a timezone-aware datetime is needed, got {value.isoformat()}")


def _check_facts(facts: EventFacts, now: datetime) -> None:
    _aware(now, "now")
    _aware(facts.detected_at, "event.detected_at")
    if not (math.isfinite(facts.lat) and -90 <= facts.lat <= 90):
        raise FilingError(f"event.lat: {facts.lat!r} is not a latitude")
    if not (math.isfinite(facts.lon) and -180 <= facts.lon <= 180):
        raise FilingError(f"event.lon: {facts.lon!r} is not a longitude")
    if facts.source not in _SOURCES:
        raise FilingError(f"event.source: {facts.source!r} is not one of {', '.join(_SOURCES)}")


class _Locate(enum.Enum):
    """``plan_filing``'s default for ``cell``: look the report's place up in the grid."""

    IN_GRID = "in grid"


def same_vehicle(plate: str | None, other: str | None) -> bool:
    """False only when both plates were read and are two cars' plates: two cars parked
    nose to tail are two violations (each owner is told, each is recorded), however
    close. Plates are compared as the vehicle registry keys them
    (:func:`~central_hub.domain.service_objects.normalise_plate`: separators, case and a
    letter O ignored); one character apart is one car read twice, once wrongly. A
    plate missing or not a plate cannot tell cars apart, so it merges by place as any
    report does."""
    a = normalise_plate(plate) if plate else None
    b = normalise_plate(other) if other else None
    if a is None or b is None or a == b:
        return True
    return len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) <= 1


def plan_filing(
    event_facts: EventFacts,
    open_cases_nearby: Iterable[OpenCase],
    catalogue: Catalogue,
    grid: Grid,
    calendar: WorkCalendar,
    now: datetime,
    *,
    cell: GridCell | _Locate | None = _Locate.IN_GRID,
) -> FilingPlan:
    """Decide whether ``event_facts`` opens a new case or merges into an open one.

    ``cell`` is the grid's answer for the report's place when the caller located a whole
    batch at once (:meth:`Grid.locate_many`); by default the plan locates it.

    Raises :class:`~central_hub.domain.errors.UnknownCode` for a code the catalogue does
    not hold and :class:`FilingError` for impossible facts (naive times, a latitude of
    200); the service keeps such events (dead letter or unfiled) rather than losing them.
    """
    _check_facts(event_facts, now)
    entry = catalogue.get(event_facts.code)
    reported_at = min(event_facts.detected_at, now)
    window = timedelta(hours=entry.merge_window_h)

    best: tuple[float, float, str, OpenCase] | None = None
    for case in open_cases_nearby:
        try:
            still_open = is_open(case.stage)
        except ValueError as exc:
            raise FilingError(f"case {case.case_id}.stage: {case.stage!r} is not a stage") from exc
        if case.code != event_facts.code or not still_open:
            continue
        if not same_vehicle(event_facts.plate, case.plate):
            continue
        if case.lat is None or case.lon is None:
            continue
        if case.last_event_at.utcoffset() is None:  # naive: the message names the case
            _aware(case.last_event_at, f"case {case.case_id}.last_event_at")
        if abs(event_facts.detected_at - case.last_event_at) > window:
            continue
        distance = haversine_m(event_facts.lat, event_facts.lon, case.lat, case.lon)
        if distance > entry.merge_radius_m:
            continue
        key = (distance, -case.last_event_at.timestamp(), str(case.case_id), case)
        if best is None or key[:3] < best[:3]:
            best = key

    if cell is _Locate.IN_GRID:
        cell = grid.locate(event_facts.lat, event_facts.lon)
    squad = grid.owner(cell.id, entry.line) if cell is not None else None
    verify = needs_verification(event_facts.source, entry.verification_required)
    return FilingPlan(
        merge_into=best[3].case_id if best is not None else None,
        code=entry.code,
        major=entry.major,
        category_name=entry.category_name,
        title=f"{entry.name_zh} {entry.name_en}",
        line=entry.line,
        limit=entry.limit,
        grid_cell_id=cell.id if cell is not None else None,
        squad_id=squad,
        reported_at=reported_at,
        deadline=deadline(reported_at, entry.limit, calendar) if best is None else None,
        initial_stage=Stage.REPORTED if verify else Stage.REGISTERED,
        verification_required=verify,
        source=event_facts.source,
        distance_m=best[0] if best is not None else None,
    )
