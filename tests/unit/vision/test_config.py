"""Vision config: defaults per rule kind, zone geometry checks, cross-field checks."""

from __future__ import annotations

from datetime import time

import pytest
from pydantic import ValidationError

from edge_agent.vision.config import (
    CameraConfig,
    DetectorConfig,
    RuleConfig,
    RuleKind,
    SourceSpec,
    VisionConfig,
    ZoneConfig,
    parse_schedule,
    parse_source,
)

SQUARE = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]


def camera(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": "cam1",
        "source": "rtsp://user:pw@10.0.0.5/stream1",
        "zones": [{"name": "pavement", "polygon": SQUARE}],
        "rules": [{"name": "vendor", "kind": "vendor", "zone": "pavement"}],
    }
    base.update(overrides)
    return base


def test_rule_defaults_follow_the_kind() -> None:
    parking = RuleConfig(name="p", kind=RuleKind.PARKING, zone="z")
    assert parking.code == "0505"
    assert parking.labels == ("car",)
    assert parking.read_plate
    assert parking.per_object
    spill = RuleConfig.model_validate({"name": "s", "kind": "spillage", "zone": "road"})
    assert (spill.code, spill.event_kind, spill.labels) == ("2101", "road_spillage", ("debris",))
    assert not spill.per_object
    custom = RuleConfig.model_validate(
        {
            "name": "v",
            "kind": "vendor",
            "zone": "z",
            "code": "0599",
            "dwell_s": 10,
            "labels": ["person"],
        }
    )
    assert (custom.code, custom.dwell_s, custom.labels) == ("0599", 10.0, ("person",))


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("vendor", "0501"),
        ("shop_front", "0504"),
        ("parking", "0505"),
        ("piled_materials", "0507"),
        ("exposed_garbage", "0102"),
        ("bin_overflow", "2103"),
        ("clothes", "0511"),
        ("spillage", "2101"),
    ],
)
def test_every_builtin_kind_has_its_catalogue_code(kind: str, code: str) -> None:
    assert RuleConfig.model_validate({"name": "r", "kind": kind, "zone": "z"}).code == code


def test_unknown_kind_is_the_only_error_reported() -> None:
    with pytest.raises(ValidationError) as info:
        RuleConfig.model_validate({"name": "r", "kind": "vendors", "zone": "z"})
    errors = info.value.errors()
    assert [e["loc"] for e in errors] == [("kind",)]


def test_self_intersecting_zone_is_named() -> None:
    with pytest.raises(ValidationError, match="self-intersecting"):
        ZoneConfig.model_validate(
            {"name": "bow", "polygon": [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]}
        )


def test_zone_points_outside_unit_square_are_named() -> None:
    with pytest.raises(ValidationError, match=r"point 2 .* outside \[0, 1\]"):
        ZoneConfig.model_validate({"name": "z", "polygon": [[0, 0], [1, 0], [1.5, 1], [0, 1]]})


@pytest.mark.parametrize(
    "polygon", [[[0, 0], [1, 1]], [[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]]], ids=["two", "flat"]
)
def test_degenerate_zones_are_refused(polygon: list[list[float]]) -> None:
    with pytest.raises(ValidationError, match="zone polygon"):
        ZoneConfig.model_validate({"name": "z", "polygon": polygon})


def test_rule_must_name_a_zone_of_its_camera() -> None:
    with pytest.raises(ValidationError, match="names zone 'road'"):
        CameraConfig.model_validate(camera(rules=[{"name": "v", "kind": "vendor", "zone": "road"}]))


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="colour"):
        CameraConfig.model_validate(camera(colour="red"))


def test_duplicate_camera_ids_are_refused() -> None:
    with pytest.raises(ValidationError, match="camera ids repeat"):
        VisionConfig.model_validate({"cameras": [camera(), camera()]})


def test_providers_must_be_known_and_unique() -> None:
    assert DetectorConfig(providers=("tensorrt", "cuda", "cpu")).providers[0] == "tensorrt"
    with pytest.raises(ValidationError):
        DetectorConfig.model_validate({"providers": ["gpu"]})
    with pytest.raises(ValidationError, match="repeat"):
        DetectorConfig.model_validate({"providers": ["cpu", "cpu"]})
    with pytest.raises(ValidationError, match="at least one"):
        DetectorConfig.model_validate({"providers": []})


def test_schedule_parsing_and_wrapping() -> None:
    day = parse_schedule("07:00-22:00")
    assert day.contains(time(7, 0))
    assert not day.contains(time(22, 0))
    assert not day.contains(time(3, 0))
    night = parse_schedule("22:00-06:00")
    assert night.contains(time(23, 30))
    assert night.contains(time(5, 59))
    assert not night.contains(time(12, 0))
    with pytest.raises(ValueError, match="invalid time 25:00"):
        parse_schedule("07:00-25:00")
    with pytest.raises(ValidationError, match="HH:MM-HH:MM"):
        RuleConfig.model_validate({"name": "r", "kind": "vendor", "zone": "z", "schedule": "7am"})


def test_sources_parse() -> None:
    assert parse_source("rtsp://a:b@host/x").kind == "url"
    assert parse_source("0").kind == "device"
    assert parse_source("/dev/video2") == SourceSpec("device", "/dev/video2")
    assert parse_source(2).target == "2"
    assert parse_source("/data/clip.mp4").kind == "file"
    spec = parse_source("scenario:market_vendor?seed=3&speed=10")
    assert (spec.kind, spec.target, spec.seed, spec.speed) == ("scenario", "market_vendor", 3, 10.0)
    with pytest.raises(ValueError, match="unknown option"):
        parse_source("scenario:x?fps=3")
    with pytest.raises(ValueError, match="unsupported scheme"):
        parse_source("ftp://host/clip.mp4")


def test_bad_timezone_is_named() -> None:
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Base'"):
        VisionConfig.model_validate({"timezone": "Mars/Base"})
