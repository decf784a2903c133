"""Convenience service days (便民服务日): the city's calendar of rule exemptions (pure).

Quarterly and on holidays traditional trades (shoe repair, mending, locksmiths) serve at
a set place, and enforcement joins with advice: the rules that would report them there
(the vendor rule 0501, trading outside a shop 0504, ...) are suspended for the day's
hours. The calendar is data a city edits, ``data/service_days.yaml``::

    version: 1
    timezone: Asia/Shanghai
    service_days:
      - name: 县前街广场便民服务日 2026 Q1
        zones: [pole-market-st-01/mast-east/sidewalk]   # DEVICE/CAMERA/ZONE or DEVICE/CAMERA
        cells: [hy-st-11]                               # grid cells, any level
        suspends: [vendor, "0504"]                       # rule kinds and/or event codes
        dates:
          - {date: 2026-03-14, from: "08:00", to: "17:00"}
          - {date: 2026-10-01, until: 2026-10-03}        # whole days

``zones`` name a unit's camera zones as units and the hub name them (the device id, the
camera id and the zone of the unit's config, which events carry); ``cells`` name grid
cells, and cover every event located inside them. ``dates`` lists days or runs of days
(``until``, inclusive), each with the local hours ``from``-``to`` (``24:00`` is midnight at
its end; without hours the whole day) in the calendar's ``timezone``; quarterly days are
listed per year, as the holiday calendar is.

:meth:`ServiceDays.exempt` answers whether an event (zone, code, time, grid cells) falls
in an exemption; :meth:`ServiceDays.exemptions_for` gives what a unit is sent
(:class:`edge_agent.vision.exemptions.Exemption`, one per camera and window, in absolute
time). Errors name the file, the line and the field.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from central_hub.domain.errors import ServiceDayError
from edge_agent.protocol import field_path
from edge_agent.vision.config import KIND_DEFAULTS, RuleKind
from edge_agent.vision.exemptions import MAX_EXEMPTIONS, Exemption

__all__ = [
    "DEFAULT_SERVICE_DAYS_PATH",
    "ServiceDay",
    "ServiceDays",
    "Suspension",
    "Window",
    "ZoneRef",
]

#: The packaged sample calendar (the sample district's market street).
DEFAULT_SERVICE_DAYS_PATH = Path(__file__).with_name("data") / "service_days.yaml"

_PART = r"[a-z0-9][a-z0-9_-]{0,63}"
_ZONE_RE = re.compile(rf"^({_PART})/({_PART})(?:/({_PART}))?$")
_CODE_RE = re.compile(r"^[0-9]{4,8}$")
_HOURS_RE = re.compile(r"^(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class ZoneRef:
    """A unit's camera zone: ``DEVICE/CAMERA/ZONE``; no ``zone``: every zone of the camera."""

    device_id: str
    camera_id: str
    zone: str | None = None

    @classmethod
    def parse(cls, text: str) -> ZoneRef:
        """``pole-01/mast-east/sidewalk`` or ``pole-01/mast-east``; ValueError naming the
        expected form when it is neither."""
        match = _ZONE_RE.fullmatch(text)
        if match is None:
            raise ValueError(
                f"zone {text!r} is not DEVICE/CAMERA/ZONE or DEVICE/CAMERA (lowercase "
                "letters, digits, '-' and '_'), e.g. pole-market-st-01/mast-east/sidewalk"
            )
        return cls(match.group(1), match.group(2), match.group(3))

    def covers(self, other: ZoneRef) -> bool:
        """Whether ``other`` (an event's zone) lies in this one."""
        return (
            self.device_id == other.device_id
            and self.camera_id == other.camera_id
            and (self.zone is None or self.zone == other.zone)
        )

    def __str__(self) -> str:
        return "/".join(p for p in (self.device_id, self.camera_id, self.zone) if p)


@dataclass(frozen=True)
class Window:
    """One stretch of a service day: ``[start, end)`` as aware instants."""

    start: datetime
    end: datetime

    def contains(self, at: datetime) -> bool:
        """Whether the aware instant ``at`` falls in the window (the end excluded)."""
        return self.start <= at < self.end


@dataclass(frozen=True)
class ServiceDay:
    """One entry of the calendar: where, what is suspended, and when."""

    name: str
    zones: tuple[ZoneRef, ...]
    cells: tuple[str, ...]
    kinds: tuple[RuleKind, ...]
    codes: tuple[str, ...]
    windows: tuple[Window, ...]
    line: int = 0  # where the entry starts in its file (1-based; 0: not from a file)

    @property
    def suspended_codes(self) -> frozenset[str]:
        """The event codes suspended: those listed and those of the rule kinds listed."""
        return frozenset(self.codes) | {KIND_DEFAULTS[k].code for k in self.kinds}

    def suspends(self, code: str, kind: str | None = None) -> bool:
        """Whether an event of ``code`` (and event ``kind``, as units name it) is suspended."""
        if code in self.suspended_codes:
            return True
        return kind is not None and any(KIND_DEFAULTS[k].event_kind == kind for k in self.kinds)

    def places(self) -> str:
        """Where it applies, for people: the zones and the cells."""
        return ", ".join([*(str(z) for z in self.zones), *self.cells])

    def what(self) -> str:
        """What it suspends, for people: rule kinds and codes."""
        return ", ".join([*(str(k) for k in self.kinds), *self.codes])


@dataclass(frozen=True)
class Suspension:
    """An event that falls in a service day: which, and the window it falls in."""

    service_day: ServiceDay
    window: Window

    def reason(self, zone: ZoneInfo) -> str:
        """Why the event is not filed, for an operator (times in the calendar's zone)."""
        start = self.window.start.astimezone(zone)
        end = self.window.end.astimezone(zone)
        return (
            f"service day {self.service_day.name!r} suspends {self.service_day.what()} at "
            f"{self.service_day.places()} from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}"
        )


@dataclass(frozen=True)
class ServiceDays:
    """The city's service-day calendar; build it with :meth:`load` or :meth:`parse`."""

    tz: str = "Asia/Shanghai"
    days: tuple[ServiceDay, ...] = ()
    digest: str = ""

    @property
    def zone(self) -> ZoneInfo:
        """The calendar's time zone."""
        return ZoneInfo(self.tz)

    def exempt(
        self,
        zone: ZoneRef | None,
        code: str,
        at: datetime,
        *,
        cells: Iterable[str] = (),
        kind: str | None = None,
    ) -> Suspension | None:
        """The service day (and window) in which an event of ``code`` at ``at`` in ``zone``
        (or inside the grid ``cells``: the event's cell and its ancestors) is suspended, or
        None. When several overlap, the one whose window ends last, so its reason says
        until when nothing is filed there."""
        if at.tzinfo is None or at.utcoffset() is None:
            raise ServiceDayError(f"a naive datetime was given ({at.isoformat()}); need tz-aware")
        in_cells = frozenset(cells)
        best: Suspension | None = None
        for day in self.days:
            if not day.suspends(code, kind):
                continue
            here = (zone is not None and any(z.covers(zone) for z in day.zones)) or bool(
                in_cells.intersection(day.cells)
            )
            if not here:
                continue
            for window in day.windows:
                if window.contains(at) and (best is None or window.end > best.window.end):
                    best = Suspension(day, window)
        return best

    def upcoming(self, now: datetime, days: int = 120) -> list[Suspension]:
        """Windows not over at ``now`` that start within ``days`` days, soonest first."""
        horizon = now + timedelta(days=days)
        found = [
            Suspension(day, w)
            for day in self.days
            for w in day.windows
            if w.end > now and w.start < horizon
        ]
        return sorted(found, key=lambda s: (s.window.start, s.service_day.name))

    def exemptions_for(
        self, device_id: str, camera_cells: Mapping[str, Iterable[str]], now: datetime
    ) -> tuple[Exemption, ...]:
        """What unit ``device_id`` is sent: one exemption per camera (and zone) and window
        not over at ``now``, for the entries naming its zones and, through
        ``camera_cells`` (a camera id: the grid cells where it looks, ancestors included),
        the entries naming those cells (every zone of that camera). Soonest first; at
        most :data:`MAX_EXEMPTIONS`, the latest dropped."""
        out: dict[tuple[str, str | None, str, datetime, datetime], Exemption] = {}
        for day in self.days:
            targets: list[tuple[str, str | None]] = [
                (z.camera_id, z.zone) for z in day.zones if z.device_id == device_id
            ]
            for camera_id, cells in camera_cells.items():
                if set(day.cells).intersection(cells):
                    targets.append((camera_id, None))
            for camera_id, zone_name in targets:
                for w in day.windows:
                    if w.end <= now:
                        continue
                    key = (camera_id, zone_name, day.name, w.start, w.end)
                    out[key] = Exemption(
                        name=day.name[:200],
                        camera=camera_id,
                        zone=zone_name,
                        kinds=day.kinds,
                        codes=day.codes,
                        start=w.start,
                        end=w.end,
                    )
        ordered = sorted(out.values(), key=lambda e: (e.start, e.camera, e.zone or "", e.name))
        return tuple(ordered[:MAX_EXEMPTIONS])

    def cells(self) -> frozenset[str]:
        """The grid cells the calendar names."""
        return frozenset(c for day in self.days for c in day.cells)

    @classmethod
    def load(
        cls,
        path: Path | None = None,
        *,
        codes: Iterable[str] | None = None,
        cells: Iterable[str] | None = None,
    ) -> ServiceDays:
        """Load and check a calendar file (the packaged one when ``path`` is None).

        With ``codes`` (the catalogue's) and ``cells`` (the grid's), a code or a cell the
        city does not have is an error too. Raises :class:`ServiceDayError` naming the file,
        and each problem's line and field (``.problems``).
        """
        path = path or DEFAULT_SERVICE_DAYS_PATH
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ServiceDayError(f"{path}: cannot read the service days: {exc}") from exc
        return cls.parse_text(text, source=str(path), codes=codes, cells=cells)

    @classmethod
    def parse_text(
        cls,
        text: str,
        *,
        source: str = "<memory>",
        codes: Iterable[str] | None = None,
        cells: Iterable[str] | None = None,
    ) -> ServiceDays:
        """Check the YAML text of a calendar (see :meth:`load`)."""
        try:
            raw = yaml.safe_load(text)
            node = yaml.compose(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise ServiceDayError(f"{source}: {where}not valid YAML: {problem}") from exc
        if not isinstance(raw, dict):
            raise ServiceDayError(f"{source}: the service days must be a mapping")
        context = {
            "codes": None if codes is None else frozenset(codes),
            "cells": None if cells is None else frozenset(cells),
        }
        try:
            doc = _File.model_validate(raw, context=context)
        except ValidationError as exc:
            problems = tuple(_problem_lines(exc, node))
            raise ServiceDayError(
                f"{source}: {len(problems)} problem(s): " + "; ".join(problems[:5]),
                problems,
            ) from exc
        zone = ZoneInfo(doc.timezone)
        days = []
        for index, entry in enumerate(doc.service_days):
            windows = tuple(w for span in entry.dates for w in span.windows(zone))
            days.append(
                ServiceDay(
                    name=entry.name,
                    zones=tuple(ZoneRef.parse(z) for z in entry.zones),
                    cells=tuple(entry.cells),
                    kinds=tuple(RuleKind(s) for s in entry.suspends if not _CODE_RE.match(s)),
                    codes=tuple(s for s in entry.suspends if _CODE_RE.match(s)),
                    windows=windows,
                    line=_line_of(node, ("service_days", index)),
                )
            )
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
        return cls(tz=doc.timezone, days=tuple(days), digest=digest)


def _line_of(node: yaml.Node | None, loc: Iterable[int | str]) -> int:
    """The 1-based line of the deepest node of ``loc`` the document has (0: unknown)."""
    if node is None:
        return 0
    line = node.start_mark.line + 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            child = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if 0 <= part < len(node.value) else None
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line


def _problem_lines(exc: ValidationError, node: yaml.Node | None) -> Iterator[str]:
    errors = exc.errors()
    locs = [tuple(err["loc"]) for err in errors]
    for err, full in zip(errors, locs, strict=True):
        if any(len(other) > len(full) and other[: len(full)] == full for other in locs):
            continue  # a container whose item failed: the item's error says it
        loc = tuple(p for p in full if isinstance(p, int | str))
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            message = "required field is missing"
        elif err["type"] == "extra_forbidden":
            message = "unknown field"
        elif "input" in err and not isinstance(err["input"], dict | list):
            shown = repr(err["input"])
            if len(shown) <= 60 and shown not in message:
                message += f" (got {shown})"
        yield f"line {_line_of(node, loc)}: {field_path(loc)}: {message}"


def _parse_hours(text: str, *, end: bool) -> time | None:
    """``HH:MM`` as a local time; ``24:00`` (an end only) is None: midnight at day's end."""
    match = _HOURS_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a local time HH:MM, e.g. '08:30'")
    hour, minute = int(match.group(1)), int(match.group(2))
    if end and (hour, minute) == (24, 0):
        return None
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise ValueError(f"{text!r} is not a time of day (00:00-23:59, or 24:00 as an end)")
    return time(hour, minute)


class _Dates(BaseModel):
    """A day, or a run of days (``until`` inclusive), with the same local hours each day."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    day: date = Field(alias="date")
    until: date | None = None
    start: str = Field(default="00:00", alias="from")
    end: str = Field(default="24:00", alias="to")

    @field_validator("start")
    @classmethod
    def _start(cls, value: str) -> str:
        _parse_hours(value, end=False)
        return value

    @field_validator("end")
    @classmethod
    def _end(cls, value: str) -> str:
        _parse_hours(value, end=True)
        return value

    @model_validator(mode="after")
    def _order(self) -> _Dates:
        if self.until is not None and self.until < self.day:
            raise ValueError(f"until {self.until} is before date {self.day}")
        if self.until is not None and (self.until - self.day).days > 366:
            raise ValueError("a run of days longer than a year: list the days instead")
        start = _parse_hours(self.start, end=False)
        end = _parse_hours(self.end, end=True)
        if end is not None and start is not None and end <= start:
            raise ValueError(
                f"from {self.start} is not before to {self.end} (a window ends on its own day; "
                "give 24:00 for midnight)"
            )
        return self

    def windows(self, zone: ZoneInfo) -> Iterator[Window]:
        """One window a day, in absolute time."""
        start = _parse_hours(self.start, end=False) or time(0, 0)
        end = _parse_hours(self.end, end=True)
        day = self.day
        while day <= (self.until or self.day):
            begin = datetime.combine(day, start, tzinfo=zone)
            finish = (
                datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=zone)
                if end is None
                else datetime.combine(day, end, tzinfo=zone)
            )
            yield Window(begin, finish)
            day += timedelta(days=1)


Text = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Text
    zones: tuple[str, ...] = ()
    cells: tuple[str, ...] = ()
    suspends: tuple[str, ...] = Field(min_length=1)
    dates: tuple[_Dates, ...] = Field(min_length=1)

    @field_validator("zones")
    @classmethod
    def _zones(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for text in value:
            ZoneRef.parse(text)
        return value

    @field_validator("cells")
    @classmethod
    def _cells(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        known = (info.context or {}).get("cells")
        if known is not None:
            unknown = [c for c in value if c not in known]
            if unknown:
                raise ValueError(f"not a cell of the grid: {', '.join(unknown)}")
        return value

    @field_validator("suspends", mode="before")
    @classmethod
    def _suspends(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, list | tuple):
            return value
        kinds = [k.value for k in RuleKind]
        known = (info.context or {}).get("codes")
        out = []
        for item in value:
            text = str(item)
            if isinstance(item, int):  # an unquoted 0501 reads as 501 (or octal) in YAML
                raise ValueError(f'code {item!r}: quote event codes, e.g. "0501"')
            if _CODE_RE.match(text):
                if known is not None and text not in known:
                    raise ValueError(f"code {text!r} is not in the catalogue")
            elif text not in kinds:
                raise ValueError(
                    f"{text!r} is neither an event code (4-8 digits) nor a rule kind "
                    f"({', '.join(kinds)})"
                )
            out.append(text)
        return out

    @model_validator(mode="after")
    def _somewhere(self) -> _Entry:
        if not self.zones and not self.cells:
            raise ValueError("name zones (DEVICE/CAMERA/ZONE) or cells (grid cells), or both")
        return self


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    timezone: str
    service_days: tuple[_Entry, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> _File:
        names = [e.name for e in self.service_days]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"service day names repeat: {', '.join(twice)}")
        return self
