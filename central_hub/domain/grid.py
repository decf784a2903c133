"""The four-level grid: built-up area → squadron jurisdiction → zone → street.

A :class:`Grid` is built from GeoJSON (a FeatureCollection; coordinates are
``[lon, lat]``) whose polygon features carry these properties::

    {"id": "st-w1a", "level": "street", "name": "...", "parent_id": "zone-w1",
     "owners": {"sanitation": "san-team-1"}}

``level`` is one of ``area``, ``squadron``, ``zone``, ``street``; an ``area`` has no parent,
every other cell's parent is a cell of the level just above, and lies within it. Sibling
cells do not overlap. ``owners`` maps a line (enforcement, sanitation, landscaping,
municipal) to the squad that handles that line's problems in the cell; a cell inherits
an owner from its nearest ancestor that names one, so a district usually sets a line once
on its squadron or zone and overrides it on a few streets.

Features with ``"kind": "road"`` (LineStrings) are kept as they are for drawing maps.
Point lookups use a shapely STRtree over the street cells.

The packaged sample (:meth:`Grid.load_sample`) is a synthetic district near Huangyan,
Taizhou: 1 built-up area, 3 squadron jurisdictions, 9 zones ("9 blocks") and 21 street
grids, covering lat 28.6380–28.6600 and lon 121.2500–121.2750. Its polygons are invented;
only the place and the scale are real.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from shapely import STRtree
from shapely.geometry import Point, mapping, shape
from shapely.geometry.base import BaseGeometry

from central_hub.domain.catalogue import LINES
from central_hub.domain.errors import GridError, UnknownCell

__all__ = [
    "LEVELS",
    "SAMPLE_DISTRICT_PATH",
    "Grid",
    "GridCell",
    "Level",
]

Level = Literal["area", "squadron", "zone", "street"]
#: The grid's levels, top first.
LEVELS: tuple[Level, ...] = ("area", "squadron", "zone", "street")
#: The packaged sample district.
SAMPLE_DISTRICT_PATH = Path(__file__).with_name("data") / "district.geojson"

#: Slack, in degrees (about 1 cm), for "child lies within parent" and "siblings do not
#: overlap": shared edges computed in floating point are never exactly equal.
_TOLERANCE_DEG = 1e-7


@dataclass(frozen=True)
class GridCell:
    """One cell of the grid.

    ``owners`` holds only the owners set on this cell; use :meth:`Grid.owner` for the
    effective owner with inheritance. ``centroid`` is (lat, lon) for labels and maps.
    """

    id: str
    level: Level
    name: str
    parent_id: str | None
    owners: dict[str, str] = field(default_factory=dict)
    centroid: tuple[float, float] | None = None


def _fail(where: str, message: str) -> GridError:
    return GridError(f"{where}: {message}")


class Grid:
    """The grid's cells with their polygons and a spatial index over the street cells."""

    def __init__(
        self,
        cells: Mapping[str, GridCell],
        shapes: Mapping[str, BaseGeometry],
        roads: list[dict[str, Any]] | None = None,
    ) -> None:
        """Use :meth:`from_geojson` or :meth:`load_sample`; this trusts its arguments."""
        self._cells = dict(cells)
        self._shapes = dict(shapes)
        self._roads = list(roads or [])
        self._children: dict[str, list[str]] = {cell_id: [] for cell_id in self._cells}
        for cell in self._cells.values():
            if cell.parent_id is not None:
                self._children[cell.parent_id].append(cell.id)
        for kids in self._children.values():
            kids.sort()
        self._street_ids = sorted(c.id for c in self._cells.values() if c.level == "street")
        self._tree = STRtree([self._shapes[i] for i in self._street_ids])

    # ----------------------------------------------------------------- construction

    @classmethod
    def load_sample(cls) -> Grid:
        """The packaged synthetic district near Huangyan (``data/district.geojson``)."""
        return cls.load(SAMPLE_DISTRICT_PATH)

    @classmethod
    def load(cls, path: Path) -> Grid:
        """Read and validate a GeoJSON file; errors name the file and the feature."""
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise GridError(f"{path}: cannot read the grid: {exc}") from exc
        except ValueError as exc:
            raise GridError(f"{path}: not valid JSON: {exc}") from exc
        try:
            return cls.from_geojson(obj)
        except GridError as exc:
            raise GridError(f"{path}: {exc}") from exc

    @classmethod
    def from_geojson(cls, obj: dict[str, Any]) -> Grid:
        """Build and validate a grid from a GeoJSON FeatureCollection (see module doc).

        Raises :class:`GridError` naming the feature (index and id) and what is wrong: a
        bad level, a missing or wrong-level parent, an invalid polygon, a cell outside its
        parent, overlapping siblings, an unknown line in ``owners``.
        """
        if not isinstance(obj, dict) or obj.get("type") != "FeatureCollection":
            raise GridError("the grid must be a GeoJSON FeatureCollection")
        features = obj.get("features")
        if not isinstance(features, list) or not features:
            raise GridError("features: a non-empty list is needed")
        cells: dict[str, GridCell] = {}
        shapes: dict[str, BaseGeometry] = {}
        where_of: dict[str, str] = {}
        roads: list[dict[str, Any]] = []
        for index, feature in enumerate(features):
            where = f"features[{index}]"
            if not isinstance(feature, dict) or feature.get("type") != "Feature":
                raise _fail(where, "not a GeoJSON Feature")
            props = feature.get("properties")
            if not isinstance(props, dict):
                raise _fail(where, "properties: an object is needed")
            if props.get("kind") == "road":
                roads.append(feature)
                continue
            cell, geom = _parse_cell(feature, props, where)
            where = f"{where} ({cell.id})"
            if cell.id in cells:
                raise _fail(where, f"id: {cell.id!r} is used twice")
            cells[cell.id] = cell
            shapes[cell.id] = geom
            where_of[cell.id] = where
        _check_tree(cells, shapes, where_of)
        return cls(cells, shapes, roads)

    # ----------------------------------------------------------------- queries

    def cells(self) -> list[GridCell]:
        """Every cell, top level first, then by id."""
        return sorted(self._cells.values(), key=lambda c: (LEVELS.index(c.level), c.id))

    def get(self, cell_id: str) -> GridCell:
        """The cell with ``cell_id``; raises :class:`UnknownCell`."""
        try:
            return self._cells[cell_id]
        except KeyError:
            raise UnknownCell(cell_id) from None

    def __contains__(self, cell_id: object) -> bool:
        return cell_id in self._cells

    def __len__(self) -> int:
        return len(self._cells)

    def children(self, cell_id: str) -> list[GridCell]:
        """The cells directly below ``cell_id``, by id."""
        self.get(cell_id)
        return [self._cells[i] for i in self._children[cell_id]]

    def locate(self, lat: float, lon: float) -> GridCell | None:
        """The street cell containing the point, or None outside every street cell.

        A point on a shared edge belongs to the cell with the smallest id, so the answer
        never depends on index order.
        """
        if not (math.isfinite(lat) and math.isfinite(lon)):
            return None
        hits = self._tree.query(Point(lon, lat), predicate="covered_by")
        if len(hits) == 0:
            return None
        return self._cells[min(self._street_ids[int(i)] for i in hits)]

    def path(self, cell_id: str) -> list[GridCell]:
        """The chain from the area down to ``cell_id`` (inclusive)."""
        chain = [self.get(cell_id)]
        while chain[-1].parent_id is not None:
            chain.append(self._cells[chain[-1].parent_id])
        chain.reverse()
        return chain

    def subtree(self, cell_id: str) -> set[str]:
        """The ids of ``cell_id`` and every cell below it."""
        self.get(cell_id)
        found: set[str] = set()
        stack = [cell_id]
        while stack:
            current = stack.pop()
            found.add(current)
            stack.extend(self._children[current])
        return found

    def owner(self, cell_id: str, line: str) -> str | None:
        """The squad owning ``line`` in the cell, inherited from the nearest ancestor."""
        if line not in LINES:
            raise GridError(f"unknown line {line!r}; lines are {', '.join(LINES)}")
        for cell in reversed(self.path(cell_id)):
            squad = cell.owners.get(line)
            if squad is not None:
                return squad
        return None

    def owners(self, cell_id: str) -> dict[str, str | None]:
        """The effective owner of every line in the cell."""
        return {line: self.owner(cell_id, line) for line in LINES}

    def roads(self) -> list[dict[str, Any]]:
        """The road features kept for drawing (GeoJSON Features)."""
        return [dict(road) for road in self._roads]

    def bounds(self) -> tuple[float, float, float, float]:
        """(min_lat, min_lon, max_lat, max_lon) of the whole grid."""
        minx = min(s.bounds[0] for s in self._shapes.values())
        miny = min(s.bounds[1] for s in self._shapes.values())
        maxx = max(s.bounds[2] for s in self._shapes.values())
        maxy = max(s.bounds[3] for s in self._shapes.values())
        return (miny, minx, maxy, maxx)

    def to_geojson(self, *, include_roads: bool = True) -> dict[str, Any]:
        """The grid as a FeatureCollection that :meth:`from_geojson` reads back."""
        features: list[dict[str, Any]] = []
        for cell in self.cells():
            properties: dict[str, Any] = {
                "id": cell.id,
                "level": cell.level,
                "name": cell.name,
                "parent_id": cell.parent_id,
                "owners": dict(cell.owners),
            }
            features.append(
                {
                    "type": "Feature",
                    "id": cell.id,
                    "properties": properties,
                    "geometry": mapping(self._shapes[cell.id]),
                }
            )
        if include_roads:
            features.extend(self.roads())
        # mapping() gives tuples; a JSON round trip makes plain lists for any consumer.
        return cast(
            dict[str, Any],
            json.loads(json.dumps({"type": "FeatureCollection", "features": features})),
        )


def _parse_cell(
    feature: dict[str, Any], props: dict[str, Any], where: str
) -> tuple[GridCell, BaseGeometry]:
    cell_id = props.get("id", feature.get("id"))
    if not isinstance(cell_id, str) or not cell_id.strip():
        raise _fail(where, "properties.id: a non-empty string is needed")
    where = f"{where} ({cell_id})"
    level = props.get("level")
    if level not in LEVELS:
        raise _fail(where, f"properties.level: {level!r} is not one of {', '.join(LEVELS)}")
    name = props.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _fail(where, "properties.name: a non-empty string is needed")
    parent_id = props.get("parent_id")
    if parent_id is not None and not isinstance(parent_id, str):
        raise _fail(where, "properties.parent_id: a string or null is needed")
    owners_raw = props.get("owners") or {}
    if not isinstance(owners_raw, dict):
        raise _fail(where, "properties.owners: an object {line: squad} is needed")
    owners: dict[str, str] = {}
    for line, squad in owners_raw.items():
        if line not in LINES:
            raise _fail(where, f"properties.owners.{line}: not a line ({', '.join(LINES)})")
        if not isinstance(squad, str) or not squad.strip():
            raise _fail(where, f"properties.owners.{line}: a squad id string is needed")
        owners[line] = squad
    geometry = feature.get("geometry")
    if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
        raise _fail(where, "geometry: a Polygon or MultiPolygon is needed")
    try:
        geom = shape(geometry)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise _fail(where, f"geometry: cannot be read: {exc}") from exc
    if geom.is_empty or not geom.is_valid or geom.area <= 0:
        raise _fail(where, "geometry: an empty or self-intersecting polygon")
    minx, miny, maxx, maxy = geom.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise _fail(where, "geometry: coordinates must be [lon, lat] in degrees")
    centroid = geom.representative_point()
    cell = GridCell(
        id=cell_id,
        level=cast(Level, level),
        name=name,
        parent_id=parent_id,
        owners=owners,
        centroid=(round(centroid.y, 7), round(centroid.x, 7)),
    )
    return cell, geom


def _check_tree(
    cells: Mapping[str, GridCell], shapes: Mapping[str, BaseGeometry], where_of: Mapping[str, str]
) -> None:
    if not any(cell.level == "area" for cell in cells.values()):
        raise GridError("no cell of level 'area': a grid needs at least one built-up area")
    for cell in cells.values():
        where = where_of[cell.id]
        depth = LEVELS.index(cell.level)
        if depth == 0:
            if cell.parent_id is not None:
                raise _fail(where, "properties.parent_id: an area has no parent")
            continue
        expected = LEVELS[depth - 1]
        if cell.parent_id is None:
            raise _fail(where, f"properties.parent_id: a {cell.level} needs a {expected} parent")
        parent = cells.get(cell.parent_id)
        if parent is None:
            raise _fail(where, f"properties.parent_id: no cell {cell.parent_id!r}")
        if parent.level != expected:
            raise _fail(
                where,
                f"properties.parent_id: {parent.id!r} is a {parent.level}, "
                f"a {cell.level}'s parent must be a {expected}",
            )
        outside = shapes[cell.id].difference(shapes[parent.id].buffer(_TOLERANCE_DEG))
        if outside.area > _TOLERANCE_DEG**2:
            raise _fail(where, f"geometry: reaches outside its parent {parent.id!r}")
    for level in LEVELS:
        ids = sorted(i for i, c in cells.items() if c.level == level)
        tree = STRtree([shapes[i] for i in ids])
        for i, cell_id in enumerate(ids):
            shrunk = shapes[cell_id].buffer(-_TOLERANCE_DEG)
            for j in tree.query(shrunk, predicate="intersects"):
                other = ids[int(j)]
                if int(j) > i and shrunk.intersection(shapes[other]).area > _TOLERANCE_DEG**2:
                    raise _fail(where_of[cell_id], f"geometry: overlaps {other!r} ({level} level)")
