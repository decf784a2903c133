"""Pure geometry, letterbox pre-processing and the YOLO output decoders with class-aware NMS."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.vision.decode import (
    PAD_VALUE,
    Letterbox,
    class_aware_nms,
    decode_end_to_end,
    decode_raw,
    decode_yolox,
    letterbox,
    nms,
    yolox_anchor_count,
    yolox_grid,
)
from edge_agent.vision.geometry import Polygon, box_iou, iou_matrix
from edge_agent.vision.manifest import Preprocess


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
    top_left = Letterbox.fit(720, 1280, 320, centered=False)
    assert (top_left.left, top_left.top, top_left.inner) == (0, 0, (180, 320))
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


def test_decode_end_to_end_keeps_only_kept_classes() -> None:
    out = np.array([[10, 10, 50, 50, 0.9, 3], [60, 60, 90, 90, 0.8, 5]], np.float32)
    rows = decode_end_to_end(out, 11, 0.25, keep=np.array([5], np.intp))
    assert rows[:, 5].tolist() == [5.0]


def test_decode_raw_keep_labels_looks_only_at_kept_classes() -> None:
    out = raw_output(
        [
            (100, 100, 40, 40, 4, 0.95),  # a dropped class, best at this anchor ...
            (200, 200, 20, 20, 2, 0.9),  # only a dropped class here: nothing
        ],
        nc=11,
    )
    out[4 + 1, 0] = 0.6  # ... hides no kept class: class 1 at the same anchor is found
    rows = decode_raw(out, 11, 0.25, 0.5, keep=np.array([1, 7], np.intp))
    assert rows.shape == (1, 6)
    assert rows[0].tolist() == pytest.approx([80, 80, 120, 120, 0.6, 1])
    # Without keep the same output gives the two best classes.
    assert decode_raw(out, 11, 0.25, 0.5)[:, 5].tolist() == [4.0, 2.0]


def yolox_output(rows: list[tuple[float, float, float, float, float, int, float]], nc: int,
                 n: int = 30) -> np.ndarray:  # fmt: skip
    out = np.zeros((n, 5 + nc), np.float32)
    for i, (cx, cy, w, h, obj, cls, score) in enumerate(rows):
        out[i, :5] = (cx, cy, w, h, obj)
        out[i, 5 + cls] = score
    return out


def test_decode_yolox_decoded_boxes_score_is_objectness_times_class() -> None:
    out = yolox_output(
        [
            (100, 50, 40, 20, 0.9, 2, 0.8),  # score 0.72
            (101, 50, 40, 20, 0.8, 2, 0.8),  # same class, overlapping, 0.64: suppressed
            (100, 51, 40, 20, 0.7, 3, 0.9),  # other class, same place, 0.63: kept
            (300, 300, 10, 10, 0.9, 1, 0.2),  # 0.18: below threshold
            (200, 200, 10, 10, 0.2, 1, 1.0),  # objectness 0.2: below threshold
        ],
        nc=4,
    )
    rows = decode_yolox(out, 4, 0.25, 0.5)
    assert rows[:, 5].tolist() == [2.0, 3.0]
    assert rows[0].tolist() == pytest.approx([80, 40, 120, 60, 0.72, 2])
    assert rows[1, 4] == pytest.approx(0.63)


def test_yolox_grid_order_and_count() -> None:
    # 64 px input: 8x8 cells at stride 8, then 4x4 at 16, then 2x2 at 32.
    grid = yolox_grid(64, (8, 16, 32))
    assert yolox_anchor_count(64, (8, 16, 32)) == grid.shape[0] == 64 + 16 + 4
    assert grid[1].tolist() == [1, 0, 8]  # row-major: x runs fastest
    assert grid[8].tolist() == [0, 1, 8]
    assert grid[64 + 4 + 2].tolist() == [2, 1, 16]
    assert grid[-1].tolist() == [1, 1, 32]
    assert yolox_anchor_count(416, (8, 16, 32)) == 3549


def test_decode_yolox_grid_relative_boxes() -> None:
    grid = yolox_grid(64, (8, 16, 32))
    out = np.zeros((grid.shape[0], 5 + 3), np.float32)
    # Stride-16 cell (gx 2, gy 1): x 0.5, y 0.25 offsets, w = e^ln2 cells, h = 1 cell.
    out[70, :5] = (0.5, 0.25, np.log(2.0), 0.0, 0.9)
    out[70, 5 + 1] = 1.0
    rows = decode_yolox(out, 3, 0.25, 0.5, grid=grid)
    # cx = 2.5 * 16 = 40, cy = 1.25 * 16 = 20, w = 32, h = 16.
    assert rows.tolist() == [pytest.approx([24, 12, 56, 28, 0.9, 1])]


def test_decode_yolox_keep_labels_and_shape_checks() -> None:
    out = yolox_output([(100, 50, 40, 20, 0.9, 2, 0.9), (100, 50, 40, 20, 0.9, 0, 0.5)], nc=4)
    out[0, 5 + 0] = 0.4  # anchor 0 also scores class 0, less than class 2
    rows = decode_yolox(out, 4, 0.25, 0.5, keep=np.array([0], np.intp))
    assert rows[:, 5].tolist() == [0.0]
    assert rows[0, 4] == pytest.approx(0.45)  # anchor 1 (0.9 * 0.5) beats anchor 0 (0.36)
    with pytest.raises(ValueError, match=r"\(N, 5 \+ 4\)"):
        decode_yolox(np.zeros((30, 8), np.float32), 4, 0.25, 0.5)
    with pytest.raises(ValueError, match="30 anchors, the grid 84"):
        decode_yolox(out, 4, 0.25, 0.5, grid=yolox_grid(64, (8, 16, 32)))


def test_letterbox_bgr_mean_std_top_left() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    image[:] = (10, 20, 30)  # B, G, R
    pre = Preprocess(rgb=False, mean=(1, 2, 3), std=(2, 4, 8), pad_value=0, centered=False)
    blob, box = letterbox(image, 64, preprocess=pre)
    # 200x100 -> scale 0.32, inner 64x32 at the top-left; rows 32.. are padding.
    assert (box.left, box.top, box.inner) == (0, 0, (64, 32))
    assert blob[0, :, 10, 40].tolist() == pytest.approx([4.5, 4.5, 3.375])
    assert blob[0, :, 50, 40].tolist() == pytest.approx([-0.5, -0.5, -0.375])
    assert blob[0, :, 50, 40].tolist() == pytest.approx(list(pre.pad_input()))
    # Boxes map back through the top-left placement.
    rows = np.array([[0, 0, 64, 32], [16, 8, 48, 24]], np.float32)
    assert box.to_normalised(rows).tolist() == [
        pytest.approx([0, 0, 1, 1]),
        pytest.approx([0.25, 0.25, 0.75, 0.75]),
    ]


def test_letterbox_rgb_mean_in_model_channel_order_and_centred_pad() -> None:
    image = np.zeros((50, 100, 3), np.uint8)
    image[:] = (10, 20, 30)  # B, G, R
    pre = Preprocess(rgb=True, mean=(30, 20, 10), std=(1, 2, 5), pad_value=7)
    blob, box = letterbox(image, 64, preprocess=pre)
    assert (box.left, box.top) == (0, 16)
    assert blob[0, :, 32, 32].tolist() == pytest.approx([0, 0, 0], abs=1e-6)  # R-30, G-20, B-10
    assert blob[0, :, 0, 32].tolist() == pytest.approx([(7 - 30) / 1, (7 - 20) / 2, (7 - 10) / 5])
    assert blob[0, :, 63, 32].tolist() == pytest.approx(list(pre.pad_input()))


def test_letterbox_default_preprocess_is_rgb_over_255() -> None:
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (90, 160, 3), dtype=np.uint8)
    plain, _ = letterbox(image, 64)
    explicit, _ = letterbox(image, 64, preprocess=Preprocess())
    np.testing.assert_array_equal(plain, explicit)
    bgr, _ = letterbox(image, 64, rgb=False)
    np.testing.assert_array_equal(bgr[0, 0], plain[0, 2])
    raw, _ = letterbox(image, 64, preprocess=Preprocess(std=(1, 1, 1)))
    np.testing.assert_allclose(raw / 255.0, plain, rtol=1e-6)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 300),
            st.floats(0, 300),
            st.floats(1, 120),
            st.floats(1, 120),
            st.floats(0.01, 1.0),
            st.integers(0, 2),
        ),
        min_size=0,
        max_size=40,
    ),
    st.sampled_from([0.3, 0.45, 0.5, 0.7]),
)
def test_class_aware_nms_keeps_what_greedy_nms_per_class_keeps(
    rows: list[tuple[float, float, float, float, float, int]], iou: float
) -> None:
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h, _, _ in rows], np.float32).reshape(-1, 4)
    # Distinct scores: with ties the order among equals is the implementation's choice.
    scores = np.array([s + i * 1e-4 for i, (*_, s, _) in enumerate(rows)], np.float32)
    classes = np.array([c for *_, c in rows], np.intp)
    expected: list[int] = []
    for c in range(3):
        idx = np.flatnonzero(classes == c)
        expected += idx[nms(boxes[idx], scores[idx], iou)].tolist()
    got = class_aware_nms(boxes, scores, classes, iou)
    assert sorted(got.tolist()) == sorted(expected)
    assert scores[got].tolist() == sorted(scores[got].tolist(), reverse=True)
