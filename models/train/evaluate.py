"""Held-out evaluation of an exported detector with onnxruntime on the CPU.

Renders ``--images`` labelled scenes (default 1000) from a seed range that training and
validation never use, plus ``--empty`` scenes with no objects at all, runs the ONNX model
through the same letterbox as the edge agent and prints one JSON line::

    {"bench": "model_eval", "map50": .., "per_class": {..}, "fp_per_empty_image": ..,
     "latency_ms_2t": .., "params": ..}
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dataset import SEED_EMPTY, SEED_HELDOUT, render_letterboxed
from metrics import decode_raw, evaluate

from simulators.scenes import LABELS

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "street-detector" / "model.onnx"


def _render(job: tuple[int, bool]) -> tuple[np.ndarray, np.ndarray]:
    return render_letterboxed(job[0], job[1])


def render_set(seeds: list[int], empty: bool, workers: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Render letterboxed images (BGR) and labels for the given seeds."""
    jobs = [(s, empty) for s in seeds]
    if workers <= 1:
        return [_render(j) for j in jobs]
    with get_context("fork").Pool(workers) as pool:
        return pool.map(_render, jobs, chunksize=8)


def to_input(img_bgr: np.ndarray) -> np.ndarray:
    """BGR uint8 HxWx3 to the network's RGB float ``[1, 3, H, W]`` in 0..1."""
    return (
        np.ascontiguousarray(img_bgr[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
    )


def read_threshold(model: Path) -> float:
    """The shipped score threshold from the manifest next to the model (default 0.35)."""
    manifest = model.parent / "manifest.yaml"
    if manifest.exists():
        for line in manifest.read_text().splitlines():
            if line.strip().startswith("score:"):
                return float(line.split(":", 1)[1])
    return 0.35


def run(
    model: Path,
    images: int,
    empty: int,
    workers: int,
    threshold: float | None,
    seed_offset: int = 0,
) -> dict[str, object]:
    """Full evaluation; returns the JSON-able result."""
    import onnx
    import onnxruntime as ort

    thr = threshold if threshold is not None else read_threshold(model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    labelled = render_set([SEED_HELDOUT + seed_offset + i for i in range(images)], False, workers)
    blanks = render_set([SEED_EMPTY + seed_offset + i for i in range(empty)], True, workers)
    dets, truths = [], []
    for img, lab in labelled:
        out = sess.run(None, {name: to_input(img)})[0][0]
        dets.append(decode_raw(out, 0.01, 0.5, 300))
        truths.append([(int(r[0]), r[1:5].tolist()) for r in lab])
    res = evaluate(dets, truths, len(LABELS), thr)
    fp_all = fp_person = 0
    for img, _ in blanks:
        out = sess.run(None, {name: to_input(img)})[0][0]
        d = decode_raw(out, thr, 0.5, 300)
        fp_all += len(d)
        fp_person += sum(1 for c, _, _ in d if c == 0)
    x = to_input(labelled[0][0]) if labelled else np.zeros((1, 3, 320, 320), np.float32)
    for _ in range(5):
        sess.run(None, {name: x})
    times = []
    for _ in range(40):
        t = time.perf_counter()
        sess.run(None, {name: x})
        times.append((time.perf_counter() - t) * 1000)
    params = sum(int(np.prod(t.dims)) for t in onnx.load(str(model)).graph.initializer)
    per_class = {
        LABELS[c]: {k: round(float(v), 4) for k, v in d.items()}
        for c, d in res["per_class"].items()  # type: ignore[attr-defined]
    }
    return {
        "bench": "model_eval",
        "map50": round(float(res["map50"]), 4),  # type: ignore[arg-type]
        "per_class": per_class,
        "precision": round(float(res["precision"]), 4),  # type: ignore[arg-type]
        "recall": round(float(res["recall"]), 4),  # type: ignore[arg-type]
        "threshold": thr,
        "fp_per_empty_image": round(fp_all / max(empty, 1), 4),
        "person_fp_per_empty_image": round(fp_person / max(empty, 1), 4),
        "latency_ms_2t": round(float(np.median(times)), 2),
        "params": params,
        "images": images,
        "empty_images": empty,
        "model_mb": round(model.stat().st_size / 1e6, 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Evaluate the street detector on held-out scenes.")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--empty", type=int, default=200)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    res = run(args.model, args.images, args.empty, args.workers, args.threshold)
    line = json.dumps(res, ensure_ascii=False)
    if args.out:
        args.out.write_text(line + "\n")
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
