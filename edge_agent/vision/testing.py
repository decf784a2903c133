"""Helpers for tests and benchmarks: tiny ONNX detector models with known outputs.

Needs the ``onnx`` package (a dev/train dependency), imported only when used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import yaml

__all__ = ["write_constant_model"]


def write_constant_model(
    folder: Path,
    output: npt.NDArray[np.float32],
    labels: Sequence[str],
    *,
    size: int = 320,
    layout: str | None = "raw",
    with_sha: bool = True,
    name: str = "const-detector",
) -> Path:
    """Write ``model.onnx`` (always answering ``output``) and ``manifest.yaml`` to ``folder``.

    The graph adds ``0 * mean(input)`` to the constant so the input is really consumed.
    Returns ``folder``.
    """
    import onnx  # dev dependency: tests and benches only
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    const = numpy_helper.from_array(np.asarray(output, dtype=np.float32), name="answer")
    zero = numpy_helper.from_array(np.zeros((), dtype=np.float32), name="zero")
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["answer", "nothing"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "const",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(output.shape))],
        initializer=[const, zero],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    (folder / "model.onnx").write_bytes(data)
    manifest: dict[str, object] = {
        "name": name,
        "version": "1.0.0",
        "labels": list(labels),
        "input_size": size,
        "input_layout": "NCHW",
        "thresholds": {"score": 0.25, "iou": 0.5},
    }
    if layout is not None:
        manifest["output_layout"] = layout
    if with_sha:
        manifest["sha256"] = hashlib.sha256(data).hexdigest()
    (folder / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return folder
