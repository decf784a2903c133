"""Turn NanoDet-g (a TensorFlow.js graph model) into the agent's ``model.onnx``.

Runs inside the throwaway virtualenv that ``models/convert/general_detector.sh`` makes
(tensorflow-cpu, tf2onnx, onnx, onnxruntime at pinned versions); TensorFlow is never a
dependency of the project. Steps:

1. ``tf2onnx`` converts the TFJS graph (``--tfjs``, opset 13) into a raw ONNX graph whose
   six outputs are, per stride 8/16/32, class scores ``[1, N, 80]`` (already sigmoid) and
   box distributions ``[1, N, 44]`` (4 sides x 11 bins, GFL with reg_max 10).
2. The decoding is baked into the graph so the output is the YOLOv8 raw layout the agent
   already reads, ``[1, 4 + 80, 3549]``: a softmax over each side's 11 bins, its integral
   (expected distance in cells), times the stride, around the cell centres
   ``((col + 0.5) * stride, (row + 0.5) * stride)``, as ``cx, cy, w, h`` in input pixels,
   followed by the 80 class scores.
3. TensorFlow runs the same TFJS graph (a GraphDef rebuilt from the JSON topology and the
   weights file) on the same inputs; the raw ONNX outputs and the baked ONNX output are
   compared with TensorFlow's raw outputs and a NumPy decoding of them. The largest
   absolute difference must be at most ``--tolerance`` (1e-3), or the script fails.
4. The weights are stored as float16 (they come as float16: exactly, half the file).
5. The manifest is written with the model's sha256.

Usage (from the shell script)::

    python nanodet_onnx.py --tfjs DIR --out models/general-detector --source-json FILE
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

INPUT_SIZE = 416
STRIDES = (8, 16, 32)
REG_MAX = 10  # 11 bins per side
NUM_CLASSES = 80
#: Channel order of the input is B, G, R; values are (pixel - mean) / std.
MEAN_BGR = (103.53, 116.28, 123.675)
STD_BGR = (57.375, 57.12, 58.395)

#: COCO's 80 labels in the model's class order, spaces written as underscores so that
#: the agent's config can name them (``dining_table``).
COCO_LABELS = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic_light",
    "fire_hydrant",
    "stop_sign",
    "parking_meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports_ball",
    "kite",
    "baseball_bat",
    "baseball_glove",
    "skateboard",
    "surfboard",
    "tennis_racket",
    "bottle",
    "wine_glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot_dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted_plant",
    "bed",
    "dining_table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell_phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy_bear",
    "hair_drier",
    "toothbrush",
]
#: The classes the city's rules use: people and vehicles, and what vendors set out.
KEEP_LABELS = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "bus",
    "truck",
    "umbrella",
    "chair",
    "dining_table",
)


def cells(stride: int) -> int:
    """Number of cells of one stride's feature map."""
    side = INPUT_SIZE // stride
    return side * side


def centres() -> np.ndarray:
    """``(3549, 2)`` cell centres in input pixels, strides in order, rows major."""
    out = []
    for s in STRIDES:
        side = INPUT_SIZE // s
        ys, xs = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
        out.append(np.stack([(xs.ravel() + 0.5) * s, (ys.ravel() + 0.5) * s], axis=1))
    return np.concatenate(out).astype(np.float32)


def stride_column() -> np.ndarray:
    """``(1, 3549, 1)`` stride of each cell."""
    return np.concatenate([np.full(cells(s), s, np.float32) for s in STRIDES])[None, :, None]


#: ``[l, t, r, b] @ SIDES_TO_CXCYWH`` = offset of the centre (dx, dy) and the size (w, h).
SIDES_TO_CXCYWH = np.array(
    [[-0.5, 0.0, 1.0, 0.0], [0.0, -0.5, 0.0, 1.0], [0.5, 0.0, 1.0, 0.0], [0.0, 0.5, 0.0, 1.0]],
    dtype=np.float32,
)


def decode_numpy(scores: list[np.ndarray], dists: list[np.ndarray]) -> np.ndarray:
    """The baked decoding in NumPy: per-stride outputs -> ``(1, 84, 3549)``."""
    reg = np.concatenate(dists, axis=1).reshape(1, -1, 4, REG_MAX + 1).astype(np.float64)
    reg = np.exp(reg - reg.max(axis=-1, keepdims=True))
    reg /= reg.sum(axis=-1, keepdims=True)
    sides = (reg * np.arange(REG_MAX + 1)).sum(axis=-1) * stride_column()
    boxes = sides @ SIDES_TO_CXCYWH.astype(np.float64)
    boxes[..., :2] += centres()[None]
    out = np.concatenate([boxes, np.concatenate(scores, axis=1)], axis=2)
    return out.transpose(0, 2, 1).astype(np.float32)


# ----------------------------------------------------------------------------- conversion


def tf2onnx_convert(model_json: Path, out: Path) -> None:
    """Run tf2onnx's command line on the TFJS graph (opset 13)."""
    cmd = [sys.executable, "-m", "tf2onnx.convert", "--tfjs", str(model_json)]
    cmd += ["--opset", "13", "--output", str(out)]
    # tf2onnx walks sets of nodes: a fixed hash seed makes it write the same bytes.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)


def per_stride_outputs(model: onnx.ModelProto) -> tuple[list[str], list[str]]:
    """Names of the score and distribution outputs, ordered by stride 8, 16, 32.

    The converter's names (``Identity_2:0`` ...) carry no meaning; the shapes do.
    """
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.zeros((1, 3, INPUT_SIZE, INPUT_SIZE), np.float32)
    names = [o.name for o in sess.get_outputs()]
    values = sess.run(None, {model.graph.input[0].name: x})
    shapes = {name: v.shape for name, v in zip(names, values, strict=True)}
    scores, dists = [], []
    for s in STRIDES:
        n = cells(s)
        scores += [k for k, v in shapes.items() if v == (1, n, NUM_CLASSES)]
        dists += [k for k, v in shapes.items() if v == (1, n, 4 * (REG_MAX + 1))]
    if len(scores) != 3 or len(dists) != 3:
        raise SystemExit(f"unexpected NanoDet outputs: {shapes}")
    return scores, dists


def bake_decoding(model: onnx.ModelProto) -> onnx.ModelProto:
    """Append the GFL decoding; the model's one output becomes ``output0 [1, 84, 3549]``."""
    graph = model.graph
    scores, dists = per_stride_outputs(model)
    total = sum(cells(s) for s in STRIDES)
    consts = {
        "xh_bins": np.arange(REG_MAX + 1, dtype=np.float32).reshape(REG_MAX + 1, 1),
        "xh_shape4": np.array([1, total, 4, REG_MAX + 1], np.int64),
        "xh_shape3": np.array([1, total, 4], np.int64),
        "xh_strides": stride_column(),
        "xh_sides": SIDES_TO_CXCYWH,
        "xh_centres": np.concatenate([centres(), np.zeros((total, 2), np.float32)], axis=1)[None],
    }
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items())
    nodes = [
        helper.make_node("Concat", dists, ["xh_reg"], axis=1),
        helper.make_node("Reshape", ["xh_reg", "xh_shape4"], ["xh_reg4"]),
        helper.make_node("Softmax", ["xh_reg4"], ["xh_prob"], axis=-1),
        helper.make_node("MatMul", ["xh_prob", "xh_bins"], ["xh_cells"]),
        helper.make_node("Reshape", ["xh_cells", "xh_shape3"], ["xh_cells3"]),
        helper.make_node("Mul", ["xh_cells3", "xh_strides"], ["xh_px"]),
        helper.make_node("MatMul", ["xh_px", "xh_sides"], ["xh_rel"]),
        helper.make_node("Add", ["xh_rel", "xh_centres"], ["xh_boxes"]),
        helper.make_node("Concat", scores, ["xh_scores"], axis=1),
        helper.make_node("Concat", ["xh_boxes", "xh_scores"], ["xh_rows"], axis=2),
        helper.make_node("Transpose", ["xh_rows"], ["output0"], perm=[0, 2, 1]),
    ]
    graph.node.extend(nodes)
    del graph.output[:]
    graph.output.append(
        helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + NUM_CLASSES, total])
    )
    onnx.checker.check_model(model)
    return model


def canonical(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph with names and order that depend only on what it computes.

    tf2onnx walks its graph in an order that changes from run to run, so its node and
    tensor names (``pad_const__59``) and the node order differ between two conversions
    of the same model. Here every tensor is named by a hash of how it is computed (its
    op, attributes and the hashes of its inputs; an initializer by its values), nodes
    that compute the same thing are merged, and nodes are sorted by those hashes in
    topological order, so two conversions write the same bytes.
    """
    graph = model.graph
    keep = {v.name for v in graph.input} | {v.name for v in graph.output}
    digest: dict[str, str] = {"": ""}
    for name in keep:
        digest[name] = hashlib.sha256(f"io:{name}".encode()).hexdigest()
    for tensor in graph.initializer:
        array = numpy_helper.to_array(tensor)
        h = hashlib.sha256(f"{array.dtype}{array.shape}".encode() + array.tobytes())
        digest[tensor.name] = h.hexdigest()
    for node in graph.node:  # ONNX keeps nodes in topological order
        attrs = sorted(a.SerializeToString(deterministic=True) for a in node.attribute)
        body = hashlib.sha256(f"{node.domain}/{node.op_type}".encode())
        for a in attrs:
            body.update(a)
        for i in node.input:
            body.update(digest[i].encode())
        for k, out in enumerate(node.output):
            if out not in keep:
                digest[out] = hashlib.sha256(body.digest() + str(k).encode()).hexdigest()

    def rename(name: str) -> str:
        return name if name in keep or not name else f"t_{digest[name][:16]}"

    inits: dict[str, onnx.TensorProto] = {}
    for tensor in graph.initializer:
        copy = onnx.TensorProto()
        copy.CopyFrom(tensor)
        copy.name = rename(tensor.name)
        inits[copy.name] = copy
    nodes: dict[str, onnx.NodeProto] = {}
    for node in graph.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.input[:] = [rename(i) for i in node.input]
        copy.output[:] = [rename(o) for o in node.output]
        copy.name = (
            f"n_{digest[node.output[0]][:16]}" if node.output[0] not in keep else node.output[0]
        )
        nodes.setdefault(copy.name, copy)
    # Kahn's algorithm, ties broken by name: a topological order that names alone decide.
    ready_tensors = set(inits) | keep | {""}
    pending = dict(nodes)
    ordered: list[onnx.NodeProto] = []
    while pending:
        ready = sorted(k for k, n in pending.items() if all(i in ready_tensors for i in n.input))
        if not ready:
            raise SystemExit("graph has a cycle or a dangling input")
        for key in ready:
            ordered.append(pending.pop(key))
            ready_tensors.update(ordered[-1].output)
    del graph.node[:]
    graph.node.extend(ordered)
    del graph.initializer[:]
    graph.initializer.extend(inits[k] for k in sorted(inits))
    del graph.value_info[:]
    graph.name = "general_detector"
    graph.doc_string = ""  # tf2onnx writes the input's path here
    model.doc_string = ""
    onnx.checker.check_model(model)
    return model


def store_half(model: onnx.ModelProto) -> onnx.ModelProto:
    """Store the weights as float16, each behind a ``Cast`` to float32.

    The TFJS package carries its weights as float16 already, so every weight survives
    the round trip exactly (checked here: a weight that would not is left in float32)
    and the file is half the size. onnxruntime folds the casts when it loads the model,
    so inference still runs in float32 on the same numbers.
    """
    graph = model.graph
    casts: list[onnx.NodeProto] = []
    for tensor in graph.initializer:
        if tensor.data_type != TensorProto.FLOAT:
            continue
        values = numpy_helper.to_array(tensor)
        half = values.astype(np.float16)
        if values.size <= 16 or not np.array_equal(half.astype(np.float32), values):
            continue
        name = tensor.name
        tensor.CopyFrom(numpy_helper.from_array(half, f"{name}_f16"))
        casts.append(helper.make_node("Cast", [f"{name}_f16"], [name], to=TensorProto.FLOAT))
    casts.sort(key=lambda node: node.output[0])
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    onnx.checker.check_model(model)
    return model


# ----------------------------------------------------------------------------- reference


def tensorflow_reference(
    tfjs_dir: Path, model_json: Path, inputs: list[np.ndarray]
) -> list[dict[str, np.ndarray]]:
    """Run the TFJS graph in TensorFlow: the JSON topology is a GraphDef; the weights
    (some stored as float16) fill its empty ``Const`` nodes."""
    import tensorflow as tf
    from google.protobuf import json_format

    spec = json.loads(model_json.read_text())
    graph_def = tf.compat.v1.GraphDef()
    json_format.ParseDict(spec["modelTopology"], graph_def, ignore_unknown_fields=True)
    weights: dict[str, np.ndarray] = {}
    for group in spec["weightsManifest"]:
        blob = b"".join((tfjs_dir / p).read_bytes() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            stored = w.get("quantization", {}).get("dtype", w["dtype"])
            dtype = np.dtype(stored)
            count = int(np.prod(w["shape"])) if w["shape"] else 1
            raw = np.frombuffer(blob, dtype=dtype, count=count, offset=offset)
            offset += count * dtype.itemsize
            weights[w["name"]] = raw.astype(w["dtype"]).reshape(w["shape"])
        if offset != len(blob):
            raise SystemExit(f"weights file holds {len(blob)} bytes, manifest {offset}")
    for node in graph_def.node:
        if node.op == "Const" and node.name in weights:
            # TFJS stores int64 constants as int32; the node keeps its declared type.
            declared = tf.dtypes.as_dtype(node.attr["dtype"].type).as_numpy_dtype
            value = weights[node.name].astype(declared)
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
    outputs = list(spec["signature"]["outputs"])
    input_name = next(iter(spec["signature"]["inputs"]))
    results = []
    with tf.Graph().as_default() as g:
        tf.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=g) as sess:
            for x in inputs:
                values = sess.run(outputs, {input_name: x})
                results.append(dict(zip(outputs, values, strict=True)))
    return results


def test_inputs() -> list[np.ndarray]:
    """Three fixed inputs: noise, a smooth gradient, and a normalised gray frame."""
    rng = np.random.default_rng(20261204)
    noise = rng.normal(0.0, 1.0, (1, 3, INPUT_SIZE, INPUT_SIZE)).astype(np.float32)
    ramp = np.linspace(-2.0, 2.0, INPUT_SIZE, dtype=np.float32)
    gradient = np.broadcast_to(ramp[None, None, None, :] * ramp[None, None, :, None], noise.shape)
    gray = np.stack(
        [
            np.full((INPUT_SIZE, INPUT_SIZE), (114 - m) / s, np.float32)
            for m, s in zip(MEAN_BGR, STD_BGR, strict=True)
        ]
    )[None]
    return [noise, np.ascontiguousarray(gradient), gray]


def compare(
    raw: Path,
    baked: Path,
    reference: list[dict[str, np.ndarray]],
    inputs: list[np.ndarray],
    tolerance: float,
) -> float:
    """Largest absolute difference of the raw and baked ONNX outputs from TensorFlow's."""
    import onnxruntime as ort

    raw_sess = ort.InferenceSession(str(raw), providers=["CPUExecutionProvider"])
    baked_sess = ort.InferenceSession(str(baked), providers=["CPUExecutionProvider"])
    name = raw_sess.get_inputs()[0].name
    worst = 0.0
    for x, ref in zip(inputs, reference, strict=True):
        outs = dict(
            zip(
                [o.name for o in raw_sess.get_outputs()], raw_sess.run(None, {name: x}), strict=True
            )
        )
        for key, value in ref.items():
            worst = max(worst, float(np.abs(outs[key] - value).max()))
        scores = [ref[k] for k in _by_stride(ref, NUM_CLASSES)]
        dists = [ref[k] for k in _by_stride(ref, 4 * (REG_MAX + 1))]
        expected = decode_numpy(scores, dists)
        got = baked_sess.run(None, {name: x})[0]
        worst = max(worst, float(np.abs(got - expected).max()))
    if worst > tolerance:
        raise SystemExit(f"ONNX differs from TensorFlow by {worst:.2e} (> {tolerance})")
    return worst


def _by_stride(outputs: dict[str, np.ndarray], width: int) -> list[str]:
    return [next(k for k, v in outputs.items() if v.shape == (1, cells(s), width)) for s in STRIDES]


# ----------------------------------------------------------------------------- manifest


def write_manifest(out: Path, source: dict[str, Any], max_diff: float) -> str:
    """Write ``manifest.yaml`` beside ``model.onnx``; returns the model's sha256."""
    data = (out / "model.onnx").read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    labels = "\n".join(f"  - {name}" for name in COCO_LABELS)
    keep = ", ".join(KEEP_LABELS)
    text = f"""# General detector for xiuhua edge agents (COCO classes). Written by
# models/convert/nanodet_onnx.py; run models/convert/general_detector.sh to reproduce.
name: general-detector
version: "1.0.0"
file: model.onnx
sha256: {sha}
size_bytes: {len(data)}
labels:
{labels}
# Only these classes raise detections; a camera's detector config may override.
keep_labels: [{keep}]
input:
  name: "input_1:0"
  shape: [1, 3, {INPUT_SIZE}, {INPUT_SIZE}]
  layout: NCHW
  color: BGR
  mean: [{", ".join(str(m) for m in MEAN_BGR)}]
  std: [{", ".join(str(s) for s in STD_BGR)}]
  dtype: float32
  letterbox: {{pad_value: 0, centered: true, keep_aspect: true}}
output:
  name: output0
  layout: yolo_raw
  shape: [1, {4 + NUM_CLASSES}, {sum(cells(s) for s in STRIDES)}]
  boxes: cxcywh_input_pixels
  scores: sigmoid_per_class
  objectness: false
default_thresholds:
  score: 0.35
  nms_iou: 0.6
source:
  package: "{source["package"]}"
  version: "{source["version"]}"
  integrity: "{source["integrity"]}"
  files: [models/nanodet.json, models/nanodet.bin]
  upstream: "NanoDet-g 416, RangiLyu/nanodet (Apache-2.0)"
conversion:
  tool: "tf2onnx {source["tf2onnx"]}, opset 13, tensorflow-cpu {source["tensorflow"]}"
  decoding: "GFL (reg_max 10) baked into the graph: boxes cx, cy, w, h in input pixels"
  max_abs_diff_vs_tensorflow: {max_diff:.2e}
"""
    (out / "manifest.yaml").write_text(text, encoding="utf-8")
    return sha


def main(argv: list[str] | None = None) -> int:
    """Convert, bake, compare, write; print the sha256 and the largest difference."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tfjs", type=Path, required=True, help="folder with nanodet.json/.bin")
    parser.add_argument("--out", type=Path, required=True, help="models/general-detector")
    parser.add_argument("--source-json", type=Path, required=True, help="npm pack --json output")
    parser.add_argument("--tolerance", type=float, default=1e-3)
    args = parser.parse_args(argv)
    import tensorflow as tf
    import tf2onnx

    pack = json.loads(args.source_json.read_text())[0]
    source = {
        "package": pack["name"],
        "version": pack["version"],
        "integrity": pack["integrity"],
        "tf2onnx": tf2onnx.__version__,
        "tensorflow": tf.__version__,
    }
    model_json = args.tfjs / "nanodet.json"
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        tf2onnx_convert(model_json, raw)
        model = store_half(canonical(bake_decoding(onnx.load(str(raw)))))
        # Fixed producer fields so two runs write the same bytes.
        model.producer_name = "xiuhua models/convert/nanodet_onnx.py"
        model.producer_version = "1"
        onnx.save(model, str(args.out / "model.onnx"))
        inputs = test_inputs()
        reference = tensorflow_reference(args.tfjs, model_json, inputs)
        worst = compare(raw, args.out / "model.onnx", reference, inputs, args.tolerance)
    sha = write_manifest(args.out, source, worst)
    print(json.dumps({"sha256": sha, "max_abs_diff_vs_tensorflow": worst}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
