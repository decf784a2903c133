"""``python -m simulators.demo.agent --config FILE``: the real edge agent, with looping scenes.

A demo runs until Ctrl-C, but a scripted scene ends (the market street after ten
minutes). This entry point runs the unchanged ``edge-agent run`` (the same runner, outbox,
link, pipeline, detector and speaker as a real unit) with one difference: camera sources
``scenario:NAME`` start over at the end, with their clock carried on (lap two of a
ten-minute scene starts ten scene minutes after lap one), and the first lap starts at the
wall-clock time the camera opened, so events carry today's date. Every other source kind
is made exactly as the agent makes it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["LoopingScenarioSource", "main"]


class LoopingScenarioSource:
    """A ``scenario:NAME`` camera that starts its scene over when it ends (see module docs)."""

    live = True

    def __init__(
        self,
        camera_id: str,
        spec: Any,
        *,
        detect_fps: float,
        width: int,
        height: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.camera_id = camera_id
        self._spec = spec
        self._fps = detect_fps
        self._size = (width, height)
        self._clock = clock
        self._lap_start: datetime | None = None
        self._inner: Any = None
        #: Completed laps of the scene.
        self.laps = 0

    def _open_lap(self, start: datetime) -> None:
        from edge_agent.vision.sources import ScenarioSource

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

    def open(self) -> None:
        """Load the scene; the first lap starts now (on the wall clock)."""
        self.close()
        start = self._lap_start or self._clock().replace(microsecond=0)
        self._open_lap(start)

    def read(self) -> Any:
        """The next frame; at the end of the scene, the first frame of the next lap."""
        if self._inner is None:
            from edge_agent.vision.errors import SourceError

            raise SourceError(f"camera {self.camera_id}: source is not open")
        frame = self._inner.read()
        if frame is not None:
            return frame
        assert self._lap_start is not None  # set by _open_lap
        duration = float(self._inner.scenario.duration_s)
        self._inner.close()
        self.laps += 1
        self._open_lap(self._lap_start + timedelta(seconds=duration))
        return self._inner.read()

    def close(self) -> None:
        """Release the scene; safe to call twice."""
        if self._inner is not None:
            self._inner.close()
            self._inner = None


def _install_looping_scenes() -> None:
    from edge_agent.vision import pipeline, sources

    original = sources.make_source

    def make_source(camera: Any, **kwargs: Any) -> Any:
        spec = camera.source_spec
        if spec.kind != "scenario" or kwargs.get("replay"):
            return original(camera, **kwargs)
        return LoopingScenarioSource(
            camera.id,
            spec,
            detect_fps=camera.detect_fps,
            width=camera.width or 1280,
            height=camera.height or 720,
        )

    # The pipeline imported make_source by name; the demo swaps in its looping variant
    # there only, for this process.
    setattr(pipeline, "make_source", make_source)  # noqa: B010  # swap a module global


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``edge-agent run`` with looping scenario cameras; returns its exit status."""
    from edge_agent import runner

    _install_looping_scenes()
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or "--config" not in args:
        sys.stderr.write("usage: python -m simulators.demo.agent --config FILE\n")
        return 2
    path = Path(args[args.index("--config") + 1])
    if not path.is_file():
        sys.stderr.write(f"simulators.demo.agent: no config file {path}\n")
        return 2
    return runner.main(args)


if __name__ == "__main__":
    raise SystemExit(main())
