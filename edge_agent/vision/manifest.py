"""The detector model's manifest: labels, input size, layouts, thresholds, checksum.

A model directory holds ``model.onnx`` and ``manifest.yaml``. The reader is tolerant
about spelling (``output_layout: raw`` or ``output: {layout: raw}``) but strict about
meaning: unknown layouts, missing labels or a wrong checksum are :class:`ModelError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from edge_agent.vision.errors import ModelError

__all__ = [
    "MANIFEST_NAME",
    "MODEL_NAME",
    "Manifest",
    "OutputLayout",
    "check_sha256",
    "load_manifest",
    "resolve_model",
]

MANIFEST_NAME = "manifest.yaml"
MODEL_NAME = "model.onnx"

OutputLayout = Literal["raw", "end_to_end", "auto"]

_LAYOUT_ALIASES: dict[str, OutputLayout] = {
    "raw": "raw",
    "yolo_raw": "raw",
    "yolov8": "raw",
    "yolo11": "raw",
    "end_to_end": "end_to_end",
    "end2end": "end_to_end",
    "e2e": "end_to_end",
    "nms": "end_to_end",
    "auto": "auto",
}


@dataclass(frozen=True)
class Manifest:
    """What the detector needs to know about its model."""

    name: str
    version: str
    labels: tuple[str, ...]
    input_size: int
    output_layout: OutputLayout
    score_threshold: float
    nms_iou: float
    rgb: bool
    sha256: str | None
    model_path: Path


def resolve_model(path: Path) -> tuple[Path, Path | None]:
    """``(model file, manifest file or None)`` for a model file or a model directory."""
    if path.is_dir():
        model = path / MODEL_NAME
        manifest = path / MANIFEST_NAME
        if not manifest.is_file():
            raise ModelError(f"model directory {path} has no {MANIFEST_NAME}")
        return model, manifest
    if not path.exists():
        raise ModelError(f"model file {path} does not exist")
    sibling = path.parent / MANIFEST_NAME
    return path, sibling if sibling.is_file() else None


def _get(data: Mapping[str, Any], *keys: str) -> Any:
    """The first present key; dotted keys look into nested mappings."""
    for key in keys:
        node: Any = data
        for part in key.split("."):
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            else:
                break
        else:
            return node
    return None


def _input_size(value: Any, where: Path) -> int:
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, list | tuple) and value and all(isinstance(v, int) for v in value):
        dims = [v for v in value if v > 3]  # drop batch/channel entries of a full shape
        if dims and all(d == dims[0] for d in dims):
            return int(dims[0])
    raise ModelError(f"{where}: input size {value!r} is not a square size such as 320")


def load_manifest(path: Path) -> Manifest:
    """Read the manifest of the model at ``path`` (a model file or directory)."""
    model_path, manifest_path = resolve_model(path)
    if manifest_path is None:
        raise ModelError(f"model {model_path} has no {MANIFEST_NAME} beside it")
    try:
        data = yaml.safe_load(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ModelError(f"cannot read model manifest {manifest_path}: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ModelError(f"model manifest {manifest_path} is not a mapping")
    labels = _get(data, "labels", "names", "classes")
    if isinstance(labels, Mapping):  # {0: person, 1: car} as some exporters write it
        labels = [labels[k] for k in sorted(labels, key=int)]
    if (
        not isinstance(labels, list | tuple)
        or not labels
        or not all(isinstance(x, str) for x in labels)
    ):
        raise ModelError(f"model manifest {manifest_path}: 'labels' must be a list of names")
    size = _input_size(
        _get(data, "input_size", "input.size", "imgsz", "input.shape", "input_shape"),
        manifest_path,
    )
    plain_layout = _get(data, "layout")
    candidates = [_get(data, "output_layout", "output.layout", "output_format")]
    output = _get(data, "output")
    candidates.append(output if isinstance(output, str) else None)
    in_layout = _get(data, "input_layout", "input.layout")
    if isinstance(plain_layout, str):
        if plain_layout.upper() in ("NCHW", "NHWC", "CHW", "HWC"):
            in_layout = in_layout or plain_layout
        else:
            candidates.append(plain_layout)
    layout_raw = next((c for c in candidates if c is not None), "auto")
    if not isinstance(layout_raw, str) or layout_raw.lower() not in _LAYOUT_ALIASES:
        raise ModelError(
            f"model manifest {manifest_path}: output layout {layout_raw!r} is not one of "
            f"{sorted(_LAYOUT_ALIASES)}"
        )
    if isinstance(in_layout, str) and in_layout.upper() not in ("NCHW", "CHW"):
        raise ModelError(f"model manifest {manifest_path}: input layout {in_layout!r} is not NCHW")
    color = str(_get(data, "color", "input.color", "channels", "input.channels") or "rgb")
    score = _get(
        data,
        "score_threshold",
        "thresholds.score",
        "default_thresholds.score",
        "thresholds.conf",
        "conf",
    )
    iou = _get(
        data,
        "nms_iou",
        "iou_threshold",
        "thresholds.iou",
        "thresholds.nms_iou",
        "default_thresholds.nms_iou",
        "default_thresholds.iou",
        "iou",
    )
    sha = _get(data, "sha256", "model.sha256", "checksum")
    model_file = _get(data, "file", "model_file", "onnx")
    if isinstance(model_file, str) and path.is_dir():
        model_path = path / model_file
    try:
        return Manifest(
            name=str(_get(data, "name") or model_path.parent.name),
            version=str(_get(data, "version") or "0"),
            labels=tuple(labels),
            input_size=size,
            output_layout=_LAYOUT_ALIASES[layout_raw.lower()],
            score_threshold=float(score) if score is not None else 0.25,
            nms_iou=float(iou) if iou is not None else 0.5,
            rgb=color.lower() != "bgr",
            sha256=str(sha).lower() if sha else None,
            model_path=model_path,
        )
    except (TypeError, ValueError) as exc:
        raise ModelError(f"model manifest {manifest_path}: bad threshold ({exc})") from exc


def check_sha256(manifest: Manifest) -> bytes:
    """Read the model file and check it against the manifest's sha256; return its bytes."""
    try:
        data = manifest.model_path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model file {manifest.model_path}: {exc}") from exc
    if manifest.sha256:
        digest = hashlib.sha256(data).hexdigest()
        if digest != manifest.sha256:
            raise ModelError(
                f"model file {manifest.model_path} is corrupt: sha256 {digest[:12]}... "
                f"does not match the manifest's {manifest.sha256[:12]}..."
            )
    return data
