"""The working-time calendar and deadline arithmetic (pure functions).

A :class:`WorkCalendar` knows the local time zone, the working periods of a working day
(08:30–12:00 and 14:30–18:00 in Asia/Shanghai by default), the weekend, and the holidays
and make-up working days (调休上班) that the State Council publishes each year; those are
data in ``data/calendar.yaml``, which a city updates every December.

How the three kinds of time limit count (DOMAIN.md, "Time limits"):

* ``emergency_hours``: round the clock, holidays included;
* ``working_hours``: only the time inside working periods on working days;
* ``working_days``: N working days are N × (working hours per day) working hours, so a
  case reported at 16:00 with a 1-working-day limit is due at 16:00 on the next working
  day, and fractional amounts (0.5 days) mean something.

A working day is a weekday that is not a holiday, or a make-up working day (even if it is
a Saturday or Sunday). Every datetime given must be timezone-aware; results are in the
calendar's zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass as pydantic_dataclass

from central_hub.domain.catalogue import LimitKind, TimeLimit
from central_hub.domain.datafile import describe_validation, read_yaml
from central_hub.domain.errors import CalendarError

__all__ = [
    "DEFAULT_CALENDAR_PATH",
    "WorkCalendar",
    "deadline",
    "elapsed",
]

#: The packaged calendar (Asia/Shanghai, national holidays).
DEFAULT_CALENDAR_PATH = Path(__file__).with_name("data") / "calendar.yaml"

#: A calendar with no working day for this long is broken; deadline() stops looking.
_MAX_SEARCH_DAYS = 3_660
#: Days whose working periods a calendar keeps at most (then it starts again).
_MAX_DAYS_KEPT = 4_096

_WEEKDAYS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}


@dataclass(frozen=True)
class WorkCalendar:
    """Working periods, weekend, holidays and make-up working days in one time zone.

    ``periods`` are (start, end) local times of each working day, ordered and not
    overlapping; ``weekend`` holds ISO weekday numbers (6 = Saturday, 7 = Sunday);
    ``holidays`` are days off even on weekdays; ``makeup_days`` are working days even on
    a weekend. Build it in code or with :meth:`load`.
    """

    tz: str = "Asia/Shanghai"
    periods: tuple[tuple[time, time], ...] = (
        (time(8, 30), time(12, 0)),
        (time(14, 30), time(18, 0)),
    )
    weekend: frozenset[int] = frozenset({6, 7})
    holidays: frozenset[date] = field(default_factory=frozenset)
    makeup_days: frozenset[date] = field(default_factory=frozenset)
    holiday_names: tuple[tuple[date, str], ...] = ()
    #: The working periods of the days asked for (see working_intervals).
    _intervals: dict[date, tuple[tuple[datetime, datetime], ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise CalendarError(f"timezone: unknown time zone {self.tz!r}") from exc
        if not self.periods:
            raise CalendarError("working_periods: at least one working period is needed")
        previous_end: time | None = None
        for index, (start, end) in enumerate(self.periods):
            if start.tzinfo is not None or end.tzinfo is not None:
                raise CalendarError(f"working_periods[{index}]: local times carry no zone")
            if start >= end:
                raise CalendarError(f"working_periods[{index}]: {start} is not before {end}")
            if previous_end is not None and start < previous_end:
                raise CalendarError(
                    f"working_periods[{index}]: starts at {start}, before the previous "
                    f"period ends at {previous_end} (periods must be ordered, not overlap)"
                )
            previous_end = end
        if not self.weekend <= set(range(1, 8)):
            raise CalendarError("weekend: ISO weekday numbers 1 (Monday) .. 7 (Sunday)")
        both = self.holidays & self.makeup_days
        if both:
            raise CalendarError(
                "makeup_workdays: a day cannot be both a holiday and a make-up working day: "
                + ", ".join(sorted(d.isoformat() for d in both))
            )

    @property
    def zone(self) -> ZoneInfo:
        """The calendar's time zone."""
        return ZoneInfo(self.tz)

    @property
    def hours_per_day(self) -> float:
        """Working hours in one working day (7.0 for the default periods)."""
        total = 0.0
        for start, end in self.periods:
            span = datetime.combine(date.min, end) - datetime.combine(date.min, start)
            total += span.total_seconds() / 3600
        return total

    def covers_year(self, year: int) -> bool:
        """Whether the holiday data lists anything for ``year``.

        A service should warn when a deadline falls in a year the data does not cover:
        without that year's holidays, every weekday counts as a working day.
        """
        return any(d.year == year for d in self.holidays | self.makeup_days)

    def is_working_day(self, day: date) -> bool:
        """Whether ``day`` (a local date) is a working day."""
        if day in self.makeup_days:
            return True
        if day in self.holidays:
            return False
        return day.isoweekday() not in self.weekend

    def holiday_name(self, day: date) -> str | None:
        """The name of the holiday on ``day``, if the data names one."""
        for holiday, name in self.holiday_names:
            if holiday == day:
                return name
        return None

    def working_intervals(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """The working periods of local ``day`` as aware datetimes; empty on days off.

        Kept per day once built (the calendar is immutable): filing computes a deadline
        for every new case, and building the day's periods again each time was a third of
        it. The days kept are those deadlines and reports reach, a few hundred a year.
        """
        found = self._intervals.get(day)
        if found is None:
            if self.is_working_day(day):
                zone = self.zone
                found = tuple(
                    (datetime.combine(day, s, tzinfo=zone), datetime.combine(day, e, tzinfo=zone))
                    for s, e in self.periods
                )
            else:
                found = ()
            if len(self._intervals) >= _MAX_DAYS_KEPT:
                self._intervals.clear()
            self._intervals[day] = found
        return found

    def is_working_time(self, at: datetime) -> bool:
        """Whether the aware instant ``at`` falls inside a working period."""
        local = self.localize(at)
        return any(s <= local < e for s, e in self.working_intervals(local.date()))

    def localize(self, at: datetime) -> datetime:
        """``at`` in the calendar's zone; refuses naive datetimes."""
        if at.tzinfo is None or at.utcoffset() is None:
            raise CalendarError(f"a naive datetime was given ({at.isoformat()}); need tz-aware")
        return at.astimezone(self.zone)

    def intervals_between(
        self, start: datetime, end: datetime
    ) -> Iterator[tuple[datetime, datetime]]:
        """Working intervals clipped to ``[start, end)``, in order."""
        local_start, local_end = self.localize(start), self.localize(end)
        day = local_start.date()
        while day <= local_end.date():
            for s, e in self.working_intervals(day):
                lo, hi = max(s, local_start), min(e, local_end)
                if lo < hi:
                    yield lo, hi
            day += timedelta(days=1)

    @classmethod
    def load(cls, path: Path | None = None) -> WorkCalendar:
        """Load and validate a calendar file (the packaged one when ``path`` is None).

        Raises :class:`CalendarError` naming the file and the field at fault.
        """
        path = path or DEFAULT_CALENDAR_PATH
        return cls.parse(read_yaml(path, "calendar", CalendarError), source=str(path))

    @classmethod
    def parse(cls, raw: object, source: str = "<memory>") -> WorkCalendar:
        """Validate an already-parsed calendar document (a mapping as in the file)."""
        if not isinstance(raw, dict):
            raise CalendarError(f"{source}: the calendar must be a mapping")
        try:
            doc = _FILE.validate_python(raw)
        except ValidationError as exc:
            raise CalendarError(f"{source}: {describe_validation(exc)}") from exc
        holidays: dict[date, str] = {}
        for index, span in enumerate(doc.holidays):
            for day in _days(span.start, span.end or span.start):
                if day in holidays:
                    raise CalendarError(f"{source}: holidays[{index}]: {day} listed twice")
                holidays[day] = span.name
        makeup: set[date] = set()
        for index, entry in enumerate(doc.makeup_workdays):
            if entry.start in makeup:
                raise CalendarError(f"{source}: makeup_workdays[{index}]: {entry.start} twice")
            makeup.add(entry.start)
        try:
            return cls(
                tz=doc.timezone,
                periods=tuple((p[0], p[1]) for p in doc.working_periods),
                weekend=frozenset(_WEEKDAYS[d] for d in doc.weekend),
                holidays=frozenset(holidays),
                makeup_days=frozenset(makeup),
                holiday_names=tuple(sorted(holidays.items())),
            )
        except CalendarError as exc:
            raise CalendarError(f"{source}: {exc}") from exc


def _days(first: date, last: date) -> Iterable[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


@pydantic_dataclass(frozen=True, config=ConfigDict(extra="forbid", populate_by_name=True))
class _DaySpan:
    start: Annotated[date, Field(alias="date")]
    name: str = ""
    end: Annotated[date | None, Field(alias="until")] = None


@pydantic_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class _CalendarFile:
    version: Literal[1]
    timezone: str
    working_periods: Annotated[list[tuple[time, time]], Field(min_length=1)]
    weekend: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]]
    holidays: list[_DaySpan] = field(default_factory=list)
    makeup_workdays: list[_DaySpan] = field(default_factory=list)


_FILE = TypeAdapter(_CalendarFile)


def _check_kind(kind: str) -> None:
    if kind not in ("emergency_hours", "working_hours", "working_days"):
        raise CalendarError(f"unknown time-limit kind {kind!r}")


def deadline(start: datetime, limit: TimeLimit, cal: WorkCalendar) -> datetime:
    """When a case started at ``start`` with ``limit`` is due, in the calendar's zone.

    Working time that starts outside a working period begins at the next one; a limit
    that runs out exactly at the end of a period is due at that end (12:00, not 14:30).
    """
    _check_kind(limit.kind)
    local = cal.localize(start)
    if limit.kind == "emergency_hours":
        return (local.astimezone(UTC) + timedelta(hours=limit.amount)).astimezone(cal.zone)
    hours = limit.amount if limit.kind == "working_hours" else limit.amount * cal.hours_per_day
    remaining = timedelta(hours=hours)
    day = local.date()
    for _ in range(_MAX_SEARCH_DAYS):
        for s, e in cal.working_intervals(day):
            lo = max(s, local)
            if lo >= e:
                continue
            available = e - lo
            if remaining <= available:
                return lo + remaining
            remaining -= available
        day += timedelta(days=1)
    raise CalendarError(
        f"no working time found within {_MAX_SEARCH_DAYS} days of {start.isoformat()}"
    )


def elapsed(start: datetime, end: datetime, limit_kind: LimitKind, cal: WorkCalendar) -> float:
    """Time from ``start`` to ``end`` in the unit of ``limit_kind``.

    Hours round the clock for ``emergency_hours``, working hours for ``working_hours``,
    working days (working hours / hours per day) for ``working_days``. Negative when
    ``end`` is before ``start``, so ``elapsed(now, due, ...)`` is the time left.
    """
    _check_kind(limit_kind)
    local_start, local_end = cal.localize(start), cal.localize(end)
    if local_end < local_start:
        return -elapsed(end, start, limit_kind, cal)
    if limit_kind == "emergency_hours":
        return (local_end - local_start).total_seconds() / 3600
    seconds = sum((e - s).total_seconds() for s, e in cal.intervals_between(start, end))
    hours = seconds / 3600
    return hours if limit_kind == "working_hours" else hours / cal.hours_per_day
