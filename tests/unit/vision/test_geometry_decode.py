"""Pure geometry, letterbox and the two YOLO output decoders with class-aware NMS."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.vision.decode import (
    PAD_VALUE,
    Letterbox,
    decode_end_to_end,
    decode_raw,
    letterbox,
    nms,
)
from edge_agent.vision.geometry import Polygon, box_iou, iou_matrix


def test_polygon_contains_and_bottom_centre() -> None:
    tri = Polygon.of([(0.0, 0.5), (1.0, 0.5), (0.5, 1.0)])
    assert tri.contains(0.5, 0.7)
    assert not tri.contains(0.1, 0.9)
    assert tri.contains(0.5, 0.5)  # on an edge counts as inside
    # A tall box whose top is outside but whose feet are inside is in the zone.
    assert tri.contains_box((0.45, 0.1, 0.55, 0.7))
    assert not tri.contains_box((0.15, 0.6, 0.25, 0.9))


def test_iou_functions_agree() -> None:
    a = (0.0, 0.0, 0.5, 0.5)
    b = (0.25, 0.25, 0.75, 0.75)
    assert box_iou(a, b) == pytest.approx(0.0625 / 0.4375)
    assert box_iou(a, (0.6, 0.6, 0.9, 0.9)) == 0.0
    m = iou_matrix(np.array([a], np.float32), np.array([a, b], np.float32))
    assert m.shape == (1, 2)
    assert m[0, 0] == pytest.approx(1.0)
    assert m[0, 1] == pytest.approx(box_iou(a, b), rel=1e-5)


@pytest.mark.parametrize(("w", "h"), [(1280, 720), (720, 1280), (640, 640), (333, 101)])
def test_letterbox_round_trip(w: int, h: int) -> None:
    image = np.zeros((h, w, 3), np.uint8)
    image[:, :, 2] = 200  # red in BGR
    blob, box = letterbox(image, 320)
    assert blob.shape == (1, 3, 320, 320)
    assert blob.dtype == np.float32
    inner_w, inner_h = box.inner
    assert max(inner_w, inner_h) == 320
    # Padding is gray 114, the frame's content is red (R is channel 0 after swapRB).
    if box.top > 0:
        assert blob[0, 0, 0, 160] == pytest.approx(PAD_VALUE / 255.0)
    assert blob[0, 0, box.top + inner_h // 2, box.left + inner_w // 2] == pytest.approx(200 / 255)
    # The frame's full extent in input pixels maps back to (0, 0, 1, 1).
    full = np.array([[box.left, box.top, box.left + inner_w, box.top + inner_h]], np.float32)
    assert box.to_normalised(full)[0] == pytest.approx([0, 0, 1, 1], abs=2e-3)


def test_letterbox_into_a_given_buffer_matches_a_fresh_one() -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    fresh, box = letterbox(image, 320)
    batch = np.full((2, 3, 320, 320), -1.0, np.float32)  # stale contents must not show
    out, same = letterbox(image, 320, out=batch[1:2])
    assert out.base is batch or np.shares_memory(out, batch)
    assert same == box
    np.testing.assert_array_equal(batch[1:2], fresh)
    assert (batch[0] == -1.0).all()  # the other row is untouched


def test_letterbox_refuses_a_buffer_of_the_wrong_shape() -> None:
    image = np.zeros((720, 1280, 3), np.uint8)
    with pytest.raises(ValueError, match=r"\(1, 3, 320, 320\) float32"):
        letterbox(image, 320, out=np.empty((1, 3, 640, 640), np.float32))


def test_letterbox_values_for_a_wide_frame() -> None:
    box = Letterbox.fit(1280, 720, 320)
    assert (box.scale, box.left, box.top, box.inner) == (0.25, 0, 70, (320, 180))
    rows = np.array([[120, 140, 200, 180]], np.float32)
    assert box.to_normalised(rows)[0] == pytest.approx([0.375, 70 / 180, 0.625, 110 / 180])


def test_nms_keeps_best_and_distinct() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.8, 0.9, 0.5], np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]


def raw_output(rows: list[tuple[float, float, float, float, int, float]], nc: int, n: int = 50):
    out = np.zeros((4 + nc, n), np.float32)
    for i, (cx, cy, w, h, cls, score) in enumerate(rows):
        out[:4, i] = (cx, cy, w, h)
        out[4 + cls, i] = score
    return out


def test_decode_raw_is_class_aware() -> None:
    out = raw_output(
        [
            (100, 100, 40, 40, 1, 0.9),
            (102, 101, 40, 40, 1, 0.8),  # same class, overlapping: suppressed
            (101, 100, 40, 40, 4, 0.7),  # other class, same place: kept
            (200, 200, 10, 10, 2, 0.1),  # below threshold
        ],
        nc=11,
    )
    rows = decode_raw(out, 11, 0.25, 0.5)
    assert rows.shape == (2, 6)
    assert rows[:, 5].tolist() == [1.0, 4.0]
    assert rows[0, :4].tolist() == pytest.approx([80, 80, 120, 120])
    assert rows[0, 4] == pytest.approx(0.9)


def test_decode_raw_rejects_wrong_rows() -> None:
    with pytest.raises(ValueError, match=r"\(4 \+ 11, N\)"):
        decode_raw(np.zeros((10, 20), np.float32), 11, 0.25, 0.5)


def test_decode_end_to_end_filters() -> None:
    out = np.array(
        [
            [10, 10, 50, 50, 0.9, 3],
            [10, 10, 50, 50, 0.1, 3],  # low score
            [10, 10, 50, 50, 0.9, 99],  # class out of range
            [0, 0, 0, 0, 0.0, 0],  # padding row
        ],
        np.float32,
    )
    rows = decode_end_to_end(out, 11, 0.25)
    assert rows.tolist() == [pytest.approx([10, 10, 50, 50, 0.9, 3])]
