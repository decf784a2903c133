"""Pure presentation: countdowns, formats, chart geometry, map projection and shapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from central_hub.console.mapdraw import MapProjection, grid_shapes
from central_hub.console.present import (
    bar_chart,
    countdown,
    donut_arc,
    format_bytes,
    format_duration,
    format_rate,
    rate_bars,
)
from central_hub.domain.grid import Grid

NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


def test_countdown_left_overdue_none_and_final() -> None:
    assert countdown(NOW + timedelta(hours=2), NOW).seconds == 7200
    over = countdown(NOW - timedelta(minutes=5), NOW)
    assert over.overdue
    assert over.seconds == -300
    assert countdown(None, NOW).seconds is None
    assert countdown(NOW - timedelta(days=1), NOW, final=True).seconds is None


@pytest.mark.parametrize(
    ("seconds", "zh", "en"),
    [
        (59, "0分", "0m"),
        (45 * 60, "45分", "45m"),
        (2 * 3600 + 13 * 60, "2小时13分", "2h 13m"),
        (-(3 * 86400 + 4 * 3600), "3天4小时", "3d 4h"),
    ],
)
def test_format_duration(seconds: int, zh: str, en: str) -> None:
    assert format_duration(seconds, "zh") == zh
    assert format_duration(seconds, "en") == en


def test_rates_and_bytes() -> None:
    assert format_rate(0.9328) == "93.28%"
    assert format_rate(None) == "—"
    assert format_bytes(5 * 1024 * 1024) == "5.0 MB"
    assert format_bytes(2048) == "2 KB"
    assert format_bytes(17) == "17 B"


def test_bar_chart_scales_to_the_largest_value_and_keeps_bars_inside() -> None:
    chart = bar_chart(
        [("11-20", {"reported": 7, "closed": 3}), ("11-21", {"reported": 0})],
        ("reported", "closed"),
    )
    assert chart.top == 8
    assert len(chart.bars) == 4
    tallest = max(chart.bars, key=lambda b: b.h)
    assert tallest.value == 7
    assert tallest.series == "reported"
    for bar in chart.bars:
        assert bar.x >= 0
        assert bar.x + bar.w <= chart.width
        assert bar.y >= 0
        assert bar.y + bar.h <= chart.height
    assert [v for _, v in chart.y_ticks] == [0, 2, 4, 6, 8]
    assert bar_chart([], ("reported",)).top == 4
    assert bar_chart([("d", {"n": 2})], ("n",)).y_ticks[-1][1] == 4
    assert bar_chart([("d", {"n": 230})], ("n",)).top == 400


def test_rate_bars_clamp_and_donut_arc() -> None:
    bars = rate_bars([("a", 0.5), ("b", None), ("c", 1.4)], full=300)
    assert [b.width for b in bars] == [150.0, 0.0, 300.0]
    assert bars[1].text == "—"
    assert donut_arc(None) == ""
    assert donut_arc(0) == ""
    small, big = donut_arc(0.224), donut_arc(0.8)
    assert " 0 0 1 " in small
    assert " 0 1 1 " in big


def test_projection_maps_corners_and_keeps_aspect() -> None:
    proj = MapProjection.for_bounds((28.0, 121.0, 28.1, 121.1), width=1000)
    assert proj.to_xy(28.1, 121.0) == (10.0, 10.0)  # north-west corner at the margin
    x, y = proj.to_xy(28.0, 121.1)
    assert x == pytest.approx(990, abs=0.2)
    assert y == pytest.approx(proj.height - 10, abs=0.2)
    assert proj.height > 1000  # a degree of longitude is shorter than one of latitude
    assert proj.contains(28.05, 121.05)
    assert not proj.contains(27.9, 121.05)
    with pytest.raises(ValueError, match="empty map bounds"):
        MapProjection.for_bounds((28.0, 121.0, 28.0, 121.1))


def test_view_boxes_map_back_to_the_places_they_show() -> None:
    """The map asks for the cases in its view box: to_latlon undoes to_xy."""
    proj = MapProjection.for_bounds((28.0, 121.0, 28.1, 121.1), width=1000)
    for lat, lon in ((28.0, 121.0), (28.1, 121.1), (28.0312, 121.0871)):
        back = proj.to_latlon(*proj.to_xy(lat, lon))
        assert back == pytest.approx((lat, lon), abs=2e-5)  # to_xy rounds to 0.1 unit
    x0, y0 = proj.to_xy(28.06, 121.02)
    x1, y1 = proj.to_xy(28.02, 121.07)
    south, west, north, east = proj.view_bounds(x0, y0, x1 - x0, y1 - y0)
    assert (south, west, north, east) == pytest.approx((28.02, 121.02, 28.06, 121.07), abs=2e-5)
    whole = proj.view_bounds(0, 0, proj.width, proj.height)
    assert whole[0] < 28.0  # the margins show a little more
    assert whole[2] > 28.1
    assert whole[1] < 121.0
    assert whole[3] > 121.1


def test_the_sample_grid_draws_every_cell_and_road_in_order() -> None:
    grid = Grid.load_sample()
    proj = MapProjection.for_bounds(grid.bounds())
    shapes = grid_shapes(proj, grid.to_geojson()["features"])
    levels = [s.level for s in shapes]
    assert levels.count("street") == 21
    assert levels.count("zone") == 9
    assert levels.count("squadron") == 3
    assert levels[0] == "area"
    order = {"area": 0, "squadron": 1, "zone": 2, "street": 3, "road": 4}
    assert [order.get(lv, 4) for lv in levels] == sorted(order.get(lv, 4) for lv in levels)
    for shape in shapes:
        assert shape.d.startswith("M")
        if shape.level == "zone":
            assert shape.label_x is not None
            assert 0 <= shape.label_x <= proj.width
