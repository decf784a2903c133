"""VisionService end to end: real ONNX session, file and HTTP cameras, failures, recovery."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from edge_agent import protocol
from edge_agent.vision import capture, pipeline, sources
from edge_agent.vision.config import VisionConfig
from edge_agent.vision.detector import TruthDetector
from edge_agent.vision.errors import ModelError, UnknownCamera
from edge_agent.vision.frames import Detection, Frame
from edge_agent.vision.pipeline import VisionService
from simulators import scenarios
from simulators.polling import eventually
from simulators.scenarios.cameras import scenario_camera
from simulators.scenarios.sources import make_scenario_source

from .conftest import PAVEMENT, MjpegCamera

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capture, "BACKOFF_BASE_S", 0.05)
    monkeypatch.setattr(capture, "BACKOFF_CAP_S", 0.3)
    monkeypatch.setattr(sources, "READ_TIMEOUT_S", 1.0)
    monkeypatch.setattr(sources, "OPEN_TIMEOUT_S", 1.0)
    monkeypatch.setattr(pipeline, "SINK_RETRY_S", 0.05)


def camera(cam_id: str, source: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": cam_id,
        "source": source,
        "detect_fps": 5,
        "stall_after_s": 1.0,
        "location": {"lat": 28.6472, "lon": 121.2615},
        "zones": [{"name": "pavement", "polygon": PAVEMENT}],
        "rules": [
            {
                "name": "vendor",
                "kind": "vendor",
                "zone": "pavement",
                "dwell_s": 1.0,
                "shout": "请勿占道经营",
            }
        ],
        **extra,
    }


def make_service(config: VisionConfig) -> VisionService:
    seq = iter(range(1, 10_000))
    return VisionService(
        config, device_id="pole-7", next_seq=lambda: next(seq), location=lambda: None
    )


@pytest.mark.logs_exceptions("edge_agent.vision.pipeline")
async def test_unreachable_camera_does_not_stop_the_box_and_recovers(
    stall_model: Path, gray_clip: Path, mjpeg_camera: MjpegCamera
) -> None:
    config = VisionConfig.model_validate(
        {
            "detector": {"model": str(stall_model), "intra_threads": 1},
            "cameras": [camera("good", str(gray_clip)), camera("net", mjpeg_camera.url)],
        }
    )
    service = make_service(config)
    events: list[protocol.Event] = []
    shouts: list[str] = []
    failures = [1]

    async def sink(event: protocol.Event) -> None:
        if failures[0]:
            failures[0] -= 1
            raise OSError("outbox busy")  # the first write fails; the event must not be lost
        events.append(event)

    async def shout(text: str) -> None:
        shouts.append(text)

    task = asyncio.create_task(service.run(sink, shout))
    try:
        assert await eventually(
            lambda: any(e.camera_id == "good" for e in events), 15, every_s=0.05
        ), "no event from the file camera"
        stats = service.stats()
        assert stats.cameras["good"].state == "ok"
        assert stats.cameras["net"].state == "reconnecting"
        assert stats.fps > 0
        assert stats.inference_ms > 0
        assert shouts == ["请勿占道经营"]
        good = events[0]
        assert (good.code, good.device_id, good.seq) == ("0501", "pole-7", 1)
        assert good.location.source == "fixed"
        assert good.dwell_s >= 1.0
        assert good.snapshot is not None
        assert good.model.name == "const-detector"

        mjpeg_camera.start()  # the camera comes back
        assert await eventually(
            lambda: service.stats().cameras["net"].state == "ok", 15, every_s=0.05
        ), f"the HTTP camera is {service.stats().cameras['net'].state}, not ok"
        assert await eventually(
            lambda: any(e.camera_id == "net" for e in events), 15, every_s=0.05
        ), "no event from the HTTP camera"
        jpeg = await service.snapshot("net")
        assert jpeg[:2] == b"\xff\xd8"

        mjpeg_camera.stop()  # and goes away again
        assert await eventually(
            lambda: service.stats().cameras["net"].state != "ok", 15, every_s=0.05
        ), "the HTTP camera still reads ok after it went away"
        assert not task.done()
        assert [e.camera_id for e in events].count("good") == 1  # one stall, one event
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert service.stats().cameras["good"].state == "stopped"


async def test_snapshot_of_unknown_camera(stall_model: Path, gray_clip: Path) -> None:
    config = VisionConfig.model_validate(
        {"detector": {"model": str(stall_model)}, "cameras": [camera("good", str(gray_clip))]}
    )
    service = make_service(config)
    with pytest.raises(UnknownCamera, match="no camera 'nope'"):
        await service.snapshot("nope")
    with pytest.raises(KeyError):
        await service.snapshot("nope")


async def test_missing_model_fails_run_with_a_clear_error(tmp_path: Path, gray_clip: Path) -> None:
    config = VisionConfig.model_validate(
        {
            "detector": {"model": str(tmp_path / "missing" / "model.onnx")},
            "cameras": [camera("good", str(gray_clip))],
        }
    )

    async def sink(event: protocol.Event) -> None:
        raise AssertionError("no events expected")

    with pytest.raises(ModelError, match=r"missing/model\.onnx does not exist"):
        await make_service(config).run(sink)


class OneAtATime(TruthDetector):
    """A detector whose model takes one frame per inference; records each call's size."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    @property
    def batch_size(self) -> int | None:
        return 1

    def detect(self, frames: Sequence[Frame]) -> list[list[Detection]]:
        self.sizes.append(len(frames))
        return super().detect(frames)


async def test_workers_take_no_more_frames_than_the_model_runs_at_once(gray_clip: Path) -> None:
    # Frames taken beyond the model's batch would only wait in memory (2.7 MB each at 720p)
    # while the board fills up again behind them.
    config = VisionConfig.model_validate(
        {
            "detector": {"max_batch": 4, "workers": 2},
            "cameras": [camera(f"c{i}", str(gray_clip)) for i in range(4)],
        }
    )
    detector = OneAtATime()
    seq = iter(range(1, 10_000))
    service = VisionService(
        config,
        device_id="pole-7",
        next_seq=lambda: next(seq),
        location=lambda: None,
        detector=detector,
    )

    async def sink(event: protocol.Event) -> None:
        pass

    task = asyncio.create_task(service.run(sink))
    try:
        assert await eventually(lambda: service.stats().frames >= 20, 15, every_s=0.05), (
            f"only {service.stats().frames} frames in 15 s"
        )
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(detector.sizes) >= 20
    assert set(detector.sizes) == {1}


async def test_cameras_come_from_the_source_factory_it_is_given() -> None:
    # A scenario camera: the agent cannot make it; the simulator's factory, passed in, can.
    scene = scenarios.load("truck_debris", width=160, height=90, fps=1.0)
    cam = scenario_camera(scene, source="scenario:truck_debris?seed=0&speed=1000")
    config = VisionConfig(cameras=(cam,))
    made: list[tuple[str, bool]] = []

    def factory(camera: Any, *, clock: Callable[[], datetime], loop: bool, **kw: Any) -> Any:
        made.append((camera.id, loop))
        assert clock is service_clock
        return make_scenario_source(camera, clock=clock, loop=loop, **kw)

    def service_clock() -> datetime:
        return scene.start_time

    seq = iter(range(1, 10_000))
    service = VisionService(
        config,
        device_id="truck-1",
        next_seq=lambda: next(seq),
        location=lambda: protocol.Location(lat=28.6, lon=121.2, source="gps"),
        clock=service_clock,
        detector=TruthDetector(),
        loop_files=False,
        source_factory=factory,
    )
    events: list[protocol.Event] = []

    async def sink(event: protocol.Event) -> None:
        events.append(event)

    await asyncio.wait_for(service.run(sink), timeout=60)  # ends with the scene
    assert made == [(cam.id, False)]
    assert service.stats().frames > 0
    assert [e.code for e in events] == ["2101"]  # the scene's debris, seen through its truth
