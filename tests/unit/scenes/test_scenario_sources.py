"""The simulator's source factory: ``scenario:NAME`` cameras render their scene."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from edge_agent.vision.config import CameraConfig
from edge_agent.vision.errors import SourceError
from edge_agent.vision.sources import CaptureSource
from simulators import scenarios
from simulators.demo.agent import LoopingScenarioSource, make_demo_source
from simulators.scenarios.cameras import route_location, scenario_camera
from simulators.scenarios.sources import ScenarioSource, make_scenario_source

START = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def test_a_scenario_camera_replays_its_scene_with_truth() -> None:
    sc = scenarios.load("truck_debris", width=160, height=90, fps=1 / 60)
    camera = scenario_camera(sc)
    assert camera.source == "scenario:truck_debris?seed=0"
    src = make_scenario_source(camera, replay=True, start_time=START)
    assert isinstance(src, ScenarioSource)
    assert not src.live
    src.open()
    try:
        frames = []
        while (frame := src.read()) is not None:
            frames.append(frame)
    finally:
        src.close()
    assert len(frames) == sc.frame_count() == 4
    assert frames[0].ts == START
    assert frames[1].ts == START + timedelta(seconds=60)
    assert frames[0].image.shape == (90, 160, 3)
    assert any(f.truth for f in frames)  # the debris is there, with its ground truth


def test_other_kinds_are_the_agents_own() -> None:
    camera = CameraConfig.model_validate({"id": "c", "source": "rtsp://10.0.0.9/live"})
    assert isinstance(make_scenario_source(camera), CaptureSource)
    assert isinstance(make_demo_source(camera), CaptureSource)


def test_an_unknown_scenario_names_the_known_ones() -> None:
    camera = CameraConfig.model_validate({"id": "c", "source": "scenario:nope"})
    src = make_scenario_source(camera, replay=True)
    with pytest.raises(SourceError, match=r"unknown scenario 'nope'; known: .*market_vendor"):
        src.open()


def test_the_demo_loops_live_scenes_and_replays_them_once() -> None:
    sc = scenarios.load("truck_debris", width=160, height=90, fps=1 / 60)
    camera = scenario_camera(sc)
    assert isinstance(make_demo_source(camera), LoopingScenarioSource)
    assert isinstance(make_demo_source(camera, replay=True), ScenarioSource)


def test_pole_cameras_sit_at_their_site_and_trucks_follow_their_route() -> None:
    pole = scenario_camera(scenarios.load("market_vendor", width=160, height=90, fps=0.1))
    assert pole.location is not None
    assert (pole.location.lat, pole.location.lon) == scenarios.CAMERA_SITES["market"]
    assert {(r.zone, r.kind) for r in pole.rules} >= {("pavement", "vendor")}
    assert all(r.zone in {z.name for z in pole.zones} for r in pole.rules)
    truck = scenarios.load("truck_debris", width=160, height=90, fps=1 / 60)
    camera = scenario_camera(truck)
    assert camera.location is None
    where = route_location(truck)(truck.start_time + timedelta(seconds=30))
    assert where is not None
    assert where.source == "gps"
    assert (where.lat, where.lon) == next((p[1], p[2]) for p in reversed(truck.route) if p[0] <= 30)
