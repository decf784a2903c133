"""Pure geometry: box overlaps and point-in-polygon for zones."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge_agent.vision.frames import Box

__all__ = ["Polygon", "bottom_centre", "box_iou", "iou_matrix"]

FloatArray = npt.NDArray[np.float32]


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``x1, y1, x2, y2`` boxes (0 when disjoint)."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def iou_matrix(a: FloatArray, b: FloatArray) -> FloatArray:
    """Pairwise IoU of boxes ``a (N, 4)`` and ``b (M, 4)`` as an ``(N, M)`` array."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    out: FloatArray = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)
    return out


def bottom_centre(box: Box) -> tuple[float, float]:
    """The point that decides zone membership: the middle of the box's bottom edge."""
    return ((box[0] + box[2]) / 2.0, box[3])


@dataclass(frozen=True)
class Polygon:
    """A simple polygon in normalised image coordinates."""

    points: tuple[tuple[float, float], ...]

    @classmethod
    def of(cls, points: Sequence[Sequence[float]]) -> Polygon:
        """Build from any sequence of ``(x, y)`` pairs."""
        return cls(tuple((float(p[0]), float(p[1])) for p in points))

    def contains(self, x: float, y: float) -> bool:
        """True when ``(x, y)`` is inside the polygon or on its boundary (even-odd rule)."""
        pts = self.points
        n = len(pts)
        inside = False
        j = n - 1
        for i in range(n):
            xi, yi = pts[i]
            xj, yj = pts[j]
            # On an edge counts as inside: a box resting on a zone's line is in the zone.
            if (
                min(xi, xj) <= x <= max(xi, xj)
                and min(yi, yj) <= y <= max(yi, yj)
                and abs((xj - xi) * (y - yi) - (yj - yi) * (x - xi)) < 1e-12
            ):
                return True
            if (yi > y) != (yj > y):
                x_cross = xi + (y - yi) * (xj - xi) / (yj - yi)
                if x < x_cross:
                    inside = not inside
            j = i
        return inside

    def contains_box(self, box: Box) -> bool:
        """True when the bottom-centre of ``box`` is inside the polygon."""
        x, y = bottom_centre(box)
        return self.contains(x, y)
