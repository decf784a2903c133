"""Values that flow between the pipeline's stages: frames and detections."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

__all__ = ["Box", "Detection", "Frame", "Image", "as_image"]

#: A box as normalised ``x1, y1, x2, y2`` (0..1, x right, y down).
Box = tuple[float, float, float, float]
#: A BGR uint8 image, ``(height, width, 3)``.
Image = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class Detection:
    """One detected object: its label, score and normalised box.

    ``model`` names the box's model that saw it (``general``) when a box runs several;
    empty when there is one model or the source is a fake.
    """

    label: str
    score: float
    box: Box
    model: str = ""


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured frame, stamped with its capture time.

    ``ts`` is the capture time: the wall clock for live sources, the scenario's or the
    video's own clock in replays. ``truth`` carries a simulator's ground-truth objects
    when the source knows them (the fake detector returns them as detections).
    """

    camera_id: str
    index: int
    ts: datetime
    image: Image
    truth: tuple[Detection, ...] | None = field(default=None, repr=False)

    @property
    def width(self) -> int:
        """Image width in pixels."""
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        """Image height in pixels."""
        return int(self.image.shape[0])


def as_image(array: object) -> Image:
    """View an OpenCV result as an :data:`Image` (no copy when it already is uint8)."""
    return np.asarray(array, dtype=np.uint8)
