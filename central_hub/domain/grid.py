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

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import shapely
from shapely import STRtree
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

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
        self._version: str | None = None

    # ----------------------------------------------------------------- construction

    @classmethod
    def load_sample(cls) -> Grid:
        """The packaged synthetic district near Huangyan (``data/district.geojson``)."""
        return cls.load(SAMPLE_DISTRICT_PATH)

    @classmethod
    def load(cls, path: Path, *, gaps: bool = False) -> Grid:
        """Read and validate a GeoJSON file; errors name the file and the feature.

        ``gaps`` checks gaps too (see :meth:`from_geojson`).
        """
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise GridError(f"{path}: cannot read the grid: {exc}") from exc
        except ValueError as exc:
            raise GridError(f"{path}: not valid JSON: {exc}") from exc
        try:
            return cls.from_geojson(obj, gaps=gaps)
        except GridError as exc:
            raise GridError(f"{path}: {exc}", exc.problems) from exc

    @classmethod
    def from_geojson(cls, obj: dict[str, Any], *, gaps: bool = False) -> Grid:
        """Build and validate a grid from a GeoJSON FeatureCollection (see module doc).

        Raises :class:`GridError` listing every problem, each naming the feature (index
        and id) and what is wrong: a bad level, a missing or wrong-level parent, an
        invalid polygon, a cell outside its parent, overlapping siblings, an unknown line
        in ``owners``, and with ``gaps`` a part of a cell that none of its children cover
        (what ``central-hub grid import`` checks: an event there would find no street).
        """
        parsed = _read_features(obj)
        problems = parsed.problems
        if parsed.cells:
            problems += _tree_problems(parsed)
        if gaps and not problems:
            problems += _gap_problems(parsed)
        if problems:
            raise GridError(_summary(problems), tuple(problems))
        return cls(parsed.cells, parsed.shapes, parsed.roads)

    @property
    def version(self) -> str:
        """A short fingerprint of the cells (ids, levels, parents, owners, polygons).

        Cases keep the version they were filed under, so a later grid import does not
        silently reinterpret old cases' cells.
        """
        if self._version is None:
            doc = self.to_geojson(include_roads=False)
            digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
            self._version = digest[:12]
        return self._version

    def level_counts(self) -> dict[str, int]:
        """How many cells each level has, top level first."""
        return {level: sum(c.level == level for c in self._cells.values()) for level in LEVELS}

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
        return self.locate_many([(lat, lon)])[0]

    def locate_many(self, points: Sequence[tuple[float, float]]) -> list[GridCell | None]:
        """:meth:`locate` for each (lat, lon), with one index query for all of them.

        Filing locates a batch of reports at once: one query costs about what one point's
        query costs alone (a shapely call has a fixed price well above the search).
        """
        finite = [
            i for i, (lat, lon) in enumerate(points) if math.isfinite(lat) and math.isfinite(lon)
        ]
        found: list[GridCell | None] = [None] * len(points)
        if not finite:
            return found
        where = shapely.points([points[i][1] for i in finite], [points[i][0] for i in finite])
        best: dict[int, str] = {}
        for k, street in zip(*self._tree.query(where, predicate="covered_by"), strict=True):
            cell_id = self._street_ids[int(street)]
            if int(k) not in best or cell_id < best[int(k)]:
                best[int(k)] = cell_id
        for k, cell_id in best.items():
            found[finite[k]] = self._cells[cell_id]
        return found

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


#: A gap smaller than this (square metres) is a drawing sliver, not a hole in the grid.
GAP_MIN_M2 = 10.0
#: Problems shown in the exception's message (every one is in ``GridError.problems``).
_SHOWN = 5


@dataclass
class _Parsed:
    """What a FeatureCollection holds, with each feature's place for messages."""

    cells: dict[str, GridCell] = field(default_factory=dict)
    shapes: dict[str, BaseGeometry] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)
    roads: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _summary(problems: list[str]) -> str:
    if len(problems) == 1:
        return problems[0]
    shown = "; ".join(problems[:_SHOWN])
    more = f"; and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
    return f"{len(problems)} problems: {shown}{more}"


def _read_features(obj: object) -> _Parsed:
    """Cells, polygons and roads of a FeatureCollection, and each feature's problems."""
    out = _Parsed()
    if not isinstance(obj, dict) or obj.get("type") != "FeatureCollection":
        out.problems.append("the grid must be a GeoJSON FeatureCollection")
        return out
    features = obj.get("features")
    if not isinstance(features, list) or not features:
        out.problems.append("features: a non-empty list is needed")
        return out
    for index, feature in enumerate(features):
        where = f"features[{index}]"
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            out.problems.append(f"{where}: not a GeoJSON Feature")
            continue
        props = feature.get("properties")
        if not isinstance(props, dict):
            out.problems.append(f"{where}: properties: an object is needed")
            continue
        if props.get("kind") == "road":
            out.roads.append(feature)
            continue
        try:
            cell, geom = _parse_cell(feature, props, where)
        except GridError as exc:
            out.problems.append(str(exc))
            continue
        where = f"{where} ({cell.id})"
        if cell.id in out.cells:
            out.problems.append(f"{where}: id: {cell.id!r} is used twice")
            continue
        out.cells[cell.id] = cell
        out.shapes[cell.id] = geom
        out.where[cell.id] = where
    return out


def _tree_problems(parsed: _Parsed) -> list[str]:
    """Levels and parents, containment in the parent, and overlaps between siblings."""
    cells, shapes, where_of = parsed.cells, parsed.shapes, parsed.where
    if not any(cell.level == "area" for cell in cells.values()):
        return ["no cell of level 'area': a grid needs at least one built-up area"]
    problems: list[str] = []
    for cell in cells.values():
        where = where_of[cell.id]
        depth = LEVELS.index(cell.level)
        if depth == 0:
            if cell.parent_id is not None:
                problems.append(f"{where}: properties.parent_id: an area has no parent")
            continue
        expected = LEVELS[depth - 1]
        if cell.parent_id is None:
            problems.append(
                f"{where}: properties.parent_id: a {cell.level} needs a {expected} parent"
            )
            continue
        parent = cells.get(cell.parent_id)
        if parent is None:
            problems.append(f"{where}: properties.parent_id: no cell {cell.parent_id!r}")
        elif parent.level != expected:
            problems.append(
                f"{where}: properties.parent_id: {parent.id!r} is a {parent.level}, "
                f"a {cell.level}'s parent must be a {expected}"
            )
        else:
            outside = shapes[cell.id].difference(shapes[parent.id].buffer(_TOLERANCE_DEG))
            if outside.area > _TOLERANCE_DEG**2:
                problems.append(
                    f"{where}: geometry: reaches outside its parent {parent.id!r}"
                    f" ({_m2(outside):.0f} m² near {_near(outside)})"
                )
    for level in LEVELS:
        ids = sorted(i for i, c in cells.items() if c.level == level)
        tree = STRtree([shapes[i] for i in ids])
        for i, cell_id in enumerate(ids):
            shrunk = shapes[cell_id].buffer(-_TOLERANCE_DEG)
            for j in tree.query(shrunk, predicate="intersects"):
                other = ids[int(j)]
                if int(j) <= i:
                    continue
                common = shrunk.intersection(shapes[other])
                if common.area > _TOLERANCE_DEG**2:
                    problems.append(
                        f"{where_of[cell_id]}: geometry: overlaps {other!r} ({level} level,"
                        f" {_m2(common):.0f} m² near {_near(common)})"
                    )
    return problems


def _gap_problems(parsed: _Parsed) -> list[str]:
    """Parts of a cell that none of its children cover (an event there finds no street)."""
    problems: list[str] = []
    children: dict[str, list[str]] = {}
    for cell in parsed.cells.values():
        if cell.parent_id is not None:
            children.setdefault(cell.parent_id, []).append(cell.id)
    for cell_id, cell in parsed.cells.items():
        if cell.level == "street":
            continue
        where = parsed.where[cell_id]
        kids = children.get(cell_id, [])
        if not kids:
            below = LEVELS[LEVELS.index(cell.level) + 1]
            problems.append(f"{where}: gap: no {below} cells, so events here find no street")
            continue
        covered = unary_union([parsed.shapes[k] for k in kids]).buffer(_TOLERANCE_DEG)
        left = parsed.shapes[cell_id].difference(covered)
        pieces = [g for g in getattr(left, "geoms", [left]) if _m2(g) >= GAP_MIN_M2]
        for piece in sorted(pieces, key=_m2, reverse=True)[:3]:
            problems.append(
                f"{where}: gap: {_m2(piece):.0f} m² near {_near(piece)} lies in none of its"
                " children"
            )
    return problems


def _m2(geom: BaseGeometry) -> float:
    """Area in square metres (equirectangular at the shape's latitude: fine for a city)."""
    if geom.is_empty:
        return 0.0
    lat = geom.representative_point().y
    return float(geom.area) * 111_320.0**2 * math.cos(math.radians(lat))


def _near(geom: BaseGeometry) -> str:
    point = geom.representative_point()
    return f"lat {point.y:.5f}, lon {point.x:.5f}"
