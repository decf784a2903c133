"""Reading licence plates for parking events: find the plate, read it with one ONNX model.

Finding: the plate is searched for in the lower part of the car's box as a plate-coloured
(blue, green or yellow) patch of plate proportions; the largest few are tried in turn.
Reading: PaddleOCR's PP-OCRv4 text-line recogniser (Apache-2.0, shipped in
``models/plate-ocr`` with its licence and provenance): the patch is resized to the model's
input height and scaled to [-1, 1], run once, and the per-column class probabilities are
decoded greedily (argmax per column, repeats collapsed, blanks dropped, CTC style) through
the character list stored in the model's metadata. One onnxruntime session, created on the
first plate; nothing is downloaded.

Limits: a white or black plate, or a plate on a car of its own colour, is not found.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt
import yaml

from edge_agent.protocol import Plate
from edge_agent.vision.errors import ModelError
from edge_agent.vision.frames import Box, Image
from edge_agent.vision.manifest import MANIFEST_NAME

__all__ = [
    "REC_HEIGHT",
    "REC_MODEL_FILE",
    "OnnxPlateReader",
    "PlateReader",
    "ctc_greedy",
    "default_plate_model",
    "make_plate_reader",
    "normalise_plate",
    "plate_regions",
]

logger = logging.getLogger(__name__)

_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤川琼青藏宁使领警学港澳"
_PLATE_RE = re.compile(rf"([{_PROVINCES}])([A-Z])([A-Z0-9]{{5,6}})")
#: The recogniser's file in a plate model folder.
REC_MODEL_FILE = "ch_PP-OCRv4_rec_infer.onnx"
#: Input height of the recogniser where its model leaves it open (PP-OCRv4 is trained at 48).
REC_HEIGHT = 48
#: Plate colours in OpenCV's HSV (hue 0-180): yellow (about 25) through green to blue
#: (about 105), saturated and not dark.
PLATE_HSV_LOW = (15, 90, 60)
PLATE_HSV_HIGH = (130, 255, 255)
#: Width over height of a plate patch (a plate is 440 x 140 mm: 3.1), with room for tilt.
MIN_ASPECT, MAX_ASPECT = 1.5, 8.0
#: Smallest patch height in pixels worth reading.
MIN_PLATE_PX = 8
#: Candidate patches read per car, largest first.
MAX_CANDIDATES = 3

FloatArray = npt.NDArray[np.float32]
PixelBox = tuple[int, int, int, int]


def normalise_plate(text: str) -> str | None:
    """Find a Chinese plate in OCR text and return it as ``浙J·A12345``, else None."""
    cleaned = re.sub(r"[^0-9A-Z\u4e00-\u9fff]", "", text.upper().replace("O", "0"))
    # OCR reads the letter after the province as a digit now and then; plates never have one.
    match = _PLATE_RE.search(cleaned)
    if match is None:
        return None
    prov, letter, tail = match.groups()
    return f"{prov}{letter}·{tail}"


def plate_regions(crop: Image, limit: int = MAX_CANDIDATES) -> list[PixelBox]:
    """Plate-coloured patches of plate proportions in ``crop``, largest first, as
    ``(x, y, width, height)`` pixel boxes."""
    hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV)
    mask = cv2.inRange(hsv, PLATE_HSV_LOW, PLATE_HSV_HIGH)
    # Close the gaps the characters cut into the plate's colour.
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (5, 3))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    found = []
    for i in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[i])
        if h < MIN_PLATE_PX or not MIN_ASPECT * h <= w <= MAX_ASPECT * h:
            continue
        if area < 0.4 * w * h:  # a ragged blob, not a rectangle
            continue
        found.append((area, (x, y, w, h)))
    found.sort(key=lambda item: -item[0])
    return [box for _, box in found[:limit]]


def line_tensor(patch: Image, height: int) -> FloatArray:
    """``patch`` as the recogniser's ``(1, 3, height, W)`` input: BGR scaled to [-1, 1]."""
    h, w = patch.shape[:2]
    width = max(height // 3, round(height * w / h))
    resized = cv2.resize(patch, (width, height), interpolation=cv2.INTER_LINEAR)
    tensor = resized.astype(np.float32).transpose(2, 0, 1)[None]
    tensor *= 2.0 / 255.0
    tensor -= 1.0
    return np.ascontiguousarray(tensor)


def ctc_greedy(probs: FloatArray, charset: Sequence[str]) -> tuple[str, float]:
    """Greedy CTC decoding of ``(columns, classes)`` probabilities: the most likely class
    per column, repeats collapsed, class 0 (the blank) dropped; the text and the mean
    probability of its characters (0.0 for no text). ``charset[k]`` is class ``k``."""
    best = probs.argmax(axis=1)
    conf = probs.max(axis=1)
    keep = best != 0
    keep[1:] &= best[1:] != best[:-1]
    text = "".join(charset[int(k)] for k in best[keep])
    return text, float(conf[keep].mean()) if keep.any() else 0.0


class PlateReader(Protocol):
    """Reads the plate of a car in a frame."""

    def read(self, image: Image, car_box: Box) -> Plate | None:
        """The plate of the car at normalised ``car_box`` in ``image``, or None."""
        ...


class _Recogniser:
    """The onnxruntime session of the text-line model and its character list."""

    def __init__(self, model: Path, threads: int) -> None:
        import onnxruntime as ort  # heavy: only when the first plate is read

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.enable_mem_pattern = False  # every plate has its own width
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(model), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises bare Fail/InvalidGraph types
            raise ModelError(f"cannot load plate model {model}: {exc}") from exc
        inputs = self._session.get_inputs()
        chars = self._session.get_modelmeta().custom_metadata_map.get("character", "")
        shape = inputs[0].shape if len(inputs) == 1 else []
        if len(shape) != 4 or not chars:
            raise ModelError(
                f"plate model {model} is not a text-line recogniser with its character list "
                f"(inputs {[(i.name, i.shape) for i in inputs]})"
            )
        self._input = inputs[0].name
        self.height = shape[2] if isinstance(shape[2], int) else REC_HEIGHT
        # Class 0 is the CTC blank and the last class a space, around the stored list.
        self.charset = ["", *chars.splitlines(), " "]

    def read(self, patch: Image) -> tuple[str, float]:
        out: list[Any] = self._session.run(None, {self._input: line_tensor(patch, self.height)})
        return ctc_greedy(np.asarray(out[0][0], dtype=np.float32), self.charset)


class OnnxPlateReader:
    """A :class:`PlateReader` on one text-line recognition model (``models/plate-ocr``).

    ``model`` is the model folder or its ``.onnx`` file; it is checked now and loaded on
    the first plate, so units that never see a parked car never pay its memory.
    """

    def __init__(self, model: Path | None = None, threads: int = 1) -> None:
        path = model if model is not None else default_plate_model()
        if path.is_dir():
            path = _checked(path)
        if not path.is_file():
            raise ModelError(f"plate model {path} does not exist")
        self._model = path
        self._threads = threads
        self._rec: _Recogniser | None = None
        self._lock = threading.Lock()

    def read(self, image: Image, car_box: Box) -> Plate | None:
        """Crop the lower part of the car (where plates sit), find the plate, read it."""
        h, w = image.shape[:2]
        x1, y1, x2, y2 = car_box
        bw, bh = x2 - x1, y2 - y1
        left = int(max(0.0, x1 - 0.05 * bw) * w)
        right = int(min(1.0, x2 + 0.05 * bw) * w)
        top = int(max(0.0, y1 + 0.3 * bh) * h)
        bottom = int(min(1.0, y2 + 0.05 * bh) * h)
        if right - left < 8 or bottom - top < 8:
            return None
        crop = image[top:bottom, left:right]
        with self._lock:
            if self._rec is None:
                self._rec = _Recogniser(self._model, self._threads)
            rec = self._rec
            for x, y, pw, ph in plate_regions(crop):
                pad = max(2, ph // 8)  # the recogniser reads best with a margin round the text
                patch = crop[max(0, y - pad) : y + ph + pad, max(0, x - pad) : x + pw + pad].copy()
                text, score = rec.read(patch)
                plate = normalise_plate(text)
                if plate is not None:
                    return Plate(text=plate, score=max(0.0, min(1.0, score)))
                logger.debug("no plate in OCR text %r", text)
        return None


def _checked(folder: Path) -> Path:
    """The model file of a plate model folder, checked against its ``manifest.yaml``.

    Without a manifest the file is :data:`REC_MODEL_FILE`, unchecked. With one, its
    ``file`` is hashed in chunks (no copy of the model stays in memory) and a sha256 that
    does not match is a :class:`ModelError` naming both.
    """
    manifest = folder / MANIFEST_NAME
    if not manifest.is_file():
        return folder / REC_MODEL_FILE
    try:
        meta = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ModelError(f"cannot read {manifest}: {exc}") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("file", REC_MODEL_FILE), str):
        raise ModelError(f"{manifest}: expected a mapping with a 'file' name")
    path: Path = folder / str(meta.get("file", REC_MODEL_FILE))
    want = meta.get("sha256")
    if want is None or not path.is_file():
        return path
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise ModelError(f"cannot read plate model {path}: {exc}") from exc
    if digest.hexdigest() != str(want):
        raise ModelError(
            f"plate model {path} is corrupt: sha256 {digest.hexdigest()[:12]}... does not "
            f"match {manifest.name}'s {str(want)[:12]}..."
        )
    return path


def default_plate_model() -> Path:
    """The plate model shipped in the checkout: ``models/plate-ocr`` beside ``edge_agent``."""
    return Path(__file__).resolve().parents[2] / "models" / "plate-ocr"


def make_plate_reader(model: Path | None = None) -> PlateReader | None:
    """A plate reader on ``model`` (default: the shipped one), or None when it is missing."""
    try:
        return OnnxPlateReader(model)
    except ModelError as exc:
        logger.warning("%s: parking events go out without a plate", exc)
        return None
