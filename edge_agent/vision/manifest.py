"""The detector model's manifest: labels, input, pre-processing, output layout, checksum.

A model directory holds ``model.onnx`` and ``manifest.yaml``. The reader is tolerant
about spelling (``output_layout: raw`` or ``output: {layout: raw}``) but strict about
meaning: unknown layouts, missing labels, bad pre-processing values or a wrong checksum
are :class:`ModelError` naming the manifest file and the field.

Keys read (dotted keys may also be written at the top level, e.g. ``mean:``):

* ``labels`` (or ``names``/``classes``; a list, or a ``{0: name}`` mapping);
* ``input.shape`` / ``input.size`` / ``input_size`` / ``imgsz``: the square input size;
* pre-processing, giving the input tensor ``(pixel - mean) / std`` per channel, in the
  model's channel order (see :class:`Preprocess`):

  - ``input.color``: ``RGB`` (default) or ``BGR``;
  - ``input.mean`` and ``input.std``: three numbers (or one for all channels) in pixel
    units 0..255; default mean 0, std 255, i.e. RGB/255;
  - ``input.scale``: instead of ``std``, a factor such as ``1/255`` (std 255) or ``1``
    (raw pixels);
  - ``input.letterbox``: ``{pad_value: 114, centered: true, keep_aspect: true}``; pad in
    pixel units before normalisation; ``centered: false`` puts the frame top-left;
* ``output.layout`` (or ``output_layout``/``output``): one of the names in
  ``_LAYOUT_ALIASES``, resolving to ``raw`` (``[1, 4 + nc, N]``), ``end_to_end``
  (``[1, K, 6]``), ``yolox`` (``[1, N, 5 + nc]``) or ``auto`` (decided from the shape);
* ``output.strides`` (YOLOX grid strides, default ``[8, 16, 32]``) and
  ``output.decoded`` (YOLOX boxes already in input pixels, default ``false``);
* ``keep_labels``: only these labels can produce detections (default: every label);
* ``score_threshold``/``thresholds.score``, ``nms_iou``/``thresholds.iou``, ``sha256``,
  ``file``, ``name``, ``version``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from edge_agent.vision.errors import ModelError

__all__ = [
    "DEFAULT_STRIDES",
    "MANIFEST_NAME",
    "MODEL_NAME",
    "Manifest",
    "OutputLayout",
    "Preprocess",
    "check_sha256",
    "label_indices",
    "load_manifest",
    "read_manifest_file",
    "resolve_model",
]

MANIFEST_NAME = "manifest.yaml"
MODEL_NAME = "model.onnx"

OutputLayout = Literal["raw", "end_to_end", "yolox", "auto"]

_LAYOUT_ALIASES: dict[str, OutputLayout] = {
    "raw": "raw",
    "yolo_raw": "raw",
    "yolov8": "raw",
    "yolo11": "raw",
    "end_to_end": "end_to_end",
    "end2end": "end_to_end",
    "e2e": "end_to_end",
    "nms": "end_to_end",
    "yolox": "yolox",
    "yolox_raw": "yolox",
    "auto": "auto",
}

#: Strides of the YOLOX heads when the manifest names none (official exports).
DEFAULT_STRIDES = (8, 16, 32)

_LETTERBOX_KEYS = ("pad_value", "centered", "keep_aspect")


@dataclass(frozen=True, slots=True)
class Preprocess:
    """How a frame becomes the model input: letterbox, then ``(pixel - mean) / std``.

    ``mean`` and ``std`` are in pixel units (0..255) and in the model's channel order
    (``mean[0]`` applies to the first input channel: R for RGB, B for BGR). The defaults
    are the street detector's: RGB, 0..1, gray 114 padding around a centred frame.
    """

    rgb: bool = True
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (255.0, 255.0, 255.0)
    pad_value: int = 114
    centered: bool = True

    def pad_input(self) -> tuple[float, float, float]:
        """The input tensor's value of the padding, per channel."""
        p = float(self.pad_value)
        return (
            (p - self.mean[0]) / self.std[0],
            (p - self.mean[1]) / self.std[1],
            (p - self.mean[2]) / self.std[2],
        )


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
    sha256: str | None
    model_path: Path
    preprocess: Preprocess = field(default_factory=Preprocess)
    #: Labels that may produce detections; ``None`` keeps every label.
    keep_labels: tuple[str, ...] | None = None
    #: YOLOX head strides, used to decode grid-relative boxes.
    strides: tuple[int, ...] = DEFAULT_STRIDES
    #: YOLOX boxes are already ``cx, cy, w, h`` in input pixels (no grid decoding).
    boxes_decoded: bool = False

    @property
    def rgb(self) -> bool:
        """Whether the model takes RGB (else BGR) channels."""
        return self.preprocess.rgb


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


def _find(data: Mapping[str, Any], *keys: str) -> tuple[str, Any]:
    """``(key, value)`` of the first key present and not null; dotted keys look into
    nested mappings.

    When none is present the value is ``None`` and the key is the first one, so messages
    name the field a manifest author would write.
    """
    for key in keys:
        node: Any = data
        for part in key.split("."):
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            else:
                break
        else:
            if node is not None:
                return key, node
    return keys[0], None


def _get(data: Mapping[str, Any], *keys: str) -> Any:
    """The value of the first key present and not null; dotted keys look into mappings."""
    return _find(data, *keys)[1]


def _input_size(value: Any, where: Path) -> int:
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, list | tuple) and value and all(isinstance(v, int) for v in value):
        dims = [v for v in value if v > 3]  # drop batch/channel entries of a full shape
        if dims and all(d == dims[0] for d in dims):
            return int(dims[0])
    raise ModelError(f"{where}: input size {value!r} is not a square size such as 320")


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _channels(value: Any, where: Path, key: str) -> tuple[float, float, float]:
    """Three per-channel numbers from a list of three or one number for all channels."""
    if _is_number(value):
        return (float(value), float(value), float(value))
    if isinstance(value, list | tuple) and len(value) == 3 and all(_is_number(v) for v in value):
        return (float(value[0]), float(value[1]), float(value[2]))
    raise ModelError(
        f"model manifest {where}: {key} must be 3 numbers (one per input channel, in pixel "
        f"units 0..255) or one number, got {value!r}"
    )


def _scale(value: Any, where: Path, key: str) -> float:
    """A positive factor written as a number or a fraction such as ``1/255``."""
    factor = math.nan
    if _is_number(value):
        factor = float(value)
    elif isinstance(value, str):
        num, slash, den = value.replace(" ", "").partition("/")
        try:
            factor = float(num) / float(den) if slash else float(num)
        except (ValueError, ZeroDivisionError):
            factor = math.nan
    if not (math.isfinite(factor) and factor > 0):
        raise ModelError(
            f"model manifest {where}: {key} must be a positive number such as 1/255 or 1, "
            f"got {value!r}"
        )
    return factor


def _preprocess(data: Mapping[str, Any], where: Path) -> Preprocess:
    """The pre-processing spec: colour order, mean/std (or scale) and letterbox."""
    color_key, color = _find(data, "input.color", "color", "input.channels", "channels")
    rgb = True
    if isinstance(color, str):
        if color.lower() not in ("rgb", "bgr"):
            raise ModelError(f"model manifest {where}: {color_key} {color!r} is not RGB or BGR")
        rgb = color.lower() == "rgb"
    elif color is not None and color_key.endswith("color"):
        raise ModelError(f"model manifest {where}: {color_key} {color!r} is not RGB or BGR")

    mean_key, mean_raw = _find(data, "input.mean", "mean")
    std_key, std_raw = _find(data, "input.std", "std")
    scale_key, scale_raw = _find(data, "input.scale", "scale")
    if std_raw is not None and scale_raw is not None:
        raise ModelError(
            f"model manifest {where}: give {std_key} or {scale_key}, not both (scale s is std 1/s)"
        )
    mean = _channels(mean_raw, where, mean_key) if mean_raw is not None else (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (255.0, 255.0, 255.0)
    if std_raw is not None:
        std = _channels(std_raw, where, std_key)
        if min(std) <= 0:
            raise ModelError(
                f"model manifest {where}: {std_key} must be positive in every channel, "
                f"got {std_raw!r}"
            )
    elif scale_raw is not None:
        factor = _scale(scale_raw, where, scale_key)
        std = (1.0 / factor, 1.0 / factor, 1.0 / factor)

    box_key, box = _find(data, "input.letterbox", "letterbox")
    pad, centered = 114, True
    if isinstance(box, Mapping):
        unknown = sorted(str(k) for k in box if k not in _LETTERBOX_KEYS)
        if unknown:
            raise ModelError(
                f"model manifest {where}: {box_key} has unknown keys {unknown}; "
                f"known: {list(_LETTERBOX_KEYS)}"
            )
        pad_raw = box.get("pad_value", 114)
        if not (_is_number(pad_raw) and float(pad_raw).is_integer() and 0 <= pad_raw <= 255):
            raise ModelError(
                f"model manifest {where}: {box_key}.pad_value must be a whole pixel value "
                f"0..255, got {pad_raw!r}"
            )
        pad = int(pad_raw)
        centered_raw = box.get("centered", True)
        if not isinstance(centered_raw, bool):
            raise ModelError(
                f"model manifest {where}: {box_key}.centered must be true or false, "
                f"got {centered_raw!r}"
            )
        centered = centered_raw
        if box.get("keep_aspect", True) is not True:
            raise ModelError(
                f"model manifest {where}: {box_key}.keep_aspect must be true: frames are "
                f"scaled keeping their aspect and padded (stretching is not supported), "
                f"got {box.get('keep_aspect')!r}"
            )
    elif box is not None and box is not True:
        raise ModelError(
            f"model manifest {where}: {box_key} must be a mapping such as "
            f"{{pad_value: 114, centered: true, keep_aspect: true}}, got {box!r}"
        )
    return Preprocess(rgb=rgb, mean=mean, std=std, pad_value=pad, centered=centered)


def _strides(data: Mapping[str, Any], where: Path) -> tuple[int, ...]:
    key, value = _find(data, "output.strides", "strides")
    if value is None:
        return DEFAULT_STRIDES
    if (
        isinstance(value, list | tuple)
        and value
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        return tuple(value)
    raise ModelError(
        f"model manifest {where}: {key} must be a list of positive whole numbers such as "
        f"[8, 16, 32], got {value!r}"
    )


def label_indices(labels: Sequence[str], keep: Sequence[str], source: str) -> tuple[int, ...]:
    """Sorted class indices of the ``keep`` labels; a name the model lacks is a ModelError.

    ``source`` says where ``keep`` came from, for the message (e.g. the manifest field).
    """
    if not keep:
        raise ModelError(f"{source} is empty: list at least one label to keep")
    missing = [k for k in keep if k not in labels]
    if missing:
        raise ModelError(
            f"{source} names {missing}, which the model does not have; its labels are "
            f"{list(labels)}"
        )
    return tuple(sorted({labels.index(k) for k in keep}))


def _keep_labels(
    data: Mapping[str, Any], labels: Sequence[str], where: Path
) -> tuple[str, ...] | None:
    key, value = _find(data, "keep_labels", "output.keep_labels")
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ModelError(f"model manifest {where}: {key} must be a list of label names")
    label_indices(labels, value, f"model manifest {where}: {key}")
    return tuple(value)


def read_manifest_file(path: Path, error: type[ModelError] = ModelError) -> dict[str, Any]:
    """A manifest file's YAML mapping; ``error`` (a ModelError) names what is wrong."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise error(f"cannot read model manifest {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise error(f"model manifest {path} is not a mapping")
    return data


def load_manifest(path: Path) -> Manifest:
    """Read the manifest of the model at ``path`` (a model file or directory)."""
    model_path, manifest_path = resolve_model(path)
    if manifest_path is None:
        raise ModelError(f"model {model_path} has no {MANIFEST_NAME} beside it")
    data = read_manifest_file(manifest_path)
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
    decoded_key, decoded = _find(data, "output.decoded", "decoded")
    if decoded is not None and not isinstance(decoded, bool):
        raise ModelError(
            f"model manifest {manifest_path}: {decoded_key} must be true or false, got {decoded!r}"
        )
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
        score_threshold = float(score) if score is not None else 0.25
        nms_iou = float(iou) if iou is not None else 0.5
    except (TypeError, ValueError) as exc:
        raise ModelError(f"model manifest {manifest_path}: bad threshold ({exc})") from exc
    return Manifest(
        name=str(_get(data, "name") or model_path.parent.name),
        version=str(_get(data, "version") or "0"),
        labels=tuple(labels),
        input_size=size,
        output_layout=_LAYOUT_ALIASES[layout_raw.lower()],
        score_threshold=score_threshold,
        nms_iou=nms_iou,
        sha256=str(sha).lower() if sha else None,
        model_path=model_path,
        preprocess=_preprocess(data, manifest_path),
        keep_labels=_keep_labels(data, labels, manifest_path),
        strides=_strides(data, manifest_path),
        boxes_decoded=bool(decoded),
    )


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
