"""Training code: dataset format, metrics, loss assignment, smoke training and ONNX export."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

TRAIN_DIR = Path(__file__).resolve().parents[3] / "models" / "train"
sys.path.insert(0, str(TRAIN_DIR))

torch = pytest.importorskip("torch")

import dataset  # noqa: E402
import metrics  # noqa: E402


def test_dataset_writes_yolo_labels(tmp_path: Path) -> None:
    n_obj = dataset.generate_split(
        tmp_path / "train", 6, dataset.SEED_TRAIN, workers=1, empty_frac=0.2
    )
    images = sorted((tmp_path / "train" / "images").glob("*.jpg"))
    labels = sorted((tmp_path / "train" / "labels").glob("*.txt"))
    assert len(images) == 6
    assert len(labels) == 6
    assert labels[0].read_text() == ""  # the first 20 % are empty scenes
    rows = [line.split() for p in labels for line in p.read_text().splitlines()]
    assert len(rows) == n_obj > 0
    for r in rows:
        assert len(r) == 5
        c = int(r[0])
        cx, cy, w, h = (float(v) for v in r[1:])
        assert 0 <= c < 11
        assert 0 < w <= 1
        assert 0 < h <= 1
        # letterboxed 16:9 content lives between y = 70 and 250 of 320
        assert cy - h / 2 >= 70 / 320 - 1e-4
        assert cy + h / 2 <= 250 / 320 + 1e-4
        assert cx - w / 2 >= -1e-4
        assert cx + w / 2 <= 1 + 1e-4
    imgs, labs = dataset.load_split(tmp_path / "train", workers=1)
    assert imgs.shape == (6, 320, 320, 3)
    assert (imgs[:, :60] == 114).all()  # gray letterbox band
    assert sum(len(x) for x in labs) == n_obj


def test_average_precision_perfect_and_empty() -> None:
    truths = [[(0, [10, 10, 50, 50]), (1, [60, 60, 90, 120])]]
    perfect = [[(0, 0.9, np.array([10, 10, 50, 50.0])), (1, 0.8, np.array([61, 60, 90, 119.0]))]]
    res = metrics.evaluate(perfect, truths, 2, 0.5)
    assert res["map50"] == pytest.approx(1.0)
    miss = [[(0, 0.9, np.array([100, 100, 140, 140.0]))]]
    res = metrics.evaluate(miss, truths, 2, 0.5)
    assert res["map50"] == pytest.approx(0.0)
    assert res["precision"] == 0.0


def test_nms_keeps_best_of_overlaps_per_class() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10.0]])
    out = metrics.nms(boxes, np.array([0.9, 0.8, 0.7]), np.array([0, 0, 1]), 0.5, 10)
    assert [(c, round(s, 1)) for c, s, _ in out] == [(0, 0.9), (1, 0.7)]


def test_assignment_gives_positives_inside_the_box() -> None:
    from detector import StreetDetector
    from loss import assign

    model = StreetDetector(11)
    anchors, strides = model.anchors(
        [(40, 40), (20, 20), (10, 10)], torch.device("cpu"), torch.float32
    )
    a = anchors.shape[0]
    pboxes = torch.cat([anchors - 12, anchors + 12], 1)[None]
    scores = torch.full((1, a, 11), 0.1)
    gt_cls = torch.tensor([[3, -1]])
    gt_box = torch.tensor([[[100.0, 100.0, 160.0, 140.0], [0.0, 0.0, 0.0, 0.0]]])
    tbox, tscore, fg = assign(scores, pboxes, anchors, strides, gt_cls, gt_box)
    assert 0 < int(fg.sum()) <= 10
    pos = anchors[fg[0]]
    assert ((pos[:, 0] > 95) & (pos[:, 0] < 165) & (pos[:, 1] > 95) & (pos[:, 1] < 145)).all()
    assert (tscore[0, fg[0]].argmax(-1) == 3).all()
    assert torch.allclose(tbox[0, fg[0]], gt_box[0, 0].expand(int(fg.sum()), 4))


def test_smoke_training_exports_yolo_layout(tmp_path: Path) -> None:
    import onnxruntime as ort
    import train

    data = tmp_path / "data"
    dataset.generate_split(data / "train", 4, dataset.SEED_TRAIN, workers=1)
    dataset.generate_split(data / "val", 2, dataset.SEED_VAL, workers=1)
    out = tmp_path / "run"
    rc = train.main(
        ["--data", str(data), "--out", str(out), "--epochs", "1", "--batch", "2", "--device", "cpu"]
    )
    assert rc == 0
    log = json.loads((out / "train_log.json").read_text())
    assert log["epochs_run"] == 1
    assert np.isfinite(log["history"][0]["loss"])
    assert log["params"] < 3_000_000
    model = out / "model.onnx"
    assert model.stat().st_size < 10_000_000
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, 320, 320), dtype=np.float32)
    (y,) = sess.run(None, {sess.get_inputs()[0].name: x})
    assert y.shape == (1, 4 + 11, 2100)
    assert (y[0, 4:] >= 0).all()
    assert (y[0, 4:] <= 1).all()
    assert (y[0, 2:4] > 0).all()  # positive widths and heights
