"""The mobile report page's pure part: its form as Open311 fields, nearby reports, the
reporter's timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from central_hub.citizen_page.words import WORDS, pick_lang
from central_hub.domain.catalogue import Catalogue
from central_hub.domain.citizen_page import (
    NEARBY_RADIUS_M,
    Nearby,
    StatusEntry,
    bounding_box,
    closest,
    open311_fields,
    plate_address,
    timeline,
)
from central_hub.domain.filing import haversine_m
from central_hub.domain.grid import Grid
from central_hub.domain.open311 import Open311Error, parse_report
from central_hub.domain.qr_plates import PlatePoint
from central_hub.domain.workflow import Stage

PLATE = PlatePoint(id="XQJ-017", street="县前街", lat=28.6489, lon=121.2601, name="县前街 17号牌")
T0 = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


def test_a_plate_sets_the_location_whatever_the_form_says() -> None:
    form = {"code": "0401", "lat": "1.0", "lon": "2.0", "located": "gps", "description": " 堵了 "}
    fields, source = open311_fields(form.items(), PLATE)
    assert source == "plate"
    assert ("lat", "28.6489") in fields
    assert ("long", "121.2601") in fields
    assert ("lat", "1.0") not in fields
    assert ("address_string", "县前街 17号牌 (XQJ-017)") in fields
    assert ("description", "堵了") in fields


def test_without_a_plate_the_phone_or_the_pin_places_the_report() -> None:
    gps, source = open311_fields({"code": "0401", "lat": "28.6", "lon": "121.2"}.items(), None)
    assert source == "gps"
    assert ("lat", "28.6") in gps
    assert ("long", "121.2") in gps
    _, source = open311_fields(
        {"code": "0401", "lat": "28.6", "lon": "121.2", "located": "pin"}.items(), None
    )
    assert source == "pin"


def test_answers_and_contact_become_open311_fields_and_blanks_are_dropped() -> None:
    form = {
        "code": "0404",
        "attr.blocks_traffic": "yes",
        "attr.empty": "  ",
        "phone": "13800000000",
        "email": "",
        "first_name": " 李 ",
    }
    fields, _ = open311_fields([*form.items(), ("attr.kinds", "a"), ("attr.kinds", "b")], PLATE)
    assert ("attribute[blocks_traffic]", "yes") in fields
    assert ("attribute[kinds]", "a") in fields
    assert ("attribute[kinds]", "b") in fields
    assert not any(k == "attribute[empty]" for k, _ in fields)
    assert ("phone", "13800000000") in fields
    assert ("first_name", "李") in fields
    assert not any(k == "email" for k, _ in fields)


def test_a_form_without_code_or_location_is_refused_by_open311s_own_checks() -> None:
    catalogue, grid = Catalogue.load(), Grid.load_sample()
    fields, _ = open311_fields([("description", "x")], None)
    with pytest.raises(Open311Error, match="service_code was not provided"):
        parse_report(fields, catalogue, grid)
    code = next(e.code for e in catalogue.entries() if e.citizen_facing)
    fields, _ = open311_fields([("code", code), ("code", "9999"), ("description", "x")], None)
    with pytest.raises(Open311Error, match="a location was not provided"):
        parse_report(fields, catalogue, grid)


def test_plate_address_does_not_repeat_the_street() -> None:
    assert plate_address(PLATE) == "县前街 17号牌 (XQJ-017)"
    bare = PlatePoint(id="HJL-002", street="横街路", lat=0.0, lon=0.0)
    assert plate_address(bare) == "横街路 (HJL-002)"
    other = PlatePoint(id="A-1", street="横街路", lat=0.0, lon=0.0, name="菜场口")
    assert plate_address(other) == "横街路 菜场口 (A-1)"


@pytest.mark.parametrize("lat", [0.0, 28.65, 60.0])
def test_the_bounding_box_holds_the_whole_circle(lat: float) -> None:
    lat_min, lat_max, lon_min, lon_max = bounding_box(lat, 121.0, NEARBY_RADIUS_M)
    for corner_lat, corner_lon in (
        (lat_min, 121.0),
        (lat_max, 121.0),
        (lat, lon_min),
        (lat, lon_max),
    ):
        assert haversine_m(lat, 121.0, corner_lat, corner_lon) == pytest.approx(
            NEARBY_RADIUS_M, rel=1e-3
        )


def _near(token: str, metres_north: float, minutes_ago: int) -> Nearby:
    lat = 28.6489 + metres_north / 111_195.0
    return Nearby(token, "0401", lat, 121.2601, T0 - timedelta(minutes=minutes_ago), Stage.REPORTED)


def test_closest_keeps_those_within_the_radius_nearest_first() -> None:
    found = closest(
        [_near("far", 60, 1), _near("mid", 30, 1), _near("near", 5, 1), _near("edge", 49.9, 1)],
        28.6489,
        121.2601,
        NEARBY_RADIUS_M,
        limit=10,
    )
    assert [n.token for n in found] == ["near", "mid", "edge"]
    assert found[0].distance_m == pytest.approx(5, abs=0.1)


def test_closest_breaks_ties_by_the_newest_and_stops_at_the_limit() -> None:
    found = closest(
        [_near("old", 10, 30), _near("new", 10, 1), _near("x", 20, 1)], 28.6489, 121.2601, 50, 2
    )
    assert [n.token for n in found] == ["new", "old"]


def test_timeline_starts_at_the_report_and_lists_later_moves() -> None:
    moves = [
        (T0 + timedelta(minutes=1), Stage.VERIFYING),
        (T0 + timedelta(minutes=5), Stage.REGISTERED),
        (T0 + timedelta(minutes=6), Stage.DISPATCHED),
    ]
    assert timeline(T0, moves) == [
        StatusEntry(T0, Stage.REPORTED),
        StatusEntry(T0 + timedelta(minutes=1), Stage.VERIFYING),
        StatusEntry(T0 + timedelta(minutes=5), Stage.REGISTERED),
        StatusEntry(T0 + timedelta(minutes=6), Stage.DISPATCHED),
    ]


def test_a_report_joining_an_older_case_starts_in_that_cases_stage() -> None:
    moves = [
        (T0 - timedelta(hours=2), Stage.REPORTED),
        (T0 - timedelta(hours=1), Stage.REGISTERED),
        (T0 + timedelta(minutes=3), Stage.DISPATCHED),
        (T0 + timedelta(minutes=4), Stage.DISPATCHED),
    ]
    assert timeline(T0, moves) == [
        StatusEntry(T0, Stage.REGISTERED),
        StatusEntry(T0 + timedelta(minutes=3), Stage.DISPATCHED),
    ]


def test_both_languages_have_every_word() -> None:
    assert set(WORDS["zh"]) == set(WORDS["en"])


@pytest.mark.parametrize(
    ("asked", "accept", "lang"),
    [
        ("en", "zh-CN,zh;q=0.9", "en"),
        (None, "en-GB,en;q=0.9,zh;q=0.8", "en"),
        (None, "zh-TW,en;q=0.5", "zh"),
        (None, None, "zh"),
        ("fr", "fr-FR", "zh"),
    ],
)
def test_the_page_speaks_chinese_unless_english_is_asked_or_preferred(
    asked: str | None, accept: str | None, lang: str
) -> None:
    assert pick_lang(asked, accept) == lang
