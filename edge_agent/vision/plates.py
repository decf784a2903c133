"""Reading licence plates for parking events, with the OCR engine of the ``ocr`` extra.

The engine is RapidOCR (``rapidocr_onnxruntime``, Apache-2.0), whose models ship inside
its wheel; nothing is downloaded. When it is not installed, :func:`make_plate_reader`
returns None and parking events go out without a plate.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import threading
from typing import Any, Protocol

import cv2
import numpy as np

from edge_agent.protocol import Plate
from edge_agent.vision.frames import Box, Image, as_image

__all__ = ["PlateReader", "RapidOcrPlateReader", "make_plate_reader", "normalise_plate"]

logger = logging.getLogger(__name__)

_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤川琼青藏宁使领警学港澳"
_PLATE_RE = re.compile(rf"([{_PROVINCES}])([A-Z])([A-Z0-9]{{5,6}})")
#: Crops smaller than this many pixels in height are upscaled before OCR.
MIN_CROP_HEIGHT = 120
#: Longest side the text detector works at: plenty for a car crop, and it keeps the
#: OCR's memory near 130 MB instead of 370 MB (RapidOCR's default scales the short side
#: up to 736 px).
DET_MAX_SIDE = 480


def normalise_plate(text: str) -> str | None:
    """Find a Chinese plate in OCR text and return it as ``浙J·A12345``, else None."""
    cleaned = re.sub(r"[^0-9A-Z\u4e00-\u9fff]", "", text.upper().replace("O", "0"))
    # OCR reads the letter after the province as a digit now and then; plates never have one.
    match = _PLATE_RE.search(cleaned)
    if match is None:
        return None
    prov, letter, tail = match.groups()
    return f"{prov}{letter}·{tail}"


class PlateReader(Protocol):
    """Reads the plate of a car in a frame."""

    def read(self, image: Image, car_box: Box) -> Plate | None:
        """The plate of the car at normalised ``car_box`` in ``image``, or None."""
        ...


class RapidOcrPlateReader:
    """A :class:`PlateReader` on RapidOCR: text detection then recognition on the car crop."""

    def __init__(self, threads: int = 1) -> None:
        if importlib.util.find_spec("rapidocr_onnxruntime") is None:
            raise ImportError("rapidocr_onnxruntime is not installed")
        self._threads = threads
        self._engine: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        # Loaded on the first plate, not at start: units that never see a parked car
        # never pay the OCR's memory.
        from rapidocr_onnxruntime import RapidOCR  # optional extra: imported only when used

        t = self._threads
        return RapidOCR(
            det_limit_side_len=DET_MAX_SIDE,
            det_limit_type="max",
            use_cls=False,  # plates are upright
            intra_op_num_threads=t,
            inter_op_num_threads=1,
            det_intra_op_num_threads=t,
            rec_intra_op_num_threads=t,
            cls_intra_op_num_threads=t,
        )

    def read(self, image: Image, car_box: Box) -> Plate | None:
        """Crop the car (plates sit in its lower part), OCR it, and parse a plate."""
        h, w = image.shape[:2]
        x1, y1, x2, y2 = car_box
        bw, bh = x2 - x1, y2 - y1
        left = int(max(0.0, x1 - 0.05 * bw) * w)
        right = int(min(1.0, x2 + 0.05 * bw) * w)
        top = int(max(0.0, y1 + 0.3 * bh) * h)
        bottom = int(min(1.0, y2 + 0.05 * bh) * h)
        if right - left < 8 or bottom - top < 8:
            return None
        crop = np.ascontiguousarray(image[top:bottom, left:right])
        if crop.shape[0] < MIN_CROP_HEIGHT:
            factor = MIN_CROP_HEIGHT / crop.shape[0]
            crop = as_image(
                cv2.resize(crop, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
            )
        with self._lock:
            if self._engine is None:
                self._engine = self._load()
            result, _ = self._engine(crop)
        if not result:
            return None
        # Join pieces left to right: the province character often comes out as its own box.
        pieces = sorted(result, key=lambda r: min(p[0] for p in r[0]))
        text = "".join(str(r[1]) for r in pieces)
        plate = normalise_plate(text)
        if plate is None:
            logger.debug("no plate in OCR text %r", text)
            return None
        score = float(min(float(r[2]) for r in pieces))
        return Plate(text=plate, score=max(0.0, min(1.0, score)))


def make_plate_reader() -> PlateReader | None:
    """A RapidOCR plate reader, or None when the ``ocr`` extra is not installed."""
    try:
        return RapidOcrPlateReader()
    except ImportError:
        logger.warning("rapidocr_onnxruntime is not installed (the 'ocr' extra): no plates read")
        return None
