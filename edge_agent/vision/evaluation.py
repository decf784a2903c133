"""Detector evaluation against labelled images: matching, precision/recall and AP50.

The pure core behind ``edge-agent eval``: no files, clocks or models here. The command
reads a YOLO-format folder and runs the detector; this module

* parses the folder's text files: :func:`parse_yolo_labels` (``class cx cy w h`` lines,
  normalised), :func:`parse_data_yaml` (``names:`` as a list or an ``{id: name}`` mapping)
  and :func:`parse_classes_txt` (one name a line), each raising :class:`DatasetError` that
  names the file and line;
* pairs the dataset's class names with the model's labels (:func:`match_classes`, by
  :func:`normalise_label`: ``"dining table"`` is ``dining_table``);
* scores detections (:func:`evaluate`): per image and class, detections best score first
  each take the unmatched truth box they overlap most, a true positive when that IoU is at
  least the IoU threshold (0.5); precision and recall are counted over the detections at
  or above the reporting score threshold, and AP50 over every detection given, as the
  area under the precision-recall curve with **all-point interpolation** (PASCAL VOC
  2010 onwards: precision at each recall is the best precision at that recall or beyond).

AP needs the low-score tail of the detections, so the command runs the detector with a
low threshold (0.05) and reports precision/recall at the model's own threshold; with
greedy per-class NMS the detections above the higher threshold are the same either way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from edge_agent.vision.errors import VisionError
from edge_agent.vision.frames import Box, Detection
from edge_agent.vision.geometry import box_iou

__all__ = [
    "ClassMatch",
    "ClassResult",
    "DatasetError",
    "EvalReport",
    "TruthBox",
    "average_precision",
    "evaluate",
    "match_classes",
    "match_image",
    "normalise_label",
    "parse_classes_txt",
    "parse_data_yaml",
    "parse_yolo_labels",
    "yolo_box",
]

#: A detection counts as finding a truth box at this IoU or more (the "50" of AP50).
IOU_THRESHOLD = 0.5
#: Normalised coordinates may overshoot 0..1 by this much (rounding in label tools).
_COORD_SLACK = 0.01


class DatasetError(VisionError):
    """A labelled dataset that cannot be read; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class TruthBox:
    """One ground-truth object: its label and normalised ``x1, y1, x2, y2`` box."""

    label: str
    box: Box


# --------------------------------------------------------------------------- parsing


def yolo_box(cx: float, cy: float, w: float, h: float) -> Box:
    """A YOLO ``cx cy w h`` (normalised) as an ``x1, y1, x2, y2`` box clipped to 0..1."""

    def clip(v: float) -> float:
        return min(max(v, 0.0), 1.0)

    return (clip(cx - w / 2), clip(cy - h / 2), clip(cx + w / 2), clip(cy + h / 2))


def parse_yolo_labels(text: str, *, source: str, num_classes: int) -> list[tuple[int, Box]]:
    """The ``(class id, box)`` of each line of a YOLO label file's ``text``.

    Lines are ``class cx cy w h`` with coordinates normalised to the image; blank lines
    are skipped. ``source`` names the file in errors; ids must be below ``num_classes``.
    """
    out: list[tuple[int, Box]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{source}:{number}"
        if len(fields) != 5:
            raise DatasetError(
                f"{where}: expected 5 fields 'class cx cy w h', got {len(fields)}: {line.strip()!r}"
            )
        try:
            class_value = float(fields[0])
            cx, cy, w, h = (float(v) for v in fields[1:])
        except ValueError:
            raise DatasetError(f"{where}: not numbers: {line.strip()!r}") from None
        if not class_value.is_integer():
            raise DatasetError(f"{where}: class id {fields[0]!r} is not a whole number")
        class_id = int(class_value)
        if not 0 <= class_id < num_classes:
            raise DatasetError(
                f"{where}: class id {class_id} is out of range: the class list has "
                f"{num_classes} name(s), ids 0..{num_classes - 1}"
            )
        coords = (cx, cy, w, h)
        if not all(math.isfinite(v) for v in coords):
            raise DatasetError(f"{where}: coordinates must be finite: {line.strip()!r}")
        if any(v < -_COORD_SLACK or v > 1 + _COORD_SLACK for v in coords):
            raise DatasetError(
                f"{where}: coordinates must be normalised to 0..1 (pixels?): {line.strip()!r}"
            )
        if w <= 0 or h <= 0:
            raise DatasetError(f"{where}: box width and height must be positive: {line.strip()!r}")
        out.append((class_id, yolo_box(cx, cy, w, h)))
    return out


def _names_from(value: Any, source: str) -> tuple[str, ...]:
    if isinstance(value, Mapping):
        try:
            ids = sorted(int(k) for k in value)
        except (TypeError, ValueError):
            raise DatasetError(f"{source}: 'names' keys must be class ids 0, 1, ...") from None
        if ids != list(range(len(ids))):
            raise DatasetError(f"{source}: 'names' ids must run 0..{len(ids) - 1}, got {ids}")
        by_id = {int(k): v for k, v in value.items()}
        value = [by_id[i] for i in ids]
    if not isinstance(value, list) or not value:
        raise DatasetError(f"{source}: 'names' must be a non-empty list or {{id: name}} mapping")
    names = []
    for i, name in enumerate(value):
        if not isinstance(name, str | int | float) or not str(name).strip():
            raise DatasetError(f"{source}: class {i} has no name ({name!r})")
        names.append(str(name).strip())
    return tuple(names)


def parse_data_yaml(text: str, *, source: str) -> tuple[str, ...]:
    """Class names, by id, from a YOLO ``data.yaml``'s ``names:`` (list or mapping).

    An ``nc:`` that disagrees with the number of names is an error.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DatasetError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping) or "names" not in data:
        raise DatasetError(f"{source}: no 'names:' list of class names")
    names = _names_from(data["names"], source)
    nc = data.get("nc")
    if nc is not None and nc != len(names):
        raise DatasetError(f"{source}: nc is {nc} but 'names' lists {len(names)} class(es)")
    return names


def parse_classes_txt(text: str, *, source: str) -> tuple[str, ...]:
    """Class names, by id, from a ``classes.txt`` (one name a line; blank lines at the end
    are ignored, blank lines in between are errors since they would shift every id)."""
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    for number, line in enumerate(lines, start=1):
        if not line:
            raise DatasetError(f"{source}:{number}: blank class name")
    if not lines:
        raise DatasetError(f"{source}: no class names")
    return tuple(lines)


# --------------------------------------------------------------------------- classes


def normalise_label(name: str) -> str:
    """A class name in comparable form: lowercase, runs of spaces/dashes as ``_``."""
    return re.sub(r"[\s\-_]+", "_", name.strip().lower())


@dataclass(frozen=True, slots=True)
class ClassMatch:
    """How a dataset's classes pair with a model's labels."""

    #: Dataset class id -> the model's label, for classes the model knows.
    labels: Mapping[int, str]
    #: Dataset class names the model does not know (not scored).
    unmatched: tuple[str, ...]


def match_classes(data_names: Sequence[str], model_labels: Sequence[str]) -> ClassMatch:
    """Pair dataset class names with model labels by :func:`normalise_label`."""
    known = {normalise_label(label): label for label in model_labels}
    labels: dict[int, str] = {}
    unmatched: list[str] = []
    for class_id, name in enumerate(data_names):
        label = known.get(normalise_label(name))
        if label is None:
            unmatched.append(name)
        else:
            labels[class_id] = label
    return ClassMatch(labels=labels, unmatched=tuple(unmatched))


# --------------------------------------------------------------------------- scoring


def match_image(
    detections: Sequence[Detection],
    truths: Sequence[TruthBox],
    iou_threshold: float = IOU_THRESHOLD,
) -> list[tuple[Detection, bool]]:
    """Each detection of one image with whether it is a true positive.

    Per label, detections best score first each take the not yet taken truth box of
    that label they overlap most; a hit when that IoU is ``>= iou_threshold``. A second
    detection of an already found object is a false positive.
    """
    taken: set[int] = set()
    out: list[tuple[Detection, bool]] = []
    for det in sorted(detections, key=lambda d: -d.score):
        best, best_iou = -1, iou_threshold
        for i, truth in enumerate(truths):
            if i in taken or truth.label != det.label:
                continue
            overlap = box_iou(det.box, truth.box)
            if overlap >= best_iou:
                best, best_iou = i, overlap
        if best >= 0:
            taken.add(best)
        out.append((det, best >= 0))
    return out


def average_precision(hits: Iterable[tuple[float, bool]], truths: int) -> float | None:
    """AP of ``(score, true positive)`` pairs against ``truths`` objects; None without any.

    All-point interpolation: the area under the precision-recall curve after making
    precision non-increasing in recall (each point takes the best precision to its right).
    Ties in score keep their given order.
    """
    if truths <= 0:
        return None
    ranked = sorted(hits, key=lambda h: -h[0])
    recalls: list[float] = []
    precisions: list[float] = []
    tp = 0
    for rank, (_, hit) in enumerate(ranked, start=1):
        tp += hit
        recalls.append(tp / truths)
        precisions.append(tp / rank)
    for i in range(len(precisions) - 2, -1, -1):
        precisions[i] = max(precisions[i], precisions[i + 1])
    area, previous = 0.0, 0.0
    for recall, precision in zip(recalls, precisions, strict=True):
        area += (recall - previous) * precision
        previous = recall
    return area


@dataclass(frozen=True, slots=True)
class ClassResult:
    """One label's figures; precision and recall are at the reporting threshold."""

    label: str
    truths: int
    detections: int
    true_positives: int
    precision: float | None
    recall: float | None
    ap50: float | None

    def as_json(self) -> dict[str, Any]:
        """The figures as a JSON-able dict, rounded to 4 places."""
        return {
            "ground_truth": self.truths,
            "detections": self.detections,
            "true_positives": self.true_positives,
            "precision": _round(self.precision),
            "recall": _round(self.recall),
            "ap50": _round(self.ap50),
        }


@dataclass(frozen=True, slots=True)
class EvalReport:
    """Per-label results and the overall figures of one evaluation."""

    classes: tuple[ClassResult, ...]
    images: int
    score_threshold: float
    iou_threshold: float

    @property
    def map50(self) -> float | None:
        """Mean AP50 over the labels that have ground truth; None when none has."""
        aps = [c.ap50 for c in self.classes if c.ap50 is not None]
        return sum(aps) / len(aps) if aps else None

    @property
    def truths(self) -> int:
        """Ground-truth objects over every scored label."""
        return sum(c.truths for c in self.classes)

    @property
    def detections(self) -> int:
        """Detections at the reporting threshold over every scored label."""
        return sum(c.detections for c in self.classes)

    @property
    def precision(self) -> float | None:
        """Precision over every scored label's detections (micro-averaged)."""
        found = self.detections
        return sum(c.true_positives for c in self.classes) / found if found else None

    @property
    def recall(self) -> float | None:
        """Recall over every scored label's ground truth (micro-averaged)."""
        truths = self.truths
        return sum(c.true_positives for c in self.classes) / truths if truths else None

    def as_json(self) -> dict[str, Any]:
        """The overall figures and ``classes`` by label, as a JSON-able dict."""
        return {
            "images": self.images,
            "iou": self.iou_threshold,
            "score_threshold": self.score_threshold,
            "map50": _round(self.map50),
            "precision": _round(self.precision),
            "recall": _round(self.recall),
            "ground_truth": self.truths,
            "detections": self.detections,
            "classes": {c.label: c.as_json() for c in self.classes},
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def evaluate(
    images: Iterable[tuple[Sequence[Detection], Sequence[TruthBox]]],
    labels: Sequence[str],
    *,
    score_threshold: float,
    iou_threshold: float = IOU_THRESHOLD,
) -> EvalReport:
    """Score each image's ``(detections, truths)`` for ``labels``; others are ignored.

    AP uses every detection given (run the detector at a low threshold); precision and
    recall count only those scoring at least ``score_threshold``.
    """
    labels = list(dict.fromkeys(labels))  # two dataset names may share one label
    wanted = set(labels)
    hits: dict[str, list[tuple[float, bool]]] = {label: [] for label in labels}
    truths = dict.fromkeys(labels, 0)
    count = 0
    for detections, image_truths in images:
        count += 1
        kept_truths = [t for t in image_truths if t.label in wanted]
        for t in kept_truths:
            truths[t.label] += 1
        kept = [d for d in detections if d.label in wanted]
        for det, hit in match_image(kept, kept_truths, iou_threshold):
            hits[det.label].append((det.score, hit))
    results = []
    for label in labels:
        above = [hit for score, hit in hits[label] if score >= score_threshold]
        tp = sum(above)
        results.append(
            ClassResult(
                label=label,
                truths=truths[label],
                detections=len(above),
                true_positives=tp,
                precision=tp / len(above) if above else None,
                recall=tp / truths[label] if truths[label] else None,
                ap50=average_precision(hits[label], truths[label]),
            )
        )
    return EvalReport(
        classes=tuple(results),
        images=count,
        score_threshold=score_threshold,
        iou_threshold=iou_threshold,
    )
