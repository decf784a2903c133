"""A fine-tuned street model against the current one, on the same field split; its package.

Both ONNX models run over the validation split of a data root (``field_data.py``'s
layout: the field frames the export put there, letterboxed, with any synthetic scenes
beside them) and are scored the same way (mAP@0.5, precision and recall at each model's
threshold). The candidate goes into a model package (``model.onnx``, ``manifest.yaml``,
``MODEL_CARD.md``) whose card carries both models' figures, for a person to decide, and
for ``central-hub model sign`` to sign before it is rolled out. One JSON line is printed.

    python models/train/candidate.py --candidate runs/field/model.onnx \\
        --current models/street-detector --data DATA_ROOT --version 1.1.0 --out PKG
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
from dataset import load_split
from evaluate import read_threshold
from manifest import manifest_yaml, model_card
from metrics import decode_raw, evaluate

from simulators.scenes import LABELS


def field_eval(model: Path, root: Path, threshold: float) -> dict[str, object]:
    """mAP@0.5, precision and recall of ``model`` on ``root/val`` (pure onnxruntime)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    images, labels = load_split(root / "val")
    dets, truths = [], []
    for image, label in zip(images, labels, strict=True):
        x = np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
        dets.append(decode_raw(sess.run(None, {name: x})[0][0], 0.01, 0.5, 300))
        truths.append([(int(r[0]), r[1:5].tolist()) for r in label])
    res = evaluate(dets, truths, len(LABELS), threshold)
    return {
        "map50": round(float(res["map50"]), 4),  # type: ignore[arg-type]
        "precision": round(float(res["precision"]), 4),  # type: ignore[arg-type]
        "recall": round(float(res["recall"]), 4),  # type: ignore[arg-type]
        "threshold": threshold,
        "images": len(images),
    }


def package(
    candidate: Path, current: Path, root: Path, version: str, out: Path
) -> dict[str, object]:
    """Evaluate both models on ``root``'s validation split and write the candidate's package."""
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty: write the package into a new folder")
    current_model = current / "model.onnx"
    threshold = read_threshold(current_model)
    figures = {
        "current": field_eval(current_model, root, threshold),
        "candidate": field_eval(candidate, root, threshold),
    }
    out.mkdir(parents=True, exist_ok=True)
    model = out / "model.onnx"
    shutil.copyfile(candidate, model)
    text = manifest_yaml(model, version, {}, {}).replace(
        "data: synthetic street scenes from simulators/scenes (pole and truck-rear cameras)",
        f'data: "fine-tuned from {current} on {root}"',
    )
    (out / "manifest.yaml").write_text(text, encoding="utf-8")
    rows = "\n".join(
        f"| {who} | {f['map50']:.3f} | {f['precision']:.3f} | {f['recall']:.3f} | {f['images']} |"
        for who, f in figures.items()
    )
    card = model_card(version, {}, {}) + (
        f"\n## Against the current model, on the same field split\n\n"
        f"Validation split of `{root}`, threshold {threshold} for both; the current model is "
        f"`{current}`.\n\n"
        "| model | mAP@0.5 | precision | recall | images |\n|---|---|---|---|---|\n"
        f"{rows}\n\nRoll it out only if it does better here (and sign it first: "
        "`central-hub model sign`).\n"
    )
    (out / "MODEL_CARD.md").write_text(card, encoding="utf-8")
    return {"bench": "candidate", "version": version, **figures}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidate", type=Path, required=True, help="the fine-tuned model.onnx")
    ap.add_argument("--current", type=Path, default=Path("models/street-detector"))
    ap.add_argument("--data", type=Path, required=True, help="data root with a val/ split")
    ap.add_argument("--version", required=True)
    ap.add_argument("--out", type=Path, required=True, help="a new folder for the package")
    args = ap.parse_args(argv)
    result = package(args.candidate, args.current, args.data, args.version, args.out)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
