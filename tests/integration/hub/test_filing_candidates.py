"""The candidate read keeps every case a report could merge into, in any direction.

Filing reads open cases by square (``CaseFiler._read_squares``): a case just inside a
report's merge radius must be read (the report merges) and one just outside must not be
merged into, whichever direction it lies in; a narrower read (fewer squares, or a box
cut too tight) fails here. Each pair of reports is filed in a batch of its own after the
cases, so the case comes from the database (a filer of its own, which has read nothing)
or from the index of open cases the filer that opened them keeps (on SQLite), not from
the batch's own new cases. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.domain.calendar import WorkCalendar
from central_hub.domain.catalogue import Catalogue
from central_hub.domain.filing import EARTH_RADIUS_M, EventFacts, haversine_m
from central_hub.domain.grid import Grid
from central_hub.services.case_filing import CaseFiler

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
CODES = ("0504", "0510")  # radii of 15 m and 30 m in the packaged catalogue
DIRECTIONS = 16
#: Fractions of the radius: just inside merges, just outside opens a case.
INSIDE, OUTSIDE = 0.97, 1.03


def _offset(lat: float, lon: float, metres: float, bearing: float) -> tuple[float, float]:
    """The place ``metres`` from (lat, lon) towards ``bearing`` (radians from north)."""
    per_deg = math.pi * EARTH_RADIUS_M / 180
    dlat = metres * math.cos(bearing) / per_deg
    dlon = metres * math.sin(bearing) / (per_deg * math.cos(math.radians(lat)))
    return lat + dlat, lon + dlon


@pytest.mark.parametrize("reader", ["fresh filer", "same filer"])
async def test_cases_just_inside_the_radius_are_read_in_every_direction(
    db: AsyncEngine, reader: str
) -> None:
    catalogue = Catalogue.load()
    filer = CaseFiler(catalogue, Grid.load_sample(), WorkCalendar.load())
    at = NOW - timedelta(minutes=5)
    spots: list[tuple[str, float, float, float, float]] = []  # code, case place, report place
    for c, code in enumerate(CODES):
        radius = catalogue.get(code).merge_radius_m
        for d in range(DIRECTIONS):
            for f, fraction in enumerate((INSIDE, OUTSIDE)):
                # Spots about 300 m apart, so no report reaches another spot's case.
                lat = 28.640 + 0.003 * d + 0.0003 * f
                lon = 121.252 + 0.006 * c + 0.003 * f
                r_lat, r_lon = _offset(lat, lon, fraction * radius, 2 * math.pi * d / DIRECTIONS)
                spots.append((code, lat, lon, r_lat, r_lon))
    firsts = [
        EventFacts(f"case-{n}", code, lat, lon, at, device_id="pole-1")
        for n, (code, lat, lon, _, _) in enumerate(spots)
    ]
    async with db.begin() as conn:
        case_ids = await filer.file_many(conn, firsts, NOW)
    assert len(set(case_ids)) == len(spots)  # every first report opened its own case
    if reader == "fresh filer":
        filer = CaseFiler(catalogue, Grid.load_sample(), WorkCalendar.load())
    merged, opened = 0, 0
    async with db.begin() as conn:
        reports = [
            EventFacts(f"report-{n}", code, r_lat, r_lon, at, device_id="pole-2")
            for n, (code, _, _, r_lat, r_lon) in enumerate(spots)
        ]
        # Two reports a batch, several squares each.
        for n in range(0, len(reports), 2):
            got = await filer.file_many(conn, reports[n : n + 2], NOW)
            for k, case_id in enumerate(got, n):
                code, lat, lon, r_lat, r_lon = spots[k]
                distance = haversine_m(lat, lon, r_lat, r_lon)
                if distance <= catalogue.get(code).merge_radius_m:
                    assert case_id == case_ids[k], (code, k, distance)
                    merged += 1
                else:
                    assert case_id not in case_ids, (code, k, distance)
                    opened += 1
    assert merged == opened == len(CODES) * DIRECTIONS
