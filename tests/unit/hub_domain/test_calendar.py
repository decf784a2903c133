"""Working-time calendar and deadline arithmetic: lunch break, weekend, holiday, make-up."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from central_hub.domain.calendar import WorkCalendar, deadline, elapsed
from central_hub.domain.catalogue import TimeLimit
from central_hub.domain.errors import CalendarError

SH = ZoneInfo("Asia/Shanghai")


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=SH)


# A test calendar with its own holiday data, so the tests do not depend on the packaged year.
# 2026-11-26 is a Thursday. Holiday: Mon 2026-11-30. Make-up working day: Sun 2026-12-06.
CAL = WorkCalendar(
    holidays=frozenset({date(2026, 11, 30)}),
    makeup_days=frozenset({date(2026, 12, 6)}),
)


def wh(hours: float) -> TimeLimit:
    return TimeLimit("working_hours", hours)


def test_within_one_period() -> None:
    assert deadline(at(2026, 11, 26, 9, 0), wh(2), CAL) == at(2026, 11, 26, 11, 0)


def test_lunch_break_is_skipped() -> None:
    # 10:00 + 4 wh: 2h until 12:00, then 2h from 14:30 -> 16:30
    assert deadline(at(2026, 11, 26, 10, 0), wh(4), CAL) == at(2026, 11, 26, 16, 30)
    # reported during lunch: counting starts at 14:30
    assert deadline(at(2026, 11, 26, 12, 40), wh(1), CAL) == at(2026, 11, 26, 15, 30)


def test_ending_exactly_at_noon_stays_at_noon() -> None:
    assert deadline(at(2026, 11, 26, 10, 0), wh(2), CAL) == at(2026, 11, 26, 12, 0)


def test_evening_report_starts_next_morning() -> None:
    # Thursday 19:00 + 2 wh -> Friday 10:30
    assert deadline(at(2026, 11, 26, 19, 0), wh(2), CAL) == at(2026, 11, 27, 10, 30)
    # before the office opens
    assert deadline(at(2026, 11, 27, 6, 0), wh(1), CAL) == at(2026, 11, 27, 9, 30)


def test_weekend_and_holiday_are_skipped() -> None:
    # Friday 17:00 + 2 wh: 1h Friday, Sat/Sun off, Monday 30th a holiday -> Tuesday 09:30
    assert deadline(at(2026, 11, 27, 17, 0), wh(2), CAL) == at(2026, 12, 1, 9, 30)
    # without the holiday it would be Monday
    assert deadline(at(2026, 11, 27, 17, 0), wh(2), WorkCalendar()) == at(2026, 11, 30, 9, 30)


def test_makeup_working_day_counts() -> None:
    # Saturday 5th is off; Sunday 6th is a make-up working day
    assert deadline(at(2026, 12, 5, 10, 0), wh(1), CAL) == at(2026, 12, 6, 9, 30)
    assert CAL.is_working_day(date(2026, 12, 6))
    assert not CAL.is_working_day(date(2026, 12, 5))
    assert not CAL.is_working_day(date(2026, 11, 30))


def test_emergency_hours_run_round_the_clock() -> None:
    limit = TimeLimit("emergency_hours", 4)
    # Saturday night, holiday or not: +4h wall clock
    assert deadline(at(2026, 11, 28, 22, 0), limit, CAL) == at(2026, 11, 29, 2, 0)
    assert deadline(at(2026, 11, 30, 11, 0), limit, CAL) == at(2026, 11, 30, 15, 0)


def test_working_days_are_days_of_working_hours() -> None:
    # Thursday 16:00 + 1 working day (7 wh) -> Friday 16:00
    assert deadline(at(2026, 11, 26, 16, 0), TimeLimit("working_days", 1), CAL) == at(
        2026, 11, 27, 16, 0
    )
    # Thursday 16:00 + 2 working days -> skips weekend and Monday's holiday -> Tuesday 16:00
    assert deadline(at(2026, 11, 26, 16, 0), TimeLimit("working_days", 2), CAL) == at(
        2026, 12, 1, 16, 0
    )
    # half a day from 08:30 = 3.5 wh -> 12:00
    assert deadline(at(2026, 11, 26, 8, 30), TimeLimit("working_days", 0.5), CAL) == at(
        2026, 11, 26, 12, 0
    )


def test_other_time_zones_in_result_in_calendar_zone() -> None:
    start = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
    due = deadline(start, wh(4), CAL)
    assert due == at(2026, 11, 26, 16, 30)
    assert due.utcoffset() == timedelta(hours=8)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(CalendarError, match="naive"):
        deadline(datetime(2026, 11, 26, 10, 0), wh(1), CAL)
    with pytest.raises(CalendarError, match="naive"):
        elapsed(datetime(2026, 11, 26, 10, 0), at(2026, 11, 26, 11), "working_hours", CAL)


def test_elapsed_in_each_unit() -> None:
    start, end = at(2026, 11, 26, 10, 0), at(2026, 11, 27, 10, 0)
    # Thursday 10-12 (2h) + 14:30-18 (3.5h) + Friday 08:30-10 (1.5h) = 7h
    assert elapsed(start, end, "working_hours", CAL) == pytest.approx(7.0)
    assert elapsed(start, end, "working_days", CAL) == pytest.approx(1.0)
    assert elapsed(start, end, "emergency_hours", CAL) == pytest.approx(24.0)
    # negative when end is before start: time left until a deadline
    assert elapsed(end, start, "working_hours", CAL) == pytest.approx(-7.0)
    # weekend + holiday contribute nothing
    assert elapsed(at(2026, 11, 28, 0), at(2026, 12, 1, 0), "working_hours", CAL) == 0


PACKAGED = WorkCalendar.load()


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 6, 1), timezones=st.just(SH)
    ),
    amount=st.floats(min_value=0.25, max_value=80),
    kind=st.sampled_from(["working_hours", "working_days", "emergency_hours"]),
)
def test_elapsed_inverts_deadline(start: datetime, amount: float, kind: str) -> None:
    cal = PACKAGED
    limit = TimeLimit(kind, amount)  # type: ignore[arg-type]
    due = deadline(start, limit, cal)
    assert due >= start
    assert elapsed(start, due, limit.kind, cal) == pytest.approx(amount, rel=1e-6, abs=1e-6)
    if kind == "working_hours":
        # a working-hours deadline always lies within (or at the end of) a working period
        local = due.astimezone(SH)
        assert any(s <= local <= e for s, e in cal.working_intervals(local.date()))


def test_packaged_calendar_knows_national_holidays() -> None:
    cal = WorkCalendar.load()
    assert cal.hours_per_day == 7.0
    assert not cal.is_working_day(date(2026, 10, 1))  # National Day, a Thursday
    assert cal.is_working_day(date(2026, 10, 10))  # make-up Saturday
    assert cal.holiday_name(date(2026, 10, 1)) == "国庆节 National Day"
    assert cal.holiday_name(date(2026, 10, 9)) is None
    assert cal.is_working_time(at(2026, 10, 9, 9, 0))
    assert not cal.is_working_time(at(2026, 10, 9, 13, 0))


CAL_YAML = """
version: 1
timezone: Asia/Shanghai
working_periods: [["08:30", "12:00"], ["14:30", "18:00"]]
weekend: [sat, sun]
holidays:
  - {date: 2026-12-24, until: 2026-12-25, name: test}
makeup_workdays:
  - {date: 2026-12-26}
"""


def test_calendar_file_parses(tmp_path: Path) -> None:
    path = tmp_path / "cal.yaml"
    path.write_text(CAL_YAML, encoding="utf-8")
    cal = WorkCalendar.load(path)
    assert cal.holidays == {date(2026, 12, 24), date(2026, 12, 25)}
    assert cal.makeup_days == {date(2026, 12, 26)}
    assert cal.periods == ((time(8, 30), time(12)), (time(14, 30), time(18)))


@pytest.mark.parametrize(
    ("replace", "by", "needle"),
    [
        ("timezone: Asia/Shanghai", "timezone: Mars/Olympus", "unknown time zone"),
        ('["14:30", "18:00"]', '["11:30", "18:00"]', "working_periods[1]"),
        ('["08:30", "12:00"]', '["12:00", "08:30"]', "working_periods[0]"),
        ("weekend: [sat, sun]", "weekend: [saturday]", "weekend.0"),
        ("{date: 2026-12-26}", "{date: 2026-12-24}", "both a holiday and a make-up"),
        ("{date: 2026-12-26}", "{date: 26 Dec}", "makeup_workdays.0.date"),
        ("{date: 2026-12-26}", "{date: 2026-13-26}", "not valid YAML"),
        ("name: test}", "name: test, colour: red}", "holidays.0.colour"),
    ],
)
def test_calendar_errors_name_file_and_field(
    tmp_path: Path, replace: str, by: str, needle: str
) -> None:
    assert replace in CAL_YAML
    path = tmp_path / "cal.yaml"
    path.write_text(CAL_YAML.replace(replace, by), encoding="utf-8")
    with pytest.raises(CalendarError) as info:
        WorkCalendar.load(path)
    assert str(path) in str(info.value)
    assert needle in str(info.value)


def test_calendar_without_working_days_is_an_error() -> None:
    cal = WorkCalendar(weekend=frozenset(range(1, 8)))
    with pytest.raises(CalendarError, match="no working time"):
        deadline(at(2026, 11, 26, 9), wh(1), cal)


def test_packaged_data_is_plausible() -> None:
    # make-up working days are always weekend days, holidays are never make-up days
    assert PACKAGED.makeup_days
    for day in PACKAGED.makeup_days:
        assert day.isoweekday() in (6, 7), day
    assert not PACKAGED.holidays & PACKAGED.makeup_days
    assert PACKAGED.covers_year(2026)
    assert not PACKAGED.covers_year(1999)
    # Spring Festival 2026: nine days off, 15-23 February
    spring = [date(2026, 2, d) for d in range(15, 24)]
    assert all(not PACKAGED.is_working_day(d) for d in spring)
    assert PACKAGED.is_working_day(date(2026, 2, 14))
