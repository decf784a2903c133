"""Scenario acceptance over the simulator's timelines with the fake (ground-truth) detector.

These run tracker, rules and evidence over real scenario timelines without a model: the
detector returns each frame's truth objects. Frames are small and slow (1 fps) to keep
the replays fast; the plate test needs 1280x720 for OCR.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from edge_agent import protocol
from edge_agent.vision.config import VisionConfig
from edge_agent.vision.detector import TruthDetector
from edge_agent.vision.pipeline import replay
from edge_agent.vision.scenario_cameras import route_location, scenario_camera
from edge_agent.vision.sources import ScenarioSource

scenarios = pytest.importorskip("simulators.scenarios")


def run(
    name: str,
    rules: list[dict[str, Any]] | None = None,
    *,
    fps: float = 1.0,
    size: tuple[int, int] = (320, 180),
    miss_rate: float = 0.0,
    plate_reader: Any = None,
) -> tuple[list[protocol.Event], Any]:
    sc = scenarios.load(name, width=size[0], height=size[1], fps=fps)
    camera = scenario_camera(sc, rules=rules)
    config = VisionConfig(cameras=(camera,))
    source = ScenarioSource(
        camera.id, camera.source_spec, detect_fps=fps, width=size[0], height=size[1], replay=True
    )
    events = list(
        replay(
            config,
            camera,
            detector=TruthDetector(miss_rate=miss_rate, seed=3),
            source=source,
            location_at=route_location(sc),
            plate_reader=plate_reader,
        )
    )
    for event in events:  # every event survives the wire round trip
        assert protocol.decode(protocol.Event, protocol.encode(event)) == event
    return events, sc


def test_vendor_six_minutes_under_five_minute_rule() -> None:
    events, sc = run("market_vendor", [{"name": "v", "kind": "vendor", "zone": "pavement"}])
    assert [e.code for e in events] == ["0501"]
    event = events[0]
    assert event.dwell_s >= 300
    assert event.kind == "unlicensed_vendor"
    assert event.zone == "pavement"
    assert event.objects[0].label == "stall"
    assert event.location.source == "fixed"
    assert (event.location.lat, event.location.lon) == (28.6472, 121.2615)
    truth = sc.truth[0]
    started = (event.started_at - sc.start_time).total_seconds()
    assert truth.start_s - 10 <= started <= truth.start_s + 10
    assert event.snapshot is not None
    assert base64.b64decode(event.snapshot.jpeg_b64)[:2] == b"\xff\xd8"


def test_vendor_hidden_behind_a_bus_is_one_event() -> None:
    events, _ = run(
        "vendor_bus_occlusion", [{"name": "v", "kind": "vendor", "zone": "pavement"}], fps=2.0
    )
    assert [e.code for e in events] == ["0501"]
    assert events[0].dwell_s >= 300


def test_vendor_with_a_flaky_detector_is_still_one_event() -> None:
    events, _ = run(
        "market_vendor", [{"name": "v", "kind": "vendor", "zone": "pavement"}], miss_rate=0.3
    )
    assert [e.code for e in events] == ["0501"]


def test_goods_past_the_door_line() -> None:
    events, _ = run(
        "shop_front", [{"name": "s", "kind": "shop_front", "zone": "shop_front", "dwell_s": 120}]
    )
    assert [e.code for e in events] == ["0504"]
    assert all(o.label == "goods" for o in events[0].objects)


def test_passers_by_give_nothing() -> None:
    events, _ = run("passers_by")  # default rules: vendor on pavement, shop front
    assert events == []


def test_truck_debris_gives_one_spillage_with_gps() -> None:
    events, sc = run("truck_debris", fps=1.0)
    assert [e.code for e in events] == ["2101"]
    event = events[0]
    assert event.location.source == "gps"
    t = (event.detected_at - sc.start_time).total_seconds()
    assert sc.truth[0].start_s <= t <= sc.truth[0].end_s
    lat = next(p[1] for p in sc.route if p[0] >= int(t))
    assert event.location.lat == pytest.approx(lat, abs=1e-4)


def test_parked_car_with_plate() -> None:
    from edge_agent.vision.plates import RapidOcrPlateReader

    events, sc = run(
        "no_parking",
        [{"name": "p", "kind": "parking", "zone": "no_parking"}],
        fps=0.5,
        size=(1280, 720),
        plate_reader=RapidOcrPlateReader(),
    )
    assert [e.code for e in events] == ["0505"]
    assert events[0].plate is not None
    assert events[0].plate.text == sc.truth[0].plate
    assert events[0].dwell_s >= 300
