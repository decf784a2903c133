"""Plate reading's pure parts: finding plate-coloured patches, CTC decoding, the factory."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from edge_agent.vision import plates
from edge_agent.vision.config import EvidenceConfig
from edge_agent.vision.errors import ModelError
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
    folder = plates.default_plate_model()
    manifest = yaml.safe_load((folder / "manifest.yaml").read_text(encoding="utf-8"))
    for file_key, sha_key in (("file", "sha256"), ("det_file", "det_sha256")):
        data = (folder / manifest[file_key]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == manifest[sha_key], file_key


# --------------------------------------------------------------------------- format


@pytest.mark.parametrize(
    ("text", "plate"),
    [
        ("浙J·A12345", "浙J·A12345"),
        ("浙JA1234O", "浙J·A12340"),  # O is read as the digit plates use
        ("皖A·D12345", "皖A·D12345"),  # green, new energy: six after the letter
        ("浙A·1234警", "浙A·1234警"),  # white, police
        ("粤Z·A123港", "粤Z·A123港"),  # black, Hong Kong
        ("|浙J-A12345]", "浙J·A12345"),
    ],
)
def test_plate_formats_are_recognised(text: str, plate: str) -> None:
    assert plates.normalise_plate(text) == plate


@pytest.mark.parametrize("text", ["J·A12345", "浙1·A12345", "浙J·A123", "警A·12345", ""])
def test_what_is_not_a_plate_is_refused(text: str) -> None:
    assert plates.normalise_plate(text) is None


# --------------------------------------------------------------------------- prior


def test_a_confident_province_is_never_changed_by_the_prior() -> None:
    assert plates.apply_prior("皖", 0.95, "浙", 0.04, weight=100.0) == "皖"
    assert plates.apply_prior("皖", 0.95, "浙", 0.6, weight=100.0) == "皖"


def test_an_unsure_province_turns_to_a_plausible_prior() -> None:
    assert plates.apply_prior("皖", 0.5, "浙", 0.3, weight=4.0) == "浙"
    # ... but not to one the model hardly considered, nor against too strong a reading.
    assert plates.apply_prior("皖", 0.5, "浙", 0.01, weight=100.0) == "皖"
    assert plates.apply_prior("皖", 0.8, "浙", 0.1, weight=4.0) == "皖"


def test_prior_is_parsed_and_checked() -> None:
    assert plates.PlatePrior.parse("浙J") == plates.PlatePrior("浙", "J", 4.0)
    assert plates.PlatePrior.parse("浙", 2.0) == plates.PlatePrior("浙", None, 2.0)
    for bad in ("J", "浙I", "浙JJ", "警"):
        with pytest.raises(ValueError, match="plate prior"):
            plates.PlatePrior.parse(bad)


def test_prior_is_a_config_field_off_by_default() -> None:
    from pydantic import ValidationError

    assert EvidenceConfig().plate_prior is None
    config = EvidenceConfig(plate_prior="浙J", plate_prior_weight=3.0)
    assert (config.plate_prior, config.plate_prior_weight) == ("浙J", 3.0)
    for bad in ("浙I", "ZJ", "浙JJ"):
        with pytest.raises(ValidationError, match="plate_prior"):
            EvidenceConfig(plate_prior=bad)
    with pytest.raises(ValidationError, match="plate_prior_weight"):
        EvidenceConfig(plate_prior_weight=0.5)


CHARSET = ["", *"浙皖淅苏JT1A2345", " "]


def line_probs(columns: list[dict[str, float]]) -> np.ndarray:
    """Recogniser output with one column per character, a blank column after each; the
    rest of each column's probability goes to the blank."""
    probs = np.zeros((2 * len(columns), len(CHARSET)), dtype=np.float32)
    for i, column in enumerate(columns):
        for char, p in column.items():
            probs[2 * i, CHARSET.index(char)] = p
        probs[2 * i, 0] = 1.0 - sum(column.values())
        probs[2 * i + 1, 0] = 1.0
    return probs


def read(columns: list[dict[str, float]], prior: str | None = None) -> str | None:
    parsed = plates.PlatePrior.parse(prior) if prior else None
    found = plates.plate_from_probs(line_probs(columns), CHARSET, parsed)
    return None if found is None else found[0]


TAIL = [{"A": 0.99}, {"1": 0.99}, {"2": 0.99}, {"3": 0.99}, {"4": 0.99}]


def test_ambiguous_province_reads_as_the_prior_and_a_confident_one_stays() -> None:
    unsure = [{"皖": 0.55, "浙": 0.3}, {"J": 0.99}, *TAIL]
    assert read(unsure) == "皖J·A1234"
    assert read(unsure, "浙") == "浙J·A1234"
    confident = [{"皖": 0.95, "浙": 0.04}, {"J": 0.99}, *TAIL]
    assert read(confident, "浙J") == "皖J·A1234"


def test_prior_letter_turns_an_unsure_city_letter() -> None:
    columns = [{"浙": 0.99}, {"T": 0.5, "J": 0.3}, *TAIL]
    assert read(columns) == "浙T·A1234"
    assert read(columns, "浙J") == "浙J·A1234"
    assert read(columns, "浙") == "浙T·A1234"


def test_format_takes_the_models_own_alternative_but_never_invents() -> None:
    # 淅 is not a province; the model's runner-up at that position (浙) is.
    assert read([{"淅": 0.6, "浙": 0.2}, {"J": 0.99}, *TAIL]) == "浙J·A1234"
    # T read as 1 after the province: a letter the model gave there replaces it.
    assert read([{"浙": 0.99}, {"1": 0.6, "T": 0.3}, *TAIL]) == "浙T·A1234"
    # No plausible province where it belongs: no plate, with or without a prior.
    assert read([{"淅": 0.98, "浙": 0.01}, {"J": 0.99}, *TAIL]) is None
    assert read([{"淅": 0.98, "浙": 0.01}, {"J": 0.99}, *TAIL], "浙J") is None
    # A character missing is never made up.
    assert read([{"J": 0.99}, *TAIL], "浙J") is None


# --------------------------------------------------------------------------- geometry


def test_detected_region_becomes_an_ordered_grown_quad() -> None:
    prob = np.zeros((100, 200), dtype=np.float32)
    rect = ((100.0, 50.0), (80.0, 10.0), 10.0)  # 80 x 10, turned 10 degrees
    cv2.fillPoly(prob, [np.round(cv2.boxPoints(rect)).astype(np.int32)], 0.9)
    prob[5:8, 5:8] = 0.9  # a speck: kept, but after the line
    found = plates.det_boxes(prob, 0.3, 1.5)
    quad, score = found[0]
    assert score == pytest.approx(0.9, abs=0.01)
    top_left, top_right, bottom_right, bottom_left = quad
    assert top_left[0] < top_right[0]
    assert bottom_left[0] < bottom_right[0]
    assert top_left[1] < bottom_left[1]
    assert top_right[1] < bottom_right[1]
    assert top_right[1] > top_left[1]  # turned clockwise, as drawn
    width = float(np.linalg.norm(top_right - top_left))
    height = float(np.linalg.norm(bottom_left - top_left))
    grow = 80 * 10 * 1.5 / (2 * 90)  # DB's unclip: area * ratio / perimeter
    assert width == pytest.approx(81 + 2 * grow, abs=2.0)
    assert height == pytest.approx(11 + 2 * grow, abs=2.0)


def test_a_tilted_line_is_warped_upright() -> None:
    image = np.zeros((120, 240, 3), dtype=np.uint8)
    rect = ((120.0, 60.0), (150.0, 30.0), -12.0)
    corners = cv2.boxPoints(rect)
    cv2.fillPoly(image, [np.round(corners).astype(np.int32)], (255, 255, 255))
    patch = plates.rectify(image, plates._ordered(corners), 48)
    assert patch.shape == (48, 240, 3)  # 150 x 30 at 48 high
    assert patch[4:-4, 4:-4].min() > 200  # all of it the line, nothing of the background


def test_detector_input_is_a_multiple_of_32_in_range() -> None:
    for shape in ((90, 200), (300, 1200), (40, 40)):
        tensor, sx, sy = plates.det_tensor(np.zeros((*shape, 3), dtype=np.uint8))
        _, channels, h, w = tensor.shape
        assert channels == 3
        assert h % 32 == 0
        assert w % 32 == 0
        assert max(h, w) <= plates.DET_MAX_SIDE
        assert sx == pytest.approx(w / shape[1])
        assert sy == pytest.approx(h / shape[0])


def test_detector_in_the_manifest_is_checked_too(tmp_path: Path) -> None:
    import hashlib

    for name, data in (("rec.onnx", b"rec"), ("det.onnx", b"det")):
        (tmp_path / name).write_bytes(data)
    sha = {n: hashlib.sha256(d).hexdigest() for n, d in (("rec", b"rec"), ("det", b"det"))}
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(
        f"file: rec.onnx\nsha256: {sha['rec']}\ndet_file: det.onnx\ndet_sha256: {sha['det']}\n"
    )
    assert plates._checked(tmp_path) == (tmp_path / "rec.onnx", tmp_path / "det.onnx")
    (tmp_path / "det.onnx").write_bytes(b"DET")
    with pytest.raises(ModelError, match="is corrupt"):
        plates._checked(tmp_path)
    (tmp_path / "det.onnx").unlink()
    with pytest.raises(ModelError, match="does not exist"):
        plates._checked(tmp_path)
