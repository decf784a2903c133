"""Quantise the general detector to int8 (onnxruntime static quantisation, QDQ).

Calibration frames are what the model will see and what we may ship: the photos that
scikit-image carries in its wheel (people, a cat, a motorcycle, a rocket, a street-less
still life) and rendered street scenes from ``simulators`` (market, parking, truck), each
letterboxed exactly as the agent does it (the manifest's own pre-processing). The output
layer that mixes box distances and class scores stays float, as do the decoding nodes
baked after it: only the backbone's convolutions are quantised.

Then both models run on the same frames and the script prints one JSON line: the fp32
and int8 ms per frame (the same session options as the agent, 1 and 2 threads), and how
far the int8 model's detections are from the fp32 model's (matched boxes, score and IoU
drift, objects gained or lost at the manifest's threshold).

    .venv/bin/python models/convert/quantize_general.py [--out models/general-detector-int8]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SOURCE = ROOT / "models" / "general-detector"
PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "rocket.jpg",
    "camera.png",
    "hubble_deep_field.jpg",
)
SCENES = ("market_street", "parking_street", "shop_front", "passers_by", "truck_debris")


def photos() -> list[np.ndarray]:
    """scikit-image's shipped photos as BGR uint8 frames (no download)."""
    import cv2
    import skimage

    folder = Path(skimage.__file__).parent / "data"
    out = []
    for name in PHOTOS:
        image = cv2.imread(str(folder / name), cv2.IMREAD_COLOR)
        if image is not None:
            out.append(image)
    return out


def scenes(per_scene: int) -> list[np.ndarray]:
    """Rendered street frames spread over each scenario."""
    from simulators import scenarios

    out = []
    for name in SCENES:
        sc = scenarios.load(name, width=1280, height=720, fps=1.0)
        step = max(1, sc.frame_count() // per_scene)
        out += [sc.frame_at(i).image for i in range(0, step * per_scene, step)][:per_scene]
    return out


def inputs(frames: list[np.ndarray]) -> list[np.ndarray]:
    """The model inputs of ``frames``, letterboxed by the agent's own code."""
    from edge_agent.vision.decode import letterbox
    from edge_agent.vision.manifest import load_manifest

    manifest = load_manifest(SOURCE)
    return [
        letterbox(f, manifest.input_size, preprocess=manifest.preprocess)[0].copy() for f in frames
    ]


class Frames:
    """onnxruntime's CalibrationDataReader over prepared inputs."""

    def __init__(self, name: str, tensors: list[np.ndarray]) -> None:
        self._it: Iterator[np.ndarray] = iter(tensors)
        self._name = name

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next calibration input, or None when done."""
        tensor = next(self._it, None)
        return None if tensor is None else {self._name: tensor}


def quantise(src: Path, dst: Path, tensors: list[np.ndarray]) -> None:
    """Static int8 quantisation (QDQ, per-channel weights) of the backbone and heads."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
        name = model.graph.input[0].name
        # Quantise convolutions only: the baked decoding (softmax over bins, the integral,
        # concatenation of scores) is cheap and loses accuracy in int8.
        convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
        quantize_static(
            str(prepared),
            str(dst),
            Frames(name, tensors),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_quantize=convs,
        )


def session(path: Path, threads: int) -> object:
    """A session with the agent's options."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def ms_per_frame(sess: object, name: str, tensors: list[np.ndarray], rounds: int = 3) -> float:
    """Best of ``rounds`` passes over ``tensors``: ms per inference."""
    best = float("inf")
    for _ in range(rounds):
        began = time.perf_counter()
        for t in tensors:
            sess.run(None, {name: t})  # type: ignore[attr-defined]
        best = min(best, (time.perf_counter() - began) / len(tensors))
    return 1000.0 * best


def drift(a_sess: object, b_sess: object, name: str, tensors: list[np.ndarray]) -> dict[str, float]:
    """How the second model's kept detections differ from the first's."""
    from edge_agent.vision.decode import decode_raw
    from edge_agent.vision.geometry import box_iou
    from edge_agent.vision.manifest import label_indices, load_manifest

    manifest = load_manifest(SOURCE)
    keep = np.asarray(label_indices(manifest.labels, manifest.keep_labels or (), "manifest"))
    score = manifest.score_threshold
    matched = lost = gained = 0
    score_diff: list[float] = []
    ious: list[float] = []

    def detect(sess: object, tensor: np.ndarray) -> np.ndarray:
        output = sess.run(None, {name: tensor})[0][0]  # type: ignore[attr-defined]
        return decode_raw(output, len(manifest.labels), score, manifest.nms_iou, keep=keep)

    for t in tensors:
        a, b = detect(a_sess, t), detect(b_sess, t)
        used: set[int] = set()
        for row in a:
            best, best_iou = -1, 0.5
            for j, other in enumerate(b):
                if j in used or other[5] != row[5]:
                    continue
                overlap = box_iou(tuple(row[:4]), tuple(other[:4]))
                if overlap >= best_iou:
                    best, best_iou = j, overlap
            if best < 0:
                lost += 1
            else:
                used.add(best)
                matched += 1
                score_diff.append(abs(float(b[best][4] - row[4])))
                ious.append(float(best_iou))
        gained += len(b) - len(used)
    total = matched + lost
    return {
        "fp32_detections": total,
        "int8_matched": matched,
        "int8_lost": lost,
        "int8_gained": gained,
        "int8_recall_of_fp32": round(matched / total, 4) if total else 1.0,
        "mean_score_diff": round(float(np.mean(score_diff)), 4) if score_diff else 0.0,
        "mean_iou": round(float(np.mean(ious)), 4) if ious else 1.0,
    }


def write_package(dst_dir: Path, model: Path, figures: dict[str, object]) -> str:
    """The int8 model's folder: model, manifest (the fp32 one with its own name and
    sha256), and the licences and card of the fp32 model."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model, dst_dir / "model.onnx")
    data = (dst_dir / "model.onnx").read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    lines = []
    replace = {
        "name: ": "name: general-detector-int8",
        "sha256: ": f"sha256: {sha}",
        "size_bytes: ": f"size_bytes: {len(data)}",
    }
    for line in (SOURCE / "manifest.yaml").read_text(encoding="utf-8").splitlines():
        key = next((k for k in replace if line.startswith(k)), None)
        lines.append(replace[key] if key else line)
    lines.append("quantisation: models/convert/quantize_general.py (onnxruntime static, QDQ,")
    lines.append("  int8 per-channel weights, uint8 activations, MinMax over photos and scenes)")
    (dst_dir / "manifest.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name in ("LICENSE", "LICENSE-human-models", "PROVENANCE.md"):
        if (SOURCE / name).exists():
            shutil.copyfile(SOURCE / name, dst_dir / name)
    card = INT8_CARD.format(sha=sha, figures=json.dumps(figures))
    (dst_dir / "MODEL_CARD.md").write_text(card, encoding="utf-8")
    return sha


#: The int8 model's card; ``figures`` is the JSON line of the run that made it.
INT8_CARD = """# general-detector-int8 (NanoDet-g 416, COCO, int8)

The general detector of `models/general-detector/` (read its `MODEL_CARD.md` for what it
is for, its classes, input and output, and its weaknesses), quantised to int8 by
`.venv/bin/python models/convert/quantize_general.py --out models/general-detector-int8`:
onnxruntime static quantisation (QDQ), int8 per-channel weights and uint8 activations on
the convolutions only (the baked box decoding stays float), calibrated with MinMax on
scikit-image's shipped photos and rendered street scenes. sha256 `{sha}`.

**Measured by the run that made it** (ms per frame of both models on 1 and 2 threads;
how many of the fp32 model's detections at the manifest's threshold int8 keeps, loses
and adds, on scikit-image's photos and on rendered scenes):

```json
{figures}
```

The photo set is small: compare both on a city's own frames with
`make eval-real DATA=DIR MODEL=models/general-detector-int8` before choosing.
"""


def main() -> int:
    """Quantise, time both models, compare their detections; print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the int8 model package here")
    parser.add_argument("--per-scene", type=int, default=24, help="calibration frames a scene")
    args = parser.parse_args()
    frames = photos() + scenes(args.per_scene)
    tensors = inputs(frames)
    # Calibrate on every other frame, compare on all of them.
    with tempfile.TemporaryDirectory() as tmp:
        int8 = Path(tmp) / "model-int8.onnx"
        quantise(SOURCE / "model.onnx", int8, tensors[::2])
        fp = session(SOURCE / "model.onnx", 1)
        q = session(int8, 1)
        name = fp.get_inputs()[0].name  # type: ignore[attr-defined]
        timing = tensors[:30]
        figures: dict[str, object] = {
            "bench": "general_int8",
            "fp32_ms_1t": round(ms_per_frame(fp, name, timing), 1),
            "int8_ms_1t": round(ms_per_frame(q, name, timing), 1),
        }
        fp2, q2 = session(SOURCE / "model.onnx", 2), session(int8, 2)
        figures["fp32_ms_2t"] = round(ms_per_frame(fp2, name, timing), 1)
        figures["int8_ms_2t"] = round(ms_per_frame(q2, name, timing), 1)
        photo_n = len(photos())
        figures["photos"] = drift(fp, q, name, tensors[:photo_n])
        figures["scenes"] = drift(fp, q, name, tensors[photo_n:])
        figures["int8_bytes"] = int8.stat().st_size
        if args.out:
            figures["sha256"] = write_package(args.out, int8, figures)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
