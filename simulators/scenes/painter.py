"""Drawing primitives that remember the exact extent of what they drew.

Every object is drawn through a :class:`Painter`; its :meth:`Painter.box` is then the
object's ground-truth box, so labels never drift from pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

Color = tuple[int, int, int]
Image = npt.NDArray[np.uint8]
Box = tuple[float, float, float, float]

_SHIFT = 3
_ONE = 1 << _SHIFT


def _fixed(pts: npt.ArrayLike) -> npt.NDArray[np.int32]:
    return np.round(np.asarray(pts, dtype=np.float64) * _ONE).astype(np.int32).reshape(-1, 1, 2)


class Painter:
    """Draws anti-aliased shapes on a BGR image and tracks their union bounding box."""

    def __init__(self, image: Image) -> None:
        self.image = image
        self._x1 = math.inf
        self._y1 = math.inf
        self._x2 = -math.inf
        self._y2 = -math.inf

    def _grow(self, x1: float, y1: float, x2: float, y2: float) -> None:
        self._x1 = min(self._x1, x1)
        self._y1 = min(self._y1, y1)
        self._x2 = max(self._x2, x2)
        self._y2 = max(self._y2, y2)

    def poly(self, pts: npt.ArrayLike, color: Color, *, track: bool = True) -> None:
        """Fill a polygon given as ``(N, 2)`` pixel coordinates."""
        arr = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        cv2.fillPoly(self.image, [_fixed(arr)], color, cv2.LINE_AA, _SHIFT)
        if track:
            self._grow(arr[:, 0].min(), arr[:, 1].min(), arr[:, 0].max(), arr[:, 1].max())

    def rect(self, x1: float, y1: float, x2: float, y2: float, color: Color) -> None:
        """Fill an axis-aligned rectangle."""
        self.poly([(x1, y1), (x2, y1), (x2, y2), (x1, y2)], color)

    def circle(self, cx: float, cy: float, r: float, color: Color) -> None:
        """Fill a circle."""
        r = max(r, 0.5)
        cv2.circle(
            self.image,
            (round(cx * _ONE), round(cy * _ONE)),
            round(r * _ONE),
            color,
            -1,
            cv2.LINE_AA,
            _SHIFT,
        )
        self._grow(cx - r, cy - r, cx + r, cy + r)

    def ellipse(
        self, cx: float, cy: float, rx: float, ry: float, color: Color, angle: float = 0.0
    ) -> None:
        """Fill an axis-aligned (or rotated by ``angle`` degrees) ellipse."""
        rx, ry = max(rx, 0.5), max(ry, 0.5)
        cv2.ellipse(
            self.image,
            (round(cx * _ONE), round(cy * _ONE)),
            (round(rx * _ONE), round(ry * _ONE)),
            angle,
            0,
            360,
            color,
            -1,
            cv2.LINE_AA,
            _SHIFT,
        )
        r = max(rx, ry) if angle else 0.0
        if angle:
            self._grow(cx - r, cy - r, cx + r, cy + r)
        else:
            self._grow(cx - rx, cy - ry, cx + rx, cy + ry)

    def line(
        self,
        p1: Sequence[float],
        p2: Sequence[float],
        color: Color,
        width: float,
        *,
        track: bool = True,
    ) -> None:
        """Draw a thick line (as a polygon, so its width is sub-pixel exact)."""
        x1, y1, x2, y2 = float(p1[0]), float(p1[1]), float(p2[0]), float(p2[1])
        dx, dy = x2 - x1, y2 - y1
        n = math.hypot(dx, dy) or 1.0
        hx, hy = -dy / n * width / 2.0, dx / n * width / 2.0
        self.poly(
            [(x1 + hx, y1 + hy), (x2 + hx, y2 + hy), (x2 - hx, y2 - hy), (x1 - hx, y1 - hy)],
            color,
            track=track,
        )

    def paste(self, patch: Image, x: int, y: int) -> None:
        """Copy ``patch`` with its top-left corner at ``(x, y)``, clipped to the image."""
        h, w = patch.shape[:2]
        ih, iw = self.image.shape[:2]
        x1, y1, x2, y2 = max(x, 0), max(y, 0), min(x + w, iw), min(y + h, ih)
        if x2 <= x1 or y2 <= y1:
            return
        self.image[y1:y2, x1:x2] = patch[y1 - y : y2 - y, x1 - x : x2 - x]
        self._grow(x, y, x + w, y + h)

    def box(self) -> Box | None:
        """Union box of everything drawn so far, clipped to the image; None if off-screen."""
        if not math.isfinite(self._x1):
            return None
        ih, iw = self.image.shape[:2]
        x1, y1 = max(self._x1, 0.0), max(self._y1, 0.0)
        x2, y2 = min(self._x2, float(iw)), min(self._y2, float(ih))
        if x2 - x1 < 1.0 or y2 - y1 < 1.0:
            return None
        return (x1, y1, x2, y2)

    def raw_box(self) -> Box | None:
        """Union box before clipping to the image."""
        if not math.isfinite(self._x1):
            return None
        return (self._x1, self._y1, self._x2, self._y2)


def shade(color: Color, factor: float) -> Color:
    """Darken (factor < 1) or lighten (factor > 1) a BGR colour."""
    return (
        min(255, max(0, round(color[0] * factor))),
        min(255, max(0, round(color[1] * factor))),
        min(255, max(0, round(color[2] * factor))),
    )
