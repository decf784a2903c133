"""Retraining sets from the field: ``central-hub dataset export``.

The AI events whose reports operators decided in a period (:mod:`central_hub.services.
labels`) become a YOLO dataset: each event's clean frame as the image, its detections as
the boxes, in the class list of the model to retrain. What a verdict makes of an event:

* verified (true positive), and cancelled as ``not_a_violation`` or ``duplicate`` (the
  unit saw a real object; only the case was not wanted): its boxes;
* cancelled as ``wrong_object`` (the unit mistook something): a **hard negative**, the
  image with no boxes, so the model learns what it must not see there;
* cancelled as ``other``: left out (the verdict does not say what was wrong).

Frames are split into train and validation by **camera and day**: every frame of one
camera on one day goes to the same side, decided by a hash, so near-identical frames
never straddle the split. Faces are blurred (the regions the unit sent with each frame)
unless the admin exporting asks otherwise; every frame exported is recorded in
``frame_reads`` under the admin's name. ``DATA_CARD.md`` counts what went in and what was
left out, per split, class, camera, verdict and source model.

Layout::

    OUT/data.yaml                      path, train, val, names (the model's classes)
    OUT/images/{train,val}/<event>.jpg
    OUT/labels/{train,val}/<event>.txt  "class cx cy w h" per box, normalised
    OUT/DATA_CARD.md
"""

from __future__ import annotations

import collections
import hashlib
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.adapters.evidence import EvidenceStore
from central_hub.db.schema import frame_reads
from central_hub.domain.labels import Verdict
from central_hub.errors import InvalidInputError, NotFoundError
from central_hub.services.labels import LabelledEvent, labelled_events

__all__ = [
    "ExportOptions",
    "ExportReport",
    "export_dataset",
    "split_of",
    "use_of",
    "yolo_lines",
]

Split = Literal["train", "val"]
Use = Literal["boxes", "negative"]
_PAGE = 5000


@dataclass(frozen=True)
class ExportOptions:
    """What to export, where, and by whom."""

    since: datetime
    until: datetime
    out: Path
    classes: Sequence[str]
    by: str
    codes: frozenset[str] | None = None
    cameras: frozenset[str] | None = None  # "device/camera"
    val_share: float = 0.2
    blur_faces: bool = True
    zone: str = "Asia/Shanghai"


@dataclass
class ExportReport:
    """What went where, and what was left out and why."""

    images: dict[str, int] = field(default_factory=lambda: {"train": 0, "val": 0})
    negatives: dict[str, int] = field(default_factory=lambda: {"train": 0, "val": 0})
    boxes: collections.Counter[str] = field(default_factory=collections.Counter)
    cameras: collections.Counter[str] = field(default_factory=collections.Counter)
    labels: collections.Counter[str] = field(default_factory=collections.Counter)
    models: collections.Counter[str] = field(default_factory=collections.Counter)
    left_out: collections.Counter[str] = field(default_factory=collections.Counter)
    groups: dict[str, set[str]] = field(default_factory=lambda: {"train": set(), "val": set()})

    def summary(self) -> str:
        """One line for the command line."""
        left = ", ".join(f"{n} {why}" for why, n in sorted(self.left_out.items())) or "none"
        return (
            f"{self.images['train']} train and {self.images['val']} val images "
            f"({sum(self.negatives.values())} hard negatives, {sum(self.boxes.values())} boxes); "
            f"left out: {left}"
        )


def split_of(camera: str, day: date, val_share: float) -> Split:
    """Train or validation for every frame of ``camera`` on ``day`` (pure, stable)."""
    digest = hashlib.sha256(f"{camera}|{day.isoformat()}".encode()).digest()
    return "val" if int.from_bytes(digest[:8], "big") / 2**64 < val_share else "train"


def use_of(event: LabelledEvent) -> Use | None:
    """What the event's verdict makes of it (see the module docstring); None: left out.

    Boxes an operator corrected say what the frame shows whatever the verdict: their
    boxes, or a hard negative when they removed every box."""
    if event.corrected_by is not None:
        return "boxes" if event.event.objects else "negative"
    if event.positive or event.verdict in (Verdict.NOT_A_VIOLATION, Verdict.DUPLICATE):
        return "boxes"
    if event.verdict is Verdict.WRONG_OBJECT:
        return "negative"
    return None


def yolo_lines(
    objects: Iterable[dict[str, Any]], classes: Sequence[str]
) -> tuple[list[str], list[str]]:
    """``class cx cy w h`` lines for the objects whose label is a class, and the labels
    that are not (pure). Boxes are normalised x1, y1, x2, y2 as units send them."""
    index = {name: n for n, name in enumerate(classes)}
    lines: list[str] = []
    dropped: list[str] = []
    for obj in objects:
        label = str(obj.get("label"))
        if label not in index:
            dropped.append(label)
            continue
        x1, y1, x2, y2 = (float(v) for v in obj["box"])
        w, h = x2 - x1, y2 - y1
        if w <= 0 or h <= 0:
            dropped.append(label)
            continue
        lines.append(f"{index[label]} {x1 + w / 2:.6f} {y1 + h / 2:.6f} {w:.6f} {h:.6f}")
    return lines, dropped


async def export_dataset(
    engine: AsyncEngine, frames: EvidenceStore, options: ExportOptions, now: datetime
) -> ExportReport:
    """Write the dataset of ``options`` (see the module docstring); its report."""
    if not 0.0 <= options.val_share < 1.0:
        raise InvalidInputError("the validation share must be at least 0 and below 1")
    if not options.classes:
        raise InvalidInputError("the target model has no classes")
    out = options.out
    if out.exists() and any(out.iterdir()):
        raise InvalidInputError(f"{out} is not empty: export into a new folder")
    zone = zoneinfo.ZoneInfo(options.zone)
    report = ExportReport()
    for split in ("train", "val"):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    since = options.since
    while True:
        page = await labelled_events(engine, since, options.until, limit=_PAGE)
        reads = [_write_one(event, frames, options, zone, report) for event in page]
        rows = [
            {"sha256": sha, "user_name": f"dataset-export:{options.by}", "at": now}
            for sha in reads
            if sha is not None
        ]
        if rows:
            async with engine.begin() as conn:
                await conn.execute(frame_reads.insert(), rows)
        cases = {e.event.case_id for e in page}
        if len(cases) < _PAGE:
            break
        since = max(e.decided_at for e in page) + timedelta(microseconds=1)
    (out / "data.yaml").write_text(
        yaml.safe_dump(
            {
                "path": str(out.resolve()),
                "train": "images/train",
                "val": "images/val",
                "names": dict(enumerate(options.classes)),
            },
            sort_keys=False,
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    (out / "DATA_CARD.md").write_text(_card(options, report, now), encoding="utf-8")
    return report


def _write_one(
    item: LabelledEvent,
    frames: EvidenceStore,
    options: ExportOptions,
    zone: zoneinfo.ZoneInfo,
    report: ExportReport,
) -> str | None:
    """Export one event; the frame's SHA-256 when it was read (for the audit)."""
    event = item.event
    camera = f"{event.device_id}/{event.camera_id}"
    if options.codes is not None and event.code not in options.codes:
        report.left_out["other code"] += 1
        return None
    if options.cameras is not None and camera not in options.cameras:
        report.left_out["other camera"] += 1
        return None
    use = use_of(item)
    if use is None:
        report.left_out[f"verdict {item.label}"] += 1
        return None
    if event.frame_sha256 is None:
        report.left_out["no clean frame"] += 1
        return None
    try:
        data = frames.get_sync(event.frame_sha256)
    except NotFoundError:
        report.left_out["frame missing from the store"] += 1
        return None
    if options.blur_faces and event.frame_faces:
        data = _blurred(data, event.frame_faces)
    lines: list[str] = []
    if use == "boxes":
        lines, dropped = yolo_lines(event.objects, options.classes)
        for label in dropped:
            report.left_out[f"box of a label not in the model ({label})"] += 1
        if not lines:
            report.left_out["no box of the model's classes"] += 1
            return event.frame_sha256
    split = split_of(camera, event.detected_at.astimezone(zone).date(), options.val_share)
    (options.out / "images" / split / f"{event.event_id}.jpg").write_bytes(data)
    text = "".join(f"{line}\n" for line in lines)
    (options.out / "labels" / split / f"{event.event_id}.txt").write_text(text, encoding="utf-8")
    report.images[split] += 1
    report.negatives[split] += use == "negative"
    for line in lines:
        report.boxes[options.classes[int(line.split()[0])]] += 1
    report.cameras[camera] += 1
    report.labels[item.label] += 1
    report.models[f"{event.model_name}@{event.model_version}"] += 1
    report.groups[split].add(f"{camera}|{event.detected_at.astimezone(zone).date()}")
    return event.frame_sha256


def _blurred(jpeg: bytes, faces: Sequence[Sequence[float]]) -> bytes:
    """The frame with the given face regions blurred, as a JPEG."""
    import cv2
    import numpy as np

    from edge_agent.vision.evidence import blur_regions
    from edge_agent.vision.frames import as_image

    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise InvalidInputError("a stored frame is not a decodable JPEG")
    canvas = as_image(image)
    blur_regions(canvas, [(f[0], f[1], f[2], f[3]) for f in faces])
    ok, buf = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise InvalidInputError("cannot re-encode a blurred frame")
    return bytes(buf)


def _card(options: ExportOptions, report: ExportReport, now: datetime) -> str:
    def table(title: str, counts: collections.Counter[str]) -> list[str]:
        rows = [f"| {k} | {v} |" for k, v in sorted(counts.items())] or ["| (none) | 0 |"]
        return ["", f"## {title}", "", "| | count |", "|---|---|", *rows]

    lines = [
        "# Data card: a retraining set from operators' verdicts",
        "",
        f"- Decisions from {options.since.isoformat()} to {options.until.isoformat()}",
        f"- Exported {now.isoformat()} by {options.by}",
        f"- Faces {'blurred' if options.blur_faces else 'NOT blurred (asked by the admin)'}",
        f"- Classes ({len(options.classes)}): {', '.join(options.classes)}",
        f"- Images: {report.images['train']} train, {report.images['val']} validation; hard "
        f"negatives {report.negatives['train']} train, {report.negatives['val']} validation",
        f"- Split by camera and day ({len(report.groups['train'])} camera-days in train, "
        f"{len(report.groups['val'])} in validation, none in both); validation share "
        f"{options.val_share}",
        "- Boxes from verified reports and from reports cancelled as not a violation or "
        "duplicate; reports cancelled as wrong object are hard negatives (no boxes); "
        "'other' is left out",
    ]
    lines += table("Boxes per class", report.boxes)
    lines += table("Images per camera", report.cameras)
    lines += table("Images per verdict", report.labels)
    lines += table("Images per source model", report.models)
    lines += table("Left out", report.left_out)
    return "\n".join(lines) + "\n"
