"""Scenario acceptance: replays of the simulator's scripted scenes through the pipeline.

Most run the shipped detector (``models/street-detector``) on frames rendered small and
slow (320x180 at 1/3-1 fps: the model sees 320 px anyway) to keep them fast; the plate
test renders 1280x720 so OCR can read the plate. Two run the ground-truth detector to
pin down tracker and rule behaviour exactly (hidden means absent; a flaky detector).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from edge_agent import protocol
from edge_agent.vision.config import DetectorConfig, VisionConfig
from edge_agent.vision.detector import Detector, TruthDetector
from edge_agent.vision.pipeline import replay
from simulators import scenarios
from simulators.scenarios.cameras import route_location, scenario_camera
from simulators.scenarios.sources import make_scenario_source

MODEL = Path(__file__).resolve().parents[3] / "models" / "street-detector"


@pytest.fixture(scope="module")
def model() -> Detector:
    if not (MODEL / "model.onnx").is_file():
        pytest.fail("the shipped model models/street-detector/model.onnx is missing")
    from edge_agent.vision.onnx_detector import OnnxDetector

    return OnnxDetector(DetectorConfig(model=MODEL, intra_threads=1))


def run(
    name: str,
    detector: Detector,
    rules: list[dict[str, Any]] | None = None,
    *,
    fps: float = 1 / 3,
    size: tuple[int, int] = (320, 180),
    plate_reader: Any = None,
) -> tuple[list[protocol.Event], Any]:
    sc = scenarios.load(name, width=size[0], height=size[1], fps=fps)
    camera = scenario_camera(sc, rules=rules)
    config = VisionConfig(cameras=(camera,))
    events = list(
        replay(
            config,
            camera,
            detector=detector,
            source_factory=make_scenario_source,  # the camera's own size and rate
            location_at=route_location(sc),
            plate_reader=plate_reader,
        )
    )
    for event in events:  # every event survives the wire round trip
        assert protocol.decode(protocol.Event, protocol.encode(event)) == event
    return events, sc


def offset(sc: Any, at: Any) -> float:
    return float((at - sc.start_time).total_seconds())


VENDOR = [{"name": "v", "kind": "vendor", "zone": "pavement", "dwell_s": 300}]


def test_vendor_six_minutes_under_five_minute_rule(model: Detector) -> None:
    events, sc = run("market_vendor", model, VENDOR)
    assert [e.code for e in events] == ["0501"]
    event = events[0]
    assert event.dwell_s >= 300
    assert (event.kind, event.zone, event.objects[0].label) == (
        "unlicensed_vendor",
        "pavement",
        "stall",
    )
    assert event.location.source == "fixed"
    assert (event.location.lat, event.location.lon) == (28.6472, 121.2615)
    truth = sc.truth[0]
    assert truth.start_s - 15 <= offset(sc, event.started_at) <= truth.start_s + 15
    assert offset(sc, event.detected_at) <= truth.end_s
    assert event.model.name == "street-detector"
    assert event.snapshot is not None
    assert base64.b64decode(event.snapshot.jpeg_b64)[:2] == b"\xff\xd8"


def test_vendor_hidden_behind_a_bus_is_one_event(model: Detector) -> None:
    events, _ = run("vendor_bus_occlusion", model, VENDOR)
    assert [e.code for e in events] == ["0501"]
    assert events[0].dwell_s >= 300


def test_goods_past_the_door_line(model: Detector) -> None:
    rules = [{"name": "s", "kind": "shop_front", "zone": "shop_front", "dwell_s": 120}]
    events, sc = run("shop_front", model, rules)
    assert [e.code for e in events] == ["0504"]
    assert all(o.label == "goods" for o in events[0].objects)
    assert offset(sc, events[0].started_at) >= sc.truth[0].start_s - 15


def test_passers_by_give_nothing(model: Detector) -> None:
    rules = [
        *VENDOR,
        {"name": "s", "kind": "shop_front", "zone": "shop_front"},
        {"name": "p", "kind": "parking", "zone": "road", "dwell_s": 60},
        {"name": "g", "kind": "exposed_garbage", "zone": "pavement"},
    ]
    events, _ = run("passers_by", model, rules)
    assert events == []


def test_truck_debris_gives_one_spillage_with_gps(model: Detector) -> None:
    events, sc = run("truck_debris", model, fps=1.0)  # default rule: spillage on 'road'
    assert [e.code for e in events] == ["2101"]
    event = events[0]
    assert event.kind == "road_spillage"
    assert all(o.label == "debris" for o in event.objects)
    assert event.location.source == "gps"
    t = offset(sc, event.detected_at)
    assert sc.truth[0].start_s <= t <= sc.truth[0].end_s
    lat = next(p[1] for p in sc.route if p[0] >= int(t))
    assert event.location.lat == pytest.approx(lat, abs=1e-4)


def test_parked_car_with_plate(model: Detector) -> None:
    from edge_agent.vision.plates import OnnxPlateReader

    events, sc = run(
        "no_parking",
        model,
        [{"name": "p", "kind": "parking", "zone": "no_parking", "dwell_s": 300}],
        fps=0.2,
        size=(1280, 720),
        plate_reader=OnnxPlateReader(),
    )
    assert [e.code for e in events] == ["0505"]
    event = events[0]
    assert event.plate is not None
    assert event.plate.text == sc.truth[0].plate
    assert event.dwell_s >= 300
    assert event.objects[0].label == "car"


def test_truth_vendor_hidden_for_20s_is_one_event() -> None:
    """With ground truth, the stall is absent from every frame while the bus hides it."""
    events, _ = run("vendor_bus_occlusion", TruthDetector(), VENDOR, fps=0.5)
    assert [e.code for e in events] == ["0501"]


def test_truth_vendor_with_a_flaky_detector_is_still_one_event() -> None:
    events, _ = run("market_vendor", TruthDetector(miss_rate=0.3, seed=3), VENDOR)
    assert [e.code for e in events] == ["0501"]
