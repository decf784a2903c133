"""The :class:`Detector` interface and the fake backend tests and replays use.

Every backend takes a batch of frames and returns, per frame, the detections in
normalised frame coordinates. The ONNX backend lives in :mod:`onnx_detector`; the
:class:`TruthDetector` here returns a simulator frame's ground truth, so the tracker,
rules and evidence can run over real scenario timelines without a model.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from edge_agent.protocol import ModelRef
from edge_agent.vision.frames import Detection, Frame

__all__ = ["Detector", "TruthDetector"]


@runtime_checkable
class Detector(Protocol):
    """Finds objects in frames. One instance is shared by every camera of a box."""

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names in the model's output order."""
        ...

    @property
    def model_ref(self) -> ModelRef:
        """Name and version of the model, as events report it."""
        ...

    @property
    def batch_size(self) -> int | None:
        """Most frames one inference runs together, or None when there is no limit.

        The service takes no more frames than this at a time: frames taken beyond it
        would only wait, in memory, for the inferences before them.
        """
        ...

    def detect(self, frames: Sequence[Frame]) -> list[list[Detection]]:
        """Detections of each frame (same order as ``frames``); thread-safe, blocking."""
        ...

    def close(self) -> None:
        """Release the backend's resources."""
        ...


class TruthDetector:
    """A fake detector that returns each frame's ground truth (``Frame.truth``).

    ``miss_rate`` drops that share of objects at random and ``score`` sets the score
    reported, so tests can check the pipeline's tolerance to a flaky detector.
    """

    def __init__(
        self,
        labels: Sequence[str] = (),
        *,
        score: float = 0.9,
        miss_rate: float = 0.0,
        seed: int = 0,
        name: str = "truth",
    ) -> None:
        self._labels = tuple(labels)
        self._score = score
        self._miss_rate = miss_rate
        self._rng = random.Random(seed)
        self._ref = ModelRef(name=name, version="0")
        self.calls = 0

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels given at construction (may be empty: any label passes)."""
        return self._labels

    @property
    def model_ref(self) -> ModelRef:
        """``truth`` version ``0``."""
        return self._ref

    @property
    def batch_size(self) -> int | None:
        """None: any number of frames at once."""
        return None

    def detect(self, frames: Sequence[Frame]) -> list[list[Detection]]:
        """The truth objects of each frame; a frame without truth gives no detections."""
        self.calls += 1
        out: list[list[Detection]] = []
        for frame in frames:
            found = []
            for obj in frame.truth or ():
                if self._miss_rate and self._rng.random() < self._miss_rate:
                    continue
                found.append(Detection(obj.label, self._score, obj.box))
            out.append(found)
        return out

    def close(self) -> None:
        """Nothing to release."""
