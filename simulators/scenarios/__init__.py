"""Scripted street scenarios for the edge agent, the demo and tests.

    from simulators.scenarios import load, names, write_video
    sc = load("market_vendor", seed=0)
    for frame in sc.frames():   # ScenarioFrame(index, t, ts, image, objects)
        ...

Each scenario carries ``truth``: the violations it contains and when (see each builder's
docstring in :mod:`simulators.scenarios.library` for the timeline).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from simulators.scenarios.core import (
    Scenario,
    ScenarioFrame,
    TruthObject,
    TruthViolation,
)
from simulators.scenarios.library import BUILDERS, CAMERA_SITES

#: Scenario clock used when the caller gives none: 09:00 in Beijing.
DEFAULT_START = datetime(2025, 3, 3, 1, 0, 0, tzinfo=UTC)


class UnknownScenarioError(KeyError):
    """Raised by :func:`load` for a name that is not in :func:`names`."""


def names() -> list[str]:
    """Names of all scenarios."""
    return list(BUILDERS)


def load(
    name: str,
    *,
    seed: int = 0,
    width: int = 1280,
    height: int = 720,
    fps: float = 5.0,
    start_time: datetime | None = None,
) -> Scenario:
    """Build a scenario; frames render lazily and deterministically from ``seed``."""
    try:
        builder = BUILDERS[name]
    except KeyError as exc:
        raise UnknownScenarioError(f"unknown scenario {name!r}; known: {names()}") from exc
    start = start_time or DEFAULT_START
    if start.tzinfo is None:
        raise ValueError("start_time must be timezone-aware")
    return builder(seed, width, height, fps, start.astimezone(UTC))


def write_video(
    scenario: Scenario, path: Path, *, fourcc: str = "mp4v", max_frames: int | None = None
) -> int:
    """Write the scenario's frames to a video file; return the number of frames written."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter.fourcc(*fourcc), scenario.fps, (scenario.width, scenario.height)
    )
    if not writer.isOpened():
        raise OSError(f"cannot open a {fourcc} video writer for {path}")
    n = scenario.frame_count() if max_frames is None else min(max_frames, scenario.frame_count())
    try:
        for i in range(n):
            writer.write(scenario.frame_at(i).image)
    finally:
        writer.release()
    return n


__all__ = [
    "CAMERA_SITES",
    "DEFAULT_START",
    "Scenario",
    "ScenarioFrame",
    "TruthObject",
    "TruthViolation",
    "UnknownScenarioError",
    "load",
    "names",
    "write_video",
]
