"""Evidence JPEGs (boxes, blur, size cap) and plate text normalisation."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

from edge_agent.vision.config import EvidenceConfig
from edge_agent.vision.evidence import blur_regions, clean_frame, encode_jpeg, snapshot
from edge_agent.vision.frames import Detection
from edge_agent.vision.plates import normalise_plate


def noisy(w: int = 1280, h: int = 720, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_snapshot_is_capped_and_decodable() -> None:
    config = EvidenceConfig()
    snap = snapshot(noisy(1920, 1080), [((0.1, 0.1, 0.5, 0.5), "stall #1 0501")], config)
    jpeg = base64.b64decode(snap.jpeg_b64)
    assert len(jpeg) <= 300 * 1024
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[1] == snap.width <= 1280
    assert image.shape[0] == snap.height


def test_small_cap_shrinks_the_image() -> None:
    jpeg, w, h = encode_jpeg(noisy(), 20 * 1024)
    assert len(jpeg) <= 20 * 1024
    assert w < 1280
    assert h < 720
    assert jpeg[:2] == b"\xff\xd8"


def test_boxes_are_drawn_in_red() -> None:
    image = np.zeros((200, 200, 3), np.uint8)
    snap = snapshot(image, [((0.25, 0.25, 0.75, 0.75), "car")], EvidenceConfig(quality=100))
    out = cv2.imdecode(np.frombuffer(base64.b64decode(snap.jpeg_b64), np.uint8), 1)
    b, g, r = out[100, 50].tolist()  # on the left edge of the box
    assert r > 150
    assert b < 80
    assert g < 80


def test_the_clean_frame_has_no_boxes_and_no_blur_and_keeps_its_size() -> None:
    """What retraining needs: the frame as the camera saw it (the snapshot is marked)."""
    image = np.zeros((200, 300, 3), np.uint8)
    config = EvidenceConfig(quality=100)
    person = Detection("person", 0.9, (0.1, 0.1, 0.3, 0.9))
    frame = clean_frame(image, config)
    assert (frame.width, frame.height) == (300, 200)
    out = cv2.imdecode(np.frombuffer(base64.b64decode(frame.jpeg_b64), np.uint8), 1)
    assert out.max() < 8  # black: no red box where the snapshot draws one
    snap = snapshot(image, [((0.25, 0.25, 0.75, 0.75), "car")], config, others=[person])
    marked = cv2.imdecode(np.frombuffer(base64.b64decode(snap.jpeg_b64), np.uint8), 1)
    assert marked[100, 75, 2] > 150  # the snapshot's box edge, in red
    big = clean_frame(noisy(1920, 1080), EvidenceConfig())
    assert len(base64.b64decode(big.jpeg_b64)) <= 300 * 1024  # the same byte cap


def test_blur_hides_detail_only_where_asked() -> None:
    image = noisy(400, 400, seed=1)
    before = image.copy()
    blur_regions(image, [(0.0, 0.0, 0.5, 0.5)])
    assert np.std(image[:200, :200].astype(float) - before[:200, :200]) > 10
    assert np.array_equal(image[200:, 200:], before[200:, 200:])


def test_faces_and_plates_blurred_on_request() -> None:
    image = noisy(200, 200, seed=2)  # small enough to fit the cap at quality 100
    person = Detection("person", 0.9, (0.1, 0.1, 0.3, 0.9))
    car = Detection("car", 0.9, (0.5, 0.5, 0.9, 0.9))
    cfg = EvidenceConfig(quality=100, draw_boxes=False)
    plain = snapshot(image, [], cfg, others=[person, car])
    blurred = snapshot(image, [], cfg, others=[person, car], blur_faces=True, blur_plates=True)
    assert len(base64.b64decode(blurred.jpeg_b64)) < len(base64.b64decode(plain.jpeg_b64))


@pytest.mark.parametrize(
    ("text", "plate"),
    [
        ("浙J·A12345", "浙J·A12345"),
        ("浙JA12345", "浙J·A12345"),
        ("J·A12345", None),
        ("粤B·D12345", "粤B·D12345"),
        ("nothing here", None),
        ("xx浙J·AO2345yy", "浙J·A02345"),
    ],
)
def test_plate_normalisation(text: str, plate: str | None) -> None:
    assert normalise_plate(text) == plate
