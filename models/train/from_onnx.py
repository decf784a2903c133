"""The shipped street model back in PyTorch, to fine-tune it on a city's own footage.

The repository ships ``models/street-detector/model.onnx``, not a PyTorch checkpoint, and
its export folded every BatchNorm into the convolution before it. This loads those
weights into :class:`detector.StreetDetector`: each convolution gets the ONNX one that
ran in the same place (the order a forward pass calls them in, which is the order the
exporter traced), and each BatchNorm becomes the identity carrying the folded bias
(weight 1, mean 0, variance 1 - eps), so the module computes what the ONNX model does
(checked against onnxruntime in ``tests/unit/model``). Training then runs as usual; the
BatchNorms learn again from there.

    python models/train/from_onnx.py models/street-detector OUT.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import onnx
import torch
import yaml
from detector import StreetDetector
from onnx import numpy_helper
from torch import nn


def load_street_detector(model_dir: Path) -> StreetDetector:
    """A :class:`StreetDetector` computing what ``model_dir``'s ONNX model computes."""
    manifest = yaml.safe_load((model_dir / "manifest.yaml").read_text(encoding="utf-8"))
    model = StreetDetector(len(manifest["labels"]))
    model.eval()
    called: list[nn.Conv2d] = []
    hooks = [
        m.register_forward_hook(lambda mod, _i, _o: called.append(mod))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    graph = onnx.load(str(model_dir / "model.onnx")).graph
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    if len(convs) != len(called):
        raise ValueError(
            f"{model_dir}: {len(convs)} convolutions in the ONNX model, "
            f"{len(called)} in StreetDetector: not the same architecture"
        )
    batch_norm_of = {
        m.conv: m.bn
        for m in model.modules()
        if isinstance(getattr(m, "conv", None), nn.Conv2d)
        and isinstance(getattr(m, "bn", None), nn.BatchNorm2d)
    }
    with torch.no_grad():
        for conv, node in zip(called, convs, strict=True):
            weight = torch.from_numpy(weights[node.input[1]].copy())
            bias = torch.from_numpy(weights[node.input[2]].copy()) if len(node.input) > 2 else None
            if weight.shape != conv.weight.shape:
                raise ValueError(
                    f"{model_dir}: ONNX convolution {node.name} has weights "
                    f"{tuple(weight.shape)}, the module {tuple(conv.weight.shape)}"
                )
            conv.weight.copy_(weight)
            bn = batch_norm_of.get(conv)
            if bn is not None:  # folded: the BatchNorm carries the bias, scales by 1
                bn.weight.fill_(1.0)
                bn.bias.copy_(bias if bias is not None else torch.zeros_like(bn.bias))
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
            elif conv.bias is not None and bias is not None:
                conv.bias.copy_(bias)
    return model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir", type=Path, help="a street model folder (model.onnx, manifest)")
    ap.add_argument("out", type=Path, help="where to write the PyTorch state dict (.pt)")
    args = ap.parse_args(argv)
    model = load_street_detector(args.model_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
