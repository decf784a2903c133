"""Configuration of the vision pipeline: detector, cameras, zones, rules and evidence.

The agent's config (``edge_agent.config``) embeds :class:`VisionConfig` under ``vision:``.
Every model forbids unknown fields and checks what can be checked without touching a
camera or a model file: polygons are simple and inside the frame, rules name zones that
exist, schedules parse, codes and labels default per rule kind. This module is pure
(pydantic only), so ``edge-agent validate`` can load it without OpenCV or onnxruntime.
"""

from __future__ import annotations

import enum
import re
import zoneinfo
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from edge_agent.protocol import MAX_SNAPSHOT_BYTES

__all__ = [
    "DEFAULT_MODEL",
    "KIND_DEFAULTS",
    "CameraConfig",
    "CameraModel",
    "DetectorConfig",
    "EvidenceConfig",
    "FixedLocation",
    "KindDefaults",
    "MemoryConfig",
    "ProviderName",
    "RuleConfig",
    "RuleKind",
    "RuleLabel",
    "Schedule",
    "ShadowConfig",
    "SourceSpec",
    "VisionConfig",
    "ZoneConfig",
    "parse_schedule",
    "parse_source",
    "polygon_problem",
]

#: Largest evidence JPEG: what the wire contract accepts.
MAX_EVIDENCE_BYTES = MAX_SNAPSHOT_BYTES

ProviderName = Literal["tensorrt", "cuda", "cpu"]
Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
CameraId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Label = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
#: A rule's label: ``car`` (from any model) or ``general:car`` (only the model so named).
RuleLabel = Annotated[
    str, StringConstraints(pattern=r"^([a-z0-9][a-z0-9_-]{0,63}:)?[a-z][a-z0-9_]{0,63}$")
]
#: Name of the one model of a config that gives ``detector:`` rather than ``detectors:``.
DEFAULT_MODEL = "default"


class _Strict(BaseModel):
    """Base of every vision config model: immutable, unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- detector


class DetectorConfig(_Strict):
    """One ONNX detector model, shared by every camera of a box that runs it."""

    model: Path = Field(
        default=Path("models/street-detector"),
        description="a model.onnx file, or a directory holding model.onnx and manifest.yaml",
    )
    providers: tuple[ProviderName, ...] = Field(
        default=("cpu",), description="execution providers, most preferred first"
    )
    intra_threads: int = Field(default=2, ge=1, le=64)
    inter_threads: int = Field(default=1, ge=1, le=64)
    score_threshold: float | None = Field(
        default=None, gt=0.0, le=1.0, description="overrides the manifest's threshold"
    )
    nms_iou: float | None = Field(
        default=None, gt=0.0, le=1.0, description="overrides the manifest's NMS IoU"
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=16,
        description="inference threads sharing the one session; on small CPUs two workers "
        "of one intra-op thread each outrun one worker of two threads",
    )
    max_batch: int = Field(
        default=4,
        ge=1,
        le=64,
        description="most frames (of different cameras) per inference; bigger batches "
        "run faster per frame but hold more memory",
    )
    keep_labels: tuple[Label, ...] | None = Field(
        default=None,
        description="only these of the model's labels raise detections (overrides the "
        "manifest's keep_labels); null keeps what the manifest keeps, or every label",
    )
    label_map: dict[Label, Label] = Field(
        default_factory=dict,
        description="renames the model's labels for the rules, e.g. {dining_table: stall}; "
        "labels not named keep their own name",
    )

    @field_validator("providers")
    @classmethod
    def _providers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("list at least one execution provider, e.g. ['cpu']")
        if len(set(value)) != len(value):
            raise ValueError(f"providers repeat a name: {list(value)}")
        return value


# --------------------------------------------------------------------------- zones


def _orient(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _on_segment(a: tuple[float, float], b: tuple[float, float], p: tuple[float, float]) -> bool:
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def _segments_cross(
    p1: tuple[float, float],
    p2: tuple[float, float],
    q1: tuple[float, float],
    q2: tuple[float, float],
) -> bool:
    d1, d2 = _orient(q1, q2, p1), _orient(q1, q2, p2)
    d3, d4 = _orient(p1, p2, q1), _orient(p1, p2, q2)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True
    return (
        (d1 == 0 and _on_segment(q1, q2, p1))
        or (d2 == 0 and _on_segment(q1, q2, p2))
        or (d3 == 0 and _on_segment(p1, p2, q1))
        or (d4 == 0 and _on_segment(p1, p2, q2))
    )


def polygon_problem(points: tuple[tuple[float, float], ...]) -> str | None:
    """Why ``points`` is not a usable zone polygon, or None when it is.

    A zone needs at least three points, all within [0, 1] (normalised image
    coordinates), a non-zero area, and edges that do not cross each other.
    """
    if len(points) < 3:
        return f"a zone polygon needs at least 3 points, got {len(points)}"
    for i, (x, y) in enumerate(points):
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            return f"point {i} ({x}, {y}) is outside [0, 1]: zone points are normalised"
    n = len(points)
    for i in range(n):
        a1, a2 = points[i], points[(i + 1) % n]
        for j in range(i + 1, n):
            if j == i or (j + 1) % n == i or j == (i + 1) % n:
                continue  # adjacent edges share a vertex by construction
            b1, b2 = points[j], points[(j + 1) % n]
            if _segments_cross(a1, a2, b1, b2):
                return f"the zone polygon is self-intersecting: edge {i} crosses edge {j}"
    area2 = sum(
        points[i][0] * points[(i + 1) % n][1] - points[(i + 1) % n][0] * points[i][1]
        for i in range(n)
    )
    if abs(area2) < 1e-9:
        return "the zone polygon has no area (its points are collinear or repeated)"
    return None


class ZoneConfig(_Strict):
    """A named polygon in normalised image coordinates (x right, y down, both in [0, 1])."""

    name: Name
    polygon: tuple[tuple[float, float], ...]

    @field_validator("polygon")
    @classmethod
    def _valid_polygon(
        cls, value: tuple[tuple[float, float], ...]
    ) -> tuple[tuple[float, float], ...]:
        problem = polygon_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


# --------------------------------------------------------------------------- rules


class RuleKind(enum.StrEnum):
    """The built-in rule kinds, one per camera event of the catalogue."""

    VENDOR = "vendor"
    SHOP_FRONT = "shop_front"
    PARKING = "parking"
    PILED_MATERIALS = "piled_materials"
    EXPOSED_GARBAGE = "exposed_garbage"
    BIN_OVERFLOW = "bin_overflow"
    CLOTHES = "clothes"
    SPILLAGE = "spillage"


@dataclass(frozen=True)
class KindDefaults:
    """What a rule kind raises unless the rule says otherwise."""

    labels: tuple[str, ...]
    code: str
    event_kind: str
    dwell_s: float
    cooldown_s: float = 600.0
    per_object: bool = False
    read_plate: bool = False
    stationary: bool = True


#: Defaults per rule kind: labels watched, catalogue code, event ``kind`` name, dwell.
KIND_DEFAULTS: dict[RuleKind, KindDefaults] = {
    RuleKind.VENDOR: KindDefaults(("stall",), "0501", "unlicensed_vendor", 300.0, per_object=True),
    RuleKind.SHOP_FRONT: KindDefaults(("goods",), "0504", "shop_front_overflow", 120.0),
    RuleKind.PARKING: KindDefaults(
        ("car",), "0505", "illegal_parking", 300.0, per_object=True, read_plate=True
    ),
    RuleKind.PILED_MATERIALS: KindDefaults(("goods", "debris"), "0507", "piled_materials", 600.0),
    RuleKind.EXPOSED_GARBAGE: KindDefaults(("garbage",), "0102", "exposed_garbage", 300.0),
    RuleKind.BIN_OVERFLOW: KindDefaults(("bin_overflow",), "2103", "bin_overflow", 120.0),
    RuleKind.CLOTHES: KindDefaults(("clothes",), "0511", "clothes_along_street", 300.0),
    RuleKind.SPILLAGE: KindDefaults(
        ("debris",), "2101", "road_spillage", 1.0, cooldown_s=120.0, stationary=False
    ),
}
"""Per-object kinds (a vendor, a car) raise one event per tracked object; the others
raise one event per zone for everything that qualifies there, then wait out the cooldown.
Stationary kinds count dwell only while the object stays put (a car driving along the
road never dwells); spillage seen from a moving truck is not stationary in the image."""


@dataclass(frozen=True)
class Schedule:
    """A daily window in local time; ``end`` before ``start`` wraps past midnight."""

    start: time
    end: time

    def contains(self, at: time) -> bool:
        """True when the local time ``at`` falls inside the window (start inclusive)."""
        if self.start == self.end:
            return True
        if self.start < self.end:
            return self.start <= at < self.end
        return at >= self.start or at < self.end


_SCHEDULE_RE = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


def parse_schedule(text: str) -> Schedule:
    """Parse ``"HH:MM-HH:MM"`` (``"22:00-06:00"`` wraps midnight; ``24:00`` means midnight)."""
    match = _SCHEDULE_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"schedule {text!r} is not 'HH:MM-HH:MM', e.g. '07:00-22:00'")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    times = []
    for h, m in ((h1, m1), (h2, m2)):
        hour = 0 if (h, m) == (24, 0) else h
        if not (0 <= hour < 24 and 0 <= m < 60):
            raise ValueError(f"schedule {text!r} has an invalid time {h:02d}:{m:02d}")
        times.append(time(hour, m))
    return Schedule(times[0], times[1])


class RuleConfig(_Strict):
    """One rule: objects of ``labels`` staying in ``zone`` for ``dwell_s`` raise an event.

    ``labels``, ``code``, ``event_kind`` and ``dwell_s`` default per ``kind`` (see
    :data:`KIND_DEFAULTS`). ``shout`` is a clip id or, when it holds a space, a text the
    box plays locally at once when the rule fires, even offline.
    """

    name: Name
    kind: RuleKind
    zone: Name
    labels: tuple[RuleLabel, ...] = Field(min_length=1)
    min_score: float = Field(default=0.4, ge=0.0, le=1.0)
    dwell_s: float = Field(ge=0.0, le=86_400.0)
    cooldown_s: float = Field(ge=0.0, le=7 * 86_400.0)
    schedule: str | None = None
    code: Annotated[str, StringConstraints(pattern=r"^[0-9]{4,8}$")]
    event_kind: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    shout: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        try:
            kind = RuleKind(str(data.get("kind")))
        except ValueError:
            # The field validator reports the bad kind with its choices; fill the other
            # fields anyway so that error is the only one shown.
            kind = RuleKind.VENDOR
        defaults = KIND_DEFAULTS[kind]
        filled = dict(data)
        for key, value in (
            ("labels", defaults.labels),
            ("code", defaults.code),
            ("event_kind", defaults.event_kind),
            ("dwell_s", defaults.dwell_s),
            ("cooldown_s", defaults.cooldown_s),
        ):
            if filled.get(key) is None:
                filled[key] = value
        return filled

    @field_validator("labels")
    @classmethod
    def _unique_labels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError(f"labels repeat a name: {list(value)}")
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value is not None:
            parse_schedule(value)
        return value

    @property
    def parsed_schedule(self) -> Schedule | None:
        """The schedule as a :class:`Schedule`, or None for always."""
        return None if self.schedule is None else parse_schedule(self.schedule)

    @property
    def read_plate(self) -> bool:
        """Whether events of this rule carry an OCR-read licence plate."""
        return KIND_DEFAULTS[self.kind].read_plate

    @property
    def stationary(self) -> bool:
        """True when dwell counts only while the object stays where it was."""
        return KIND_DEFAULTS[self.kind].stationary

    @property
    def per_object(self) -> bool:
        """True when each tracked object raises its own event (vendors, cars)."""
        return KIND_DEFAULTS[self.kind].per_object


# --------------------------------------------------------------------------- cameras


@dataclass(frozen=True)
class SourceSpec:
    """A parsed camera source.

    ``kind`` is ``url`` (rtsp/http/https), ``device`` (a USB index), ``file`` (a video
    file path) or ``scenario`` (a simulator scenario by name, with ``seed`` and ``speed``).
    """

    kind: Literal["url", "device", "file", "scenario"]
    target: str
    seed: int = 0
    speed: float = 1.0


def parse_source(text: str | int) -> SourceSpec:
    """Parse a camera ``source``: ``rtsp://...``, ``http(s)://...``, ``0`` or
    ``/dev/video0`` (USB), a file path, or ``scenario:NAME`` with optional
    ``?seed=N&speed=X``."""
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"device index must be >= 0, got {text}")
        return SourceSpec("device", str(text))
    value = text.strip()
    if not value:
        raise ValueError("source is empty")
    lowered = value.lower()
    if lowered.startswith("scenario:"):
        rest = value[len("scenario:") :]
        name, _, query = rest.partition("?")
        if not re.fullmatch(r"[a-z0-9_]+", name):
            raise ValueError(
                f"scenario source {value!r} needs a name, e.g. 'scenario:market_vendor'"
            )
        params = parse_qs(query, strict_parsing=bool(query)) if query else {}
        unknown = set(params) - {"seed", "speed"}
        if unknown:
            raise ValueError(f"scenario source {value!r}: unknown option(s) {sorted(unknown)}")
        try:
            seed = int(params.get("seed", ["0"])[-1])
            speed = float(params.get("speed", ["1"])[-1])
        except ValueError as exc:
            raise ValueError(f"scenario source {value!r}: bad seed or speed ({exc})") from exc
        if not 0.0 < speed <= 1000.0:
            raise ValueError(f"scenario source {value!r}: speed must be in (0, 1000]")
        return SourceSpec("scenario", name, seed=seed, speed=speed)
    if re.match(r"^(rtsp|rtsps|http|https|rtmp|udp|tcp)://", lowered):
        return SourceSpec("url", value)
    if value.isdigit() or re.fullmatch(r"/dev/video[0-9]+", value):
        return SourceSpec("device", value)
    if "://" in value:
        scheme = value.split("://", 1)[0]
        raise ValueError(f"source {value!r}: unsupported scheme {scheme!r}")
    return SourceSpec("file", value)


class FixedLocation(_Strict):
    """A surveyed position (WGS-84): a fixed camera's, or a pole unit's (``device.location``)."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class CameraModel(_Strict):
    """A model a camera runs, and how often (``fps``; null: every frame it takes)."""

    name: Name
    fps: float | None = Field(default=None, gt=0.0, le=30.0)
    tiles: int = Field(
        default=1,
        ge=1,
        le=4,
        description="for small, far objects: also run the model on a tiles x tiles grid of "
        "overlapping crops (2: four crops, each seen at about 1.7x the detail); costs "
        "tiles*tiles + 1 inferences a run",
    )


class CameraConfig(_Strict):
    """One camera: where its frames come from, its zones, its rules, its privacy options.

    A camera without ``location`` is mounted on a vehicle: its events take the unit's
    latest GPS fix.
    """

    id: CameraId
    source: str | int
    detect_fps: float = Field(default=5.0, gt=0.0, le=30.0)
    stall_after_s: float = Field(default=10.0, gt=0.0, le=3600.0)
    track_grace_s: float = Field(
        default=30.0,
        ge=0.0,
        le=3600.0,
        description="how long an object may go unseen (hidden behind a bus) and stay the same",
    )
    width: int | None = Field(default=None, gt=0, le=10_000)
    height: int | None = Field(default=None, gt=0, le=10_000)
    zones: tuple[ZoneConfig, ...] = ()
    rules: tuple[RuleConfig, ...] = ()
    models: tuple[CameraModel, ...] = Field(
        default=(),
        description="the box's models this camera runs and at which rate, e.g. "
        "[{name: street}, {name: general, fps: 2}]; empty: every model, every frame",
    )
    blur_faces: bool = False
    blur_plates: bool = False
    location: FixedLocation | None = None
    decode_threads: int = Field(
        default=1,
        ge=0,
        le=16,
        description="FFmpeg decoder threads of this camera (0: FFmpeg decides); each "
        "extra thread holds its own frame buffers, about 7 MB at 720p",
    )

    @field_validator("source")
    @classmethod
    def _source(cls, value: str | int) -> str | int:
        parse_source(value)
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> CameraConfig:
        if (self.width is None) != (self.height is None):
            raise ValueError("give both width and height, or neither")
        zone_names = [z.name for z in self.zones]
        dup = {n for n in zone_names if zone_names.count(n) > 1}
        if dup:
            raise ValueError(f"camera {self.id!r}: zone names repeat: {sorted(dup)}")
        rule_names = [r.name for r in self.rules]
        dup = {n for n in rule_names if rule_names.count(n) > 1}
        if dup:
            raise ValueError(f"camera {self.id!r}: rule names repeat: {sorted(dup)}")
        model_names = [m.name for m in self.models]
        dup = {n for n in model_names if model_names.count(n) > 1}
        if dup:
            raise ValueError(f"camera {self.id!r}: models repeat: {sorted(dup)}")
        for model in self.models:
            if model.fps is not None and model.fps > self.detect_fps:
                raise ValueError(
                    f"camera {self.id!r}: model {model.name!r} at {model.fps} fps is faster "
                    f"than the camera's detect_fps {self.detect_fps}"
                )
        for rule in self.rules:
            if rule.zone not in zone_names:
                raise ValueError(
                    f"camera {self.id!r}: rule {rule.name!r} names zone {rule.zone!r}, "
                    f"which is not one of its zones {zone_names}"
                )
        return self

    @property
    def source_spec(self) -> SourceSpec:
        """The parsed ``source``."""
        return parse_source(self.source)

    def zone(self, name: str) -> ZoneConfig:
        """The zone called ``name``."""
        for z in self.zones:
            if z.name == name:
                return z
        raise KeyError(name)


# --------------------------------------------------------------------------- evidence


class EvidenceConfig(_Strict):
    """How evidence snapshots are made."""

    max_bytes: int = Field(default=MAX_EVIDENCE_BYTES, ge=8 * 1024, le=MAX_EVIDENCE_BYTES)
    quality: int = Field(default=85, ge=20, le=100)
    max_width: int = Field(default=1280, ge=160, le=4096)
    draw_boxes: bool = True
    keep_frame: bool = Field(
        default=True,
        description="also send the frame clean (no boxes, no blur, full size) for retraining "
        "the detector; the hub keeps it apart from the snapshot, for admins only, every "
        "access audited",
    )
    read_plates: bool = Field(
        default=True, description="read plates of parking events (needs the plate model)"
    )
    plate_model: Path | None = Field(
        default=None,
        description="the plate models: a folder holding the recogniser and the text "
        "detector (checked against its manifest.yaml), or the recogniser's .onnx file alone "
        "(plates then found by colour only); null for models/plate-ocr of the checkout",
    )
    plate_prior: str | None = Field(
        default=None,
        pattern=r"^[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤川琼青藏宁]"
        r"[A-HJ-NP-Z]?$",
        description="the city's usual plate start as a soft prior: a province (浙) or a "
        "province and city letter (浙J); where the reader is unsure of that character and "
        "the prior's is a plausible alternative there, the prior's is taken; a confident "
        "reading is never changed; null (the default) for no prior",
    )
    plate_prior_weight: float = Field(
        default=4.0,
        ge=1.0,
        le=100.0,
        description="how strongly the plate prior counts: the prior's character wins where "
        "its probability times this weight reaches the top character's (which must be "
        "below 0.9)",
    )


# --------------------------------------------------------------------------- memory


class MemoryConfig(_Strict):
    """Process memory settings, applied once when the agent starts (before its threads).

    The defaults suit a 2-core box with up to eight 720p cameras; ``null`` leaves a
    setting at the C library's or OpenCV's default. A change takes effect when the
    agent next starts (``config.apply`` does not restart the process).
    """

    malloc_arena_max: int | None = Field(
        default=2,
        ge=1,
        le=64,
        description="glibc malloc arenas; its default (8 per core) lets every capture "
        "thread keep its own arena of freed frames",
    )
    opencv_threads: int | None = Field(
        default=1,
        ge=0,
        le=64,
        description="OpenCV's worker pool for resizing and encoding; one is as fast for "
        "720p frames and inference workers already use the cores",
    )


# --------------------------------------------------------------------------- all


class ShadowConfig(_Strict):
    """A candidate model run beside one of the box's models, only to be compared.

    On the cameras named (all that run ``slot`` when none are), the candidate sees the
    same frames as ``slot``'s model and its detections stand in for that model's in a
    second tracker and rule engine of the camera. What those raise goes to the hub as
    events marked ``shadow``: never filed, never shouted, outside the unit's event
    sequence; the hub compares them with the operators' verdicts on the real ones.
    """

    slot: Name = Field(description="the box's model the candidate would replace")
    model: Path = Field(description="the candidate: a model.onnx, or a folder with its manifest")
    cameras: tuple[str, ...] = Field(
        default=(), description="camera ids to shadow; empty: every camera running the slot"
    )


class VisionConfig(_Strict):
    """The whole vision pipeline of one box."""

    detector: DetectorConfig = Field(
        default_factory=DetectorConfig, description="the box's one model (or use detectors)"
    )
    detectors: dict[Name, DetectorConfig] = Field(
        default_factory=dict,
        description="several models by name, e.g. {street: {...}, general: {...}}; cameras "
        "choose theirs in 'models' and rules may name 'general:car'",
    )
    cameras: tuple[CameraConfig, ...] = ()
    evidence: EvidenceConfig = Field(default_factory=EvidenceConfig)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    timezone: str = Field(default="Asia/Shanghai", description="local time zone of schedules")
    shadow: ShadowConfig | None = Field(
        default=None, description="a candidate model compared beside one of the box's"
    )

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _unique_cameras(self) -> VisionConfig:
        ids = [c.id for c in self.cameras]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"camera ids repeat: {sorted(dup)}")
        # A dumped config carries the default 'detector' beside 'detectors': that is fine.
        if self.detectors and self.detector != DetectorConfig():
            raise ValueError("give either 'detector' (one model) or 'detectors' (several)")
        names = sorted(self.models)
        for cam in self.cameras:
            for model in cam.models:
                if model.name not in self.models:
                    raise ValueError(
                        f"camera {cam.id!r} runs model {model.name!r}, which is not one of "
                        f"the box's detectors {names}"
                    )
            runs = {m.name for m in cam.models} or set(self.models)
            for rule in cam.rules:
                for label in rule.labels:
                    model_name, sep, _ = label.partition(":")
                    if sep and model_name not in runs:
                        raise ValueError(
                            f"camera {cam.id!r}: rule {rule.name!r} wants {label!r}, but the "
                            f"camera does not run a model {model_name!r} (it runs {sorted(runs)})"
                        )
        if self.shadow is not None:
            if self.shadow.slot not in self.models:
                raise ValueError(
                    f"shadow.slot {self.shadow.slot!r} is not one of the box's detectors {names}"
                )
            unknown = sorted(set(self.shadow.cameras) - set(ids))
            if unknown:
                raise ValueError(f"shadow.cameras names no camera here: {unknown}")
        return self

    def shadow_cameras(self) -> tuple[str, ...]:
        """The cameras the shadow model runs on (none without one)."""
        if self.shadow is None:
            return ()
        slot = self.shadow.slot
        running = [c.id for c in self.cameras if slot in dict(self.camera_models(c))]
        wanted = set(self.shadow.cameras) or set(running)
        return tuple(c for c in running if c in wanted)

    @property
    def models(self) -> dict[str, DetectorConfig]:
        """The box's models by name: ``detectors``, or ``{"default": detector}``."""
        return dict(self.detectors) if self.detectors else {DEFAULT_MODEL: self.detector}

    @property
    def inference_workers(self) -> int:
        """Inference threads of the box: the most any of its models asks for."""
        return max(d.workers for d in self.models.values())

    @property
    def max_batch(self) -> int:
        """Most frames per inference: the least any of its models allows."""
        return min(d.max_batch for d in self.models.values())

    def camera_tiles(self, camera: CameraConfig) -> dict[str, int]:
        """Tile grid of each model ``camera`` runs tiled (see ``CameraModel.tiles``)."""
        return {m.name: m.tiles for m in camera.models if m.tiles > 1}

    def camera_models(self, camera: CameraConfig) -> tuple[tuple[str, float | None], ...]:
        """``(model name, fps or None)`` of each model ``camera`` runs."""
        if camera.models:
            return tuple((m.name, m.fps) for m in camera.models)
        return tuple((name, None) for name in self.models)

    def camera(self, camera_id: str) -> CameraConfig:
        """The camera called ``camera_id``; KeyError if there is none."""
        for cam in self.cameras:
            if cam.id == camera_id:
                return cam
        raise KeyError(camera_id)
