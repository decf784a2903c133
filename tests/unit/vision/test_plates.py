"""Plate reading's pure parts: finding plate-coloured patches, CTC decoding, the factory."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from edge_agent.vision import plates
from edge_agent.vision.config import EvidenceConfig
from edge_agent.vision.plates import ctc_greedy, line_tensor, make_plate_reader, plate_regions

BLUE = (150, 60, 10)  # BGR, the simulator's blue plate
GREY = (128, 128, 128)


def test_ctc_collapses_repeats_and_drops_blanks() -> None:
    charset = ["", "A", "B"]
    # Columns: A A blank A B B blank -> "AAB": a blank separates two real A's.
    best = [1, 1, 0, 1, 2, 2, 0]
    probs = np.full((len(best), 3), 0.05, dtype=np.float32)
    for col, k in enumerate(best):
        probs[col, k] = 0.9
    probs[4, 2] = 0.6
    text, score = ctc_greedy(probs, charset)
    assert text == "AAB"
    assert score == pytest.approx((0.9 + 0.9 + 0.6) / 3)


def test_ctc_of_only_blanks_is_empty_with_zero_score() -> None:
    probs = np.zeros((4, 3), dtype=np.float32)
    probs[:, 0] = 1.0
    assert ctc_greedy(probs, ["", "A", "B"]) == ("", 0.0)


def test_plate_coloured_rectangle_is_found_and_other_shapes_are_not() -> None:
    crop = np.full((200, 300, 3), GREY, dtype=np.uint8)
    crop[150:172, 100:170] = BLUE  # a 70 x 22 plate
    crop[150:160, 120:124] = (255, 255, 255)  # a character cut into it
    crop[10:60, 10:60] = BLUE  # square: not plate proportions
    crop[100:103, 10:290] = BLUE  # a thin stripe: too low
    assert plate_regions(crop) == [(100, 150, 70, 22)]


def test_no_plate_colour_no_regions() -> None:
    crop = np.full((120, 200, 3), GREY, dtype=np.uint8)
    crop[50:70, 40:120] = (245, 245, 245)  # white: not searched for
    assert plate_regions(crop) == []


def test_line_tensor_keeps_the_aspect_at_the_model_height() -> None:
    patch = np.zeros((24, 96, 3), dtype=np.uint8)
    patch[:, :48] = 255
    tensor = line_tensor(patch, 48)
    assert tensor.shape == (1, 3, 48, 192)
    assert tensor.dtype == np.float32
    assert tensor.min() == pytest.approx(-1.0)
    assert tensor.max() == pytest.approx(1.0)


def test_missing_model_means_no_reader(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=plates.__name__)
    assert make_plate_reader(tmp_path / "nowhere") is None
    assert "nowhere" in caplog.text
    assert "without a plate" in caplog.text


def test_plate_model_defaults_to_the_shipped_one() -> None:
    assert EvidenceConfig().plate_model is None
    assert plates.default_plate_model().name == "plate-ocr"
    assert EvidenceConfig(plate_model=Path("/opt/m")).plate_model == Path("/opt/m")


def test_plate_model_is_checked_against_its_manifest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A damaged model is refused at start with both checksums named; a good one is kept."""
    import hashlib

    good = b"not really onnx, but these are the bytes the manifest names"
    (tmp_path / "rec.onnx").write_bytes(good)
    sha = hashlib.sha256(good).hexdigest()
    (tmp_path / "manifest.yaml").write_text(f"file: rec.onnx\nsha256: {sha}\n")
    assert isinstance(make_plate_reader(tmp_path), plates.OnnxPlateReader)  # loaded lazily

    (tmp_path / "rec.onnx").write_bytes(good[:-1] + b"!")
    caplog.set_level(logging.WARNING, logger=plates.__name__)
    assert make_plate_reader(tmp_path) is None
    assert "is corrupt" in caplog.text
    assert sha[:12] in caplog.text
    assert "without a plate" in caplog.text


def test_the_shipped_plate_model_matches_its_manifest() -> None:
    assert isinstance(plates.OnnxPlateReader(), plates.OnnxPlateReader)
