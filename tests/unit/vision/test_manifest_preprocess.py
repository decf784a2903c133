"""Manifest reading of pre-processing, output layouts and keep_labels, and its errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.vision.errors import ModelError
from edge_agent.vision.manifest import Manifest, Preprocess, label_indices, load_manifest

COCO_SOME = ("person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck",
             "umbrella", "chair", "dining_table")  # fmt: skip

NANODET = """
name: nanodet-g
labels: [person, bicycle, car, motorcycle, airplane, bus, train, truck, umbrella, chair,
         dining_table]
input: {name: "input_1:0", shape: [1, 3, 416, 416], layout: NCHW, color: BGR,
        mean: [103.53, 116.28, 123.675], std: [57.375, 57.12, 58.395],
        letterbox: {pad_value: 0, centered: true, keep_aspect: true}}
output: {layout: yolo_raw}
keep_labels: [person, bicycle, car, motorcycle, bus, truck, umbrella, chair, dining_table]
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "manifest.yaml").write_text(text)
    return tmp_path


def base(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"labels": list(COCO_SOME), "input": {"shape": [1, 3, 64, 64]}}
    for key, value in extra.items():
        if key.startswith("input_"):
            data["input"][key.removeprefix("input_")] = value
        else:
            data[key] = value
    return data


def load(tmp_path: Path, data: dict[str, Any]) -> Manifest:
    return load_manifest(write(tmp_path, yaml.safe_dump(data)))


def test_the_lead_s_nanodet_manifest(tmp_path: Path) -> None:
    m = load_manifest(write(tmp_path, NANODET))
    assert (m.input_size, m.output_layout, m.rgb) == (416, "raw", False)
    assert m.preprocess == Preprocess(
        rgb=False,
        mean=(103.53, 116.28, 123.675),
        std=(57.375, 57.12, 58.395),
        pad_value=0,
        centered=True,
    )
    assert m.keep_labels is not None
    assert "airplane" not in m.keep_labels
    assert len(m.keep_labels) == 9


def test_street_manifest_scale_and_defaults(tmp_path: Path) -> None:
    street = load(tmp_path, base(input_color="RGB", input_scale="1/255"))
    assert street.preprocess == Preprocess()  # RGB, mean 0, std 255, pad 114, centred
    assert street.keep_labels is None
    assert load(tmp_path, base()).preprocess == Preprocess()
    assert load(tmp_path, base(input_scale=1)).preprocess.std == (1.0, 1.0, 1.0)
    assert load(tmp_path, base(input_scale=0.5)).preprocess.std == (2.0, 2.0, 2.0)
    with_mean = load(tmp_path, base(input_mean=[1, 2, 3], input_scale="1 / 2")).preprocess
    assert (with_mean.mean, with_mean.std) == ((1.0, 2.0, 3.0), (2.0, 2.0, 2.0))
    assert load(tmp_path, base(input_std=58)).preprocess.std == (58.0, 58.0, 58.0)


def test_yolox_official_preprocessing_and_layout(tmp_path: Path) -> None:
    m = load(
        tmp_path,
        base(
            input_color="BGR",
            input_scale=1,
            input_letterbox={"pad_value": 114, "centered": False},
            output={"layout": "yolox", "strides": [8, 16, 32, 64]},
        ),
    )
    assert m.output_layout == "yolox"
    assert m.strides == (8, 16, 32, 64)
    assert not m.boxes_decoded
    assert m.preprocess == Preprocess(rgb=False, std=(1, 1, 1), pad_value=114, centered=False)
    m = load(tmp_path, base(output={"layout": "YOLOX_raw", "decoded": True}))
    assert (m.output_layout, m.strides, m.boxes_decoded) == ("yolox", (8, 16, 32), True)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"input_std": [57.0, 0, 58.0]}, r"input\.std must be positive"),
        ({"input_std": [57.0, 58.0]}, r"input\.std must be 3 numbers"),
        ({"input_mean": [1, 2, 3, 4]}, r"input\.mean must be 3 numbers"),
        ({"input_mean": ["a", 2, 3]}, r"input\.mean must be 3 numbers"),
        ({"input_mean": "blue"}, r"input\.mean must be 3 numbers"),
        ({"input_mean": [1, True, 3]}, r"input\.mean must be 3 numbers"),
        ({"mean": [1, 2, float("nan")]}, r": mean must be 3 numbers"),
        ({"input_std": 1, "input_scale": 1}, r"give input\.std or input\.scale, not both"),
        ({"input_scale": 0}, r"input\.scale must be a positive number"),
        ({"input_scale": "1/0"}, r"input\.scale must be a positive number"),
        ({"input_scale": "one"}, r"input\.scale must be a positive number"),
        ({"input_color": "gray"}, r"input\.color 'gray' is not RGB or BGR"),
        ({"input_letterbox": {"pad_value": 300}}, r"letterbox\.pad_value must be a whole"),
        ({"input_letterbox": {"pad_value": 1.5}}, r"letterbox\.pad_value must be a whole"),
        ({"input_letterbox": {"centred": False}}, r"unknown keys \['centred'\]"),
        ({"input_letterbox": {"centered": "no"}}, r"letterbox\.centered must be true or"),
        ({"input_letterbox": {"keep_aspect": False}}, r"keep_aspect must be true"),
        ({"input_letterbox": False}, r"input\.letterbox must be a mapping"),
        ({"output": {"layout": "yolox", "strides": []}}, r"output\.strides must be a list"),
        ({"output": {"layout": "yolox", "strides": [8, 0]}}, r"output\.strides must be a"),
        ({"output": {"layout": "yolox", "decoded": "yes"}}, r"output\.decoded must be true"),
        ({"output": {"layout": "yolo_nas"}}, r"output layout 'yolo_nas' is not one of"),
        ({"keep_labels": "person"}, r"keep_labels must be a list of label names"),
        ({"keep_labels": []}, r"keep_labels is empty"),
    ],
)
def test_bad_values_name_the_file_and_field(
    tmp_path: Path, extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(ModelError, match=message) as info:
        load(tmp_path, base(**extra))
    assert str(tmp_path / "manifest.yaml") in str(info.value)


def test_keep_label_the_model_lacks(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"keep_labels names \['stall'\]") as info:
        load(tmp_path, base(keep_labels=["person", "stall"]))
    assert "its labels are ['person', 'bicycle'," in str(info.value)
    assert str(tmp_path / "manifest.yaml") in str(info.value)


def test_label_indices() -> None:
    assert label_indices(COCO_SOME, ["car", "person", "car"], "x") == (0, 2)
    with pytest.raises(ModelError, match=r"cfg names \['boat'\], which the model does not"):
        label_indices(COCO_SOME, ["boat"], "cfg")
