"""The shipped street model loads back into PyTorch and computes what its ONNX computes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "models" / "train"))

torch = pytest.importorskip("torch")

import from_onnx  # noqa: E402
from detector import ExportWrapper  # noqa: E402

MODEL = ROOT / "models" / "street-detector"


def test_the_shipped_model_in_pytorch_matches_onnxruntime(tmp_path: Path) -> None:
    import onnxruntime as ort

    model = from_onnx.load_street_detector(MODEL)
    image = np.random.default_rng(0).random((1, 3, 320, 320), dtype=np.float32)
    with torch.no_grad():
        ours = ExportWrapper(model).eval()(torch.from_numpy(image)).numpy()
    session = ort.InferenceSession(str(MODEL / "model.onnx"), providers=["CPUExecutionProvider"])
    theirs = session.run(None, {"images": image})[0]
    assert ours.shape == theirs.shape
    boxes, scores = slice(0, 4), slice(4, None)
    assert np.abs(ours[:, boxes] - theirs[:, boxes]).max() < 1e-2  # input pixels
    assert np.abs(ours[:, scores] - theirs[:, scores]).max() < 1e-4
    # And it trains: one step moves the weights.
    state = tmp_path / "street.pt"
    assert from_onnx.main([str(MODEL), str(state)]) == 0
    model.train()
    before = next(model.parameters()).detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    boxes_out, logits = model(torch.from_numpy(image))
    (logits.sigmoid().mean() + boxes_out.mean() * 0).backward()
    opt.step()
    assert not torch.equal(before, next(model.parameters()))
    assert set(torch.load(state)) == set(model.state_dict())


def test_an_exported_field_set_becomes_the_trainers_letterboxed_layout(tmp_path: Path) -> None:
    """A 640x360 frame with a box becomes a 320x320 letterboxed image whose label sits
    where the box now is; a hard negative keeps its empty label file."""
    import cv2
    import field_data
    import yaml
    from dataset import load_split

    from simulators.scenes import LABELS

    export = tmp_path / "export"
    for split in ("train", "val"):
        (export / "images" / split).mkdir(parents=True)
        (export / "labels" / split).mkdir(parents=True)
    frame = np.zeros((360, 640, 3), np.uint8)
    cv2.imwrite(str(export / "images" / "train" / "ev1.jpg"), frame)
    # goods: x 160..320, y 90..270 of the 640x360 frame
    (export / "labels" / "train" / "ev1.txt").write_text("5 0.375000 0.500000 0.250000 0.500000\n")
    cv2.imwrite(str(export / "images" / "val" / "ev2.jpg"), frame)
    (export / "labels" / "val" / "ev2.txt").write_text("")
    (export / "data.yaml").write_text(yaml.safe_dump({"names": dict(enumerate(LABELS))}))
    root = tmp_path / "data"
    assert field_data.convert(export, root) == {"train": 1, "val": 1}
    images, labels = load_split(root / "train")
    assert images.shape == (1, 320, 320, 3)
    # scale 0.5, 70 px bands above and below: x 80..160, y 115..205 in the square
    assert labels[0][0].tolist() == pytest.approx([5, 80, 115, 160, 205], abs=0.01)
    _, negatives = load_split(root / "val")
    assert len(negatives[0]) == 0
    other = tmp_path / "other"
    (other / "images").mkdir(parents=True)
    (other / "data.yaml").write_text(yaml.safe_dump({"names": {0: "cat"}}))
    with pytest.raises(ValueError, match="exported for the classes"):
        field_data.convert(other, tmp_path / "x")


def test_fine_tuning_starts_from_the_shipped_model(tmp_path: Path) -> None:
    """``train.py --init`` starts from the shipped weights: on the same scenes its first
    epoch's loss is far below a fresh model's."""
    import json

    import dataset
    import train

    data = tmp_path / "data"
    dataset.generate_split(data / "train", 4, dataset.SEED_TRAIN, workers=1)
    dataset.generate_split(data / "val", 2, dataset.SEED_VAL, workers=1)
    init = tmp_path / "street.pt"
    assert from_onnx.main([str(MODEL), str(init)]) == 0
    losses = {}
    for name, extra in (("fresh", []), ("shipped", ["--init", str(init)])):
        out = tmp_path / name
        common = ["--data", str(data), "--out", str(out), "--epochs", "1", "--batch", "2"]
        assert train.main([*common, "--device", "cpu", "--seed", "1", *extra]) == 0
        losses[name] = json.loads((out / "train_log.json").read_text())["history"][0]["loss"]
    assert losses["shipped"] < 0.5 * losses["fresh"], losses

    # The candidate against the current model on the same split, in a signed package.
    import candidate

    from edge_agent.protocol import generate_signing_key
    from edge_agent.vision.config import DetectorConfig
    from edge_agent.vision.onnx_detector import OnnxDetector
    from edge_agent.vision.package import sign_package

    pkg = tmp_path / "pkg"
    figures = candidate.package(tmp_path / "shipped" / "model.onnx", MODEL, data, "1.1.0", pkg)
    assert figures["current"]["images"] == figures["candidate"]["images"] == 2
    card = (pkg / "MODEL_CARD.md").read_text()
    assert "| current |" in card
    assert "| candidate |" in card
    key = generate_signing_key()
    sign_package(pkg, key)
    detector = OnnxDetector(DetectorConfig(model=pkg), package_key=key.public_key())
    assert detector.model_ref.version == "1.1.0"
    with pytest.raises(ValueError, match="not empty"):
        candidate.package(tmp_path / "shipped" / "model.onnx", MODEL, data, "1.1.0", pkg)
