"""The ONNX Runtime detector backend: one session shared by every camera of a box.

Everything model-specific comes from the model's manifest (see
:mod:`edge_agent.vision.manifest`): pre-processing (colour order, mean/std, letterbox pad
and placement), the output layout (``raw``, ``yolox``, ``end_to_end`` or ``auto``) and the
labels kept (``keep_labels``, which :attr:`DetectorConfig.keep_labels` overrides).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_agent.protocol import ModelRef
from edge_agent.vision.config import DetectorConfig
from edge_agent.vision.decode import (
    FloatArray,
    IntArray,
    Letterbox,
    decode_end_to_end,
    decode_raw,
    decode_yolox,
    letterbox,
    yolox_anchor_count,
    yolox_grid,
)
from edge_agent.vision.errors import ModelError
from edge_agent.vision.frames import Detection, Frame, Image
from edge_agent.vision.manifest import (
    Manifest,
    OutputLayout,
    check_sha256,
    label_indices,
    load_manifest,
)
from edge_agent.vision.package import verify_package

__all__ = ["PROVIDER_NAMES", "OnnxDetector", "pick_providers"]

logger = logging.getLogger(__name__)

#: Config names of execution providers and what onnxruntime calls them.
PROVIDER_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


def pick_providers(wanted: Sequence[str], available: Sequence[str]) -> list[str]:
    """The wanted providers this onnxruntime build has, in the wanted order."""
    chosen = [PROVIDER_NAMES[w] for w in wanted if PROVIDER_NAMES[w] in available]
    skipped = [w for w in wanted if PROVIDER_NAMES[w] not in available]
    if skipped:
        logger.info("execution providers not available here, skipped: %s", skipped)
    if not chosen:
        raise ModelError(
            f"none of the configured execution providers {list(wanted)} is available; "
            f"this onnxruntime offers {list(available)}"
        )
    return chosen


def _layout_of(
    shape: tuple[int, ...],
    num_classes: int,
    declared: OutputLayout,
    anchors: int,
    *,
    boxes_decoded: bool = False,
) -> OutputLayout:
    """Check an output shape against the layouts; return the one it fits.

    ``anchors`` is the YOLOX grid's anchor count for the input size and strides. A
    declared ``yolox`` with ``boxes_decoded`` takes any anchor count; ``auto`` picks yolox
    only when the count matches the grid, and prefers raw, then yolox, then end-to-end.
    """
    three = len(shape) == 3
    raw_ok = three and shape[1] == 4 + num_classes
    yolox_cols = three and shape[2] == 5 + num_classes
    yolox_grid_ok = yolox_cols and shape[1] == anchors
    e2e_ok = three and shape[2] == 6
    if declared == "raw" and raw_ok:
        return "raw"
    if declared == "yolox" and (yolox_grid_ok or (yolox_cols and boxes_decoded)):
        return "yolox"
    if declared == "end_to_end" and e2e_ok:
        return "end_to_end"
    if declared == "auto":
        if raw_ok:
            return "raw"
        if yolox_grid_ok:
            return "yolox"
        if e2e_ok:
            return "end_to_end"
    yolox_n = "N" if boxes_decoded and declared == "yolox" else str(anchors)
    expected = {
        "raw": f"raw [batch, {4 + num_classes}, N]",
        "yolox": f"yolox [batch, {yolox_n}, {5 + num_classes}]",
        "end_to_end": "end-to-end [batch, K, 6]",
    }
    wanted = list(expected.values()) if declared == "auto" else [expected[declared]]
    raise ModelError(
        f"model output shape {list(shape)} fits no layout we decode: expected "
        f"{' or '.join(wanted)} for {num_classes} labels"
    )


class OnnxDetector:
    """A YOLO-style detector on onnxruntime, driven by the model's manifest.

    Loading first checks the package's signature when ``package_key`` is given (the hub's
    model key: :func:`edge_agent.vision.package.verify_package`), then reads the manifest
    (pre-processing, layout, kept labels), checks the model's sha256, opens the session
    with the configured providers and thread counts, and runs one dummy inference to check
    the output fits a layout; any failure is a :class:`ModelError` naming the problem.
    """

    def __init__(
        self,
        config: DetectorConfig,
        *,
        spinning: bool = True,
        package_key: Ed25519PublicKey | None = None,
    ) -> None:
        self._config = config
        if package_key is not None:  # before anything of the package is read or loaded
            verify_package(config.model, package_key)
        self._manifest: Manifest = load_manifest(config.model)
        # The checked bytes are not handed to onnxruntime: its Python session keeps the
        # bytes it was given for its whole life (9.5 MB here). It reads the file itself.
        check_sha256(self._manifest)
        options = ort.SessionOptions()
        options.intra_op_num_threads = config.intra_threads
        options.inter_op_num_threads = config.inter_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if not spinning:
            # With several models on a box, one session's idle intra-op threads spinning
            # for work starve the other's: measured on 2 cores, street and general models
            # interleaved took 44.6 ms a frame spinning, 23.8 ms not.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # The CPU memory arena stays on: without it every run allocates its activations
        # anew, which measured about twice the inference time with two workers and,
        # through glibc's fragmentation, more resident memory, not less. Memory patterns
        # stay on too: off saved about 9 MB with two workers but cost 3-6% of the
        # pipeline's frame rate against the bare session (bench/edge_pipeline.py's ratio).
        providers = pick_providers(config.providers, ort.get_available_providers())
        try:
            self._session = ort.InferenceSession(
                str(self._manifest.model_path), sess_options=options, providers=providers
            )
        except Exception as exc:  # onnxruntime raises bare Fail/InvalidGraph/RuntimeError types
            raise ModelError(
                f"cannot load model {self._manifest.model_path}: not a valid ONNX model ({exc})"
            ) from exc
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ModelError(
                f"model {self._manifest.model_path} must take one NCHW image input, has "
                f"{[(i.name, i.shape) for i in inputs]}"
            )
        self._input = inputs[0].name
        batch_dim = inputs[0].shape[0]
        self._dynamic_batch = not isinstance(batch_dim, int)
        self._size = self._manifest.input_size
        self._num_classes = len(self._manifest.labels)
        self._preprocess = self._manifest.preprocess
        self._score = config.score_threshold or self._manifest.score_threshold
        self._iou = config.nms_iou or self._manifest.nms_iou
        self._ref = ModelRef(name=self._manifest.name[:64], version=self._manifest.version[:64])
        self._lock = threading.Lock()
        self._buffers = threading.local()
        self._keep = self._kept_classes(config)
        self._layout = self._check_output()
        # Grid-relative YOLOX boxes are decoded over this, built once.
        self._grid: FloatArray | None = None
        if self._layout == "yolox" and not self._manifest.boxes_decoded:
            self._grid = yolox_grid(self._size, self._manifest.strides)
        logger.info(
            "detector %s %s loaded: providers %s, input %d, layout %s, batch %s",
            self._manifest.name,
            self._manifest.version,
            self._session.get_providers(),
            self._size,
            self._layout,
            "dynamic" if self._dynamic_batch else "1",
        )

    def _run(self, batch: FloatArray) -> npt.NDArray[np.float32]:
        out: list[Any] = self._session.run(None, {self._input: batch})
        return np.asarray(out[0], dtype=np.float32)

    def _kept_classes(self, config: DetectorConfig) -> IntArray | None:
        """Indices of the kept labels (config over manifest); ``None`` when all are kept."""
        labels = self._manifest.labels
        if config.keep_labels is not None:
            indices = label_indices(labels, config.keep_labels, "detector config keep_labels")
        elif self._manifest.keep_labels is not None:
            # Checked against the labels when the manifest was read.
            indices = label_indices(labels, self._manifest.keep_labels, "manifest keep_labels")
        else:
            return None
        if len(indices) == len(labels):
            return None  # every class kept: the decoders' plain (faster) path
        return np.asarray(indices, dtype=np.intp)

    def _check_output(self) -> OutputLayout:
        # An all-padding input, normalised as the manifest says.
        dummy = np.empty((1, 3, self._size, self._size), dtype=np.float32)
        for channel, value in enumerate(self._preprocess.pad_input()):
            dummy[0, channel] = value
        try:
            out = self._run(dummy)
        except Exception as exc:  # onnxruntime's own exception types are not exported
            raise ModelError(
                f"model {self._manifest.model_path} fails on a {self._size}x{self._size} "
                f"input: {exc}"
            ) from exc
        return _layout_of(
            tuple(out.shape),
            self._num_classes,
            self._manifest.output_layout,
            yolox_anchor_count(self._size, self._manifest.strides),
            boxes_decoded=self._manifest.boxes_decoded,
        )

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names from the manifest."""
        return self._manifest.labels

    @property
    def layout(self) -> OutputLayout:
        """The output layout in use (never ``auto``: decided at load)."""
        return self._layout

    @property
    def kept_labels(self) -> tuple[str, ...]:
        """The labels that can produce detections."""
        labels = self._manifest.labels
        return labels if self._keep is None else tuple(labels[i] for i in self._keep)

    @property
    def model_ref(self) -> ModelRef:
        """Name and version from the manifest."""
        return self._ref

    @property
    def manifest(self) -> Manifest:
        """The model's manifest."""
        return self._manifest

    @property
    def batch_size(self) -> int | None:
        """``max_batch`` for a model with a dynamic batch dimension, else 1."""
        return self._config.max_batch if self._dynamic_batch else 1

    @property
    def providers(self) -> list[str]:
        """The execution providers the session actually uses."""
        return list(self._session.get_providers())

    def infer(self, images: Sequence[Image]) -> list[FloatArray]:
        """Letterbox, run and decode ``images``; per image, ``(M, 6)`` rows in normalised
        coordinates: ``x1, y1, x2, y2, score, class``."""
        # Each inference thread letterboxes into its own batch buffer, reused from call to
        # call: no new 4.9 MB input per frame (at 640), and no second copy to batch them.
        step = self.batch_size or 1
        buffer = self._input_buffer(step)
        results = []
        for i in range(0, len(images), step):
            chunk = images[i : i + step]
            boxes = [
                letterbox(img, self._size, preprocess=self._preprocess, out=buffer[j : j + 1])[1]
                for j, img in enumerate(chunk)
            ]
            outputs = self._run(buffer[: len(chunk)])
            for out, box in zip(outputs, boxes, strict=True):
                results.append(self._decode(out, box))
        return results

    def _input_buffer(self, batch: int) -> FloatArray:
        """This thread's ``(batch, 3, size, size)`` input buffer."""
        buffer: FloatArray | None = getattr(self._buffers, "input", None)
        if buffer is None or buffer.shape[0] < batch:
            buffer = np.empty((batch, 3, self._size, self._size), dtype=np.float32)
            self._buffers.input = buffer
        return buffer

    def _decode(self, out: npt.NDArray[np.float32], box: Letterbox) -> FloatArray:
        if self._layout == "raw":
            rows = decode_raw(out, self._num_classes, self._score, self._iou, keep=self._keep)
        elif self._layout == "yolox":
            rows = decode_yolox(
                out, self._num_classes, self._score, self._iou, grid=self._grid, keep=self._keep
            )
        else:
            rows = decode_end_to_end(out, self._num_classes, self._score, keep=self._keep)
        if rows.shape[0]:
            rows[:, :4] = box.to_normalised(rows)
        return rows

    def detect(self, frames: Sequence[Frame]) -> list[list[Detection]]:
        """Detections per frame in normalised coordinates; degenerate boxes are dropped."""
        labels = self._manifest.labels
        out: list[list[Detection]] = []
        for rows in self.infer([f.image for f in frames]):
            found = []
            for x1, y1, x2, y2, score, cls in rows.tolist():
                if x2 > x1 and y2 > y1:
                    found.append(Detection(labels[int(cls)], float(score), (x1, y1, x2, y2)))
            out.append(found)
        return out

    def close(self) -> None:
        """Drop the session."""
        with self._lock:
            del self._session
