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
