"""The ONNX backend over tiny constant models of every layout, and its clear errors."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from edge_agent.vision.config import DetectorConfig
from edge_agent.vision.detector import TruthDetector
from edge_agent.vision.errors import ModelError
from edge_agent.vision.frames import Frame
from edge_agent.vision.onnx_detector import OnnxDetector, pick_providers
from edge_agent.vision.testing import write_constant_model

LABELS = ("person", "car", "bus", "truck", "stall", "goods", "garbage", "bin", "bin_overflow",
          "clothes", "debris")  # fmt: skip
TS = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


def frame(w: int = 1280, h: int = 720) -> Frame:
    return Frame("cam1", 0, TS, np.zeros((h, w, 3), np.uint8))


def raw_answer() -> np.ndarray:
    out = np.zeros((1, 4 + len(LABELS), 40), np.float32)
    # A stall at input pixels (120, 140)-(200, 180), and a weaker duplicate.
    out[0, :4, 0] = (160, 160, 80, 40)
    out[0, 4 + 4, 0] = 0.9
    out[0, :4, 1] = (161, 160, 80, 40)
    out[0, 4 + 4, 1] = 0.6
    # A car elsewhere.
    out[0, :4, 2] = (40, 100, 40, 20)
    out[0, 4 + 1, 2] = 0.7
    return out


def test_raw_layout_detects_and_unletterboxes(tmp_path: Path) -> None:
    model = write_constant_model(tmp_path / "m", raw_answer(), LABELS, layout="raw")
    det = OnnxDetector(DetectorConfig(model=model, intra_threads=1))
    assert det.labels == LABELS
    assert det.model_ref.name == "const-detector"
    [found] = det.detect([frame()])
    assert [d.label for d in found] == ["stall", "car"]
    assert found[0].score == pytest.approx(0.9)
    assert found[0].box == pytest.approx((0.375, 70 / 180, 0.625, 110 / 180), abs=1e-5)


def test_portrait_frame_maps_through_horizontal_padding(tmp_path: Path) -> None:
    model = write_constant_model(tmp_path / "m", raw_answer(), LABELS)
    det = OnnxDetector(DetectorConfig(model=model / "model.onnx"))
    [found] = det.detect([frame(720, 1280)])
    # 720x1280 -> scale 0.25, inner 180x320, left pad 70.
    assert found[0].box == pytest.approx((50 / 180, 140 / 320, 130 / 180, 180 / 320), abs=1e-5)


def test_end_to_end_layout_autodetected(tmp_path: Path) -> None:
    out = np.zeros((1, 100, 6), np.float32)
    out[0, 0] = (120, 140, 200, 180, 0.8, 10)
    out[0, 1] = (0, 70, 320, 250, 0.2, 0)  # under threshold
    model = write_constant_model(tmp_path / "m", out, LABELS, layout=None)
    det = OnnxDetector(DetectorConfig(model=model))
    [found] = det.detect([frame()])
    assert [(d.label, round(d.score, 2)) for d in found] == [("debris", 0.8)]
    assert found[0].box == pytest.approx((0.375, 70 / 180, 0.625, 110 / 180), abs=1e-5)


def test_batch_of_frames_each_decoded(tmp_path: Path) -> None:
    model = write_constant_model(tmp_path / "m", raw_answer(), LABELS)
    det = OnnxDetector(DetectorConfig(model=model))
    results = det.detect([frame(), frame(640, 480), frame()])
    assert [len(r) for r in results] == [2, 2, 2]


def test_fixed_batch_model_runs_one_frame_at_a_time(tmp_path: Path) -> None:
    model = write_constant_model(tmp_path / "m", raw_answer(), LABELS)
    det = OnnxDetector(DetectorConfig(model=model, max_batch=4))
    assert det.batch_size == 1  # the model's batch dimension is fixed at 1
    assert TruthDetector().batch_size is None


def test_input_buffer_is_reused_across_calls_and_threads_get_their_own(tmp_path: Path) -> None:
    model = write_constant_model(tmp_path / "m", raw_answer(), LABELS)
    det = OnnxDetector(DetectorConfig(model=model))
    first = det.detect([frame(), frame(640, 480)])
    buffer = det._input_buffer(1)
    second = det.detect([frame(640, 480), frame()])
    assert det._input_buffer(1) is buffer  # no new input tensor per call
    assert [len(r) for r in first] == [len(r) for r in second] == [2, 2]
    assert first[0][0].box == pytest.approx(second[1][0].box)
    other: list[object] = []
    thread = threading.Thread(target=lambda: other.append(det._input_buffer(1)))
    thread.start()
    thread.join()
    assert other[0] is not buffer


def test_output_shape_fitting_neither_layout(tmp_path: Path) -> None:
    model = write_constant_model(
        tmp_path / "m", np.zeros((1, 7, 30), np.float32), LABELS, layout=None
    )
    with pytest.raises(ModelError, match=r"output shape \[1, 7, 30\] fits no layout") as info:
        OnnxDetector(DetectorConfig(model=model))
    # auto lists every layout, the YOLOX one with the grid's anchor count at 320.
    assert "raw [batch, 15, N] or yolox [batch, 2100, 16] or end-to-end" in str(info.value)


def test_declared_layout_must_match(tmp_path: Path) -> None:
    model = write_constant_model(
        tmp_path / "m", np.zeros((1, 100, 6), np.float32), LABELS, layout="raw"
    )
    with pytest.raises(ModelError, match="expected raw"):
        OnnxDetector(DetectorConfig(model=model))


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        OnnxDetector(DetectorConfig(model=tmp_path / "nothing.onnx"))


def test_missing_manifest(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(ModelError, match=r"has no manifest\.yaml"):
        OnnxDetector(DetectorConfig(model=tmp_path / "d"))


def test_corrupt_model_caught_by_checksum(tmp_path: Path) -> None:
    model = write_constant_model(tmp_path / "m", raw_answer(), LABELS)
    data = bytearray((model / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (model / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="is corrupt: sha256"):
        OnnxDetector(DetectorConfig(model=model))


def test_corrupt_model_without_checksum(tmp_path: Path) -> None:
    model = write_constant_model(tmp_path / "m", raw_answer(), LABELS, with_sha=False)
    (model / "model.onnx").write_bytes(b"this is not a protobuf" * 10)
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        OnnxDetector(DetectorConfig(model=model))


def test_bad_manifest_labels(tmp_path: Path) -> None:
    model = write_constant_model(tmp_path / "m", raw_answer(), LABELS)
    manifest = yaml.safe_load((model / "manifest.yaml").read_text())
    manifest["labels"] = "person"
    (model / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    with pytest.raises(ModelError, match="'labels' must be a list"):
        OnnxDetector(DetectorConfig(model=model))


def test_provider_choice() -> None:
    available = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert pick_providers(["tensorrt", "cuda", "cpu"], available) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    with pytest.raises(ModelError, match="none of the configured execution providers"):
        pick_providers(["tensorrt"], available)


def test_manifest_in_the_shipped_format(tmp_path: Path) -> None:
    """The layout models/train/manifest.py writes for the shipped street detector."""
    model = write_constant_model(tmp_path / "m", raw_answer(), LABELS, with_sha=False)
    labels = "\n".join(f"  - {lab}" for lab in LABELS)
    (model / "manifest.yaml").write_text(
        f"""name: street-detector
version: "2026.05.1"
file: model.onnx
labels:
{labels}
input:
  name: images
  shape: [1, 3, 320, 320]
  layout: NCHW
  color: RGB
  letterbox: {{pad_value: 114, centered: true, keep_aspect: true}}
output:
  name: output0
  layout: yolo_raw
  shape: [1, 15, 40]
default_thresholds:
  score: 0.65
  nms_iou: 0.5
"""
    )
    det = OnnxDetector(DetectorConfig(model=model))
    manifest = det.manifest
    assert (manifest.input_size, manifest.output_layout, manifest.rgb) == (320, "raw", True)
    assert (manifest.score_threshold, manifest.nms_iou) == (0.65, 0.5)
    assert det.model_ref.version == "2026.05.1"
    [found] = det.detect([frame()])
    assert [d.label for d in found] == ["stall", "car"]  # the 0.6 duplicate is below 0.65


def edit_manifest(model: Path, **changes: Any) -> None:
    path = model / "manifest.yaml"
    manifest = yaml.safe_load(path.read_text())
    manifest.update(changes)
    for key, value in changes.items():
        if value is None:
            del manifest[key]
    path.write_text(yaml.safe_dump(manifest))


def yolox_answer(anchors: int = 84) -> np.ndarray:
    """One stall at the stride-16 cell (2, 1) of a 64 px input: (24, 12)-(56, 28) px."""
    out = np.zeros((1, anchors, 5 + len(LABELS)), np.float32)
    out[0, 70, :5] = (0.5, 0.25, np.log(2.0), 0.0, 0.9)
    out[0, 70, 5 + 4] = 0.8
    out[0, 71, :5] = (0.5, 0.5, 0.0, 0.0, 0.1)  # weak objectness: no detection
    out[0, 71, 5 + 1] = 1.0
    return out


def test_yolox_model_box_lands_on_a_non_square_frame(tmp_path: Path) -> None:
    model = write_constant_model(tmp_path / "m", yolox_answer(), LABELS, size=64, layout="yolox")
    # Official YOLOX preprocessing: BGR, raw 0..255 pixels, pad 114, frame at the top-left.
    edit_manifest(
        model,
        input={"color": "BGR", "scale": 1, "letterbox": {"pad_value": 114, "centered": False}},
    )
    det = OnnxDetector(DetectorConfig(model=model))
    assert det.layout == "yolox"
    image = np.zeros((720, 1280, 3), np.uint8)
    image[:] = (10, 20, 30)
    [found] = det.detect([Frame("cam1", 0, TS, image)])
    assert [d.label for d in found] == ["stall"]
    assert found[0].score == pytest.approx(0.72)
    # 1280x720 -> 64x36 at the top-left: x / 64, y / 36.
    assert found[0].box == pytest.approx((24 / 64, 12 / 36, 56 / 64, 28 / 36), abs=1e-5)
    tensor = det._input_buffer(1)[0]
    assert tensor[:, 10, 10].tolist() == [10.0, 20.0, 30.0]  # B, G, R, raw pixels
    assert tensor[:, 50, 10].tolist() == [114.0, 114.0, 114.0]  # padding below the frame


def test_yolox_layout_autodetected_from_the_grid(tmp_path: Path) -> None:
    model = write_constant_model(tmp_path / "m", yolox_answer(), LABELS, size=64, layout=None)
    det = OnnxDetector(DetectorConfig(model=model))
    assert det.layout == "yolox"
    [found] = det.detect([frame(64, 64)])
    assert [(d.label, d.box) for d in found] == [
        ("stall", pytest.approx((24 / 64, 12 / 64, 56 / 64, 28 / 64), abs=1e-5))
    ]


def test_yolox_decoded_boxes_take_any_anchor_count(tmp_path: Path) -> None:
    out = np.zeros((1, 5, 5 + len(LABELS)), np.float32)
    out[0, 2, :5] = (40, 20, 32, 16, 0.9)  # already in input pixels
    out[0, 2, 5 + 1] = 0.9
    model = write_constant_model(tmp_path / "m", out, LABELS, size=64)
    edit_manifest(model, output_layout=None, output={"layout": "yolox", "decoded": True})
    det = OnnxDetector(DetectorConfig(model=model))
    [found] = det.detect([frame(64, 64)])
    assert [(d.label, d.box) for d in found] == [
        ("car", pytest.approx((24 / 64, 12 / 64, 56 / 64, 28 / 64), abs=1e-5))
    ]


def test_yolox_declared_but_anchor_count_is_not_the_grid(tmp_path: Path) -> None:
    model = write_constant_model(tmp_path / "m", yolox_answer(90), LABELS, size=64, layout="yolox")
    with pytest.raises(ModelError, match=r"\[1, 90, 16\] .* expected yolox \[batch, 84, 16\]"):
        OnnxDetector(DetectorConfig(model=model))


def test_keep_labels_from_manifest_and_config(tmp_path: Path) -> None:
    model = write_constant_model(tmp_path / "m", raw_answer(), LABELS, with_sha=False)
    edit_manifest(model, keep_labels=["car", "person"])
    det = OnnxDetector(DetectorConfig(model=model))
    assert det.kept_labels == ("person", "car")
    [found] = det.detect([frame()])
    assert [d.label for d in found] == ["car"]
    det = OnnxDetector(DetectorConfig(model=model, keep_labels=("stall",)))  # config wins
    [found] = det.detect([frame()])
    assert [d.label for d in found] == ["stall"]


def test_keep_labels_the_model_lacks(tmp_path: Path) -> None:
    model = write_constant_model(tmp_path / "m", raw_answer(), LABELS, with_sha=False)
    with pytest.raises(ModelError, match=r"keep_labels names \['bicycle'\]") as info:
        OnnxDetector(DetectorConfig(model=model, keep_labels=("car", "bicycle")))
    assert "its labels are ['person', 'car', 'bus'," in str(info.value)
    edit_manifest(model, keep_labels=["tram"])
    with pytest.raises(ModelError, match=r"manifest\.yaml: keep_labels names \['tram'\]"):
        OnnxDetector(DetectorConfig(model=model))


def test_end_to_end_respects_keep_labels(tmp_path: Path) -> None:
    out = np.zeros((1, 100, 6), np.float32)
    out[0, 0] = (120, 140, 200, 180, 0.8, 10)
    out[0, 1] = (0, 70, 320, 250, 0.7, 0)
    model = write_constant_model(tmp_path / "m", out, LABELS, layout="e2e")
    [found] = OnnxDetector(DetectorConfig(model=model, keep_labels=("person",))).detect([frame()])
    assert [d.label for d in found] == ["person"]


def test_mean_std_bgr_reach_the_model_input(tmp_path: Path) -> None:
    """The NanoDet-g manifest's pre-processing, at a 64 px input."""
    model = write_constant_model(tmp_path / "m", raw_answer(), LABELS, size=64, with_sha=False)
    mean, std = [103.53, 116.28, 123.675], [57.375, 57.12, 58.395]
    edit_manifest(
        model,
        input={"shape": [1, 3, 64, 64], "layout": "NCHW", "color": "BGR", "mean": mean,
               "std": std, "letterbox": {"pad_value": 0, "centered": True, "keep_aspect": True}},
    )  # fmt: skip
    det = OnnxDetector(DetectorConfig(model=model))
    image = np.zeros((720, 1280, 3), np.uint8)
    image[:] = (10, 20, 30)
    det.detect([Frame("cam1", 0, TS, image)])
    tensor = det._input_buffer(1)[0]
    pixel = [10, 20, 30]
    assert tensor[:, 32, 32].tolist() == pytest.approx(
        [(p - m) / s for p, m, s in zip(pixel, mean, std, strict=True)], rel=1e-5
    )
    # 64x36 centred: rows 0..13 are padding 0.
    assert tensor[:, 2, 32].tolist() == pytest.approx(
        [-m / s for m, s in zip(mean, std, strict=True)]
    )


def test_bad_mean_std_in_manifest(tmp_path: Path) -> None:
    model = write_constant_model(tmp_path / "m", raw_answer(), LABELS, with_sha=False)
    edit_manifest(model, input={"color": "BGR", "mean": [1, 2, 3], "std": [1, 0, 1]})
    with pytest.raises(ModelError, match=r"manifest\.yaml: input\.std must be positive"):
        OnnxDetector(DetectorConfig(model=model))
    edit_manifest(model, input={"mean": [103.53, 116.28]})
    with pytest.raises(ModelError, match=r"manifest\.yaml: input\.mean must be 3 numbers"):
        OnnxDetector(DetectorConfig(model=model))
