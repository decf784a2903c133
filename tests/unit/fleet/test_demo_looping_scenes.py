"""The demo agent's scenario cameras start their scene over, with the clock carried on."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from edge_agent.vision.config import SourceSpec
from simulators.demo.agent import LoopingScenarioSource

START = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def test_scene_loops_and_time_keeps_going() -> None:
    # truck_debris lasts 240 s; at 1/60 fps it has 4 frames per lap, paced 1000x.
    spec = SourceSpec("scenario", "truck_debris", seed=0, speed=1000.0)
    src = LoopingScenarioSource(
        "rear", spec, detect_fps=1 / 60, width=160, height=90, clock=lambda: START
    )
    src.open()
    try:
        stamps = [src.read().ts for _ in range(9)]
    finally:
        src.close()
    assert src.laps == 2
    assert stamps[0] == START
    assert all(b > a for a, b in itertools.pairwise(stamps))
    assert stamps[4] == START + timedelta(seconds=240)
    assert stamps[8] == START + timedelta(seconds=480)
