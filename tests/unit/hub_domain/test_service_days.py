"""The service-day calendar: where, what, when; time zones, overlaps, the file's errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from central_hub.domain.catalogue import Catalogue
from central_hub.domain.errors import ServiceDayError
from central_hub.domain.grid import Grid
from central_hub.domain.service_days import DEFAULT_SERVICE_DAYS_PATH, ServiceDays, ZoneRef

SH = ZoneInfo("Asia/Shanghai")
SIDEWALK = ZoneRef("pole-01", "mast-east", "sidewalk")

DOC = """\
version: 1
timezone: Asia/Shanghai
service_days:
  - name: square Q1
    zones: [pole-01/mast-east/sidewalk]
    suspends: [vendor, "0504"]
    dates:
      - {date: 2026-03-14, from: "08:00", to: "17:00"}
  - name: national day
    zones: [pole-01/mast-west]
    cells: [hy-st-11]
    suspends: ["0501"]
    dates:
      - {date: 2026-10-01, until: 2026-10-03, from: "09:00", to: "16:00"}
  - name: square all day
    zones: [pole-01/mast-east/sidewalk]
    suspends: ["0501"]
    dates:
      - {date: 2026-03-14}
"""


def at(d: int, h: int, mi: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, d, h, mi, tzinfo=SH)


@pytest.fixture(scope="module")
def cal() -> ServiceDays:
    return ServiceDays.parse_text(DOC)


def test_zone_and_code_and_kind(cal: ServiceDays) -> None:
    hit = cal.exempt(SIDEWALK, "0504", at(14, 9))
    assert hit is not None
    assert hit.service_day.name == "square Q1"
    # vendor (a rule kind) suspends its code 0501 and its event kind
    assert cal.exempt(SIDEWALK, "0501", at(14, 9)) is not None
    assert cal.exempt(SIDEWALK, "0505", at(14, 9)) is None  # parking is not suspended
    assert cal.exempt(ZoneRef("pole-01", "mast-east", "road"), "0504", at(14, 9)) is None
    assert cal.exempt(ZoneRef("pole-02", "mast-east", "sidewalk"), "0504", at(14, 9)) is None
    # a camera named without a zone covers every zone of it
    assert cal.exempt(ZoneRef("pole-01", "mast-west", "kerb"), "0501", at(2, 10, month=10))
    assert cal.exempt(None, "0501", at(2, 10, month=10)) is None  # no zone, no cell


def test_time_boundaries_are_half_open(cal: ServiceDays) -> None:
    assert cal.exempt(SIDEWALK, "0504", at(14, 8)) is not None
    assert cal.exempt(SIDEWALK, "0504", at(14, 8) - timedelta(seconds=1)) is None
    assert cal.exempt(SIDEWALK, "0504", at(14, 17) - timedelta(microseconds=1)) is not None
    assert cal.exempt(SIDEWALK, "0504", at(14, 17)) is None
    assert cal.exempt(SIDEWALK, "0504", at(15, 9)) is None  # the next day


def test_local_hours_are_the_calendars_zone_whatever_zone_the_event_is_in(
    cal: ServiceDays,
) -> None:
    # 08:00 in Shanghai is 00:00 UTC; 23:59 UTC the day before is 07:59 there.
    assert cal.exempt(SIDEWALK, "0504", datetime(2026, 3, 14, 0, 0, tzinfo=UTC)) is not None
    assert cal.exempt(SIDEWALK, "0504", datetime(2026, 3, 13, 23, 59, tzinfo=UTC)) is None
    in_berlin = datetime(2026, 3, 14, 9, 59, tzinfo=ZoneInfo("Europe/Berlin"))  # 16:59 +08
    assert cal.exempt(SIDEWALK, "0504", in_berlin) is not None
    with pytest.raises(ServiceDayError, match="naive"):
        cal.exempt(SIDEWALK, "0504", datetime(2026, 3, 14, 9, 0))


def test_another_time_zone_moves_the_windows() -> None:
    doc = DOC.replace("Asia/Shanghai", "Asia/Urumqi")  # UTC+6
    cal = ServiceDays.parse_text(doc)
    assert cal.exempt(SIDEWALK, "0504", datetime(2026, 3, 14, 2, 0, tzinfo=UTC)) is not None
    assert cal.exempt(SIDEWALK, "0504", datetime(2026, 3, 14, 1, 59, tzinfo=UTC)) is None


def test_overlapping_entries_give_the_window_ending_last(cal: ServiceDays) -> None:
    hit = cal.exempt(SIDEWALK, "0501", at(14, 9))
    assert hit is not None
    assert hit.service_day.name == "square all day"
    assert hit.window.end == at(15, 0)
    # after 17:00 only the all-day entry holds 0501; 0504 is free again
    late = cal.exempt(SIDEWALK, "0501", at(14, 20))
    assert late is not None
    assert late.service_day.name == "square all day"
    assert "2026-03-15 00:00" in late.reason(SH)


def test_a_run_of_days_has_a_window_each_day_and_cells_match(cal: ServiceDays) -> None:
    for day in (1, 2, 3):
        assert cal.exempt(None, "0501", at(day, 12, month=10), cells={"hy-st-11"}) is not None
        assert cal.exempt(None, "0501", at(day, 8, month=10), cells={"hy-st-11"}) is None
    assert cal.exempt(None, "0501", at(4, 12, month=10), cells={"hy-st-11"}) is None
    assert cal.exempt(None, "0501", at(2, 12, month=10), cells={"hy-st-12"}) is None


def test_the_reason_names_the_day_what_where_and_when(cal: ServiceDays) -> None:
    hit = cal.exempt(SIDEWALK, "0504", at(14, 9))
    assert hit is not None
    reason = hit.reason(SH)
    assert "square Q1" in reason
    assert "vendor, 0504" in reason
    assert "pole-01/mast-east/sidewalk" in reason
    assert "2026-03-14 08:00" in reason
    assert "2026-03-14 17:00" in reason


def test_exemptions_for_a_unit_by_zone_and_by_cell(cal: ServiceDays) -> None:
    now = at(1, 0)
    sent = cal.exemptions_for("pole-01", {"mast-north": ["hy-st-11", "hy-z-c2"]}, now)
    by = {(e.name, e.camera, e.zone, e.start) for e in sent}
    assert ("square Q1", "mast-east", "sidewalk", at(14, 8)) in by
    assert ("square all day", "mast-east", "sidewalk", at(14, 0)) in by
    assert ("national day", "mast-west", None, at(1, 9, month=10)) in by
    assert ("national day", "mast-north", None, at(3, 9, month=10)) in by  # by its cell
    assert len(sent) == 2 + 3 + 3
    assert [e.start for e in sent] == sorted(e.start for e in sent)
    # windows already over are not sent; another unit gets none of these zones
    assert all(e.name == "national day" for e in cal.exemptions_for("pole-01", {}, at(20, 0)))
    assert cal.exemptions_for("pole-02", {}, now) == ()
    q1 = next(e for e in sent if e.name == "square Q1")
    assert set(q1.kinds) == {"vendor"}
    assert q1.codes == ("0504",)


def test_upcoming_lists_windows_not_over_soonest_first(cal: ServiceDays) -> None:
    names = [s.service_day.name for s in cal.upcoming(at(14, 12), days=365)]
    assert names == ["square all day", "square Q1"] + ["national day"] * 3
    assert [s.service_day.name for s in cal.upcoming(at(14, 18), days=30)] == ["square all day"]


def test_the_packaged_calendar_loads_against_the_sample_catalogue_and_grid() -> None:
    cal = ServiceDays.load(
        DEFAULT_SERVICE_DAYS_PATH,
        codes=[e.code for e in Catalogue.load().entries()],
        cells=[c.id for c in Grid.load_sample().cells()],
    )
    assert len(cal.days) >= 4
    assert len(cal.digest) == 12


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("suspends: [vendor", "suspends: [juggling"), "line 6: service_days.0.suspends:"),
        (('"0504"', "0504"), "quote event codes"),
        (
            ('to: "17:00"', 'to: "07:00"'),
            "line 8: service_days.0.dates.0: from 08:00 is not before to 07:00",
        ),
        (('to: "17:00"', 'to: "25:00"'), "line 8: service_days.0.dates.0.to:"),
        (("pole-01/mast-west]", "Pole 01]"), "line 10: service_days.1.zones: "),
        (("until: 2026-10-03", "until: 2026-09-03"), "is before date"),
        (("  - name: national day\n", "  - name: square Q1\n"), "names repeat: square Q1"),
        (("timezone: Asia/Shanghai", "timezone: Mars/Olympus"), "line 2: timezone:"),
        (("    cells: [hy-st-11]\n", "    colour: red\n"), "line 11: service_days.1.colour"),
    ],
)
def test_each_problem_names_its_line_and_field(change: tuple[str, str], expected: str) -> None:
    with pytest.raises(ServiceDayError) as info:
        ServiceDays.parse_text(DOC.replace(*change), source="days.yaml")
    text = str(info.value)
    assert text.startswith("days.yaml: "), text
    assert any(expected in p for p in info.value.problems) or expected in text, (
        info.value.problems,
        text,
    )


def test_every_problem_is_listed_not_only_the_first() -> None:
    doc = DOC.replace("suspends: [vendor", "suspends: [juggling").replace(
        "pole-01/mast-west]", "Pole 01]"
    )
    with pytest.raises(ServiceDayError) as info:
        ServiceDays.parse_text(doc)
    assert len(info.value.problems) == 2


def test_unknown_codes_and_cells_are_named_when_the_city_is_given() -> None:
    with pytest.raises(ServiceDayError) as info:
        ServiceDays.parse_text(DOC, codes={"0501"}, cells={"hy-st-12"})
    problems = "\n".join(info.value.problems)
    assert "code '0504' is not in the catalogue" in problems
    assert "not a cell of the grid: hy-st-11" in problems


def test_a_place_is_needed_and_yaml_errors_give_the_line(tmp_path: Path) -> None:
    with pytest.raises(ServiceDayError, match="name zones"):
        ServiceDays.parse_text(DOC.replace("    zones: [pole-01/mast-east/sidewalk]\n", "", 1))
    bad = tmp_path / "days.yaml"
    bad.write_text("version: 1\ntimezone: [\n", encoding="utf-8")
    with pytest.raises(ServiceDayError, match=r"days.yaml: line 3, column 1: not valid YAML"):
        ServiceDays.load(bad)
    with pytest.raises(ServiceDayError, match="cannot read"):
        ServiceDays.load(tmp_path / "missing.yaml")
