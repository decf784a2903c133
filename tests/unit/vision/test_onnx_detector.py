"""The ONNX backend over tiny constant models of both layouts, and its clear errors."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

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
    with pytest.raises(ModelError, match=r"output shape \[1, 7, 30\] fits neither layout"):
        OnnxDetector(DetectorConfig(model=model))


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
