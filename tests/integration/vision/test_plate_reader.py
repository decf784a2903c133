"""The plate reader on the shipped recogniser (``models/plate-ocr``) and rendered plates."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.vision.plates import OnnxPlateReader, default_plate_model
from simulators.scenes.plates import plate_image


@pytest.fixture(scope="module")
def reader() -> OnnxPlateReader:
    if not (default_plate_model() / "ch_PP-OCRv4_rec_infer.onnx").is_file():
        pytest.fail("the shipped plate model models/plate-ocr is missing")
    return OnnxPlateReader()


def car_with_plate(text: str, plate_width: int, style: int) -> tuple[np.ndarray, tuple[float, ...]]:
    """A 1280x720 frame with a grey car box whose lower part carries the plate."""
    image = np.full((720, 1280, 3), (90, 110, 100), dtype=np.uint8)
    x1, y1, x2, y2 = 400, 200, 400 + 4 * plate_width, 200 + 3 * plate_width
    image[y1:y2, x1:x2] = (200, 200, 205)
    plate = plate_image(text, plate_width, round(plate_width * 140 / 440), style)
    ph, pw = plate.shape[:2]
    top, left = y2 - 2 * ph, (x1 + x2 - pw) // 2
    image[top : top + ph, left : left + pw] = plate
    return image, (x1 / 1280, y1 / 720, x2 / 1280, y2 / 720)


@pytest.mark.parametrize(("text", "width", "style"), [("浙Q·7319T", 70, 0), ("浙A·D3K21", 140, 2)])
def test_reads_blue_and_green_plates(
    reader: OnnxPlateReader, text: str, width: int, style: int
) -> None:
    image, box = car_with_plate(text, width, style)
    plate = reader.read(image, box)
    assert plate is not None
    assert plate.text == text
    assert 0.5 < plate.score <= 1.0


def test_a_car_without_a_plate_gives_none(reader: OnnxPlateReader) -> None:
    image = np.full((720, 1280, 3), (200, 200, 205), dtype=np.uint8)
    assert reader.read(image, (0.3, 0.3, 0.6, 0.7)) is None
