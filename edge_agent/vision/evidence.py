"""Evidence snapshots: the best frame, violating boxes drawn, privacy blur, size cap."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import cv2
import numpy as np

from edge_agent.protocol import Snapshot
from edge_agent.vision.config import EvidenceConfig
from edge_agent.vision.errors import VisionError
from edge_agent.vision.frames import Box, Detection, Image, as_image

__all__ = [
    "blur_regions",
    "clean_frame",
    "draw_boxes",
    "encode_jpeg",
    "face_region",
    "plate_region",
    "snapshot",
]

_BOX_COLOUR = (0, 0, 255)
_QUALITY_STEPS = (85, 75, 65, 55, 45, 35, 25)


def _px(box: Box, w: int, h: int) -> tuple[int, int, int, int]:
    return (
        round(box[0] * w),
        round(box[1] * h),
        round(box[2] * w),
        round(box[3] * h),
    )


def face_region(person: Box) -> Box:
    """Where a standing person's face is: the top sixth of the box, middle of its width."""
    x1, y1, x2, y2 = person
    bw, bh = x2 - x1, y2 - y1
    return (x1 + 0.15 * bw, y1, x2 - 0.15 * bw, y1 + bh / 6.0)


def plate_region(car: Box) -> Box:
    """Where a car's plate can be: the lower third of the box, middle half of its width."""
    x1, y1, x2, y2 = car
    bw, bh = x2 - x1, y2 - y1
    return (x1 + 0.2 * bw, y1 + 0.6 * bh, x2 - 0.2 * bw, y2)


def blur_regions(image: Image, regions: Sequence[Box]) -> None:
    """Pixelate each normalised region of ``image`` in place."""
    h, w = image.shape[:2]
    for region in regions:
        x1, y1, x2, y2 = _px(region, w, h)
        x1, y1 = max(x1, 0), max(y1, 0)
        x2, y2 = min(x2, w), min(y2, h)
        if x2 - x1 < 2 or y2 - y1 < 2:
            continue
        roi = image[y1:y2, x1:x2]
        small = cv2.resize(
            roi, (max(1, (x2 - x1) // 8), max(1, (y2 - y1) // 8)), interpolation=cv2.INTER_AREA
        )
        image[y1:y2, x1:x2] = cv2.resize(small, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST)


def draw_boxes(image: Image, boxes: Sequence[tuple[Box, str]]) -> None:
    """Draw each ``(box, caption)`` on ``image`` in place."""
    h, w = image.shape[:2]
    thick = max(2, w // 400)
    scale = max(0.5, w / 1600)
    for box, caption in boxes:
        x1, y1, x2, y2 = _px(box, w, h)
        cv2.rectangle(image, (x1, y1), (x2, y2), _BOX_COLOUR, thick)
        (tw, th), base = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = max(th + base, y1)
        cv2.rectangle(image, (x1, ty - th - base), (x1 + tw + 4, ty), _BOX_COLOUR, -1)
        cv2.putText(
            image,
            caption,
            (x1 + 2, ty - base),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )


def encode_jpeg(image: Image, max_bytes: int, quality: int = 85) -> tuple[bytes, int, int]:
    """JPEG of ``image`` no larger than ``max_bytes``: lower quality first, then smaller.

    Returns ``(jpeg, width, height)`` of what was encoded.
    """
    current = image
    while True:
        for q in [quality, *[s for s in _QUALITY_STEPS if s < quality]]:
            ok, buf = cv2.imencode(".jpg", current, [cv2.IMWRITE_JPEG_QUALITY, q])
            if not ok:
                raise VisionError("OpenCV could not encode the evidence JPEG")
            if buf.size <= max_bytes:
                return buf.tobytes(), int(current.shape[1]), int(current.shape[0])
        if current.shape[1] < 64:
            raise VisionError(f"cannot fit the evidence JPEG into {max_bytes} bytes")
        current = as_image(
            cv2.resize(current, None, fx=0.75, fy=0.75, interpolation=cv2.INTER_AREA)
        )


def snapshot(
    image: Image,
    marked: Sequence[tuple[Box, str]],
    config: EvidenceConfig,
    *,
    others: Sequence[Detection] = (),
    blur_faces: bool = False,
    blur_plates: bool = False,
) -> Snapshot:
    """The evidence snapshot of a violation.

    ``marked`` are the violating boxes with their captions; ``others`` are all detections
    of the frame, used to find faces (people) and plates (cars) to blur.
    """
    canvas = np.array(image, copy=True)
    regions: list[Box] = []
    if blur_faces:
        regions += [face_region(d.box) for d in others if d.label == "person"]
    if blur_plates:
        regions += [plate_region(d.box) for d in others if d.label in ("car", "bus", "truck")]
    blur_regions(canvas, regions)
    if config.draw_boxes:
        draw_boxes(canvas, marked)
    if canvas.shape[1] > config.max_width:
        factor = config.max_width / canvas.shape[1]
        canvas = as_image(
            cv2.resize(canvas, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        )
    jpeg, width, height = encode_jpeg(canvas, config.max_bytes, config.quality)
    return Snapshot(jpeg_b64=base64.b64encode(jpeg).decode("ascii"), width=width, height=height)


def clean_frame(image: Image, config: EvidenceConfig, others: Sequence[Detection] = ()) -> Snapshot:
    """The violation's frame as it was seen: no boxes, no blur, full size unless the byte
    cap makes :func:`encode_jpeg` shrink it. For retraining; the hub keeps it apart. The
    face regions of the people among ``others`` (the frame's detections) go with it, so
    an export can blur them."""
    jpeg, width, height = encode_jpeg(image, config.max_bytes, config.quality)
    faces = tuple(_clip(face_region(d.box)) for d in others if d.label == "person")[:256]
    return Snapshot(
        jpeg_b64=base64.b64encode(jpeg).decode("ascii"), width=width, height=height, faces=faces
    )


def _clip(box: Box) -> Box:
    x1, y1, x2, y2 = (min(1.0, max(0.0, v)) for v in box)
    return (x1, y1, x2, y2)
