"""Several models on one box: which runs on which frame, and one merged set of detections.

A pole may run the street model (stalls, goods, bins) at 5 fps and the general model
(people, vehicles) at 2 fps on the same camera. :class:`ModelSet` is a
:class:`~edge_agent.vision.detector.Detector` over named detectors:

* each camera lists the models it runs and at which rate (:class:`RatePlan`); a model is
  due on a frame when its period has passed since its last run on that camera, with half
  a frame interval of slack so 2 fps out of 5 averages 2, not 5/3;
* on frames where a slower model is not due, its latest result for that camera stands
  in, so rules and the tracker see a steady set rather than objects that blink with the
  model's rate; a model whose inference fails is logged and counted, the other models'
  results still go through, and its held result is dropped once older than two of its
  periods;
* labels are renamed by each model's label map, every detection carries its model's
  name (rules may ask for ``general:car``), and where two models report the same label
  on the same object the higher score stays.

The scheduling and merging are pure (:class:`RatePlan`, :func:`merge`); the class only
holds the per-camera state under a lock, since inference workers share it.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from edge_agent.protocol import ModelRef
from edge_agent.vision.detector import Detector
from edge_agent.vision.frames import Detection, Frame

__all__ = ["MERGE_IOU", "ModelSet", "RatePlan", "merge"]

logger = logging.getLogger(__name__)

#: Boxes of one label from two models overlapping this much are one object.
MERGE_IOU = 0.6
#: A held result older than this many of its model's periods is dropped.
STALE_PERIODS = 2.0


@dataclass(frozen=True)
class RatePlan:
    """When each model runs on one camera: ``rates`` maps model name to fps (None: every
    frame); ``frame_interval_s`` is the camera's own frame interval."""

    rates: Mapping[str, float | None]
    frame_interval_s: float

    def due(self, model: str, last_run: float | None, now: float) -> bool:
        """Whether ``model`` runs on a frame at ``now`` (seconds) after a run at ``last_run``."""
        fps = self.rates[model]
        if fps is None or last_run is None:
            return True
        return now - last_run >= 1.0 / fps - self.frame_interval_s / 2.0

    def next_run(self, model: str, last_run: float | None, now: float) -> float:
        """The time to count the next period from, after running at ``now``.

        Runs are spaced on the model's own grid (last run + period), not on the frame that
        happened to be due, so rounding to frames does not lower the average rate; after a
        gap of more than a period the grid restarts at ``now``.
        """
        fps = self.rates[model]
        if fps is None or last_run is None:
            return now
        planned = last_run + 1.0 / fps
        return planned if now - planned < 1.0 / fps else now

    def stale(self, model: str, result_at: float, now: float) -> bool:
        """Whether a held result of ``model`` from ``result_at`` is too old at ``now``."""
        fps = self.rates[model]
        period = 1.0 / fps if fps else self.frame_interval_s
        return now - result_at > STALE_PERIODS * period + self.frame_interval_s


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def merge(
    per_model: Mapping[str, Sequence[Detection]],
    label_maps: Mapping[str, Mapping[str, str]],
    iou: float = MERGE_IOU,
) -> list[Detection]:
    """One frame's detections from several models: labels renamed by each model's map,
    tagged with the model's name, and a box of one model dropped where another model
    reports the same label on the same object with a higher score."""
    tagged = [
        replace(det, label=label_maps.get(name, {}).get(det.label, det.label), model=name)
        for name, dets in per_model.items()
        for det in dets
    ]
    tagged.sort(key=lambda d: -d.score)
    kept: list[Detection] = []
    for det in tagged:
        if any(
            k.label == det.label and k.model != det.model and _iou(k.box, det.box) >= iou
            for k in kept
        ):
            continue
        kept.append(det)
    return kept


def _seconds(ts: datetime) -> float:
    return ts.timestamp()


class ModelSet:
    """Named detectors run per camera at their own rates, merged into one result.

    ``plans`` maps a camera id to its :class:`RatePlan`; a camera with no plan runs
    every model on every frame. ``runs`` counts inferences per ``(camera, model)``.
    """

    def __init__(
        self,
        detectors: Mapping[str, Detector],
        plans: Mapping[str, RatePlan],
        label_maps: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        if not detectors:
            raise ValueError("a ModelSet needs at least one detector")
        self._detectors = dict(detectors)
        self._plans = dict(plans)
        self._maps = {k: dict(v) for k, v in (label_maps or {}).items()}
        self._default = RatePlan(dict.fromkeys(self._detectors), 0.0)
        self._lock = threading.Lock()
        self._last_run: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], tuple[float, list[Detection]]] = {}
        self.runs: Counter[tuple[str, str]] = Counter()
        #: Failed inferences per model (its frames then go on with its held results).
        self.errors: Counter[str] = Counter()
        labels: list[str] = []
        for name, det in self._detectors.items():
            for label in det.labels:
                mapped = self._maps.get(name, {}).get(label, label)
                if mapped not in labels:
                    labels.append(mapped)
        self._labels = tuple(labels)

    @property
    def detectors(self) -> Mapping[str, Detector]:
        """The named detectors."""
        return self._detectors

    @property
    def labels(self) -> tuple[str, ...]:
        """Every label any model can report, after label maps."""
        return self._labels

    @property
    def model_ref(self) -> ModelRef:
        """The first model's name and version (events name the model that saw the object)."""
        return next(iter(self._detectors.values())).model_ref

    def model_refs(self) -> dict[str, ModelRef]:
        """Each model's name and version by its name on this box."""
        return {name: det.model_ref for name, det in self._detectors.items()}

    @property
    def batch_size(self) -> int | None:
        """The smallest batch any model takes (None when none has a limit)."""
        sizes = [d.batch_size for d in self._detectors.values() if d.batch_size is not None]
        return min(sizes) if sizes else None

    def _plan(self, camera_id: str) -> RatePlan:
        return self._plans.get(camera_id, self._default)

    def detect(self, frames: Sequence[Frame]) -> list[list[Detection]]:
        """Run each model on the frames it is due on; merge with held results."""
        due: dict[str, list[int]] = {name: [] for name in self._detectors}
        with self._lock:
            for i, frame in enumerate(frames):
                plan = self._plan(frame.camera_id)
                now = _seconds(frame.ts)
                for name in plan.rates:
                    key = (frame.camera_id, name)
                    last = self._last_run.get(key)
                    if name in self._detectors and plan.due(name, last, now):
                        self._last_run[key] = plan.next_run(name, last, now)
                        due[name].append(i)
        fresh: dict[tuple[int, str], list[Detection]] = {}
        for name, indices in due.items():
            if not indices:
                continue
            try:
                results = self._detectors[name].detect([frames[i] for i in indices])
            except Exception:  # one failing model must not blind the others
                self.errors[name] += 1
                logger.exception("model %r failed on %d frame(s)", name, len(indices))
                continue
            for i, dets in zip(indices, results, strict=True):
                fresh[(i, name)] = dets
        out: list[list[Detection]] = []
        with self._lock:
            for i, frame in enumerate(frames):
                plan = self._plan(frame.camera_id)
                now = _seconds(frame.ts)
                per_model: dict[str, Sequence[Detection]] = {}
                for name in plan.rates:
                    key = (frame.camera_id, name)
                    if (i, name) in fresh:
                        self.runs[key] += 1
                        self._held[key] = (now, fresh[(i, name)])
                        per_model[name] = fresh[(i, name)]
                    elif key in self._held and not plan.stale(name, self._held[key][0], now):
                        per_model[name] = self._held[key][1]
                out.append(merge(per_model, self._maps))
        return out

    def close(self) -> None:
        """Close every model."""
        for det in self._detectors.values():
            det.close()
