"""Generator of the packaged QR plate points (``central_hub/domain/data/plate_points.geojson``).

Run ``.venv/bin/python tests/unit/hub_domain/plate_points_sample.py`` to rewrite the file;
``test_qr_plates.py`` checks that the packaged file is exactly what this produces. The
source's 200 plates stand along two streets: 100 along 县前街 (east-west through 城中二片)
and 100 along 横街路 (north-south through 城西二片), one every 9 m along a gently bent
line. The streets' names are the source's; their lines over the sample district are
invented.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

OUT = (
    Path(__file__).resolve().parents[3] / "central_hub" / "domain" / "data" / "plate_points.geojson"
)

#: metres between two plates along a street
SPACING_M = 9.0
PER_STREET = 100
#: (street, id prefix, waypoints as (lat, lon)): each line is about 0.9 km long
STREETS: tuple[tuple[str, str, tuple[tuple[float, float], ...]], ...] = (
    ("县前街", "XQJ", ((28.64880, 121.25860), (28.64920, 121.26300), (28.64895, 121.26800))),
    ("横街路", "HJL", ((28.64450, 121.25420), (28.64850, 121.25470), (28.65300, 121.25440))),
)
_M_PER_DEG_LAT = 111_320.0


def _along(waypoints: tuple[tuple[float, float], ...], count: int) -> list[tuple[float, float]]:
    """``count`` points SPACING_M apart along the polyline, from its first waypoint."""
    lat0 = waypoints[0][0]
    m_per_deg_lon = _M_PER_DEG_LAT * math.cos(math.radians(lat0))
    points: list[tuple[float, float]] = []
    for k in range(count):
        left = k * SPACING_M
        for (a_lat, a_lon), (b_lat, b_lon) in itertools.pairwise(waypoints):
            dy = (b_lat - a_lat) * _M_PER_DEG_LAT
            dx = (b_lon - a_lon) * m_per_deg_lon
            length = math.hypot(dx, dy)
            if left <= length:
                t = left / length
                points.append((a_lat + t * (b_lat - a_lat), a_lon + t * (b_lon - a_lon)))
                break
            left -= length
        else:
            raise ValueError("the street's line is shorter than its plates need")
    return points


def build() -> dict[str, Any]:
    """The FeatureCollection: 县前街's plates first, then 横街路's, each numbered from 001."""
    features: list[dict[str, Any]] = []
    for street, prefix, waypoints in STREETS:
        for number, (lat, lon) in enumerate(_along(waypoints, PER_STREET), start=1):
            features.append(
                {
                    "type": "Feature",
                    "properties": {
                        "id": f"{prefix}-{number:03d}",
                        "street": street,
                        "name": f"{street} {number}号牌",
                    },
                    "geometry": {"type": "Point", "coordinates": [round(lon, 7), round(lat, 7)]},
                }
            )
    return {"type": "FeatureCollection", "features": features}


def render() -> str:
    """The file's text: one feature per line, so diffs stay readable."""
    doc = build()
    lines = [json.dumps(f, ensure_ascii=False, separators=(",", ":")) for f in doc["features"]]
    return '{"type":"FeatureCollection","features":[\n' + ",\n".join(lines) + "\n]}\n"


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
