"""The four-level grid: sample district, locate/path/subtree/owner, GeoJSON validation."""

from __future__ import annotations

import copy
import importlib.util
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from shapely.geometry import Point, shape

from central_hub.domain.errors import GridError, UnknownCell
from central_hub.domain.grid import SAMPLE_DISTRICT_PATH, Grid

MARKET_POLE = (28.6472, 121.2615)
PARKING_POLE = (28.6455, 121.2650)


@pytest.fixture(scope="module")
def grid() -> Grid:
    return Grid.load_sample()


def _frange(lo: float, hi: float, n: int) -> list[float]:
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)]


def test_sample_scale(grid: Grid) -> None:
    levels = [c.level for c in grid.cells()]
    assert levels.count("area") == 1
    assert levels.count("squadron") == 3
    assert levels.count("zone") == 9
    assert levels.count("street") == 21
    assert len(grid) == 34
    assert levels == sorted(levels, key=["area", "squadron", "zone", "street"].index)


def test_fixed_points_fall_in_street_cells(grid: Grid) -> None:
    for lat, lon in (MARKET_POLE, PARKING_POLE):
        cell = grid.locate(lat, lon)
        assert cell is not None
        assert cell.level == "street"
    # the truck route's whole box is covered by street cells
    for lat in _frange(28.6440, 28.6520, 17):
        for lon in _frange(121.2560, 121.2680, 25):
            located = grid.locate(lat, lon)
            assert located is not None, (lat, lon)
            assert located.level == "street"


def test_sample_covers_the_required_box(grid: Grid) -> None:
    min_lat, min_lon, max_lat, max_lon = grid.bounds()
    assert min_lat <= 28.6380
    assert max_lat >= 28.6600
    assert min_lon <= 121.2500
    assert max_lon >= 121.2750
    for lat in _frange(28.6380, 28.6600, 12):
        for lon in _frange(121.2500, 121.2750, 12):
            assert grid.locate(lat, lon) is not None, (lat, lon)


def test_streets_tile_the_area_without_gaps(grid: Grid) -> None:
    doc = grid.to_geojson()
    shapes = {f["properties"]["id"]: shape(f["geometry"]) for f in doc["features"] if "id" in f}
    area = shapes["hy-area"]
    street_total = sum(s.area for i, s in shapes.items() if grid.get(i).level == "street")
    assert street_total == pytest.approx(area.area, rel=1e-6)


def test_locate_agrees_with_brute_force(grid: Grid) -> None:
    doc = grid.to_geojson(include_roads=False)
    streets = [
        (f["properties"]["id"], shape(f["geometry"]))
        for f in doc["features"]
        if f["properties"]["level"] == "street"
    ]
    for lat in _frange(28.6365, 28.6615, 23):
        for lon in _frange(121.2485, 121.2765, 23):
            expected = sorted(i for i, s in streets if s.covers(Point(lon, lat)))
            located = grid.locate(lat, lon)
            assert (located.id if located else None) == (expected[0] if expected else None)


def test_locate_many_agrees_with_locate(grid: Grid) -> None:
    """The batch form gives each point what locate gives it, garbage and outside included."""
    points = [
        (lat, lon)
        for lat in _frange(28.6365, 28.6615, 17)
        for lon in _frange(121.2485, 121.2765, 17)
    ]
    points += [(28.70, 121.26), (float("nan"), 121.26), (28.65, float("inf")), points[40]]
    located = grid.locate_many(points)
    assert len(located) == len(points)
    assert located == [grid.locate(lat, lon) for lat, lon in points]
    assert sum(c is not None for c in located) > len(points) // 2
    assert grid.locate_many([]) == []


def test_locate_outside_and_garbage(grid: Grid) -> None:
    assert grid.locate(28.70, 121.26) is None
    assert grid.locate(0, 0) is None
    assert grid.locate(float("nan"), 121.26) is None


def test_path_subtree_children(grid: Grid) -> None:
    cell = grid.locate(*MARKET_POLE)
    assert cell is not None
    path = grid.path(cell.id)
    assert [c.level for c in path] == ["area", "squadron", "zone", "street"]
    assert path[-1] == cell
    assert path[0].id == "hy-area"
    for upper, lower in itertools.pairwise(path):
        assert lower.parent_id == upper.id
    assert grid.subtree("hy-area") == {c.id for c in grid.cells()}
    squadron = path[1].id
    below = grid.subtree(squadron)
    assert squadron in below
    assert len([i for i in below if grid.get(i).level == "zone"]) == 3
    assert cell.id in below
    assert grid.subtree(cell.id) == {cell.id}
    assert [c.parent_id for c in grid.children(path[2].id)] == [path[2].id] * len(
        grid.children(path[2].id)
    )
    with pytest.raises(UnknownCell, match="nowhere"):
        grid.path("nowhere")
    with pytest.raises(UnknownCell):
        grid.subtree("nowhere")


def test_owner_inherits_and_overrides(grid: Grid) -> None:
    market = grid.locate(*MARKET_POLE)
    parking = grid.locate(*PARKING_POLE)
    assert market is not None
    assert parking is not None
    # set on the street itself
    assert grid.owner(market.id, "enforcement") == "zf-market-patrol"
    # inherited from the squadron
    assert grid.owner(parking.id, "enforcement") == "zf-c"
    # from the zone and from the area
    assert grid.owner(parking.id, "sanitation") == "hw-team-2"
    assert grid.owner(parking.id, "landscaping") == "yl-brigade"
    assert grid.owners(parking.id)["municipal"] == "sz-maintenance"
    assert grid.owner("hy-area", "enforcement") is None
    with pytest.raises(GridError, match="unknown line"):
        grid.owner(parking.id, "police")


def test_every_street_has_an_owner_for_every_line(grid: Grid) -> None:
    for cell in grid.cells():
        if cell.level == "street":
            assert all(grid.owners(cell.id).values()), cell.id


def test_geojson_round_trip(grid: Grid) -> None:
    again = Grid.from_geojson(grid.to_geojson())
    assert again.cells() == grid.cells()
    assert len(again.roads()) == len(grid.roads()) == 4
    for lat, lon in (MARKET_POLE, PARKING_POLE):
        assert again.locate(lat, lon) == grid.locate(lat, lon)
    json.dumps(grid.to_geojson())  # plain JSON


def test_packaged_file_is_what_the_generator_makes() -> None:
    spec = importlib.util.spec_from_file_location(
        "district_sample", Path(__file__).with_name("district_sample.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["district_sample"] = module
    spec.loader.exec_module(module)
    assert SAMPLE_DISTRICT_PATH.read_text(encoding="utf-8") == module.render()


# ------------------------------------------------------------------ validation


def _square(lon0: float, lat0: float, size: float) -> dict[str, Any]:
    ring = [
        [lon0, lat0],
        [lon0 + size, lat0],
        [lon0 + size, lat0 + size],
        [lon0, lat0 + size],
        [lon0, lat0],
    ]
    return {"type": "Polygon", "coordinates": [ring]}


def _f(cid: str, level: str, parent: str | None, geom: dict[str, Any], **extra: Any) -> Any:
    props = {"id": cid, "level": level, "name": cid, "parent_id": parent, **extra}
    return {"type": "Feature", "properties": props, "geometry": geom}


def _tiny() -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [
            _f("a", "area", None, _square(0, 0, 4), owners={"municipal": "m"}),
            _f("s", "squadron", "a", _square(0, 0, 4)),
            _f("z1", "zone", "s", _square(0, 0, 2)),
            _f("z2", "zone", "s", _square(2, 0, 2)),
            _f("t1", "street", "z1", _square(0, 0, 1)),
            _f("t2", "street", "z2", _square(2, 0, 1), owners={"municipal": "m2"}),
        ],
    }


def test_tiny_grid_is_valid() -> None:
    grid = Grid.from_geojson(_tiny())
    assert grid.locate(0.5, 0.5) is not None
    assert grid.locate(0.5, 0.5).id == "t1"  # type: ignore[union-attr]
    assert grid.locate(3, 3) is None  # inside a zone, but in no street
    assert grid.owner("t1", "municipal") == "m"
    assert grid.owner("t2", "municipal") == "m2"
    # a point on the shared edge of two cells goes to the smaller id, every time
    doc = _tiny()
    doc["features"].append(_f("t0", "street", "z1", _square(1, 0, 1)))
    edge = Grid.from_geojson(doc).locate(0.5, 1.0)
    assert edge is not None
    assert edge.id == "t0"


def _broken(mutate: Any) -> dict[str, Any]:
    doc = copy.deepcopy(_tiny())
    mutate(doc["features"])
    return doc


BOWTIE = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (
            lambda fs: fs[4]["properties"].update(level="alley"),
            "features[4] (t1): properties.level",
        ),
        (lambda fs: fs[4]["properties"].update(parent_id="zz"), "no cell 'zz'"),
        (lambda fs: fs[4]["properties"].update(parent_id="s"), "'s' is a squadron"),
        (lambda fs: fs[4]["properties"].update(parent_id=None), "a street needs a zone parent"),
        (lambda fs: fs[0]["properties"].update(parent_id="s"), "an area has no parent"),
        (lambda fs: fs[4].update(geometry=_square(1.5, 0, 1)), "outside its parent 'z1'"),
        (lambda fs: fs[3].update(geometry=_square(1, 0, 2)), "overlaps"),
        (lambda fs: fs[4].update(geometry=BOWTIE), "self-intersecting"),
        (lambda fs: fs[4].update(geometry={"type": "Point", "coordinates": [0, 0]}), "Polygon"),
        (lambda fs: fs[4]["properties"].update(owners={"police": "p"}), "owners.police"),
        (lambda fs: fs[4]["properties"].update(owners={"sanitation": 3}), "owners.sanitation"),
        (lambda fs: fs[4]["properties"].update(id="t2"), "used twice"),
        (lambda fs: fs[4]["properties"].update(id=""), "properties.id"),
        (lambda fs: fs[4]["properties"].update(name=None), "properties.name"),
        (lambda fs: fs[4].update(type="Thing"), "not a GeoJSON Feature"),
        (lambda fs: fs[4].update(properties=[]), "properties: an object"),
        (lambda fs: fs.pop(1), "features[1] (z1): properties.parent_id: no cell 's'"),
        (lambda fs: fs[4].update(geometry=_square(200, 0, 1)), "[lon, lat]"),
        (
            lambda fs: fs[4].update(geometry={"type": "Polygon", "coordinates": [[[0, 0]]]}),
            "geometry",
        ),
    ],
)
def test_invalid_grids_are_refused_with_where_and_what(mutate: Any, needle: str) -> None:
    with pytest.raises(GridError) as info:
        Grid.from_geojson(_broken(mutate))
    assert needle in str(info.value)


def test_not_a_feature_collection() -> None:
    with pytest.raises(GridError, match="FeatureCollection"):
        Grid.from_geojson({"type": "Feature"})
    with pytest.raises(GridError, match="non-empty"):
        Grid.from_geojson({"type": "FeatureCollection", "features": []})
    with pytest.raises(GridError, match="no cell of level 'area'"):
        Grid.from_geojson(
            {"type": "FeatureCollection", "features": [_f("z", "zone", None, _square(0, 0, 1))]}
        )


def test_load_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "g.geojson"
    path.write_text("{nope", encoding="utf-8")
    with pytest.raises(GridError, match="not valid JSON"):
        Grid.load(path)
    path.write_text(json.dumps(_broken(lambda fs: fs[4]["properties"].update(level="x"))))
    with pytest.raises(GridError) as info:
        Grid.load(path)
    assert str(path) in str(info.value)
    with pytest.raises(GridError, match="cannot read"):
        Grid.load(tmp_path / "missing.geojson")


def test_every_problem_is_reported_not_just_the_first() -> None:
    def three_faults(fs: list[Any]) -> None:
        fs[4]["properties"].update(level="alley")  # t1: not a level
        fs[3].update(geometry=_square(1, 0, 2))  # z2 now overlaps z1
        fs[5].update(geometry=_square(3.5, 3.5, 1))  # t2 reaches outside z2

    with pytest.raises(GridError) as info:
        Grid.from_geojson(_broken(three_faults))
    problems = info.value.problems
    assert len(problems) == 3, problems
    assert problems[0].startswith("features[4] (t1): properties.level")
    assert any(p.startswith("features[2] (z1): geometry: overlaps 'z2'") for p in problems)
    assert any(p.startswith("features[5] (t2): geometry: reaches outside") for p in problems)
    assert str(info.value).startswith("3 problems: ")


def _tiled() -> dict[str, Any]:
    """The tiny grid with every cell covered by its children: no gaps."""
    doc = _tiny()
    doc["features"][4]["geometry"] = _square(0, 0, 2)
    doc["features"][5]["geometry"] = _square(2, 0, 2)
    doc["features"][0]["geometry"] = _square(0, 0, 4) | {}
    doc["features"][0]["geometry"]["coordinates"] = [[[0, 0], [4, 0], [4, 2], [0, 2], [0, 0]]]
    doc["features"][1]["geometry"] = doc["features"][0]["geometry"]
    return doc


def test_gaps_are_checked_on_import_and_named() -> None:
    Grid.from_geojson(_tiled(), gaps=True)  # fully covered: fine
    assert Grid.from_geojson(_tiny()).locate(3, 3) is None  # loading does not check gaps
    with pytest.raises(GridError) as info:
        Grid.from_geojson(_tiny(), gaps=True)
    problems = info.value.problems
    # the squadron is half covered by its zones, each zone a quarter by its street
    assert [p.split(":")[0] for p in problems] == [
        "features[1] (s)",
        "features[2] (z1)",
        "features[3] (z2)",
    ]
    assert all(": gap: " in p and " m² near lat " in p for p in problems)
    doc = _tiled()
    doc["features"].append(_f("z3", "zone", "s", _square(0, 2, 1)))
    doc["features"][0]["geometry"] = doc["features"][1]["geometry"] = _square(0, 0, 4)
    with pytest.raises(GridError, match=r"features\[6\] \(z3\): gap: no street cells"):
        Grid.from_geojson(doc, gaps=True)


def test_sample_district_has_no_gaps_and_a_stable_version(grid: Grid) -> None:
    again = Grid.from_geojson(grid.to_geojson(), gaps=True)
    assert again.version == grid.version
    assert len(grid.version) == 12
    doc = grid.to_geojson()
    street = next(f for f in doc["features"] if f["properties"].get("level") == "street")
    street["properties"]["owners"] = {"sanitation": "someone-else"}
    assert Grid.from_geojson(doc).version != grid.version
    assert grid.level_counts() == {"area": 1, "squadron": 3, "zone": 9, "street": 21}
