"""Reading licence plates for parking events: find the plate, rectify it, read it.

Finding: PaddleOCR's PP-OCRv4 text detector (DB, Apache-2.0, shipped in
``models/plate-ocr`` beside the recogniser) marks text in the lower part of the car's box;
each text line of plate proportions becomes a rotated rectangle, widened by the DB "unclip"
margin, and is warped upright (:func:`cv2.getPerspectiveTransform`) to the recogniser's
height. Plate-coloured patches (blue, green, yellow) are tried as well when the detector's
lines give no plate. So white, black and tilted plates are found, and a plate on a car of
its own colour too.

Reading: PaddleOCR's PP-OCRv4 text-line recogniser: the upright line is scaled to
[-1, 1], run once, and the per-column class probabilities are decoded greedily (argmax per
column, repeats collapsed, blanks dropped, CTC style) through the character list stored in
the model's metadata. The plate format then picks among the candidates (a reading that is
not a plate is dropped), never inventing a character: where the first character is not a
province, the likeliest province the model itself gave at that position may stand in.

A city may set a soft prior (``vision.evidence.plate_prior``, e.g. ``浙J``): where the
model is unsure of the province (or city letter) and the prior's character is among its
plausible alternatives there, the prior's is taken; a confident reading is never changed.

Both models load on the first plate (one onnxruntime session each); nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
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
    "DET_MODEL_FILE",
    "PROVINCES",
    "REC_HEIGHT",
    "REC_MODEL_FILE",
    "CharReading",
    "OnnxPlateReader",
    "PlatePrior",
    "PlateReader",
    "apply_prior",
    "ctc_greedy",
    "ctc_read",
    "default_plate_model",
    "det_boxes",
    "det_tensor",
    "line_tensor",
    "make_plate_reader",
    "normalise_plate",
    "plate_from_probs",
    "plate_regions",
    "rectify",
]

logger = logging.getLogger(__name__)

#: The province characters that start a plate.
PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤川琼青藏宁"
_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
#: Province, city letter, then five alphanumerics (blue, yellow), six (green, new energy),
#: or four and a closing character: police (警), learner (学), trailer (挂), Hong Kong (港)
#: and Macao (澳) cars.
_PLATE_RE = re.compile(
    rf"([{PROVINCES}])([A-Z])([A-Z0-9]{{6}}|[A-Z0-9]{{5}}|[A-Z0-9]{{4}}[警学挂港澳])"
)
#: The recogniser's file in a plate model folder.
REC_MODEL_FILE = "ch_PP-OCRv4_rec_infer.onnx"
#: The text detector's file in a plate model folder (optional: without it only colour).
DET_MODEL_FILE = "ch_PP-OCRv4_det_infer.onnx"
#: Input height of the recogniser where its model leaves it open (PP-OCRv4 is trained at 48).
REC_HEIGHT = 48
#: The detector's input: BGR, ImageNet mean and spread (PaddleOCR's ``NormalizeImage``).
DET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
DET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
#: The crop's longer side is scaled into this range (a multiple of 32) for the detector:
#: small crops are enlarged so plate text is a dozen pixels high, large ones shrunk to
#: bound the cost.
DET_MIN_SIDE, DET_MAX_SIDE = 256, 480
#: Text probability threshold of the detector's map and DB's unclip ratio (the detector
#: marks a shrunk text core; the box grows by area * ratio / perimeter).
DET_THRESHOLD = 0.3
UNCLIP_RATIO = 1.6
#: Margin added at both ends of a detected line, in line heights.
LINE_PAD = 0.3
#: Plate colours in OpenCV's HSV (hue 0-180): yellow (about 25) through green to blue
#: (about 105), saturated and not dark.
PLATE_HSV_LOW = (15, 90, 60)
PLATE_HSV_HIGH = (130, 255, 255)
#: Width over height of a plate patch (a plate is 440 x 140 mm: 3.1), with room for tilt.
MIN_ASPECT, MAX_ASPECT = 1.5, 8.0
#: Width over height of a detected text line of a plate (its characters alone).
MIN_LINE_ASPECT, MAX_LINE_ASPECT = 2.0, 12.0
#: Smallest patch height in pixels worth reading.
MIN_PLATE_PX = 8
#: Candidate lines or patches read per car, likeliest first.
MAX_CANDIDATES = 3
#: A reading this confident is not read again from another candidate.
GOOD_ENOUGH = 0.9
#: A character the model gives at least this probability is a plausible alternative.
MIN_ALTERNATIVE = 0.05
#: A province (or letter) read with at least this probability is never changed by a prior.
PRIOR_CONFIDENT = 0.9

FloatArray = npt.NDArray[np.float32]
PixelBox = tuple[int, int, int, int]
Quad = npt.NDArray[np.float32]


def normalise_plate(text: str) -> str | None:
    """Find a Chinese plate in OCR text and return it as ``浙J·A12345``, else None."""
    cleaned = re.sub(r"[^0-9A-Z\u4e00-\u9fff]", "", text.upper().replace("O", "0"))
    match = _PLATE_RE.search(cleaned)
    if match is None:
        return None
    prov, letter, tail = match.groups()
    return f"{prov}{letter}·{tail}"


@dataclass(frozen=True)
class PlatePrior:
    """A city's soft prior on the plates it sees: the province and, optionally, the city
    letter (``浙`` and ``J`` for Huangyan). ``weight`` is how many times likelier than the
    model's own top character the prior's must be made to win (its probability times
    ``weight`` at least the top one's); a top character read with
    :data:`PRIOR_CONFIDENT` or more always stays."""

    province: str
    letter: str | None = None
    weight: float = 4.0

    @classmethod
    def parse(cls, prefix: str, weight: float = 4.0) -> PlatePrior:
        """``浙`` or ``浙J`` as a prior; a ValueError for anything else."""
        if not re.fullmatch(rf"[{PROVINCES}][{_LETTERS}]?", prefix) or weight < 1.0:
            raise ValueError(
                f"plate prior {prefix!r} (weight {weight}) is not a province character, "
                "optionally with a city letter, with a weight of 1 or more"
            )
        return cls(prefix[0], prefix[1] if len(prefix) > 1 else None, weight)


def apply_prior(top: str, top_p: float, prior: str, prior_p: float, weight: float) -> str:
    """The character to keep at one position: the model's ``top`` (probability ``top_p``)
    unless it is unsure (below :data:`PRIOR_CONFIDENT`), the ``prior`` character is a
    plausible alternative there (``prior_p`` at least :data:`MIN_ALTERNATIVE`) and
    ``prior_p * weight`` reaches ``top_p``."""
    if top == prior or top_p >= PRIOR_CONFIDENT or prior_p < MIN_ALTERNATIVE:
        return top
    return prior if prior_p * weight >= top_p else top


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


def _ordered(points: npt.NDArray[Any]) -> Quad:
    """Four corners as top-left, top-right, bottom-right, bottom-left (the long side
    horizontal, so a line tilted past 45 degrees is not read on its side)."""
    pts = np.asarray(points, dtype=np.float32).reshape(4, 2)
    centre = pts.mean(axis=0)
    angles = np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0])
    pts = pts[np.argsort(angles)]  # clockwise in image coordinates, from the left
    # The top edge is the upper of the two long ones; it starts the clockwise order.
    edges = np.linalg.norm(np.roll(pts, -1, axis=0) - pts, axis=1)
    first = 0 if edges[0] + edges[2] >= edges[1] + edges[3] else 1
    start = min((first, first + 2), key=lambda s: float(pts[s, 1] + pts[(s + 1) % 4, 1]))
    return np.ascontiguousarray(np.roll(pts, -start, axis=0))


def det_boxes(
    prob: FloatArray, threshold: float = DET_THRESHOLD, unclip: float = UNCLIP_RATIO
) -> list[tuple[Quad, float]]:
    """Text lines in a DB probability map: each region above ``threshold`` as a rotated
    rectangle grown by ``area * unclip / perimeter`` on every side, its corners ordered
    (see :func:`_ordered`) in map pixels, with the mean probability inside; likeliest and
    largest first."""
    mask = (prob > threshold).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    found: list[tuple[float, Quad, float]] = []
    for contour in contours:
        (cx, cy), (w, h), angle = cv2.minAreaRect(contour)
        if min(w, h) < 2:
            continue
        fill = np.zeros_like(mask)
        cv2.drawContours(fill, [contour], 0, 1, -1)
        score = float(cv2.mean(prob, fill)[0])
        grow = w * h * unclip / (2 * (w + h))
        quad = _ordered(cv2.boxPoints(((cx, cy), (w + 2 * grow, h + 2 * grow), angle)))
        found.append((score * (w + 2 * grow) * (h + 2 * grow), quad, score))
    found.sort(key=lambda item: -item[0])
    return [(quad, score) for _, quad, score in found]


def rectify(image: Image, quad: Quad, height: int) -> Image:
    """The quadrilateral ``quad`` (ordered corners) of ``image`` warped upright to
    ``height`` pixels, its width keeping the quad's proportions."""
    top = float(np.linalg.norm(quad[1] - quad[0]))
    bottom = float(np.linalg.norm(quad[2] - quad[3]))
    left = float(np.linalg.norm(quad[3] - quad[0]))
    right = float(np.linalg.norm(quad[2] - quad[1]))
    width = max(height // 3, round(height * max(top, bottom) / max(1.0, (left + right) / 2)))
    dst = np.array([(0, 0), (width, 0), (width, height), (0, height)], np.float32)
    warp = cv2.getPerspectiveTransform(quad.astype(np.float32), dst)
    return np.asarray(
        cv2.warpPerspective(
            image, warp, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        ),
        dtype=np.uint8,
    )


def det_tensor(crop: Image) -> tuple[FloatArray, float, float]:
    """``crop`` as the detector's ``(1, 3, H, W)`` input (sides multiples of 32, the longer
    one within :data:`DET_MIN_SIDE`..:data:`DET_MAX_SIDE`) and the x and y scales from
    crop to input pixels."""
    h, w = crop.shape[:2]
    scale = min(max(h, w, DET_MIN_SIDE), DET_MAX_SIDE) / max(h, w)
    nw, nh = (max(32, round(side * scale / 32) * 32) for side in (w, h))
    resized = cv2.resize(crop, (nw, nh), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    resized -= np.array(DET_MEAN, np.float32)
    resized /= np.array(DET_STD, np.float32)
    return np.ascontiguousarray(resized.transpose(2, 0, 1)[None]), nw / w, nh / h


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
    chars = ctc_read(probs, charset)
    text = "".join(c.char for c in chars)
    return text, float(np.mean([c.prob for c in chars])) if chars else 0.0


@dataclass(frozen=True)
class CharReading:
    """One character of a greedy CTC reading: the character, its probability (in the first
    column it was read in) and those columns, ``start`` to ``end`` exclusive."""

    char: str
    prob: float
    start: int
    end: int


def ctc_read(probs: FloatArray, charset: Sequence[str]) -> list[CharReading]:
    """Greedy CTC decoding as :func:`ctc_greedy`, character by character with the columns
    each was read in (so alternatives at that position can be looked up)."""
    best = probs.argmax(axis=1)
    conf = probs.max(axis=1)
    out: list[CharReading] = []
    col = 0
    n = len(best)
    while col < n:
        k = int(best[col])
        end = col + 1
        while end < n and int(best[end]) == k:
            end += 1
        if k != 0:
            out.append(CharReading(charset[k], float(conf[col]), col, end))
        col = end
    return out


_PLATE_CHAR = re.compile(r"[0-9A-Za-z\u4e00-\u9fff]")


def _alternative(probs: FloatArray, char: CharReading, k: int) -> float:
    """The probability class ``k`` had where ``char`` was read (its best column)."""
    return float(probs[char.start : char.end, k].max())


def plate_from_probs(
    probs: FloatArray,
    charset: Sequence[str],
    prior: PlatePrior | None = None,
    index: dict[str, int] | None = None,
) -> tuple[str, float] | None:
    """The plate in one line's ``(columns, classes)`` probabilities as ``浙J·A12345`` and
    its score (the mean probability of its characters), or None.

    The greedy reading is kept where it is a plate. Where it is not, only the first two
    positions may change, each to the likeliest character of the right kind (a province,
    then a letter) that the model itself gave at that position at least
    :data:`MIN_ALTERNATIVE`; then ``prior`` may change them as :func:`apply_prior` says.
    Nothing is added or dropped. ``index`` maps characters to classes (built from
    ``charset`` when not given).
    """
    if index is None:
        index = {c: k for k, c in enumerate(charset) if c}
    chars = [c for c in ctc_read(probs, charset) if _PLATE_CHAR.fullmatch(c.char)]
    texts = [c.char.upper().replace("O", "0") for c in chars]
    probs_of = [c.prob for c in chars]

    def best_of(pos: int, allowed: str) -> None:
        if texts[pos] in allowed:
            return
        options = [(_alternative(probs, chars[pos], index[a]), a) for a in allowed if a in index]
        p, best = max(options, default=(0.0, ""))
        if p >= MIN_ALTERNATIVE:
            texts[pos], probs_of[pos] = best, p

    for start in range(len(texts) - 6):
        saved = list(texts), list(probs_of)
        best_of(start, PROVINCES)
        best_of(start + 1, _LETTERS)
        match = _PLATE_RE.match("".join(texts[start:]))
        if match is None:  # undo the substitutions: this start is not a plate
            texts[:], probs_of[:] = saved
            continue
        if prior is not None:
            wanted = [(start, prior.province)]
            if prior.letter is not None:
                wanted.append((start + 1, prior.letter))
            for pos, want in wanted:
                if want not in index:
                    continue
                p = _alternative(probs, chars[pos], index[want])
                kept = apply_prior(texts[pos], probs_of[pos], want, p, prior.weight)
                if kept != texts[pos]:
                    logger.debug(
                        "plate prior: %s (%.2f) read as %s (%.2f)",
                        texts[pos],
                        probs_of[pos],
                        want,
                        p,
                    )
                    texts[pos], probs_of[pos] = kept, p
        plate = normalise_plate("".join(texts[start : start + match.end()]))
        if plate is None:  # pragma: no cover - the match above is a plate
            return None
        return plate, float(np.mean(probs_of[start : start + match.end()]))
    return None


class PlateReader(Protocol):
    """Reads the plate of a car in a frame."""

    def read(self, image: Image, car_box: Box) -> Plate | None:
        """The plate of the car at normalised ``car_box`` in ``image``, or None."""
        ...


def _session(model: Path, threads: int) -> Any:
    """An onnxruntime CPU session on ``model``; a :class:`ModelError` when it will not load."""
    import onnxruntime as ort  # heavy: only when the first plate is read

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_mem_pattern = False  # every plate and crop has its own size
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises bare Fail/InvalidGraph types
        raise ModelError(f"cannot load plate model {model}: {exc}") from exc


class _Recogniser:
    """The onnxruntime session of the text-line model and its character list."""

    def __init__(self, model: Path, threads: int) -> None:
        self._session = _session(model, threads)
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
        self.index = {c: k for k, c in enumerate(self.charset) if c}

    def probs(self, patch: Image) -> FloatArray:
        """The ``(columns, classes)`` probabilities of one upright text line."""
        out: list[Any] = self._session.run(None, {self._input: line_tensor(patch, self.height)})
        return np.asarray(out[0][0], dtype=np.float32)


class _Detector:
    """The onnxruntime session of the DB text detector."""

    def __init__(self, model: Path, threads: int) -> None:
        self._session = _session(model, threads)
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ModelError(f"plate model {model} is not a one-input text detector")
        self._input = inputs[0].name

    def lines(self, crop: Image) -> list[tuple[Quad, float]]:
        """Text lines of plate proportions in ``crop`` as ordered quads in crop pixels."""
        tensor, sx, sy = det_tensor(crop)
        out: list[Any] = self._session.run(None, {self._input: tensor})
        found: list[tuple[Quad, float]] = []
        prob = np.asarray(out[0][0, 0], dtype=np.float32)
        for line, score in det_boxes(prob, DET_THRESHOLD, UNCLIP_RATIO):
            corners = line / np.array([sx, sy], np.float32)
            height = float(np.linalg.norm(corners[3] - corners[0]))
            width = float(np.linalg.norm(corners[1] - corners[0]))
            if not (
                height >= MIN_PLATE_PX
                and MIN_LINE_ASPECT * height <= width <= MAX_LINE_ASPECT * height
            ):
                continue
            # A margin along the line: the province at its start is easily cut short.
            along = (corners[1] - corners[0]) / max(width, 1e-6) * LINE_PAD * height
            grown = corners + np.stack([-along, along, along, -along])
            found.append((np.asarray(grown, dtype=np.float32), score))
        return found


class OnnxPlateReader:
    """A :class:`PlateReader` on the text detector and recogniser of ``models/plate-ocr``.

    ``model`` is the model folder or the recogniser's ``.onnx`` file; it is checked now
    and loaded on the first plate, so units that never see a parked car never pay its
    memory. The detector is the folder's :data:`DET_MODEL_FILE` (checked against the
    manifest too); without it plates are found by colour alone. ``prior`` is the city's
    soft prior (see :class:`PlatePrior`), none by default.
    """

    def __init__(
        self, model: Path | None = None, threads: int = 1, prior: PlatePrior | None = None
    ) -> None:
        path = model if model is not None else default_plate_model()
        det: Path | None = None
        if path.is_dir():
            path, det = _checked(path)
        if not path.is_file():
            raise ModelError(f"plate model {path} does not exist")
        self._model = path
        self._det_model = det
        self._threads = threads
        self._prior = prior
        self._rec: _Recogniser | None = None
        self._det: _Detector | None = None
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
                if self._det_model is not None:
                    self._det = _Detector(self._det_model, self._threads)
            return self._read_crop(crop, self._rec, self._det)

    def _read_crop(self, crop: Image, rec: _Recogniser, det: _Detector | None) -> Plate | None:
        best: tuple[str, float] | None = None
        for tried, quad in enumerate(self._candidates(crop, det), start=1):
            patch = rectify(crop, quad, rec.height)
            reading = plate_from_probs(rec.probs(patch), rec.charset, self._prior, rec.index)
            if reading is not None and (best is None or reading[1] > best[1]):
                best = reading
            if (best is not None and best[1] >= GOOD_ENOUGH) or tried >= MAX_CANDIDATES:
                break
        if best is None:
            return None
        return Plate(text=best[0], score=max(0.0, min(1.0, best[1])))

    @staticmethod
    def _candidates(crop: Image, det: _Detector | None) -> list[Quad]:
        """Detected text lines, then plate-coloured patches, as quads in crop pixels."""
        quads = [quad for quad, _ in det.lines(crop)] if det is not None else []
        for x, y, pw, ph in plate_regions(crop):
            pad = max(2, ph // 8)  # the recogniser reads best with a margin round the text
            quads.append(
                np.array(
                    [
                        (x - pad, y - pad),
                        (x + pw + pad, y - pad),
                        (x + pw + pad, y + ph + pad),
                        (x - pad, y + ph + pad),
                    ],
                    np.float32,
                )
            )
        return quads


def _sha256_ok(path: Path, want: object, manifest: Path) -> None:
    """A :class:`ModelError` naming both checksums unless ``path`` hashes to ``want``
    (hashed in chunks: no copy of the model stays in memory)."""
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


def _checked(folder: Path) -> tuple[Path, Path | None]:
    """The recogniser and detector files of a plate model folder, checked against its
    ``manifest.yaml``.

    Without a manifest they are :data:`REC_MODEL_FILE` and :data:`DET_MODEL_FILE` (the
    latter None when absent), unchecked. With one, its ``file`` (the recogniser) and
    ``det_file`` (the detector; none when the manifest names none) are each hashed and a
    sha256 (``sha256``, ``det_sha256``) that does not match is a :class:`ModelError`
    naming both.
    """
    manifest = folder / MANIFEST_NAME
    if not manifest.is_file():
        beside = folder / DET_MODEL_FILE
        return folder / REC_MODEL_FILE, beside if beside.is_file() else None
    try:
        meta = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ModelError(f"cannot read {manifest}: {exc}") from exc
    if (
        not isinstance(meta, dict)
        or not isinstance(meta.get("file", REC_MODEL_FILE), str)
        or not isinstance(meta.get("det_file", ""), str)
    ):
        raise ModelError(f"{manifest}: expected a mapping with a 'file' name")
    path: Path = folder / str(meta.get("file", REC_MODEL_FILE))
    if meta.get("sha256") is not None and path.is_file():
        _sha256_ok(path, meta["sha256"], manifest)
    det: Path | None = None
    if meta.get("det_file"):
        det = folder / str(meta["det_file"])
        if not det.is_file():
            raise ModelError(f"plate text detector {det} named in {manifest} does not exist")
        if meta.get("det_sha256") is not None:
            _sha256_ok(det, meta["det_sha256"], manifest)
    return path, det


def default_plate_model() -> Path:
    """The plate model shipped in the checkout: ``models/plate-ocr`` beside ``edge_agent``."""
    return Path(__file__).resolve().parents[2] / "models" / "plate-ocr"


def make_plate_reader(
    model: Path | None = None, prior: str | None = None, prior_weight: float = 4.0
) -> PlateReader | None:
    """A plate reader on ``model`` (default: the shipped one), or None when it is missing.

    ``prior`` is a city's soft prior such as ``浙`` or ``浙J`` (``vision.evidence.
    plate_prior``) with its ``prior_weight``; None (the default) reads without one.
    """
    try:
        return OnnxPlateReader(
            model, prior=PlatePrior.parse(prior, prior_weight) if prior else None
        )
    except ModelError as exc:
        logger.warning("%s: parking events go out without a plate", exc)
        return None
