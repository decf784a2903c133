"""Generator of the packaged sample district (``central_hub/domain/data/district.geojson``).

Run ``.venv/bin/python tests/unit/hub_domain/district_sample.py`` to rewrite the file;
``test_grid.py`` checks that the packaged file is exactly what this produces, so the sample
stays reproducible. The polygons are synthetic: a 3 × 3 mesh of zones ("9 blocks") with
gently bent internal edges over the real place (north-west Huangyan, Taizhou), grouped in
three squadron jurisdictions by column and cut into 21 street grids.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from shapely.geometry import Point, Polygon, mapping
from shapely.ops import unary_union

OUT = Path(__file__).resolve().parents[3] / "central_hub" / "domain" / "data" / "district.geojson"

LATS = (28.6370, 28.6448, 28.6528, 28.6610)  # row edges, south to north
LONS = (121.2490, 121.2578, 121.2668, 121.2760)  # column edges, west to east
SQUADRONS = (("w", "城西中队"), ("c", "城中中队"), ("e", "城东中队"))
ROW_NAMES = ("一", "二", "三")
#: streets per zone (row, column) -> 21 in all; 3 are cut north-south, 2 east-west
STREETS = ((3, 2, 2), (2, 3, 2), (2, 2, 3))
MARKET_POLE = (28.6472, 121.2615)


def _vertex(i: int, j: int) -> tuple[float, float]:
    """Mesh vertex (row edge i, column edge j) as (lon, lat), bent a little inside."""
    lat, lon = LATS[i], LONS[j]
    inner_i, inner_j = 0 < i < len(LATS) - 1, 0 < j < len(LONS) - 1
    if inner_i:
        lat += 0.0004 * math.sin(i * 1.7 + j * 2.3)
    if inner_j:
        lon += 0.0004 * math.cos(i * 2.9 + j * 1.1)
    return (round(lon, 7), round(lat, 7))


def _lerp(a: tuple[float, float], b: tuple[float, float], t: float) -> tuple[float, float]:
    return (round(a[0] + (b[0] - a[0]) * t, 7), round(a[1] + (b[1] - a[1]) * t, 7))


def _feature(props: dict[str, Any], geom: Any) -> dict[str, Any]:
    return {"type": "Feature", "id": props["id"], "properties": props, "geometry": mapping(geom)}


def build() -> dict[str, Any]:
    """The sample district as a GeoJSON FeatureCollection."""
    zones: dict[tuple[int, int], Polygon] = {}
    streets: list[tuple[str, str, str, Polygon]] = []
    number = 0
    for r in range(3):
        for c in range(3):
            sw, se, ne, nw = (
                _vertex(r, c),
                _vertex(r, c + 1),
                _vertex(r + 1, c + 1),
                _vertex(r + 1, c),
            )
            zones[(r, c)] = Polygon([sw, se, ne, nw])
            k = STREETS[r][c]
            zone_id = f"hy-z-{SQUADRONS[c][0]}{r + 1}"
            for m in range(k):
                t0, t1 = m / k, (m + 1) / k
                if k == 3:  # strips west to east
                    quad = [
                        _lerp(sw, se, t0),
                        _lerp(sw, se, t1),
                        _lerp(nw, ne, t1),
                        _lerp(nw, ne, t0),
                    ]
                else:  # strips south to north
                    quad = [
                        _lerp(sw, nw, t0),
                        _lerp(se, ne, t0),
                        _lerp(se, ne, t1),
                        _lerp(sw, nw, t1),
                    ]
                number += 1
                name = f"{SQUADRONS[c][1][:2]}{ROW_NAMES[r]}片 第{number:02d}网格"
                streets.append((f"hy-st-{number:02d}", name, zone_id, Polygon(quad)))
    features = [
        _feature(
            {
                "id": "hy-area",
                "level": "area",
                "name": "黄岩城区建成区(示例)",
                "parent_id": None,
                "owners": {"landscaping": "yl-brigade", "municipal": "sz-maintenance"},
            },
            unary_union(list(zones.values())),
        )
    ]
    for c, (key, name) in enumerate(SQUADRONS):
        features.append(
            _feature(
                {
                    "id": f"hy-sq-{key}",
                    "level": "squadron",
                    "name": name,
                    "parent_id": "hy-area",
                    "owners": {"enforcement": f"zf-{key}"},
                },
                unary_union([zones[(r, c)] for r in range(3)]),
            )
        )
    for c, (key, name) in enumerate(SQUADRONS):
        for r in range(3):
            features.append(
                _feature(
                    {
                        "id": f"hy-z-{key}{r + 1}",
                        "level": "zone",
                        "name": f"{name[:2]}{ROW_NAMES[r]}片区",
                        "parent_id": f"hy-sq-{key}",
                        "owners": {"sanitation": f"hw-team-{r + 1}"},
                    },
                    zones[(r, c)],
                )
            )
    market = Point(MARKET_POLE[1], MARKET_POLE[0])
    for street_id, name, zone_id, poly in streets:
        owners = {"enforcement": "zf-market-patrol"} if poly.covers(market) else {}
        features.append(
            _feature(
                {
                    "id": street_id,
                    "level": "street",
                    "name": name,
                    "parent_id": zone_id,
                    "owners": owners,
                },
                poly,
            )
        )
    roads = [
        ("东西一路(示例)", [_vertex(1, j) for j in range(4)]),
        ("东西二路(示例)", [_vertex(2, j) for j in range(4)]),
        ("南北一路(示例)", [_vertex(i, 1) for i in range(4)]),
        ("南北二路(示例)", [_vertex(i, 2) for i in range(4)]),
    ]
    for name, points in roads:
        features.append(
            {
                "type": "Feature",
                "properties": {"kind": "road", "name": name},
                "geometry": {"type": "LineString", "coordinates": [list(p) for p in points]},
            }
        )
    # a JSON round trip turns shapely's tuples into lists
    return json.loads(json.dumps({"type": "FeatureCollection", "features": features}))  # type: ignore[no-any-return]


def render() -> str:
    """The file's text: one feature per line, so diffs stay readable."""
    doc = build()
    lines = [json.dumps(f, ensure_ascii=False, separators=(",", ":")) for f in doc["features"]]
    return '{"type":"FeatureCollection","features":[\n' + ",\n".join(lines) + "\n]}\n"


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
