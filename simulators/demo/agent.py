"""``python -m simulators.demo.agent --config FILE``: the real edge agent, with looping scenes.

A demo runs until Ctrl-C, but a scripted scene ends (the market street after ten
minutes). This entry point runs the unchanged ``edge-agent run`` (the same runner, outbox,
link, pipeline, detector and speaker as a real unit) with one difference, passed in as
the agent's source factory (:func:`make_demo_source`): camera sources ``scenario:NAME``
start over at the end, with their clock carried on (lap two of a ten-minute scene starts
ten scene minutes after lap one), and the first lap starts at the wall-clock time the
camera opened, so events carry today's date. Every other source kind is made exactly as
the agent makes it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge_agent.vision.config import CameraConfig, SourceSpec
from edge_agent.vision.errors import SourceError
from edge_agent.vision.frames import Frame
from edge_agent.vision.sources import Source
from simulators.scenarios.sources import DEFAULT_SIZE, ScenarioSource, make_scenario_source

__all__ = ["LoopingScenarioSource", "main", "make_demo_source"]


def _wall_clock() -> datetime:
    return datetime.now(UTC)


class LoopingScenarioSource:
    """A ``scenario:NAME`` camera that starts its scene over when it ends (see module docs)."""

    live = True

    def __init__(
        self,
        camera_id: str,
        spec: SourceSpec,
        *,
        detect_fps: float,
        width: int,
        height: int,
        clock: Callable[[], datetime] = _wall_clock,
    ) -> None:
        self.camera_id = camera_id
        self._spec = spec
        self._fps = detect_fps
        self._size = (width, height)
        self._clock = clock
        self._lap_start: datetime | None = None
        self._inner: ScenarioSource | None = None
        #: Completed laps of the scene.
        self.laps = 0

    def _open_lap(self, start: datetime) -> ScenarioSource:
        inner = ScenarioSource(
            self.camera_id,
            self._spec,
            detect_fps=self._fps,
            width=self._size[0],
            height=self._size[1],
            start_time=start,
        )
        inner.open()
        self._inner = inner
        self._lap_start = start
        return inner

    def open(self) -> None:
        """Load the scene; the first lap starts now (on the wall clock)."""
        self.close()
        start = self._lap_start or self._clock().replace(microsecond=0)
        self._open_lap(start)

    def read(self) -> Frame | None:
        """The next frame; at the end of the scene, the first frame of the next lap."""
        inner = self._inner
        if inner is None or inner.scenario is None or self._lap_start is None:
            raise SourceError(f"camera {self.camera_id}: source is not open")
        frame = inner.read()
        if frame is not None:
            return frame
        duration = inner.scenario.duration_s
        inner.close()
        self.laps += 1
        return self._open_lap(self._lap_start + timedelta(seconds=duration)).read()

    def close(self) -> None:
        """Release the scene; safe to call twice."""
        if self._inner is not None:
            self._inner.close()
            self._inner = None


def make_demo_source(
    camera: CameraConfig,
    *,
    clock: Callable[[], datetime] = _wall_clock,
    replay: bool = False,
    loop: bool = False,
    video: Path | None = None,
    start_time: datetime | None = None,
) -> Source:
    """The demo agent's source factory: live ``scenario:NAME`` cameras loop their scene
    (:class:`LoopingScenarioSource`); everything else is :func:`make_scenario_source`'s."""
    spec = camera.source_spec
    if spec.kind != "scenario" or replay or video is not None:
        return make_scenario_source(
            camera, clock=clock, replay=replay, loop=loop, video=video, start_time=start_time
        )
    return LoopingScenarioSource(
        camera.id,
        spec,
        detect_fps=camera.detect_fps,
        width=camera.width or DEFAULT_SIZE[0],
        height=camera.height or DEFAULT_SIZE[1],
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``edge-agent run`` with looping scenario cameras; returns its exit status."""
    from edge_agent import run_command

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or "--config" not in args:
        sys.stderr.write("usage: python -m simulators.demo.agent --config FILE\n")
        return 2
    path = Path(args[args.index("--config") + 1])
    if not path.is_file():
        sys.stderr.write(f"simulators.demo.agent: no config file {path}\n")
        return 2
    return run_command.main(args, source_factory=make_demo_source)


if __name__ == "__main__":
    raise SystemExit(main())
