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
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from edge_agent.protocol import ModelRef
from edge_agent.vision.detector import Detector
from edge_agent.vision.frames import Box, Detection, Frame
from edge_agent.vision.geometry import box_iou

__all__ = ["MERGE_IOU", "ModelSet", "RatePlan", "crop", "merge", "tile_regions", "untile"]

logger = logging.getLogger(__name__)

#: Boxes of one label from two models overlapping this much are one object.
MERGE_IOU = 0.6
#: Neighbouring tiles overlap by this share of a tile, so an object on a seam is whole
#: in one of them.
TILE_OVERLAP = 0.2
#: Boxes of one label from two tiles overlapping this much are one object.
TILE_MERGE_IOU = 0.5
#: A held result older than this many of its model's periods is dropped.
STALE_PERIODS = 2.0


@dataclass(frozen=True)
class RatePlan:
    """When and how each model runs on one camera: ``rates`` maps model name to fps
    (None: every frame); ``frame_interval_s`` is the camera's own frame interval;
    ``tiles`` maps a model name to its tile grid (see :func:`tile_regions`)."""

    rates: Mapping[str, float | None]
    frame_interval_s: float
    tiles: Mapping[str, int] = field(default_factory=dict)

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


def tile_regions(grid: int, overlap: float = TILE_OVERLAP) -> list[Box]:
    """The whole frame, then ``grid`` x ``grid`` tiles that overlap by ``overlap`` of a
    tile, in normalised coordinates. A grid of 1 is the whole frame alone."""
    regions: list[Box] = [(0.0, 0.0, 1.0, 1.0)]
    if grid <= 1:
        return regions
    size = 1.0 / (grid - (grid - 1) * overlap)
    step = size * (1.0 - overlap)
    for row in range(grid):
        for col in range(grid):
            x0, y0 = col * step, row * step
            regions.append((x0, y0, min(1.0, x0 + size), min(1.0, y0 + size)))
    return regions


def crop(frame: Frame, region: Box) -> Frame:
    """The part of ``frame`` inside ``region`` (normalised), as a frame of its own."""
    h, w = frame.image.shape[:2]
    x0, y0 = round(region[0] * w), round(region[1] * h)
    x1, y1 = max(x0 + 1, round(region[2] * w)), max(y0 + 1, round(region[3] * h))
    return replace(frame, image=frame.image[y0:y1, x0:x1], truth=None)


def untile(per_region: Sequence[Sequence[Detection]], regions: Sequence[Box]) -> list[Detection]:
    """Detections of tiles mapped back to the frame, the same object seen in two tiles (or
    a tile and the whole frame) kept once, with its best score. A box cut by a tile's edge
    that lies inside the other's box is the same object too."""
    found: list[Detection] = []
    for dets, (x0, y0, x1, y1) in zip(per_region, regions, strict=True):
        sx, sy = x1 - x0, y1 - y0
        for d in dets:
            box = (x0 + d.box[0] * sx, y0 + d.box[1] * sy, x0 + d.box[2] * sx, y0 + d.box[3] * sy)
            found.append(replace(d, box=box))
    return _best_of_each(
        found,
        lambda k, d: box_iou(k.box, d.box) >= TILE_MERGE_IOU or _inside(d.box, k.box),
    )


def _best_of_each(
    found: Sequence[Detection], same: Callable[[Detection, Detection], bool]
) -> list[Detection]:
    """Best score first, dropping a detection of a label already kept where ``same(kept,
    detection)`` says they are one object."""
    kept: list[Detection] = []
    for det in sorted(found, key=lambda d: -d.score):
        if not any(k.label == det.label and same(k, det) for k in kept):
            kept.append(det)
    return kept


def _inside(a: Box, b: Box, share: float = 0.8) -> bool:
    """Whether at least ``share`` of box ``a`` lies inside box ``b``."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    area = (a[2] - a[0]) * (a[3] - a[1])
    return iw > 0 and ih > 0 and area > 0 and iw * ih >= share * area


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
    return _best_of_each(tagged, lambda k, d: k.model != d.model and box_iou(k.box, d.box) >= iou)


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
        #: Inputs (frames or tiles) each model ran on, and the seconds it took for them.
        self.inferred: Counter[str] = Counter()
        self.infer_s: dict[str, float] = dict.fromkeys(self._detectors, 0.0)
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
        plans = [self._plan(frame.camera_id) for frame in frames]
        times = [_seconds(frame.ts) for frame in frames]
        with self._lock:
            for i, frame in enumerate(frames):
                plan, now = plans[i], times[i]
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
            # Tiled cameras send their tiles (and the whole frame) as frames of their own.
            inputs: list[Frame] = []
            spans: list[tuple[int, list[Box]]] = []
            for i in indices:
                grid = plans[i].tiles.get(name, 1)
                regions = tile_regions(grid)
                inputs += [frames[i]] if grid <= 1 else [crop(frames[i], r) for r in regions]
                spans.append((i, regions))
            started = time.perf_counter()
            try:
                results = self._detectors[name].detect(inputs)
                self.infer_s[name] += time.perf_counter() - started
                self.inferred[name] += len(inputs)
            except Exception:  # one failing model must not blind the others
                self.errors[name] += 1
                logger.exception("model %r failed on %d frame(s)", name, len(indices))
                continue
            at = 0
            for i, regions in spans:
                part = results[at : at + len(regions)]
                at += len(regions)
                fresh[(i, name)] = part[0] if len(regions) == 1 else untile(part, regions)
        out: list[list[Detection]] = []
        with self._lock:
            for i, frame in enumerate(frames):
                plan, now = plans[i], times[i]
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
