"""Scenario cameras for the edge agent: ``scenario:NAME`` sources and their factory.

The agent makes only real sources (url, device, file); a simulator, a test or a
benchmark passes :func:`make_scenario_source` as the pipeline's source factory, so
``scenario:NAME`` cameras render their scene and every other kind is made exactly as
the agent makes it::

    VisionService(config, ..., source_factory=make_scenario_source)
    replay(config, camera, detector=d, source_factory=make_scenario_source)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from edge_agent.protocol import utc_now
from edge_agent.vision.config import CameraConfig, SourceSpec
from edge_agent.vision.errors import SourceError
from edge_agent.vision.frames import Detection, Frame, as_image
from edge_agent.vision.sources import Source, make_source
from simulators import scenarios
from simulators.scenarios.core import Scenario

__all__ = ["ScenarioSource", "make_scenario_source"]

#: Frame size of a scenario camera whose config gives none.
DEFAULT_SIZE = (1280, 720)


class ScenarioSource:
    """Frames of a simulator scenario (``scenario:NAME``), carrying their ground truth.

    The scenario is rendered at the detect rate and frames carry the scenario's own
    clock. ``replay=True`` renders as fast as possible; otherwise frames are paced in
    real time divided by the source's ``speed``.
    """

    def __init__(
        self,
        camera_id: str,
        spec: SourceSpec,
        *,
        detect_fps: float,
        width: int = DEFAULT_SIZE[0],
        height: int = DEFAULT_SIZE[1],
        replay: bool = False,
        start_time: datetime | None = None,
    ) -> None:
        if spec.kind != "scenario":
            raise SourceError(f"camera {camera_id}: {spec.kind} source is not a scenario")
        self.camera_id = camera_id
        self.spec = spec
        self.live = not replay
        self._fps = detect_fps
        self._size = (width, height)
        self._replay = replay
        self._start_time = start_time
        self._scenario: Scenario | None = None
        self._next = 0
        self._count = 0
        self._t0 = 0.0

    @property
    def scenario(self) -> Scenario | None:
        """The loaded scenario (after :meth:`open`, until :meth:`close`)."""
        return self._scenario

    def open(self) -> None:
        """Load the scenario; an unknown name is a :class:`SourceError` listing the known."""
        name = self.spec.target
        if name not in scenarios.names():
            raise SourceError(
                f"camera {self.camera_id}: unknown scenario {name!r}; "
                f"known: {', '.join(scenarios.names())}"
            )
        self._scenario = scenarios.load(
            name,
            seed=self.spec.seed,
            width=self._size[0],
            height=self._size[1],
            fps=self._fps,
            start_time=self._start_time,
        )
        self._count = self._scenario.frame_count()
        self._next = 0
        self._t0 = time.monotonic()

    def read(self) -> Frame | None:
        """The next scenario frame, or None after the last."""
        if self._scenario is None:
            raise SourceError(f"camera {self.camera_id}: source is not open")
        if self._next >= self._count:
            return None
        if not self._replay:
            wait = self._t0 + self._next / self._fps / self.spec.speed - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        sf = self._scenario.frame_at(self._next)
        truth = tuple(Detection(o.label, 1.0, o.box) for o in sf.objects)
        frame = Frame(self.camera_id, self._next, sf.ts, as_image(sf.image), truth)
        self._next += 1
        return frame

    def close(self) -> None:
        """Forget the scenario."""
        self._scenario = None


def make_scenario_source(
    camera: CameraConfig,
    *,
    clock: Callable[[], datetime] = utc_now,
    replay: bool = False,
    loop: bool = False,
    video: Path | None = None,
    start_time: datetime | None = None,
) -> Source:
    """A :class:`~edge_agent.vision.sources.SourceFactory` that knows scenarios.

    A ``scenario:NAME`` camera (with no ``video`` in its place) gets a
    :class:`ScenarioSource`; everything else is the agent's own
    :func:`~edge_agent.vision.sources.make_source`.
    """
    spec = camera.source_spec
    if video is None and spec.kind == "scenario":
        return ScenarioSource(
            camera.id,
            spec,
            detect_fps=camera.detect_fps,
            width=camera.width or DEFAULT_SIZE[0],
            height=camera.height or DEFAULT_SIZE[1],
            replay=replay,
            start_time=start_time,
        )
    return make_source(
        camera, clock=clock, replay=replay, loop=loop, video=video, start_time=start_time
    )
