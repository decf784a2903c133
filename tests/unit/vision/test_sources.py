"""The agent's own source factory: OpenCV sources; scenarios need one passed in."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from edge_agent.vision.config import CameraConfig, VisionConfig
from edge_agent.vision.detector import TruthDetector
from edge_agent.vision.errors import SourceError
from edge_agent.vision.frames import Detection, Frame
from edge_agent.vision.pipeline import replay
from edge_agent.vision.sources import CaptureSource, Source, make_source


def camera(source: str) -> CameraConfig:
    return CameraConfig.model_validate({"id": "cam1", "source": source, "detect_fps": 1.0})


def test_a_scenario_camera_says_it_needs_the_simulators_factory() -> None:
    src = make_source(camera("scenario:market_vendor?seed=0"), replay=True)
    assert src.camera_id == "cam1"
    assert not src.live
    with pytest.raises(SourceError, match="cam1: scenario sources need the simulator's"):
        src.open()
    src.close()


def test_real_kinds_are_opencv_sources(tmp_path: Path) -> None:
    assert isinstance(make_source(camera("rtsp://10.0.0.9/live")), CaptureSource)
    clip = make_source(camera("rtsp://10.0.0.9/live"), replay=True, video=tmp_path / "a.mp4")
    assert isinstance(clip, CaptureSource)
    assert (clip.spec.kind, clip.spec.target) == ("file", str(tmp_path / "a.mp4"))
    assert not clip.live


class ListSource:
    """Frames given up front, with their truth."""

    live = False

    def __init__(self, camera_id: str, count: int) -> None:
        self.camera_id = camera_id
        self._frames = [
            Frame(
                camera_id,
                i,
                datetime(2026, 1, 1, 1, 0, i, tzinfo=UTC),
                np.zeros((4, 4, 3), np.uint8),
                (Detection("stall", 1.0, (0.1, 0.1, 0.2, 0.2)),),
            )
            for i in range(count)
        ]

    def open(self) -> None:
        pass

    def read(self) -> Frame | None:
        return self._frames.pop(0) if self._frames else None

    def close(self) -> None:
        pass


def test_replay_takes_its_source_from_the_factory_it_is_given() -> None:
    cam = camera("scenario:anything")
    calls: list[tuple[str, bool, datetime | None]] = []
    start = datetime(2026, 1, 1, tzinfo=UTC)

    def factory(
        camera: CameraConfig,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        replay: bool = False,
        loop: bool = False,
        video: Path | None = None,
        start_time: datetime | None = None,
    ) -> Source:
        calls.append((camera.id, replay, start_time))
        return ListSource(camera.id, 3)

    detector = TruthDetector()
    events = list(
        replay(
            VisionConfig(cameras=(cam,)),
            cam,
            detector=detector,
            source_factory=factory,
            start_time=start,
        )
    )
    assert events == []  # no rules: nothing to report
    assert calls == [("cam1", True, start)]
    assert detector.calls == 3  # every frame of the factory's source was seen
