"""Technician tools: ``edge-agent replay`` and ``edge-agent draw-zones``.

``replay --config FILE --video FILE`` runs a camera's pipeline offline over a clip and
prints its events as JSON lines; ``draw-zones --config FILE`` writes a PNG of a camera
frame with every zone drawn and labelled, to check a zone drawing before deployment.
The config is the agent's YAML (read through ``edge_agent.config``), or a YAML whose
top level holds only ``vision:``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from edge_agent import protocol
from edge_agent.vision.config import CameraConfig, DetectorConfig, SourceSpec, VisionConfig
from edge_agent.vision.errors import VisionError
from edge_agent.vision.frames import Image

__all__ = ["draw_zones", "load_vision_config", "register"]

logger = logging.getLogger(__name__)

_COLOURS = ((0, 200, 255), (255, 120, 0), (0, 220, 0), (220, 0, 220), (0, 0, 255), (255, 255, 0))


class ToolError(VisionError):
    """A problem a technician must fix; the message says what and where."""


def _resolve(config: VisionConfig, base: Path) -> VisionConfig:
    """Make the model path and file sources relative to the config file's folder."""

    def fix(detector: DetectorConfig) -> DetectorConfig:
        model = detector.model
        if not model.is_absolute() and not model.exists() and (base / model).exists():
            return detector.model_copy(update={"model": base / model})
        return detector

    if config.detectors:
        detectors = {name: fix(d) for name, d in config.detectors.items()}
        config = config.model_copy(update={"detectors": detectors})
    else:
        config = config.model_copy(update={"detector": fix(config.detector)})
    cameras = []
    for cam in config.cameras:
        spec = cam.source_spec
        fixed = cam
        if spec.kind == "file" and not Path(spec.target).is_absolute():
            candidate = base / spec.target
            if not Path(spec.target).exists() and candidate.exists():
                fixed = cam.model_copy(update={"source": str(candidate)})
        cameras.append(fixed)
    return config.model_copy(update={"cameras": tuple(cameras)})


def load_vision_config(path: Path) -> VisionConfig:
    """The :class:`VisionConfig` in the YAML at ``path``; :class:`ToolError` lists problems."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ToolError(f"{path}: cannot read the config: {exc}") from exc
    if not isinstance(data, dict) or "vision" not in data:
        raise ToolError(f"{path}: no 'vision:' section")
    base = path.resolve().parent
    if set(data) - {"vision", "config_version"}:
        # A whole device config: the agent's own loader, with its environment overrides
        # and secret files (imported on use, like everything heavier than the vision config).
        from edge_agent.config import ConfigError, load_config

        try:
            return _resolve(load_config(path).vision, base)
        except ConfigError as exc:
            raise ToolError(f"{path}: invalid config:\n  " + "\n  ".join(exc.errors)) from exc
    try:
        return _resolve(VisionConfig.model_validate(data["vision"]), base)
    except ValidationError as exc:
        lines = protocol.error_lines(exc, prefix="vision.")
        raise ToolError(f"{path}: invalid config:\n  " + "\n  ".join(lines)) from exc


def _pick_cameras(config: VisionConfig, camera_id: str | None) -> list[CameraConfig]:
    if camera_id is not None:
        try:
            return [config.camera(camera_id)]
        except KeyError:
            known = ", ".join(c.id for c in config.cameras) or "none"
            raise ToolError(f"no camera {camera_id!r} in the config (cameras: {known})") from None
    if not config.cameras:
        raise ToolError("the config has no cameras")
    return list(config.cameras)


# --------------------------------------------------------------------------- replay


def _parse_location(text: str | None) -> protocol.Location | None:
    if text is None:
        return None
    try:
        lat, lon = (float(x) for x in text.split(","))
        return protocol.Location(lat=lat, lon=lon, source="gps")
    except (ValueError, ValidationError) as exc:
        raise ToolError(f"--location {text!r} is not LAT,LON") from exc


def _replay_command(args: argparse.Namespace) -> int:
    from edge_agent.vision.pipeline import load_detector, replay  # heavy: import on use
    from edge_agent.vision.plates import make_plate_reader

    try:
        config = load_vision_config(Path(args.config))
        camera = _pick_cameras(config, args.camera)[0]
        video = Path(args.video)
        if not video.is_file():
            raise ToolError(f"video file {video} does not exist")
        where = _parse_location(args.location)
        if camera.location is None and where is None:
            raise ToolError(f"camera {camera.id!r} has no location; pass --location LAT,LON")
        detector = load_detector(config)
        plates = None
        if any(r.read_plate for r in camera.rules) and config.evidence.read_plates:
            evidence = config.evidence
            plates = make_plate_reader(
                evidence.plate_model, evidence.plate_prior, evidence.plate_prior_weight
            )
        start = datetime.fromisoformat(args.start) if args.start else protocol.utc_now()
        if start.tzinfo is None:
            raise ToolError(f"--start {args.start!r} needs a time zone, e.g. +08:00")
        start = start.astimezone(UTC)  # events carry UTC times
        began = time.perf_counter()
        count = 0
        for event in replay(
            config,
            camera,
            detector=detector,
            video=video,
            device_id=args.device_id,
            location_at=lambda ts: where,
            plate_reader=plates,
            start_time=start,
        ):
            shown = event.model_copy(update={"snapshot": None}) if args.no_snapshots else event
            sys.stdout.write(protocol.encode(shown).decode("utf-8") + "\n")
            sys.stdout.flush()
            count += 1
    except VisionError as exc:
        print(f"edge-agent replay: {exc}", file=sys.stderr)
        return 2
    print(
        f"edge-agent replay: {count} event(s) from {video} in {time.perf_counter() - began:.1f} s",
        file=sys.stderr,
    )
    return 0


# --------------------------------------------------------------------------- draw-zones


def draw_zones(image: Image, camera: CameraConfig) -> Image:
    """A copy of ``image`` with every zone of ``camera`` filled, outlined and labelled."""
    import cv2  # the CLI imports this module; OpenCV loads on use
    import numpy as np

    h, w = image.shape[:2]
    canvas = np.array(image, copy=True)
    overlay = canvas.copy()
    polys = []
    for i, zone in enumerate(camera.zones):
        pts = np.array(
            [[round(x * (w - 1)), round(y * (h - 1))] for x, y in zone.polygon], np.int32
        )
        colour = _COLOURS[i % len(_COLOURS)]
        cv2.fillPoly(overlay, [pts], colour)
        polys.append((zone, pts, colour))
    canvas = np.asarray(cv2.addWeighted(overlay, 0.3, canvas, 0.7, 0), dtype=np.uint8)
    scale = max(0.5, w / 1600)
    placed: list[tuple[int, int, int, int]] = []  # label boxes drawn so far: never overlap
    for zone, pts, colour in polys:
        cv2.polylines(canvas, [pts], True, colour, max(2, w // 500), cv2.LINE_AA)
        rules = [f"{r.name} {r.code} {r.dwell_s:g}s" for r in camera.rules if r.zone == zone.name]
        lines = [zone.name, *rules]
        sizes = [cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, 1) for t in lines]
        line_h = max(th + base for (_, th), base in sizes) + 4
        block_w = max(tw for (tw, _), _ in sizes) + 4
        block_h = line_h * len(lines)
        cx, cy = (int(v) for v in pts.mean(axis=0))
        x = min(max(cx - block_w // 2, 0), max(w - block_w, 0))
        y = min(max(cy - block_h // 2, 0), max(h - block_h, 0))
        for _ in range(h // max(line_h, 1) + 1):
            box = (x, y, x + block_w, y + block_h)
            clash = [
                b
                for b in placed
                if box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3]
            ]
            if not clash:
                break
            y = max(b[3] for b in clash) + 2
            if y + block_h > h:
                y = 0
        placed.append((x, y, x + block_w, y + block_h))
        for k, text in enumerate(lines):
            top = y + k * line_h
            (tw, th), _ = sizes[k]
            cv2.rectangle(canvas, (x, top), (x + tw + 4, top + line_h), (0, 0, 0), -1)
            cv2.putText(
                canvas,
                text,
                (x + 2, top + th + 2),
                cv2.FONT_HERSHEY_SIMPLEX,
                scale,
                colour,
                1,
                cv2.LINE_AA,
            )
    return np.asarray(canvas, dtype=np.uint8)


def _grab_frame(camera: CameraConfig, frame: str | None, video: str | None) -> Image:
    import cv2  # the CLI imports this module; OpenCV loads on use

    from edge_agent.vision.frames import as_image
    from edge_agent.vision.sources import CaptureSource, Source, make_source

    if frame is not None:
        image = cv2.imread(frame, cv2.IMREAD_COLOR)
        if image is None:
            raise ToolError(f"cannot read image {frame}")
        return as_image(image)
    if video is not None:
        source: Source = CaptureSource(
            camera.id, SourceSpec("file", video), detect_fps=camera.detect_fps, replay=True
        )
    else:
        source = make_source(camera, replay=True)
    source.open()
    try:
        got = source.read()
    finally:
        source.close()
    if got is None:
        raise ToolError(f"camera {camera.id}: no frame came from its source")
    return as_image(got.image)


def _draw_zones_command(args: argparse.Namespace) -> int:
    import cv2  # the CLI imports this module; OpenCV loads on use

    try:
        config = load_vision_config(Path(args.config))
        cameras = _pick_cameras(config, args.camera)
        out = Path(args.out)
        for camera in cameras:
            image = _grab_frame(camera, args.frame, args.video)
            target = out if len(cameras) == 1 else out.with_name(f"{out.stem}-{camera.id}.png")
            target.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(target), draw_zones(image, camera)):
                raise ToolError(f"cannot write {target}")
            print(f"{target}: {len(camera.zones)} zone(s) of camera {camera.id}")
    except VisionError as exc:
        print(f"edge-agent draw-zones: {exc}", file=sys.stderr)
        return 2
    return 0


def register(subparsers: Any) -> None:
    """Add ``replay`` and ``draw-zones`` to the ``edge-agent`` command line."""
    rp = subparsers.add_parser(
        "replay", help="run a camera's pipeline over a video clip; print events as JSON lines"
    )
    rp.add_argument("--config", required=True, help="the agent's YAML config")
    rp.add_argument("--video", required=True, help="the clip to replay")
    rp.add_argument("--camera", help="camera id (default: the first camera)")
    rp.add_argument("--location", help="LAT,LON for a camera without a fixed location")
    rp.add_argument("--start", help="ISO time of the clip's first frame (default: now)")
    rp.add_argument("--device-id", default="replay", help="device id put in the events")
    rp.add_argument("--no-snapshots", action="store_true", help="leave the JPEGs out")
    rp.set_defaults(func=_replay_command)
    dz = subparsers.add_parser(
        "draw-zones", help="write a PNG of a camera frame with every zone drawn and labelled"
    )
    dz.add_argument("--config", required=True, help="the agent's YAML config")
    dz.add_argument("--camera", help="camera id (default: every camera)")
    dz.add_argument("--out", default="zones.png", help="PNG to write (default zones.png)")
    src = dz.add_mutually_exclusive_group()
    src.add_argument("--frame", help="take the frame from this image file")
    src.add_argument("--video", help="take the first frame of this video file")
    dz.set_defaults(func=_draw_zones_command)
