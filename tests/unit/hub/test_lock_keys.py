"""Filing's keys: advisory locks any two mergeable reports share; the squares cases are read by."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from central_hub.domain.catalogue import Catalogue
from central_hub.domain.filing import EventFacts, haversine_m
from central_hub.services.case_filing import (
    PLACE_SQUARE_DEG,
    lock_keys,
    place_key,
    place_keys_near,
)

AT = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
CATALOGUE = Catalogue.load()
CODES = sorted(e.code for e in CATALOGUE.entries())


def _facts(event_id: str, code: str, lat: float, lon: float) -> EventFacts:
    return EventFacts(event_id=event_id, code=code, lat=lat, lon=lon, detected_at=AT)


def _moved(lat: float, lon: float, metres: float, bearing: float) -> tuple[float, float]:
    """The point ``metres`` away on ``bearing`` (spherical earth, as haversine_m)."""
    r = 6_371_008.8
    d, b = metres / r, math.radians(bearing)
    p1, l1 = math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
    l2 = l1 + math.atan2(
        math.sin(b) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
    )
    return math.degrees(p2), math.degrees(l2)


@st.composite
def _within_radius(draw: st.DrawFn) -> tuple[str, float, tuple[float, float], tuple[float, float]]:
    """A code, its merge radius, and two places at most that far apart."""
    code = draw(st.sampled_from(CODES))
    radius = CATALOGUE.get(code).merge_radius_m
    a = (draw(st.floats(-60, 60)), draw(st.floats(-179, 179)))
    b = _moved(*a, draw(st.floats(0, 1)) * radius, draw(st.floats(0, 360)))
    assume(haversine_m(*a, *b) <= radius)  # rounding at the very edge
    return code, radius, a, b


@settings(max_examples=400, deadline=None)
@given(_within_radius())
def test_reports_that_could_merge_share_a_key(
    pair: tuple[str, float, tuple[float, float], tuple[float, float]],
) -> None:
    code, _, a, b = pair
    one, other = _facts("a", code, *a), _facts("b", code, *b)
    assert set(lock_keys([one], CATALOGUE)) & set(lock_keys([other], CATALOGUE))


def test_keys_are_sorted_stable_few_and_per_code() -> None:
    one = _facts("a", "0504", 28.6472, 121.2615)
    keys = lock_keys([one], CATALOGUE)
    assert keys == sorted(keys) == lock_keys([one], CATALOGUE)
    assert 1 <= len(keys) <= 4  # 15 m radius, 250 m squares
    other_code = _facts("b", "0505", 28.6472, 121.2615)
    assert not set(keys) & set(lock_keys([other_code], CATALOGUE))
    far = _facts("c", "0504", 28.6572, 121.2615)  # 1.1 km north
    assert not set(keys) & set(lock_keys([far], CATALOGUE))
    unknown = _facts("d", "9999", 28.6472, 121.2615)
    assert lock_keys([unknown], CATALOGUE) == []
    assert all(-(2**63) <= k < 2**63 for k in keys)


@settings(max_examples=400, deadline=None)
@given(_within_radius())
def test_a_case_within_the_radius_lies_in_a_square_the_report_reads(
    pair: tuple[str, float, tuple[float, float], tuple[float, float]],
) -> None:
    """Filing reads the squares of place_keys_near: a mergeable case is always in one."""
    _, radius, report, case = pair
    assert place_key(*case) in place_keys_near(*report, radius)


def test_place_keys_are_distinct_and_few() -> None:
    """Neighbouring squares have distinct keys, across the date line and the equator too."""
    step = PLACE_SQUARE_DEG
    for lat0, lon0 in ((28.6472, 121.2615), (-0.0001, -179.9999), (0.0001, 179.9999)):
        keys = {
            place_key(lat0 + i * step, lon0 + j * step) for i in range(-3, 4) for j in range(-3, 4)
        }
        assert len(keys) == 49
    assert place_key(89.9999, 179.9999) != place_key(-89.9999, -179.9999)
    near = place_keys_near(28.6472, 121.2615, 15.0)
    assert 1 <= len(near) <= 4  # a 30 m box on squares of ~44 m
    assert place_key(28.6472, 121.2615) in near
