"""Scheduled announcements, the pure part: a schedule's slots and which are due.

A schedule announces at local ``times`` ("HH:MM") on ``weekdays`` (1 = Monday .. 7)
from ``start`` to ``end`` (dates, inclusive; no end: until cancelled), in the city's
timezone. :func:`due_slots` lists the slots in ``(after, now]``; a slot older than
``grace`` (a hub that was down for an hour) is skipped rather than announced late.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["Schedule", "ScheduleError", "due_slots", "parse_times"]

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
#: At most this many times a day (a loudspeaker is not a radio).
MAX_TIMES = 24


class ScheduleError(ValueError):
    """A schedule that cannot be kept; the text names the field."""


def parse_times(values: list[str]) -> tuple[time, ...]:
    """``["08:30", "17:00"]`` as sorted times; :class:`ScheduleError` names a bad one."""
    if not values:
        raise ScheduleError("times: give at least one HH:MM")
    if len(values) > MAX_TIMES:
        raise ScheduleError(f"times: {len(values)} given, at most {MAX_TIMES} a day")
    out = set()
    for index, value in enumerate(values):
        match = _HHMM.match(str(value).strip())
        if match is None:
            raise ScheduleError(f"times[{index}]: {value!r} is not HH:MM (00:00-23:59)")
        out.add(time(int(match[1]), int(match[2])))
    return tuple(sorted(out))


@dataclass(frozen=True)
class Schedule:
    """When a schedule announces (see the module doc)."""

    times: tuple[time, ...]
    weekdays: frozenset[int]
    start: date
    end: date | None
    tz: str = "Asia/Shanghai"

    def __post_init__(self) -> None:
        if not self.times:
            raise ScheduleError("times: give at least one HH:MM")
        bad = sorted(d for d in self.weekdays if not 1 <= d <= 7)
        if not self.weekdays or bad:
            raise ScheduleError(f"weekdays: 1 (Monday) to 7 (Sunday), got {sorted(self.weekdays)}")
        if self.end is not None and self.end < self.start:
            raise ScheduleError(f"end_date {self.end} is before start_date {self.start}")


def due_slots(
    schedule: Schedule, after: datetime, now: datetime, *, grace: timedelta
) -> list[datetime]:
    """The schedule's slots (UTC-aware) in ``(max(after, now - grace), now]``, oldest first."""
    zone = ZoneInfo(schedule.tz)
    since = max(after, now - grace)
    if since >= now:
        return []
    out = []
    day = since.astimezone(zone).date()
    last = now.astimezone(zone).date()
    while day <= last:
        if (
            day >= schedule.start
            and (schedule.end is None or day <= schedule.end)
            and day.isoweekday() in schedule.weekdays
        ):
            for t in schedule.times:
                slot = datetime.combine(day, t, zone)
                if since < slot <= now:
                    out.append(slot.astimezone(now.tzinfo))
        day += timedelta(days=1)
    return out
