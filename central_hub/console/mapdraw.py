"""Drawing the grid without map tiles: project lat/lon onto an SVG canvas (pure).

The district is small (a few kilometres), so an equirectangular projection scaled by the
cosine of the middle latitude keeps shapes true enough. The server draws the polygons and
roads once per page; live markers arrive as JSON already projected, so the projection is
defined only here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["MapProjection", "MapShape", "grid_shapes"]

_LEVEL_ORDER = {"area": 0, "squadron": 1, "zone": 2, "street": 3}


@dataclass(frozen=True)
class MapProjection:
    """Maps (lat, lon) in ``bounds`` to SVG user units, north up, ``width`` units wide."""

    min_lat: float
    min_lon: float
    max_lat: float
    max_lon: float
    width: float = 1000.0
    margin: float = 10.0

    @classmethod
    def for_bounds(
        cls, bounds: tuple[float, float, float, float], width: float = 1000.0
    ) -> MapProjection:
        """A projection for ``(min_lat, min_lon, max_lat, max_lon)`` (as :meth:`Grid.bounds`)."""
        min_lat, min_lon, max_lat, max_lon = bounds
        if not (max_lat > min_lat and max_lon > min_lon):
            raise ValueError(f"empty map bounds {bounds}")
        return cls(min_lat, min_lon, max_lat, max_lon, width)

    @property
    def kx(self) -> float:
        """Degrees of longitude shrink by this at the map's middle latitude."""
        return math.cos(math.radians((self.min_lat + self.max_lat) / 2))

    @property
    def scale(self) -> float:
        """SVG units per degree of latitude."""
        return (self.width - 2 * self.margin) / ((self.max_lon - self.min_lon) * self.kx)

    @property
    def height(self) -> float:
        """The canvas height for this width."""
        return (self.max_lat - self.min_lat) * self.scale + 2 * self.margin

    def to_xy(self, lat: float, lon: float) -> tuple[float, float]:
        """SVG coordinates of a point (rounded to 0.1 unit: plenty at this scale)."""
        x = self.margin + (lon - self.min_lon) * self.kx * self.scale
        y = self.margin + (self.max_lat - lat) * self.scale
        return round(x, 1), round(y, 1)

    def to_latlon(self, x: float, y: float) -> tuple[float, float]:
        """The (lat, lon) at SVG coordinates: :meth:`to_xy` undone (not rounded)."""
        lon = self.min_lon + (x - self.margin) / (self.kx * self.scale)
        lat = self.max_lat - (y - self.margin) / self.scale
        return lat, lon

    def view_bounds(
        self, x: float, y: float, w: float, h: float
    ) -> tuple[float, float, float, float]:
        """``(min_lat, min_lon, max_lat, max_lon)`` of the SVG view box ``x y w h``."""
        north, west = self.to_latlon(x, y)
        south, east = self.to_latlon(x + w, y + h)
        return south, west, north, east

    def contains(self, lat: float, lon: float) -> bool:
        """Whether a point lies inside the bounds."""
        return self.min_lat <= lat <= self.max_lat and self.min_lon <= lon <= self.max_lon


@dataclass(frozen=True)
class MapShape:
    """One thing to draw: a grid cell's outline (``level`` set) or a road."""

    id: str
    level: str
    name: str
    d: str
    label_x: float | None = None
    label_y: float | None = None


def _ring_path(proj: MapProjection, ring: Sequence[Sequence[float]], close: bool) -> str:
    points = [proj.to_xy(lat=p[1], lon=p[0]) for p in ring]
    if not points:
        return ""
    head = f"M{points[0][0]} {points[0][1]}"
    body = "".join(f"L{x} {y}" for x, y in points[1:])
    return head + body + ("Z" if close else "")


def _geometry_path(proj: MapProjection, geometry: dict[str, Any]) -> str:
    kind = geometry.get("type")
    coords = geometry.get("coordinates") or []
    if kind == "Polygon":
        return "".join(_ring_path(proj, ring, True) for ring in coords)
    if kind == "MultiPolygon":
        return "".join(_ring_path(proj, ring, True) for poly in coords for ring in poly)
    if kind == "LineString":
        return _ring_path(proj, coords, False)
    if kind == "MultiLineString":
        return "".join(_ring_path(proj, line, False) for line in coords)
    return ""


def _centre(geometry: dict[str, Any]) -> tuple[float, float] | None:
    """A label point: the mean of the outer ring's vertices (lat, lon)."""
    coords = geometry.get("coordinates") or []
    if geometry.get("type") == "MultiPolygon" and coords:
        coords = coords[0]
    if geometry.get("type") not in ("Polygon", "MultiPolygon") or not coords:
        return None
    ring = coords[0][:-1] or coords[0]
    return (sum(p[1] for p in ring) / len(ring), sum(p[0] for p in ring) / len(ring))


def grid_shapes(proj: MapProjection, features: Iterable[dict[str, Any]]) -> list[MapShape]:
    """The shapes of a grid FeatureCollection's features, areas first, roads last."""
    shapes: list[tuple[int, MapShape]] = []
    for feature in features:
        props = feature.get("properties") or {}
        geometry = feature.get("geometry") or {}
        d = _geometry_path(proj, geometry)
        if not d:
            continue
        level = str(props.get("level") or "road")
        label = _centre(geometry) if level in ("zone", "street", "squadron") else None
        lx, ly = proj.to_xy(*label) if label else (None, None)
        shape = MapShape(
            id=str(props.get("id") or feature.get("id") or ""),
            level=level,
            name=str(props.get("name") or ""),
            d=d,
            label_x=lx,
            label_y=ly,
        )
        shapes.append((_LEVEL_ORDER.get(level, 4), shape))
    shapes.sort(key=lambda item: item[0])
    return [shape for _, shape in shapes]
