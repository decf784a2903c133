"""The slots of a scheduled announcement: local times on weekdays within dates, those due
in a window, missed ones past the grace skipped; bad schedules named by field."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from central_hub.domain.voice_schedule import Schedule, ScheduleError, due_slots, parse_times

WEEKDAYS = frozenset({1, 2, 3, 4, 5})
MONDAY_0900 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # Shanghai local time
GRACE = timedelta(minutes=10)


def schedule(**kw: object) -> Schedule:
    args: dict[str, object] = {
        "times": parse_times(["09:30", "17:00"]),
        "weekdays": WEEKDAYS,
        "start": date(2026, 11, 23),
        "end": None,
    }
    args.update(kw)
    return Schedule(**args)  # type: ignore[arg-type]


def test_times_are_parsed_sorted_and_named_when_bad() -> None:
    assert parse_times(["17:00", "09:30", "09:30"]) == (time(9, 30), time(17, 0))
    with pytest.raises(ScheduleError, match=r"times\[1\]: '24:00' is not HH:MM"):
        parse_times(["08:00", "24:00"])
    with pytest.raises(ScheduleError, match="at least one"):
        parse_times([])


def test_bad_weekdays_and_dates_are_named() -> None:
    with pytest.raises(ScheduleError, match="weekdays"):
        schedule(weekdays=frozenset({0, 1}))
    with pytest.raises(ScheduleError, match="before start_date"):
        schedule(end=date(2026, 11, 1))


def test_slots_due_in_the_window_in_local_time() -> None:
    s = schedule()
    now = MONDAY_0900 + timedelta(minutes=31)
    assert due_slots(s, MONDAY_0900, now, grace=GRACE) == [MONDAY_0900 + timedelta(minutes=30)]
    # Nothing twice: the next window starts where this one ended.
    assert due_slots(s, now, now + timedelta(minutes=5), grace=GRACE) == []


def test_missed_slots_past_the_grace_are_skipped() -> None:
    s = schedule()
    late = MONDAY_0900 + timedelta(minutes=45)  # 09:45, the 09:30 slot 15 minutes ago
    assert due_slots(s, MONDAY_0900, late, grace=GRACE) == []


def test_weekends_and_dates_outside_the_range_have_no_slots() -> None:
    saturday = MONDAY_0900 + timedelta(days=5, minutes=31)
    assert due_slots(schedule(), saturday - GRACE, saturday, grace=GRACE) == []
    ended = schedule(end=date(2026, 11, 23))
    tuesday = MONDAY_0900 + timedelta(days=1, minutes=31)
    assert due_slots(ended, tuesday - GRACE, tuesday, grace=GRACE) == []
    assert due_slots(schedule(weekdays=frozenset({6})), saturday - GRACE, saturday, grace=GRACE)


def test_a_window_across_midnight_spans_two_local_days() -> None:
    s = schedule(times=parse_times(["23:55", "00:05"]), weekdays=frozenset(range(1, 8)))
    start = datetime(2026, 11, 23, 15, 50, tzinfo=UTC)  # 23:50 local
    got = due_slots(s, start, start + timedelta(minutes=20), grace=timedelta(hours=1))
    assert [g.astimezone(UTC).strftime("%d %H:%M") for g in got] == ["23 15:55", "23 16:05"]
