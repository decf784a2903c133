"""``edge-agent eval``: the file and model edge of :mod:`edge_agent.vision.evaluation`.

The pure core scores detections against YOLO-format truth; this module reads the images,
labels and class list of a folder, runs the model through the agent's own
:class:`~edge_agent.vision.onnx_detector.OnnxDetector`, and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge_agent.vision.config import DetectorConfig
    from edge_agent.vision.frames import Box

__all__ = ["register"]

#: Image files `eval` reads from DATA/images.
EVAL_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
#: Score threshold of the run that draws the AP curve: AP needs the low-score tail.
EVAL_AP_SCORE = 0.05


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not in (0, 1]")
    return value


def _thread_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"{text} is not in 1..64")
    return value


def _read_text(path: Path) -> str:
    from edge_agent.vision.evaluation import DatasetError

    try:
        return path.read_text(encoding="utf-8-sig")  # -sig: Windows tools write a BOM
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from exc


def _read_class_names(data: Path) -> tuple[str, ...]:
    """The dataset's class names from data.yaml (or .yml) or classes.txt."""
    from edge_agent.vision.evaluation import DatasetError, parse_classes_txt, parse_data_yaml

    for name in ("data.yaml", "data.yml"):
        if (data / name).is_file():
            return parse_data_yaml(_read_text(data / name), source=str(data / name))
    for path in (data / "classes.txt", data / "labels" / "classes.txt"):
        if path.is_file():
            return parse_classes_txt(_read_text(path), source=str(path))
    raise DatasetError(
        f"{data}: no class list: write data.yaml with a 'names:' list, or classes.txt "
        "with one name a line, in the order of the class ids"
    )


def _read_dataset(data: Path) -> tuple[tuple[str, ...], list[tuple[Path, list[tuple[int, Box]]]]]:
    """Class names and, per image, its path and ``(class id, box)`` truths."""
    from edge_agent.vision.evaluation import DatasetError, parse_yolo_labels

    images = data / "images"
    if not images.is_dir():
        raise DatasetError(
            f"{images}: no images folder; expected YOLO format: {data}/images/*.jpg|png "
            f"and {data}/labels/<same name>.txt"
        )
    files = sorted(
        p for p in images.iterdir() if p.suffix.lower() in EVAL_IMAGE_SUFFIXES and p.is_file()
    )
    if not files:
        raise DatasetError(f"{images}: no {'/'.join(EVAL_IMAGE_SUFFIXES)} images")
    names = _read_class_names(data)
    out = []
    for image in files:
        label_file = data / "labels" / f"{image.stem}.txt"
        truths = (
            parse_yolo_labels(
                _read_text(label_file), source=str(label_file), num_classes=len(names)
            )
            if label_file.is_file()
            else []  # YOLO's convention: an image without a label file shows no objects
        )
        out.append((image, truths))
    return names, out


def _eval_detector_config(model: Path, score: float, threads: int) -> DetectorConfig:
    """The detector's config: low threshold, and every label kept whatever a manifest keeps."""
    from pydantic import ValidationError

    from edge_agent.vision.config import DetectorConfig
    from edge_agent.vision.manifest import load_manifest

    labels = load_manifest(model).labels
    try:
        return DetectorConfig(
            model=model, score_threshold=score, intra_threads=threads, keep_labels=labels
        )
    except ValidationError:  # labels a config may not name (e.g. with spaces): the default
        return DetectorConfig(model=model, score_threshold=score, intra_threads=threads)


def _eval_command(args: argparse.Namespace) -> int:
    import cv2  # the CLI loads OpenCV and onnxruntime on use

    from edge_agent.vision.errors import VisionError
    from edge_agent.vision.evaluation import (
        DatasetError,
        TruthBox,
        evaluate,
        match_classes,
        normalise_label,
    )
    from edge_agent.vision.frames import Detection, as_image
    from edge_agent.vision.onnx_detector import OnnxDetector

    data = Path(args.data)
    try:
        names, items = _read_dataset(data)  # a broken label file fails before the model loads
        detector = OnnxDetector(_eval_detector_config(Path(args.model), args.score, args.threads))
        try:
            model_labels = detector.labels
            match = match_classes(names, model_labels)
            scored = list(dict.fromkeys(match.labels.values()))
            if args.labels:
                by_name = {normalise_label(label): label for label in scored}
                wanted = [normalise_label(x) for x in args.labels.split(",") if x.strip()]
                missing = [x for x in wanted if x not in by_name]
                if missing:
                    raise DatasetError(
                        f"--labels: {', '.join(missing)} not among the classes both the data "
                        f"and the model know: {', '.join(scored) or 'none'}"
                    )
                scored = [by_name[x] for x in dict.fromkeys(wanted)]
            # Precision and recall at the model's own threshold; nothing under --score exists.
            threshold = max(detector.manifest.score_threshold, args.score)
            pairs = []
            spent = 0.0
            for path, truths in items:
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if image is None:
                    raise DatasetError(f"{path}: cannot read the image")
                began = time.perf_counter()
                (rows,) = detector.infer([as_image(image)])
                spent += time.perf_counter() - began
                found = [
                    Detection(model_labels[int(c)], float(s), (x1, y1, x2, y2))
                    for x1, y1, x2, y2, s, c in rows.tolist()
                    if x2 > x1 and y2 > y1
                ]
                known = [TruthBox(match.labels[c], box) for c, box in truths if c in match.labels]
                pairs.append((found, known))
            ref = detector.model_ref
        finally:
            detector.close()
        report = evaluate(pairs, scored, score_threshold=threshold, iou_threshold=args.iou)
    except VisionError as exc:  # DatasetError, ModelError: a file to fix
        print(f"edge-agent eval: {exc}", file=sys.stderr)
        return 2
    line: dict[str, Any] = {
        "eval": "detector",
        "model": {"name": ref.name, "version": ref.version, "path": str(args.model)},
        "data": str(data),
        **report.as_json(),
        "ap_score_threshold": args.score,
        "ms_per_image": round(spent * 1000 / len(items), 2),
        "unmatched_classes": list(match.unmatched),
    }
    sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return 0


def register(subparsers: Any) -> None:
    """Add ``eval --model DIR --data DIR`` to the ``edge-agent`` command line."""
    parser = subparsers.add_parser(
        "eval",
        help="score a detector model on labelled images (YOLO format); print one JSON line",
        description="Run the model through the agent's own detector over DATA/images, "
        "score it against DATA/labels (YOLO: 'class cx cy w h' normalised; class names "
        "from DATA/data.yaml or DATA/classes.txt, matched to the model's labels by name) "
        "and print per-class precision, recall and AP50 and the overall mAP50 as one "
        "JSON line.",
    )
    parser.add_argument("--model", required=True, help="model directory (model.onnx + manifest)")
    parser.add_argument("--data", required=True, help="folder with images/ and labels/")
    parser.add_argument(
        "--iou", type=_fraction, default=0.5, help="IoU that counts as found (default 0.5)"
    )
    parser.add_argument(
        "--score",
        type=_fraction,
        default=EVAL_AP_SCORE,
        help=f"lowest score kept for the AP curve (default {EVAL_AP_SCORE}); precision and "
        "recall are at the manifest's threshold, or this one when higher",
    )
    parser.add_argument(
        "--threads", type=_thread_count, default=2, help="inference threads (default 2)"
    )
    parser.add_argument("--labels", help="score only these classes, comma-separated")
    parser.set_defaults(func=_eval_command)
