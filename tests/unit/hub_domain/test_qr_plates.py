"""QR plates: the points file's checks, the signed links, and the packaged sample."""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from central_hub.domain.errors import PlateError, PlateRefused
from central_hub.domain.grid import Grid
from central_hub.domain.qr_plates import (
    SAMPLE_POINTS_PATH,
    PlatePoint,
    load_points,
    plate_path,
    plate_signature,
    plate_url,
    points_from_geojson,
    points_outside,
    verify_plate,
)

SECRET = bytes(range(32))


def _feature(point_id: Any = "XQJ-001", **overrides: Any) -> dict[str, Any]:
    props: dict[str, Any] = {"id": point_id, "street": "县前街", "name": "县前街 1号牌"}
    geometry: Any = {"type": "Point", "coordinates": [121.2586, 28.6488]}
    for key, value in overrides.items():
        if key == "geometry":
            geometry = value
        elif value is None:
            props.pop(key, None)
        else:
            props[key] = value
    return {"type": "Feature", "properties": props, "geometry": geometry}


def _collection(*features: Any) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


def _problems(obj: Any) -> tuple[str, ...]:
    with pytest.raises(PlateError) as caught:
        points_from_geojson(obj)
    return caught.value.problems or (str(caught.value),)


# ------------------------------------------------------------------ the points file


def test_a_valid_file_reads_in_order_with_coordinates_swapped_to_lat_lon() -> None:
    points = points_from_geojson(
        _collection(_feature(), _feature("HJL-7", street="横街路", name=None))
    )
    assert points == (
        PlatePoint(id="XQJ-001", street="县前街", lat=28.6488, lon=121.2586, name="县前街 1号牌"),
        PlatePoint(id="HJL-7", street="横街路", lat=28.6488, lon=121.2586, name=None),
    )


@pytest.mark.parametrize(
    "obj",
    [[], {"type": "Feature"}, {"type": "FeatureCollection"}, _collection()],
)
def test_not_a_collection_of_features_is_refused(obj: Any) -> None:
    (problem,) = _problems(obj)
    assert "FeatureCollection" in problem or "features: a non-empty list" in problem


@pytest.mark.parametrize(
    ("feature", "expected"),
    [
        ("nope", "features[0]: not a GeoJSON Feature"),
        ({"type": "Feature", "properties": None}, "features[0]: properties: an object"),
        (_feature(None), "features[0]: properties.id: None is not 1-32 letters"),
        (_feature("XQJ 001"), "features[0]: properties.id: 'XQJ 001' is not 1-32"),
        (_feature("X" * 33), "is not 1-32 letters, digits or hyphens"),
        (_feature("XQJ.001"), "properties.id: 'XQJ.001'"),
        (_feature(street=None), "features[0] (XQJ-001): properties.street: a non-empty string"),
        (_feature(street="  "), "features[0] (XQJ-001): properties.street"),
        (_feature(name=7), "features[0] (XQJ-001): properties.name: a non-empty string or null"),
        (_feature(geometry=None), "features[0] (XQJ-001): geometry: a Point is needed"),
        (
            _feature(geometry={"type": "LineString", "coordinates": [[1, 2], [3, 4]]}),
            "geometry: a Point is needed",
        ),
        (
            _feature(geometry={"type": "Point", "coordinates": [121.2]}),
            "geometry: coordinates: [lon, lat] numbers are needed",
        ),
        (
            _feature(geometry={"type": "Point", "coordinates": ["121.2", 28.6]}),
            "geometry: coordinates: [lon, lat] numbers are needed",
        ),
        (
            _feature(geometry={"type": "Point", "coordinates": [28.6, 121.2]}),
            "geometry: coordinates: [28.6, 121.2] is not [lon, lat] in degrees",
        ),
        (
            _feature(geometry={"type": "Point", "coordinates": [float("nan"), 28.6]}),
            "geometry: coordinates: not finite",
        ),
    ],
)
def test_each_problem_names_the_feature_and_the_field(feature: Any, expected: str) -> None:
    (problem,) = _problems(_collection(feature))
    assert expected in problem


def test_every_problem_is_reported_at_once_with_its_index_and_id() -> None:
    problems = _problems(
        _collection(
            _feature("XQJ-001"),
            _feature("XQJ-002", street=None),
            _feature("XQJ-001"),
            _feature("xqj-002"),
            _feature("bad id", geometry=None),
        )
    )
    assert problems == (
        "features[1] (XQJ-002): properties.street: a non-empty string is needed",
        "features[2] (XQJ-001): properties.id: 'XQJ-001' is used twice (also features[0]"
        " (XQJ-001))",
        # XQJ-002 has a problem of its own, but its id is taken all the same
        "features[3] (xqj-002): properties.id: 'xqj-002' is used twice (also features[1]"
        " (XQJ-002))",
        "features[4]: properties.id: 'bad id' is not 1-32 letters, digits or hyphens",
        "features[4]: geometry: a Point is needed",
    )


def test_ids_that_differ_only_in_case_are_one_plate() -> None:
    (problem,) = _problems(_collection(_feature("XQJ-001"), _feature("xqj-001")))
    assert problem.startswith("features[1] (xqj-001): properties.id: 'xqj-001' is used twice")


def test_the_message_shows_the_first_problems_and_counts_the_rest() -> None:
    with pytest.raises(PlateError) as caught:
        points_from_geojson(_collection(*[_feature(f"P-{i}", street=None) for i in range(8)]))
    assert len(caught.value.problems) == 8
    assert str(caught.value).startswith("8 problems: features[0] (P-0)")
    assert str(caught.value).endswith("and 3 more")


def test_a_file_s_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "points.geojson"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(PlateError, match=r"points\.geojson: not valid JSON"):
        load_points(path)
    path.write_text(json.dumps(_collection(_feature(street=None))), encoding="utf-8")
    with pytest.raises(PlateError, match=r"points\.geojson: features\[0\] \(XQJ-001\)"):
        load_points(path)
    with pytest.raises(PlateError, match="cannot read"):
        load_points(tmp_path / "missing.geojson")


def test_points_outside_the_grid_s_streets_are_named() -> None:
    grid = Grid.load_sample()
    inside = PlatePoint(id="IN-1", street="县前街", lat=28.6488, lon=121.2586)
    outside = PlatePoint(id="OUT-1", street="县前街", lat=28.70, lon=121.2586)
    assert points_outside([inside, outside], grid) == [
        "OUT-1: lat 28.700000, lon 121.258600 lies in no street cell of the grid"
    ]


# ------------------------------------------------------------------ the links


def test_the_path_is_the_id_and_ten_bytes_of_hmac_in_lowercase_base32() -> None:
    digest = hmac.new(SECRET, b"XQJ-001", hashlib.sha256).digest()[:10]
    signature = base64.b32encode(digest).decode().lower()
    assert "=" not in signature
    assert len(signature) == 16
    assert plate_signature("XQJ-001", SECRET) == signature
    assert plate_path("XQJ-001", SECRET) == f"/r/XQJ-001.{signature}"


def test_a_genuine_token_gives_its_point_id() -> None:
    token = plate_path("XQJ-001", SECRET).removeprefix("/r/")
    assert verify_plate(token, SECRET, {"XQJ-001", "HJL-001"}) == "XQJ-001"


def _refusal(token: str, known: frozenset[str] = frozenset({"XQJ-001", "XQJ-002"})) -> str:
    with pytest.raises(PlateRefused) as caught:
        verify_plate(token, SECRET, known)
    return caught.value.kind


def test_a_forged_signature_is_refused() -> None:
    genuine = plate_path("XQJ-001", SECRET).removeprefix("/r/")
    point_id, signature = genuine.split(".")
    flipped = ("a" if signature[0] != "a" else "b") + signature[1:]
    assert _refusal(f"{point_id}.{flipped}") == "forged"
    # signed with another secret (a plate made by someone without the hub's secret)
    other = plate_path("XQJ-001", b"x" * 32).removeprefix("/r/")
    assert _refusal(other) == "forged"


def test_a_tampered_id_is_refused() -> None:
    signature = plate_signature("XQJ-001", SECRET)
    assert _refusal(f"XQJ-002.{signature}") == "forged"


def test_a_genuine_plate_whose_point_is_no_longer_listed_is_unknown() -> None:
    token = plate_path("XQJ-099", SECRET).removeprefix("/r/")
    assert _refusal(token) == "unknown"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "XQJ-001",
        "XQJ-001.",
        ".abcdefghijklmnop",
        "XQJ-001.ABCDEFGHIJKLMNOP",  # upper case: links are printed lower case
        "XQJ-001.abcdefghijklmno",  # 15 characters
        "XQJ-001.abcdefghijklmnopq",  # 17
        "XQJ-001.abcdefghijklmno1",  # 1 is not base32
        "XQJ 001.abcdefghijklmnop",
        "XQJ-001.abcdefghijklmnop/",
        "../etc.abcdefghijklmnop",
        "X" * 33 + ".abcdefghijklmnop",
        "XQJ-001.abcd.efghijklmnop",
    ],
)
def test_a_malformed_token_is_refused(token: str) -> None:
    assert _refusal(token) == "malformed"


def test_the_url_joins_the_public_base_and_the_path() -> None:
    path = plate_path("XQJ-001", SECRET)
    assert plate_url("https://hub.example.cn", "XQJ-001", SECRET) == f"https://hub.example.cn{path}"
    assert plate_url("http://10.0.0.5:8080/city/", "XQJ-001", SECRET) == (
        f"http://10.0.0.5:8080/city{path}"
    )


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("hub.example.cn", "an absolute http:// or https:// URL"),
        ("ftp://hub.example.cn", "an absolute http:// or https:// URL"),
        ("https://", "an absolute http:// or https:// URL"),
        ("https://hub.example.cn/?a=1", "no query or fragment"),
        ("https://hub.example.cn/#top", "no query or fragment"),
        ("https://hub.example.cn:99999", "base URL"),
    ],
)
def test_a_base_url_a_phone_cannot_open_is_refused(base: str, expected: str) -> None:
    with pytest.raises(PlateError, match=expected):
        plate_url(base, "XQJ-001", SECRET)


def test_signing_refuses_an_id_no_plate_may_carry() -> None:
    with pytest.raises(PlateError, match="not a plate id"):
        plate_path("XQJ/001", SECRET)


# ------------------------------------------------------------------ the sample


def test_the_sample_has_200_unique_plates_on_two_streets_inside_the_sample_grid() -> None:
    points = load_points(SAMPLE_POINTS_PATH)
    assert len(points) == 200
    assert len({p.id for p in points}) == 200
    streets = {street: [p for p in points if p.street == street] for street in ("县前街", "横街路")}
    assert {street: len(ps) for street, ps in streets.items()} == {"县前街": 100, "横街路": 100}
    assert all(p.name for p in points)
    grid = Grid.load_sample()
    cells = grid.locate_many([(p.lat, p.lon) for p in points])
    assert all(cell is not None and cell.level == "street" for cell in cells)
    assert points_outside(points, grid) == []


def test_the_sample_s_plates_stand_8_to_10_m_apart_along_each_street() -> None:
    points = load_points(SAMPLE_POINTS_PATH)
    for street in ("县前街", "横街路"):
        line = [p for p in points if p.street == street]
        for a, b in itertools.pairwise(line):
            dy = (b.lat - a.lat) * 111_320.0
            dx = (b.lon - a.lon) * 111_320.0 * 0.8776  # cos(28.65°)
            assert 8.0 <= (dx * dx + dy * dy) ** 0.5 <= 10.0, (a.id, b.id)


def test_the_packaged_sample_is_what_its_generator_writes() -> None:
    spec = importlib.util.spec_from_file_location(
        "plate_points_sample", Path(__file__).with_name("plate_points_sample.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["plate_points_sample"] = module
    spec.loader.exec_module(module)
    assert SAMPLE_POINTS_PATH.read_text(encoding="utf-8") == module.render()
