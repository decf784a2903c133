"""The xiuhua wire contract, v1 (see ``docs/protocol.md`` and DESIGN.md §4).

Both sides import this module: the edge agent to build what it sends and to check the
commands it receives, the hub to validate everything it ingests. It depends only on
pydantic and cryptography, so the hub can import it without pulling in OpenCV or
onnxruntime.

Rules every reader follows:

* payloads are UTF-8 JSON objects with a ``schema`` field (``xh.event/1`` ...);
* unknown fields are ignored (forward compatibility), missing required fields are
  rejected with the field's name;
* commands are signed by the hub with Ed25519 over the canonical JSON of every field
  except ``sig``; a device rejects a bad or missing signature, a command for another
  device, an expired command and a ``cmd_id`` it has seen before.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import os
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Protocol, TypeVar

import pydantic_core
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
    "MAX_COMMAND_BYTES",
    "MAX_COMMAND_TTL",
    "MAX_KEY_OVERLAP",
    "MAX_SNAPSHOT_BYTES",
    "MESSAGE_TYPES",
    "SELFTEST_CODE",
    "TOPIC_ROOT",
    "Channel",
    "Command",
    "CommandAck",
    "CommandRejected",
    "ConfigDesired",
    "ConfigReported",
    "DetectedObject",
    "Event",
    "GpsFix",
    "HubKeys",
    "LiveFrame",
    "LiveObject",
    "Location",
    "MalformedPayload",
    "MemoryReplayGuard",
    "ModelRef",
    "Plate",
    "ProtocolError",
    "RejectReason",
    "ReplayGuard",
    "Snapshot",
    "SnapshotReply",
    "Status",
    "Telemetry",
    "TopicError",
    "Track",
    "canonical_json",
    "decode",
    "encode",
    "error_lines",
    "field_path",
    "generate_signing_key",
    "hub_subscriptions",
    "load_private_key",
    "load_public_key",
    "parse_topic",
    "parse_trust_params",
    "public_key_b64",
    "sign_command",
    "sign_desired",
    "topic",
    "trust_params",
    "utc_now",
    "uuid7",
    "uuid7_time",
    "verify_command",
    "verify_desired",
]

TOPIC_ROOT = "xh/v1"
DEVICE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
MAX_SNAPSHOT_BYTES = 300 * 1024
#: A command may not live longer than this; it bounds how long a device must remember ids.
MAX_COMMAND_TTL = timedelta(hours=24)
#: Largest signed command: well below the broker's message size limit (1 MiB in the
#: shipped Mosquitto config), so a command the hub accepts is one the broker carries.
MAX_COMMAND_BYTES = 256 * 1024
#: The event code of a unit's synthetic uplink check (``selftest`` in its config): the
#: hub stores such events, so a technician sees them arrive, and files no case.
SELFTEST_CODE = "0000"
#: Clock skew tolerated between hub and device when checking ``issued_at``.
CLOCK_SKEW = timedelta(minutes=5)


# --------------------------------------------------------------------------- errors


class ProtocolError(Exception):
    """Base of every error raised by the wire contract."""


class TopicError(ProtocolError):
    """A topic that is not one of ours, or carries an invalid device id."""


class MalformedPayload(ProtocolError):
    """A payload that is not valid JSON or does not match its schema.

    ``fields`` names the offending fields as dotted paths, ``reason`` is one line a
    person can read.
    """

    def __init__(self, reason: str, fields: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fields = fields


class RejectReason(enum.StrEnum):
    """Why a device refused a command; each has its own value so acks can be counted."""

    UNSIGNED = "unsigned"
    BAD_SIGNATURE = "bad_signature"
    WRONG_DEVICE = "wrong_device"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    BAD_EXPIRY = "bad_expiry"
    REPLAYED = "replayed"
    MALFORMED = "malformed"


class CommandRejected(ProtocolError):
    """A command that failed verification; ``reason`` says which check."""

    def __init__(self, reason: RejectReason, detail: str, cmd_id: str | None = None) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.cmd_id = cmd_id

    @property
    def ack_state(self) -> Literal["rejected", "expired"]:
        """The ack state to report: ``expired`` for an expired command, else ``rejected``."""
        return "expired" if self.reason is RejectReason.EXPIRED else "rejected"


# --------------------------------------------------------------------------- topics


class Channel(enum.StrEnum):
    """The per-device topics below ``xh/v1/dev/{device_id}/``."""

    STATUS = "status"
    EVENT = "event"
    TELEMETRY = "telemetry"
    TRACK = "track"
    CMD = "cmd"
    CMD_ACK = "cmd/ack"
    CONFIG_DESIRED = "config/desired"
    CONFIG_REPORTED = "config/reported"
    SNAPSHOT = "snapshot"
    #: Live view frames (``live.start``): QoS 0, never through the outbox, never stored.
    LIVE = "live"

    @property
    def qos(self) -> int:
        """The QoS this channel is published with."""
        return 0 if self in (Channel.TELEMETRY, Channel.LIVE) else 1

    @property
    def ingested(self) -> bool:
        """Whether the hub's ingest workers read this channel (live frames go to the
        hub's live view only, never to the database)."""
        return self.from_device and self is not Channel.LIVE

    @property
    def retained(self) -> bool:
        """Whether messages on this channel are retained by the broker."""
        return self in (Channel.STATUS, Channel.CONFIG_DESIRED, Channel.CONFIG_REPORTED)

    @property
    def from_device(self) -> bool:
        """True for device → hub channels, False for hub → device."""
        return self not in (Channel.CMD, Channel.CONFIG_DESIRED)


def check_device_id(device_id: str) -> str:
    """Return ``device_id`` if it is a valid id, else raise :class:`TopicError`."""
    if not DEVICE_ID_RE.fullmatch(device_id):
        raise TopicError(
            f"invalid device id {device_id!r}: use 2-63 lowercase letters, digits or '-', "
            "starting with a letter or digit"
        )
    return device_id


def topic(device_id: str, channel: Channel) -> str:
    """Build the topic of ``channel`` for ``device_id``."""
    return f"{TOPIC_ROOT}/dev/{check_device_id(device_id)}/{channel.value}"


_TOPIC_RE = re.compile(r"^xh/v1/dev/([^/]+)/(.+)$")


def parse_topic(name: str) -> tuple[str, Channel]:
    """Split a topic into ``(device_id, channel)``; raise :class:`TopicError` if not ours."""
    match = _TOPIC_RE.fullmatch(name)
    if match is None:
        raise TopicError(f"not an xh/v1 device topic: {name!r}")
    device_id, rest = match.groups()
    check_device_id(device_id)
    try:
        channel = Channel(rest)
    except ValueError:
        raise TopicError(f"unknown channel {rest!r} in topic {name!r}") from None
    return device_id, channel


def hub_subscriptions(share_group: str | None = "hub") -> list[str]:
    """Topic filters the hub subscribes to, as a shared subscription when ``share_group``."""
    filters = [f"{TOPIC_ROOT}/dev/+/{channel.value}" for channel in Channel if channel.ingested]
    if share_group is None:
        return filters
    return [f"$share/{share_group}/{f}" for f in filters]


# --------------------------------------------------------------------------- ids


def utc_now() -> datetime:
    """The wall clock, timezone-aware: the default clock of everything that takes one."""
    return datetime.now(UTC)


def uuid7(unix_ms: int | None = None) -> str:
    """Return a new UUIDv7 (RFC 9562) as a string: time-ordered to the millisecond."""
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    if not 0 <= ms < 1 << 48:
        raise ValueError(f"timestamp out of range for UUIDv7: {ms}")
    rand = int.from_bytes(os.urandom(10), "big")
    rand_a = rand >> 68  # 12 bits
    rand_b = rand & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return str(uuid.UUID(int=value))


def uuid7_time(value: str) -> datetime:
    """The creation time encoded in a UUIDv7 string."""
    parsed = uuid.UUID(value)
    if parsed.version != 7:
        raise ValueError(f"not a UUIDv7: {value}")
    return datetime.fromtimestamp((parsed.int >> 80) / 1000, tz=UTC)


# --------------------------------------------------------------------------- JSON


def canonical_json(obj: Any) -> bytes:
    """Canonical JSON: sorted keys, no spaces, UTF-8, no NaN. Signatures are over this."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


# --------------------------------------------------------------------------- models

DeviceId = Annotated[str, StringConstraints(pattern=DEVICE_ID_RE.pattern)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=64)]
EventCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{4,8}$")]
UnitFloat = Annotated[float, Field(ge=0.0, le=1.0)]
Uuid7Str = Annotated[
    str,
    StringConstraints(
        pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
    ),
]


#: Largest integer on the wire: what a 64-bit signed database column holds.
MAX_WIRE_INT = 2**63 - 1


class _Model(BaseModel):
    """Base of all wire models: immutable, unknown fields ignored, floats finite (no
    ``Infinity``/``NaN``); integers are bounded per field by :data:`MAX_WIRE_INT`."""

    model_config = ConfigDict(
        frozen=True, extra="ignore", str_max_length=200_000, allow_inf_nan=False
    )


class _Message(_Model):
    """A top-level payload; subclasses fix ``SCHEMA`` and the ``schema`` field."""

    # The ``schema`` field is a Literal of ``SCHEMA``: a message of another kind fails
    # there. (No "before" validator here: one would make pydantic validate parsed JSON
    # as Python objects, and strict decoding would then refuse every timestamp.)
    SCHEMA: ClassVar[str]


class Location(_Model):
    """Where an event happened: a pole's surveyed position or a truck's GPS fix."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    source: Literal["fixed", "gps"]


class DetectedObject(_Model):
    """One object that makes up a violation; ``box`` is normalised x1, y1, x2, y2."""

    label: ShortText
    score: UnitFloat
    box: tuple[UnitFloat, UnitFloat, UnitFloat, UnitFloat]
    track_id: int = Field(ge=0, le=MAX_WIRE_INT)

    @field_validator("box")
    @classmethod
    def _ordered(cls, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        if box[0] > box[2] or box[1] > box[3]:
            raise ValueError("box must be x1 <= x2 and y1 <= y2")
        return box


class Snapshot(_Model):
    """The evidence JPEG, base64-encoded, at most 300 KB decoded.

    ``faces`` (a clean frame's): where the people the unit detected in it have their faces
    (normalised x1, y1, x2, y2), so whoever uses the frame can blur them.
    """

    jpeg_b64: str = Field(max_length=(MAX_SNAPSHOT_BYTES * 4) // 3 + 4)
    width: int = Field(gt=0, le=10_000)
    height: int = Field(gt=0, le=10_000)
    faces: tuple[tuple[UnitFloat, UnitFloat, UnitFloat, UnitFloat], ...] = Field(
        default=(), max_length=256
    )

    @field_validator("jpeg_b64")
    @classmethod
    def _is_jpeg(cls, value: str) -> str:
        try:
            head = base64.b64decode(value[:8], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("jpeg_b64 is not base64") from None
        if not head.startswith(b"\xff\xd8"):
            raise ValueError("jpeg_b64 does not hold a JPEG image")
        return value

    def jpeg_bytes(self) -> bytes:
        """The decoded JPEG."""
        return base64.b64decode(self.jpeg_b64)


class ModelRef(_Model):
    """Which detector produced an event."""

    name: ShortText
    version: ShortText


class Plate(_Model):
    """A licence plate read by OCR, with the reader's confidence."""

    text: Annotated[str, StringConstraints(min_length=1, max_length=16)]
    score: UnitFloat


class Status(_Message):
    """``status`` (retained): presence; the last will sets ``offline``.

    ``ts`` is when the unit's current broker connection began, the same on its birth, on
    any status it sends again on that connection and on its last will (written as it
    connects): the hub keeps the newest status, so a will outranks its own connection's
    statuses and a later connection outranks the will.
    """

    SCHEMA: ClassVar[str] = "xh.status/1"
    schema_: Literal["xh.status/1"] = Field("xh.status/1", alias="schema")
    device_id: DeviceId
    state: Literal["online", "offline", "degraded"]
    boot_id: ShortText
    fw: ShortText
    model: ShortText | None = None
    config_version: int = Field(ge=0, le=MAX_WIRE_INT)
    ts: AwareDatetime


class Event(_Message):
    """``event``: one violation a device saw, with its evidence."""

    SCHEMA: ClassVar[str] = "xh.event/1"
    schema_: Literal["xh.event/1"] = Field("xh.event/1", alias="schema")
    event_id: Uuid7Str
    device_id: DeviceId
    camera_id: ShortText
    seq: int = Field(ge=0, le=MAX_WIRE_INT)
    kind: ShortText
    code: EventCode
    started_at: AwareDatetime
    detected_at: AwareDatetime
    dwell_s: float = Field(ge=0)
    confidence: UnitFloat
    objects: tuple[DetectedObject, ...] = Field(min_length=1, max_length=64)
    zone: ShortText
    location: Location
    snapshot: Snapshot | None = None
    #: The same frame clean (no boxes, no blur), as large as the byte cap allows: what a
    #: detector is retrained on. The hub keeps it apart from the public snapshot.
    frame: Snapshot | None = None
    model: ModelRef
    plate: Plate | None = None
    #: Raised by a shadow candidate (``vision.shadow``), only to compare it with the model
    #: that runs: the hub stores it and never files it. Its ``seq`` is 0 (outside the
    #: unit's event sequence) and it carries no clean frame.
    shadow: bool = False

    @model_validator(mode="after")
    def _times_ordered(self) -> Event:
        if self.detected_at < self.started_at:
            raise ValueError("detected_at is before started_at")
        return self


class GpsFix(_Model):
    """One GPS fix of a truck unit."""

    ts: AwareDatetime
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    speed_kmh: float | None = Field(default=None, ge=0, le=400)
    heading_deg: float | None = Field(default=None, ge=0, lt=360)
    hdop: float | None = Field(default=None, ge=0)


class CameraHealth(_Model):
    """Per-camera health in telemetry."""

    state: Literal["ok", "stalled", "reconnecting", "stopped"]
    fps: float = Field(ge=0)
    dropped: int = Field(default=0, ge=0, le=MAX_WIRE_INT)


class Telemetry(_Message):
    """``telemetry`` (QoS 0): the heartbeat."""

    SCHEMA: ClassVar[str] = "xh.telemetry/1"
    schema_: Literal["xh.telemetry/1"] = Field("xh.telemetry/1", alias="schema")
    device_id: DeviceId
    ts: AwareDatetime
    uptime_s: float = Field(ge=0)
    fps: float = Field(ge=0)
    inference_ms: float = Field(ge=0)
    outbox_depth: int = Field(ge=0, le=MAX_WIRE_INT)
    outbox_bytes: int = Field(ge=0, le=MAX_WIRE_INT)
    evicted: int = Field(ge=0, le=MAX_WIRE_INT)
    dropped_frames: int = Field(default=0, ge=0, le=MAX_WIRE_INT)
    disk_free_mb: float | None = Field(default=None, ge=0)
    cpu_temp_c: float | None = None
    gps: GpsFix | None = None
    cameras: dict[ShortText, CameraHealth] = Field(default_factory=dict)
    restarts: dict[ShortText, int] = Field(default_factory=dict)
    #: Rules a service day keeps silent now (``camera/rule`` -> the service day's name), so
    #: a technician sees why a stall there is not reported.
    exempted: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=129)],
        Annotated[str, StringConstraints(min_length=1, max_length=200)],
    ] = Field(default_factory=dict, max_length=256)


class Track(_Message):
    """``track``: a batch of GPS fixes of a truck unit, oldest first."""

    SCHEMA: ClassVar[str] = "xh.track/1"
    schema_: Literal["xh.track/1"] = Field("xh.track/1", alias="schema")
    device_id: DeviceId
    batch_id: Uuid7Str
    points: tuple[GpsFix, ...] = Field(min_length=1, max_length=10_000)


class Command(_Message):
    """``cmd``: a signed instruction from the hub to one device."""

    SCHEMA: ClassVar[str] = "xh.cmd/1"
    KINDS: ClassVar[frozenset[str]] = frozenset(
        {
            "speaker.play",
            "speaker.play_clip",
            "speaker.say",
            "speaker.stop",
            "config.apply",
            "snapshot.request",
            "spot.recheck",
            "live.start",
            "live.stop",
            "model.install",
            "model.rollback",
            "model.shadow_stop",
            "keys.trust",
        }
    )
    schema_: Literal["xh.cmd/1"] = Field("xh.cmd/1", alias="schema")
    cmd_id: Uuid7Str
    device_id: DeviceId
    kind: ShortText
    params: dict[str, Any] = Field(default_factory=dict)
    issued_at: AwareDatetime
    expires_at: AwareDatetime
    sig: str | None = None


class CommandAck(_Message):
    """``cmd/ack``: a device's answer to a command."""

    SCHEMA: ClassVar[str] = "xh.cmd_ack/1"
    schema_: Literal["xh.cmd_ack/1"] = Field("xh.cmd_ack/1", alias="schema")
    cmd_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    device_id: DeviceId
    state: Literal["received", "succeeded", "failed", "rejected", "expired"]
    detail: Annotated[str, StringConstraints(max_length=2000)] = ""
    ts: AwareDatetime


class ConfigDesired(_Message):
    """``config/desired`` (retained): the config the hub wants a device to run, signed by
    the hub like a command (``sig`` over the canonical JSON of every other field, so it is
    bound to the device and the version); units apply only one that verifies."""

    SCHEMA: ClassVar[str] = "xh.config_desired/1"
    schema_: Literal["xh.config_desired/1"] = Field("xh.config_desired/1", alias="schema")
    device_id: DeviceId
    version: int = Field(ge=1, le=MAX_WIRE_INT)
    config: dict[str, Any]
    sig: str | None = None


class ConfigReported(_Message):
    """``config/reported`` (retained): what a device did with a desired config."""

    SCHEMA: ClassVar[str] = "xh.config_reported/1"
    schema_: Literal["xh.config_reported/1"] = Field("xh.config_reported/1", alias="schema")
    device_id: DeviceId
    version: int = Field(ge=0, le=MAX_WIRE_INT)
    state: Literal["applied", "rejected", "rolled_back"]
    errors: tuple[Annotated[str, StringConstraints(max_length=2000)], ...] = ()
    ts: AwareDatetime


class SnapshotReply(_Message):
    """``snapshot``: the answer to a ``snapshot.request`` command, a current camera frame."""

    SCHEMA: ClassVar[str] = "xh.snapshot/1"
    schema_: Literal["xh.snapshot/1"] = Field("xh.snapshot/1", alias="schema")
    device_id: DeviceId
    cmd_id: Uuid7Str
    camera_id: ShortText
    snapshot: Snapshot
    ts: AwareDatetime


class LiveFrame(_Message):
    """``live``: one frame of a live view (``live.start``), QoS 0, never stored.

    ``ts`` is the frame's capture time on the unit; ``seq`` counts the stream's frames
    (a gap is a frame lost or skipped). ``zones`` (the camera's zones, normalised
    polygons) and ``objects`` (what the running detector saw in this frame) feed the
    console's overlay.
    """

    SCHEMA: ClassVar[str] = "xh.live/1"
    schema_: Literal["xh.live/1"] = Field("xh.live/1", alias="schema")
    device_id: DeviceId
    camera_id: ShortText
    seq: int = Field(ge=0, le=MAX_WIRE_INT)
    ts: AwareDatetime
    jpeg_b64: str = Field(max_length=(MAX_SNAPSHOT_BYTES * 4) // 3 + 4)
    width: int = Field(gt=0, le=10_000)
    height: int = Field(gt=0, le=10_000)
    fps: float = Field(gt=0.0, le=30.0)
    zones: dict[ShortText, tuple[tuple[UnitFloat, UnitFloat], ...]] = Field(
        default_factory=dict, max_length=64
    )
    objects: tuple[LiveObject, ...] = Field(default=(), max_length=256)

    def jpeg_bytes(self) -> bytes:
        """The decoded JPEG."""
        return base64.b64decode(self.jpeg_b64)


class LiveObject(_Model):
    """One detection drawn on the live overlay: label, score, normalised box."""

    label: ShortText
    score: UnitFloat
    box: tuple[UnitFloat, UnitFloat, UnitFloat, UnitFloat]


LiveFrame.model_rebuild()

#: Which model each channel carries.
MESSAGE_TYPES: dict[Channel, type[_Message]] = {
    Channel.STATUS: Status,
    Channel.EVENT: Event,
    Channel.TELEMETRY: Telemetry,
    Channel.TRACK: Track,
    Channel.CMD: Command,
    Channel.CMD_ACK: CommandAck,
    Channel.CONFIG_DESIRED: ConfigDesired,
    Channel.CONFIG_REPORTED: ConfigReported,
    Channel.SNAPSHOT: SnapshotReply,
    Channel.LIVE: LiveFrame,
}

M = TypeVar("M", bound=_Message)


# --------------------------------------------------------------------------- codec


def encode(message: _Message) -> bytes:
    """Serialise a message to the canonical JSON that goes on the wire."""
    return canonical_json(message.model_dump(mode="json", by_alias=True))


def _specific_errors(exc: ValidationError) -> list[Any]:
    """Errors without those on a container whose item already failed (a side effect)."""
    errors = exc.errors()
    locs = [tuple(err["loc"]) for err in errors]
    return [
        err
        for err, loc in zip(errors, locs, strict=True)
        if not any(len(other) > len(loc) and other[: len(loc)] == loc for other in locs)
    ]


def field_path(loc: Iterable[int | str]) -> str:
    """A pydantic error location as a dotted path (``objects.0.score``; ``<root>``)."""
    return ".".join(str(p) for p in loc) or "<root>"


def error_lines(exc: ValidationError, *, prefix: str = "") -> list[str]:
    """One ``path: message`` line per error of ``exc``, for a person fixing a config file.

    ``prefix`` goes before each path (``vision.`` when only that section was validated).
    The offending value is shown when short, never for a field named like a password.
    """
    lines = []
    for err in exc.errors():
        loc = prefix + field_path(err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            message = "required field is missing"
        elif err["type"] == "extra_forbidden":
            message = "unknown field (not part of the config)"
        elif "input" in err and not isinstance(err["input"], dict | list):
            shown = repr(err["input"])
            if "password" not in loc and len(shown) <= 60:
                message += f" (got {shown})"
        lines.append(f"{loc}: {message}")
    return lines


def _fields_of(exc: ValidationError) -> tuple[str, ...]:
    return tuple(field_path(err["loc"]) for err in _specific_errors(exc))


def _describe(exc: ValidationError, what: str) -> str:
    parts = []
    errors = _specific_errors(exc)
    for err in errors[:5]:
        loc = field_path(err["loc"])
        if err["type"] == "missing":
            parts.append(f"missing required field '{loc}'")
        else:
            parts.append(f"field '{loc}': {err['msg']}")
    more = len(errors) - len(parts)
    if more > 0:
        parts.append(f"and {more} more")
    return f"{what}: " + "; ".join(parts)


def _load_json(payload: bytes | str, what: str) -> Any:
    try:
        return json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedPayload(f"{what}: not UTF-8 JSON ({exc})") from None
    except RecursionError:
        raise MalformedPayload(f"{what}: JSON nested too deeply") from None


def decode(kind: type[M], payload: bytes | str | Mapping[str, Any]) -> M:
    """Parse and validate a payload as ``kind``; raise :class:`MalformedPayload` naming fields.

    Validation is strict, as JSON reads: a number where a string belongs, a string
    where a number belongs (``"28.6"``) or a boolean where an integer belongs is refused,
    not coerced; integers may stand for floats. A mapping (already parsed JSON) is
    validated by the same rules.
    """
    what = kind.SCHEMA
    if isinstance(payload, bytes | str):
        # Fast path: pydantic parses and validates JSON in one pass (several times faster
        # than json.loads + validation). Anything it refuses takes the path below, which
        # words the error for a person and accepts what json.loads accepts.
        try:
            return kind.model_validate_json(payload, strict=True)
        except ValidationError:
            pass
    data = payload if isinstance(payload, Mapping) else _load_json(payload, what)
    if not isinstance(data, Mapping):
        raise MalformedPayload(f"{what}: payload is a JSON {type(data).__name__}, not an object")
    try:
        text = pydantic_core.to_json(data, inf_nan_mode="constants")
    except pydantic_core.PydanticSerializationError as exc:
        raise MalformedPayload(f"{what}: not JSON-serialisable ({exc})") from None
    try:
        return kind.model_validate_json(text, strict=True)
    except ValidationError as exc:
        raise MalformedPayload(_describe(exc, what), _fields_of(exc)) from None


def decode_from_topic(name: str, payload: bytes | str) -> tuple[str, Channel, _Message]:
    """Parse a message received on ``name``; the payload's device must match the topic's."""
    device_id, channel = parse_topic(name)
    message = decode(MESSAGE_TYPES[channel], payload)
    claimed = getattr(message, "device_id", device_id)
    if claimed != device_id:
        raise MalformedPayload(
            f"{message.SCHEMA}: device_id {claimed!r} does not match topic device {device_id!r}",
            ("device_id",),
        )
    return device_id, channel, message


# --------------------------------------------------------------------------- signing


def generate_signing_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 key for the hub."""
    return Ed25519PrivateKey.generate()


def load_private_key(data: bytes | str | Path) -> Ed25519PrivateKey:
    """Load the hub's private key from PEM bytes/text or a PEM file path."""
    raw = data.read_bytes() if isinstance(data, Path) else data
    pem = raw.encode() if isinstance(raw, str) else raw
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ProtocolError("the hub key is not an Ed25519 private key")
    return key


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    """PEM (PKCS#8, unencrypted) of a private key, to store with 0600 permissions."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_b64(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The raw 32-byte public key in base64: the form written into device configs."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def load_public_key(value: str | bytes) -> Ed25519PublicKey:
    """Load a public key given as base64 of the raw 32 bytes, or as PEM."""
    text = value.decode() if isinstance(value, bytes) else value
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ProtocolError("the hub public key is not an Ed25519 key")
        return key
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("the hub public key is neither PEM nor base64") from None
    if len(raw) != 32:
        raise ProtocolError(f"an Ed25519 public key has 32 bytes, this one has {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def _signed_bytes(fields: Mapping[str, Any]) -> bytes:
    return canonical_json({k: v for k, v in fields.items() if k != "sig"})


#: The hub keys a unit trusts: one, or several while a key is being rotated.
HubKeys = Ed25519PublicKey | Sequence[Ed25519PublicKey]


def _verifies(keys: HubKeys, sig: str, fields: Mapping[str, Any]) -> bool:
    """Whether ``sig`` (base64) signs ``fields`` with any of ``keys``."""
    try:
        signature = base64.b64decode(sig, validate=True)
    except (binascii.Error, ValueError):
        return False
    signed = _signed_bytes(fields)
    for key in [keys] if isinstance(keys, Ed25519PublicKey) else keys:
        try:
            key.verify(signature, signed)
        except InvalidSignature:
            continue
        return True
    return False


#: The longest overlap a key rotation may ask for (``keys.trust``'s ``previous_until``).
MAX_KEY_OVERLAP = timedelta(days=90)


def trust_params(
    new_key: Ed25519PrivateKey | Ed25519PublicKey, previous_until: datetime
) -> dict[str, Any]:
    """``keys.trust`` parameters: trust ``new_key`` from now on, and the keys trusted now
    (the one signing this command among them) only until ``previous_until``."""
    return {
        "public_key": public_key_b64(new_key),
        "previous_until": previous_until.astimezone(UTC).isoformat(),
    }


def parse_trust_params(params: Mapping[str, Any], now: datetime) -> tuple[str, datetime]:
    """The new key (base64) and the end of the overlap from ``keys.trust`` parameters;
    :class:`ProtocolError` naming what is wrong."""
    key = params.get("public_key")
    if not isinstance(key, str):
        raise ProtocolError("keys.trust: public_key must be the new key in base64")
    load_public_key(key)  # raises ProtocolError for anything but an Ed25519 key
    until_text = params.get("previous_until")
    try:
        until = datetime.fromisoformat(str(until_text))
    except ValueError:
        raise ProtocolError(f"keys.trust: previous_until {until_text!r} is not a time") from None
    if until.tzinfo is None:
        raise ProtocolError("keys.trust: previous_until needs a time zone")
    if not now < until <= now + MAX_KEY_OVERLAP:
        raise ProtocolError(
            f"keys.trust: previous_until must be after now and within {MAX_KEY_OVERLAP.days} days"
        )
    return key, until


def sign_command(
    key: Ed25519PrivateKey,
    *,
    device_id: str,
    kind: str,
    params: Mapping[str, Any] | None = None,
    issued_at: datetime,
    ttl: timedelta = timedelta(minutes=10),
    cmd_id: str | None = None,
) -> Command:
    """Build and sign a command for ``device_id`` that expires ``ttl`` after ``issued_at``."""
    if kind not in Command.KINDS:
        raise ProtocolError(f"unknown command kind {kind!r}; one of {sorted(Command.KINDS)}")
    if not timedelta(0) < ttl <= MAX_COMMAND_TTL:
        raise ProtocolError(f"command ttl must be within (0, {MAX_COMMAND_TTL}], got {ttl}")
    unsigned = Command(
        cmd_id=cmd_id or uuid7(),
        device_id=check_device_id(device_id),
        kind=kind,
        params=dict(params or {}),
        issued_at=issued_at,
        expires_at=issued_at + ttl,
    )
    fields = unsigned.model_dump(mode="json", by_alias=True, exclude={"sig"})
    signed_bytes = _signed_bytes(fields)
    if len(signed_bytes) > MAX_COMMAND_BYTES:
        raise ProtocolError(
            f"the {kind} command is {len(signed_bytes)} bytes; at most {MAX_COMMAND_BYTES} "
            "(the broker would drop it)"
        )
    sig = base64.b64encode(key.sign(signed_bytes)).decode("ascii")
    return unsigned.model_copy(update={"sig": sig})


def sign_desired(
    key: Ed25519PrivateKey, *, device_id: str, version: int, config: Mapping[str, Any]
) -> ConfigDesired:
    """Build and sign the desired config ``version`` for ``device_id``."""
    unsigned = ConfigDesired(
        device_id=check_device_id(device_id), version=version, config=dict(config)
    )
    fields = unsigned.model_dump(mode="json", by_alias=True, exclude={"sig"})
    signed_bytes = _signed_bytes(fields)
    if len(signed_bytes) > MAX_COMMAND_BYTES:
        raise ProtocolError(
            f"the desired config is {len(signed_bytes)} bytes; at most {MAX_COMMAND_BYTES} "
            "(the broker would drop it and the unit would never converge)"
        )
    sig = base64.b64encode(key.sign(signed_bytes)).decode("ascii")
    return unsigned.model_copy(update={"sig": sig})


def verify_desired(payload: bytes | str, *, public_key: HubKeys, device_id: str) -> ConfigDesired:
    """Check a received desired config and return it, or raise :class:`CommandRejected`
    (malformed, unsigned, bad signature, another device's). Versions only move forward on
    the unit, so an old signed one replayed changes nothing."""
    try:
        data = _load_json(payload, ConfigDesired.SCHEMA)
        desired = decode(ConfigDesired, data)
    except MalformedPayload as exc:
        raise CommandRejected(RejectReason.MALFORMED, exc.reason) from None
    if not desired.sig:
        raise CommandRejected(RejectReason.UNSIGNED, "desired config carries no signature")
    if not _verifies(public_key, desired.sig, data):
        raise CommandRejected(
            RejectReason.BAD_SIGNATURE, "the signature does not verify with the hub key"
        )
    if desired.device_id != device_id:
        raise CommandRejected(
            RejectReason.WRONG_DEVICE, f"desired config is for {desired.device_id}, not {device_id}"
        )
    return desired


class ReplayGuard(Protocol):
    """Remembers command ids until they expire. The edge keeps one on disk."""

    def seen(self, cmd_id: str) -> bool:
        """True if ``cmd_id`` was accepted before."""
        ...

    def remember(self, cmd_id: str, expires_at: datetime) -> None:
        """Record ``cmd_id`` as used until ``expires_at``."""
        ...


@dataclass
class MemoryReplayGuard:
    """A :class:`ReplayGuard` in memory; forgets ids whose commands have expired."""

    _ids: dict[str, datetime]

    def __init__(self) -> None:
        self._ids = {}

    def seen(self, cmd_id: str) -> bool:
        """True if ``cmd_id`` was remembered."""
        return cmd_id in self._ids

    def remember(self, cmd_id: str, expires_at: datetime) -> None:
        """Remember ``cmd_id`` until ``expires_at``."""
        self._ids[cmd_id] = expires_at

    def prune(self, now: datetime) -> int:
        """Forget expired ids; return how many were dropped."""
        old = [k for k, exp in self._ids.items() if exp + CLOCK_SKEW < now]
        for k in old:
            del self._ids[k]
        return len(old)


def verify_command(
    payload: bytes | str | Mapping[str, Any],
    *,
    public_key: HubKeys,
    device_id: str,
    now: datetime,
    replay: ReplayGuard,
) -> Command:
    """Check a received command and return it, or raise :class:`CommandRejected`.

    The signature is checked over the fields exactly as received (unknown fields
    included), so a newer hub's additions are still covered. Checks run in this order:
    shape, signature, target device, expiry, replay; only a command that passes all of
    them is remembered, so forgeries cannot fill the replay store.
    """
    data = payload if isinstance(payload, Mapping) else None
    if data is None:
        try:
            data = _load_json(payload, Command.SCHEMA)  # type: ignore[arg-type]
        except MalformedPayload as exc:
            raise CommandRejected(RejectReason.MALFORMED, exc.reason) from None
    if not isinstance(data, Mapping):
        raise CommandRejected(RejectReason.MALFORMED, "command is not a JSON object")
    raw_id = data.get("cmd_id")
    cmd_id = raw_id if isinstance(raw_id, str) else None
    try:
        command = decode(Command, data)
    except MalformedPayload as exc:
        raise CommandRejected(RejectReason.MALFORMED, exc.reason, cmd_id) from None
    if not command.sig:
        raise CommandRejected(RejectReason.UNSIGNED, "command carries no signature", cmd_id)
    if not _verifies(public_key, command.sig, data):
        raise CommandRejected(
            RejectReason.BAD_SIGNATURE, "signature does not verify with the hub key", cmd_id
        )
    if command.device_id != device_id:
        raise CommandRejected(
            RejectReason.WRONG_DEVICE,
            f"command is for {command.device_id!r}, this device is {device_id!r}",
            cmd_id,
        )
    if command.expires_at <= command.issued_at or (
        command.expires_at - command.issued_at > MAX_COMMAND_TTL
    ):
        raise CommandRejected(RejectReason.BAD_EXPIRY, "expires_at is out of range", cmd_id)
    if now >= command.expires_at:
        raise CommandRejected(
            RejectReason.EXPIRED, f"expired at {command.expires_at.isoformat()}", cmd_id
        )
    if command.issued_at > now + CLOCK_SKEW:
        raise CommandRejected(
            RejectReason.NOT_YET_VALID,
            f"issued_at {command.issued_at.isoformat()} is in the future",
            cmd_id,
        )
    if replay.seen(command.cmd_id):
        raise CommandRejected(RejectReason.REPLAYED, "cmd_id was seen before", cmd_id)
    replay.remember(command.cmd_id, command.expires_at)
    return command


# --------------------------------------------------------------------------- schemas


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of every message, keyed by file stem (``event``, ``cmd_ack`` ...)."""
    out: dict[str, dict[str, Any]] = {}
    for kind in MESSAGE_TYPES.values():
        stem = kind.SCHEMA.removeprefix("xh.").split("/")[0]
        schema = kind.model_json_schema(by_alias=True, mode="validation")
        schema["$id"] = f"https://xiuhua.invalid/schemas/{kind.SCHEMA}"
        out[stem] = schema
    return out


def export_schemas(folder: Path) -> list[Path]:
    """Write every message's JSON Schema into ``folder``; return the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, schema in json_schemas().items():
        path = folder / f"{stem}.schema.json"
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
        written.append(path)
    return written


def _main(argv: Iterable[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Export the xh/v1 JSON Schemas.")
    parser.add_argument("folder", type=Path, nargs="?", default=Path("docs/protocol"))
    args = parser.parse_args(list(argv) if argv is not None else None)
    for path in export_schemas(args.folder):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
