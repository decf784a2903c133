"""The candidate query's search area: disjoint latitude bands that cover every neighbourhood."""

from __future__ import annotations

import itertools
import math
import random
import re
from datetime import UTC, datetime

import pytest

from central_hub.domain.catalogue import Catalogue
from central_hub.domain.filing import EventFacts
from central_hub.errors import StorageError
from central_hub.services import case_filing
from central_hub.services.case_filing import _Buckets, _candidate_sql, _padded

AT = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
CODES = ["0504", "0505", "0102", "0501", "0507", "2103"]


def _batch(n: int, seed: int, spread: float = 0.02) -> list[EventFacts]:
    rng = random.Random(seed)
    return [
        EventFacts(
            event_id=f"e{i}",
            code=rng.choice(CODES),
            lat=28.64 + rng.uniform(0, spread),
            lon=121.25 + rng.uniform(0, spread),
            detected_at=AT,
        )
        for i in range(n)
    ]


def _covered(
    bands: list[tuple[str, float, float, tuple[tuple[float, float], ...]]],
    code: str,
    lat: float,
    lon: float,
) -> bool:
    return any(
        c == code and a <= lat <= b and any(o <= lon <= p for o, p in lons)
        for c, a, b, lons in bands
    )


@pytest.mark.parametrize(("n", "fine_limit"), [(1, 1_500), (40, 1_500), (500, 1_500), (500, 50)])
def test_bands_cover_each_reports_neighbourhood(
    n: int, fine_limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fine_limit 50 forces the coarse blocks a widely spread batch gets.
    monkeypatch.setattr(case_filing, "MAX_FINE_BOXES", fine_limit)
    catalogue = Catalogue.load()
    batch = _batch(n, seed=n)
    buckets = _Buckets(catalogue, batch)
    bands = buckets.query_bands()
    # Every point within one tile of a report (where its merge candidates can be) is asked for.
    rng = random.Random(7)
    for f in batch:
        for _ in range(20):
            lat = f.lat + rng.uniform(-1, 1) * buckets.dlat
            lon = f.lon + rng.uniform(-1, 1) * buckets.dlon
            assert _covered(bands, f.code, lat, lon), (f, lat, lon)
        assert not _covered(bands, "9999", f.lat, f.lon)
    # Per code the bands do not overlap (only touch), so each case row is scanned once.
    for code in CODES:
        spans = sorted((a, b) for c, a, b, _ in bands if c == code)
        for (_, b0), (a1, _) in itertools.pairwise(spans):
            assert b0 <= a1 + 1e-12
    # Longitude ranges within a band are merged: sorted and apart.
    for _, _, _, lons in bands:
        assert all(p < o for (_, p), (o, _) in itertools.pairwise(lons))


def test_bands_ask_for_less_than_one_box_per_tile() -> None:
    batch = _batch(500, seed=3)
    buckets = _Buckets(Catalogue.load(), batch)
    bands = buckets.query_bands()
    tiles = {buckets._tile(f.code, f.lat, f.lon) for f in batch}
    assert len(bands) < len(tiles)
    # Neighbouring reports share bands: rows of a code are at most the tiles it touches x 3.
    assert len({(c, a) for c, a, _, _ in bands}) <= 3 * len(tiles)


def test_padded_sizes_are_few_and_close() -> None:
    sizes = {_padded(n) for n in range(1, 1_025)}
    assert len(sizes) < 50
    for n in range(1, 5_000):
        assert n <= _padded(n) < n + max(16, math.ceil(n / 8))


@pytest.mark.parametrize(
    ("style", "mark"), [("qmark", r"\?"), ("numeric_dollar", r"\$\d+"), ("format", "%s")]
)
def test_candidate_sql_has_one_placeholder_per_parameter(style: str, mark: str) -> None:
    sql = _candidate_sql(3, 2, style)
    finals = len(case_filing._FINALS)
    assert len(re.findall(mark, sql)) == 2 + finals + 3 * (3 + 2 * 2)
    if style == "numeric_dollar":
        numbers = [int(m[1:]) for m in re.findall(r"\$\d+", sql)]
        assert numbers == list(range(1, len(numbers) + 1))


def test_candidate_sql_refuses_a_named_paramstyle() -> None:
    with pytest.raises(StorageError, match="paramstyle"):
        _candidate_sql(1, 1, "named")
