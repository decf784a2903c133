"""The live view's frame encoder: resize to a width, then JPEG (OpenCV)."""

from __future__ import annotations

import cv2

from edge_agent.vision.errors import VisionError
from edge_agent.vision.frames import Image

__all__ = ["encode_live"]


def encode_live(image: Image, width: int, quality: int) -> tuple[bytes, int, int]:
    """``image`` scaled down to ``width`` pixels (never up) as a JPEG of ``quality``.

    Returns ``(jpeg, width, height)``; raises :class:`VisionError` if OpenCV fails.
    """
    h, w = int(image.shape[0]), int(image.shape[1])
    if w > width:
        height = max(1, round(h * width / w))
        small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        w, h = width, height
    else:
        small = image
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise VisionError("OpenCV could not encode the live frame")
    return buf.tobytes(), w, h
