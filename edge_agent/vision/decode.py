"""Pure pre- and post-processing of YOLO-style detectors.

* :func:`letterbox` scales a frame into the square model input keeping its aspect, pads
  the rest (centred, or with the frame top-left) and normalises it as the manifest's
  :class:`~edge_agent.vision.manifest.Preprocess` says: colour order, then
  ``(pixel - mean) / std`` per channel (default RGB / 255 with gray 114 padding); it
  returns the :class:`Letterbox` that maps boxes back to the frame.

Output layouts, each decoded per image into boxes in input pixels:

* ``raw`` (:func:`decode_raw`): ``[1, 4 + nc, N]``, cx, cy, w, h in input pixels then
  one score per class, no objectness row (YOLOv8/11); class-aware NMS;
* ``yolox`` (:func:`decode_yolox`): ``[1, N, 5 + nc]``, cx, cy, w, h, objectness, then
  class scores, score = objectness x class score; boxes either grid-relative as official
  YOLOX exports write them (decoded over :func:`yolox_grid`) or already in input pixels;
  class-aware NMS;
* ``end_to_end`` (:func:`decode_end_to_end`): ``[1, K, 6]``, x1, y1, x2, y2, score,
  class, whose NMS ran inside the model.

Every decoder takes ``keep``, the class indices allowed to produce detections (``None``:
all), and returns an ``(M, 6)`` float32 array of ``x1, y1, x2, y2, score, class``;
:meth:`Letterbox.to_normalised` maps them to the frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.vision.frames import Image
from edge_agent.vision.manifest import Preprocess

__all__ = [
    "PAD_VALUE",
    "Letterbox",
    "class_aware_nms",
    "decode_end_to_end",
    "decode_raw",
    "decode_yolox",
    "letterbox",
    "nms",
    "yolox_anchor_count",
    "yolox_grid",
]

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.intp]
#: Gray of the street detector's letterbox padding, as it was trained with.
PAD_VALUE = 114

_RGB = Preprocess()
_BGR = Preprocess(rgb=False)
#: Largest log-space width/height decoded: exp(12) strides is far outside any input,
#: and keeps a junk anchor's box finite for NMS.
_MAX_LOG_WH = 12.0


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How a ``width`` x ``height`` frame was placed into a ``size`` x ``size`` input."""

    width: int
    height: int
    size: int
    scale: float
    left: int
    top: int

    @classmethod
    def fit(cls, width: int, height: int, size: int, *, centered: bool = True) -> Letterbox:
        """The letterbox of a ``width`` x ``height`` frame into a square of ``size``.

        Centred by default; with ``centered=False`` the frame sits at the top-left corner.
        """
        scale = min(size / width, size / height)
        new_w = max(1, round(width * scale))
        new_h = max(1, round(height * scale))
        if not centered:
            return cls(width, height, size, scale, 0, 0)
        return cls(width, height, size, scale, (size - new_w) // 2, (size - new_h) // 2)

    @property
    def inner(self) -> tuple[int, int]:
        """Size ``(w, h)`` of the scaled frame inside the input."""
        return (max(1, round(self.width * self.scale)), max(1, round(self.height * self.scale)))

    def to_normalised(self, boxes: FloatArray) -> FloatArray:
        """Map ``(M, >=4)`` boxes from input pixels to normalised frame coordinates, clipped."""
        out = boxes[:, :4].astype(np.float32, copy=True)
        out[:, [0, 2]] = (out[:, [0, 2]] - self.left) / (self.scale * self.width)
        out[:, [1, 3]] = (out[:, [1, 3]] - self.top) / (self.scale * self.height)
        np.clip(out, 0.0, 1.0, out=out)
        return out


def letterbox(
    image: Image,
    size: int,
    *,
    rgb: bool = True,
    preprocess: Preprocess | None = None,
    out: FloatArray | None = None,
) -> tuple[FloatArray, Letterbox]:
    """Return the ``(1, 3, size, size)`` float32 model input and its :class:`Letterbox`.

    ``preprocess`` (the manifest's) sets colour order, mean, std, pad value and placement;
    without it the input is RGB (or BGR with ``rgb=False``) / 255, padded gray 114 around
    a centred frame. With ``out`` (a C-contiguous ``(1, 3, size, size)`` float32 array,
    e.g. one row of a reused batch buffer) the input is written there and returned.
    """
    if out is not None and (out.shape != (1, 3, size, size) or out.dtype != np.float32):
        raise ValueError(f"out must be a (1, 3, {size}, {size}) float32 array, got {out.shape}")
    pre = preprocess if preprocess is not None else (_RGB if rgb else _BGR)
    h, w = image.shape[:2]
    box = Letterbox.fit(w, h, size, centered=pre.centered)
    new_w, new_h = box.inner
    canvas = np.full((size, size, 3), pre.pad_value, dtype=np.uint8)
    inner = canvas[box.top : box.top + new_h, box.left : box.left + new_w]
    if (new_w, new_h) == (w, h):
        inner[...] = image
    else:
        # Straight into the canvas: no resized copy to move there afterwards.
        cv2.resize(image, (new_w, new_h), dst=inner, interpolation=cv2.INTER_LINEAR)
    # Plane by plane into a preallocated NCHW tensor: about 3x faster than blobFromImage.
    # (x - mean) / std = x * (1 / std) - mean / std in one OpenCV pass per plane, written
    # into the tensor: half the time of NumPy's multiply-then-subtract, no temporaries.
    blob = np.empty((1, 3, size, size), dtype=np.float32) if out is None else out
    planes = cv2.split(canvas)
    order = (2, 1, 0) if pre.rgb else (0, 1, 2)
    for dst, src in enumerate(order):
        inv_std = 1.0 / pre.std[dst]
        plane = planes[src]
        shift = -pre.mean[dst] * inv_std
        cv2.addWeighted(plane, inv_std, plane, 0.0, shift, dst=blob[0, dst], dtype=cv2.CV_32F)
    return blob, box


def nms(boxes: FloatArray, scores: FloatArray, iou: float) -> npt.NDArray[np.intp]:
    """Greedy non-maximum suppression; indices of the kept boxes, best score first."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        iw = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        ih = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = iw * ih
        union = areas[i] + areas[rest] - inter
        overlap = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
        order = rest[overlap <= iou]
    return np.asarray(keep, dtype=np.intp)


def class_aware_nms(
    boxes: FloatArray, scores: FloatArray, classes: npt.NDArray[np.intp], iou: float
) -> npt.NDArray[np.intp]:
    """Greedy NMS within each class; indices of the kept boxes, best score first.

    OpenCV's batched NMS does the work: the same greedy rule as :func:`nms` (a box goes
    when it overlaps a better one of its class by more than ``iou``), about 15x faster on
    the 10-100 candidates of a frame, which matters beside an int8 model of ~10 ms.
    """
    if not len(boxes):
        return np.zeros(0, dtype=np.intp)
    xywh = np.empty((len(boxes), 4), dtype=np.float64)
    xywh[:, :2] = boxes[:, :2]
    xywh[:, 2:] = boxes[:, 2:4] - boxes[:, :2]
    rects = [(x, y, w, h) for x, y, w, h in xywh.tolist()]
    found = cv2.dnn.NMSBoxesBatched(rects, scores.tolist(), classes.tolist(), 0.0, iou)
    kept = np.asarray(found, dtype=np.intp).ravel()
    return kept[np.argsort(-scores[kept], kind="stable")]


def _empty() -> FloatArray:
    return np.zeros((0, 6), dtype=np.float32)


def _nms_rows(
    centre: tuple[FloatArray, FloatArray, FloatArray, FloatArray],
    scores: FloatArray,
    classes: IntArray,
    iou: float,
    max_det: int,
) -> FloatArray:
    """Candidates given as ``cx, cy, w, h`` after class-aware NMS, as ``(M, 6)`` rows."""
    cx, cy, w, h = centre
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
    keep = class_aware_nms(boxes, scores, classes, iou)[:max_det]
    out = np.empty((keep.size, 6), dtype=np.float32)
    out[:, :4] = boxes[keep]
    out[:, 4] = scores[keep]
    out[:, 5] = classes[keep]
    return out


def decode_raw(
    output: FloatArray,
    num_classes: int,
    score_threshold: float,
    iou: float,
    max_det: int = 300,
    *,
    keep: IntArray | None = None,
) -> FloatArray:
    """Decode one image's raw output ``(4 + nc, N)`` into ``(M, 6)`` boxes after NMS.

    ``keep``: sorted class indices allowed to produce boxes (``None``: every class).
    """
    if output.ndim != 2 or output.shape[0] != 4 + num_classes:
        raise ValueError(f"raw output must be (4 + {num_classes}, N), got {tuple(output.shape)}")
    # Only the kept classes' rows are looked at: fewer rows to reduce, and a dropped class
    # cannot hide a kept one at the same anchor.
    cls_scores = output[4:] if keep is None else output[4 + keep]
    # Threshold on each anchor's best score first; argmax only over the few survivors.
    best = cls_scores.max(axis=0)
    mask = best >= score_threshold
    if not mask.any():
        return _empty()
    sel_scores = best[mask].astype(np.float32)
    sel_classes = cls_scores[:, mask].argmax(axis=0)
    if keep is not None:
        sel_classes = keep[sel_classes]
    centre = (output[0, mask], output[1, mask], output[2, mask], output[3, mask])
    return _nms_rows(centre, sel_scores, sel_classes, iou, max_det)


def yolox_anchor_count(size: int, strides: Sequence[int]) -> int:
    """How many anchors a YOLOX head over a ``size`` x ``size`` input has."""
    return sum(math.ceil(size / s) ** 2 for s in strides)


def yolox_grid(size: int, strides: Sequence[int]) -> FloatArray:
    """``(N, 3)`` rows ``gx, gy, stride`` of every YOLOX anchor, in the output's order.

    Per stride the cells run row-major (``gx`` fastest), and the strides follow each other
    in the given order, as the official YOLOX head concatenates them.
    """
    parts = []
    for stride in strides:
        n = math.ceil(size / stride)
        gy, gx = np.divmod(np.arange(n * n), n)
        parts.append(np.stack([gx, gy, np.full(n * n, stride)], axis=1))
    grid: FloatArray = np.concatenate(parts).astype(np.float32)
    return grid


def decode_yolox(
    output: FloatArray,
    num_classes: int,
    score_threshold: float,
    iou: float,
    max_det: int = 300,
    *,
    grid: FloatArray | None = None,
    keep: IntArray | None = None,
) -> FloatArray:
    """Decode one image's YOLOX output ``(N, 5 + nc)`` into ``(M, 6)`` boxes after NMS.

    Columns are cx, cy, w, h, objectness, then the class scores, objectness and classes
    already sigmoided; score = objectness x class score. With ``grid`` (from
    :func:`yolox_grid`) the boxes are grid-relative as official exports write them:
    ``cx = (x + gx) * s``, ``w = exp(w) * s``; without it they are in input pixels.
    ``keep``: sorted class indices allowed to produce boxes (``None``: every class).
    """
    if output.ndim != 2 or output.shape[1] != 5 + num_classes:
        raise ValueError(f"yolox output must be (N, 5 + {num_classes}), got {output.shape}")
    if grid is not None and grid.shape[0] != output.shape[0]:
        raise ValueError(f"yolox output has {output.shape[0]} anchors, the grid {grid.shape[0]}")
    # Class scores are sigmoids (at most 1), so a score over the threshold needs objectness
    # over it too: most anchors are dropped on that one column before classes are read.
    cand = np.flatnonzero(output[:, 4] >= score_threshold)
    if not cand.size:
        return _empty()
    cls_scores = output[cand, 5:] if keep is None else output[np.ix_(cand, 5 + keep)]
    best = cls_scores.argmax(axis=1)
    scores = (output[cand, 4] * cls_scores[np.arange(cand.size), best]).astype(np.float32)
    ok = scores >= score_threshold
    if not ok.any():
        return _empty()
    cand, best, scores = cand[ok], best[ok], scores[ok]
    classes = best if keep is None else keep[best]
    cx, cy, w, h = (output[cand, i] for i in range(4))
    if grid is not None:
        gx, gy, stride = grid[cand, 0], grid[cand, 1], grid[cand, 2]
        cx = (cx + gx) * stride
        cy = (cy + gy) * stride
        w = np.exp(np.minimum(w, _MAX_LOG_WH)) * stride
        h = np.exp(np.minimum(h, _MAX_LOG_WH)) * stride
    return _nms_rows((cx, cy, w, h), scores, classes, iou, max_det)


def decode_end_to_end(
    output: FloatArray,
    num_classes: int,
    score_threshold: float,
    *,
    keep: IntArray | None = None,
) -> FloatArray:
    """Decode one image's end-to-end output ``(K, 6)``: keep rows above the threshold.

    ``keep``: class indices allowed to produce boxes (``None``: every class).
    """
    if output.ndim != 2 or output.shape[1] != 6:
        raise ValueError(f"end-to-end output must be (K, 6), got {tuple(output.shape)}")
    rows = output[output[:, 4] >= score_threshold]
    classes = rows[:, 5]
    valid = (classes >= 0) & (classes < num_classes) & (rows[:, 2] > rows[:, 0])
    if keep is not None:
        valid &= np.isin(classes, keep)
    out: FloatArray = rows[valid].astype(np.float32)
    return out
