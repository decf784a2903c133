"""The edge agent's whole configuration, and ``edge-agent validate FILE``.

A device's config is one YAML file (``firmware_config/devices/<id>.yaml``); ``XH_``
environment variables override it, nested with ``__`` (``XH_MQTT__HOST=10.0.0.5``), and
secrets come from files (``mqtt.password_file``, ``hub.public_key_file``). Relative paths
resolve against the folder of the config file. Unknown keys are errors, and every error
is reported with its field path.

Sections (what the hub's provisioning writes is marked *):

``device``\\*
    ``id`` (lowercase letters, digits, dash), ``kind``: ``pole`` | ``truck``, optional
    ``fw`` and ``location: {lat, lon}`` (a pole's surveyed position).
``mqtt``\\*
    ``host``, ``port`` (1883; 8883 with TLS), ``username``, ``password`` or
    ``password_file``, optional ``tls: {ca, cert?, key?}``, ``keepalive`` (s), and the
    tuning knobs ``backoff_initial_s``, ``backoff_cap_s``, ``inflight_window``.
``hub``\\*
    ``public_key``: the hub's Ed25519 key, base64 of the 32 raw bytes (as
    ``protocol.public_key_b64`` writes) or PEM; or ``public_key_file``.
    ``model_public_key`` (optional): the hub's model-signing key (``central-hub model
    key``); when set, every detector model must be a package the hub signed
    (``central-hub model sign DIR``), or the unit refuses it and says why.
    ``accept_config_desired`` (default true): also apply configs from the retained
    ``config/desired`` topic, which the broker's ACL lets only the hub write.
``outbox``
    ``path`` (SQLite file), ``max_bytes`` (byte cap), ``ttl_s``, ``synchronous``
    (``FULL`` survives power loss; ``NORMAL`` only process crashes).
``speaker``
    ``backend``: ``wav`` | ``pyaudio`` | ``null``, ``wav_dir`` (for ``wav``), ``clips:
    {id: wav path}``, ``phrases: {id: text}`` (rendered by TTS and cached), ``volume``
    (0..1), ``quiet_hours: {start, end, min_priority}``, ``tts_voice`` (``cmn``),
    ``tts_cache``, ``timezone``.
``gps``
    ``source``: ``none`` | ``nmea-serial`` (``serial_port``, ``baud``) | ``gpsd``
    (``gpsd_host``, ``gpsd_port``) | ``route`` (``route_file``: NMEA sentences or a CSV of
    ``lat,lon``, replayed every ``route_interval_s``); fixes are batched into ``track``
    messages of ``track_batch`` points or every ``track_interval_s``.
``telemetry``
    ``interval_s``: the heartbeat period.
``selftest``
    ``events``: how many synthetic events (kind ``selftest``, code ``0000``) to send at
    ``rate_per_s`` after start, so a technician can check the uplink end to end without
    a camera. Zero (the default) sends none.
``vision``
    the camera pipeline (:class:`edge_agent.vision.config.VisionConfig`).
``service_days``
    what the hub pushes of the city's convenience service days (便民服务日): ``calendar``
    (which calendar) and ``exemptions``, each a ``camera`` (and optional ``zone``), the rule
    ``kinds`` and event ``codes`` suspended there, and a ``start``/``end`` window with its
    UTC offset (:class:`edge_agent.vision.exemptions.ServiceDaysSection`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Mapping
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from edge_agent import __version__, protocol
from edge_agent.vision.config import FixedLocation, VisionConfig
from edge_agent.vision.exemptions import ServiceDaysSection

__all__ = [
    "AgentConfig",
    "ConfigError",
    "DeviceSection",
    "GpsSection",
    "HubSection",
    "MqttSection",
    "OutboxSection",
    "SelftestSection",
    "SpeakerSection",
    "TelemetrySection",
    "load_config",
    "parse_config",
    "read_config_data",
    "register",
    "save_config_file",
    "validate_file",
]


class ConfigError(Exception):
    """A config that does not load; ``errors`` lists each problem as ``field.path: message``."""

    def __init__(self, source: str, errors: list[str]) -> None:
        super().__init__(f"{source}: {len(errors)} error(s): " + "; ".join(errors))
        self.source = source
        self.errors = errors


class _Section(BaseModel):
    """Base of every section: immutable, unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


DeviceId = Annotated[str, StringConstraints(pattern=protocol.DEVICE_ID_RE.pattern)]
ClipId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class DeviceSection(_Section):
    """Who this unit is."""

    id: DeviceId
    kind: Literal["pole", "truck"]
    fw: Annotated[str, StringConstraints(min_length=1, max_length=64)] = __version__
    location: FixedLocation | None = None


class TlsSection(_Section):
    """TLS files: the CA that signed the broker, and an optional client certificate."""

    ca: Path
    cert: Path | None = None
    key: Path | None = None

    @model_validator(mode="after")
    def _pair(self) -> TlsSection:
        if (self.cert is None) != (self.key is None):
            raise ValueError("give both cert and key, or neither")
        return self


class MqttSection(_Section):
    """The broker and this unit's credentials."""

    host: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    tls: TlsSection | None = None
    keepalive: int = Field(default=30, ge=5, le=3600)
    backoff_initial_s: float = Field(default=0.5, gt=0, le=60)
    backoff_cap_s: float = Field(default=60.0, gt=0, le=3600)
    inflight_window: int = Field(default=1000, ge=1, le=20_000)

    @model_validator(mode="after")
    def _checks(self) -> MqttSection:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password or password_file, not both")
        if self.backoff_initial_s > self.backoff_cap_s:
            raise ValueError("backoff_initial_s must not exceed backoff_cap_s")
        return self

    def secret(self) -> str | None:
        """The password, read from ``password_file`` when that is set."""
        if self.password_file is not None:
            return self.password_file.read_text().strip()
        return self.password.get_secret_value() if self.password is not None else None


class HubSection(_Section):
    """The hub's command-signing public key, its model-signing key, and whether retained
    configs are accepted."""

    public_key: str | None = None
    public_key_file: Path | None = None
    model_public_key: str | None = Field(
        default=None,
        description="the hub's model-signing key (`central-hub model key`): when set, every "
        "detector model must be a package the hub signed, or the unit refuses to load it",
    )
    accept_config_desired: bool = Field(
        default=True,
        description="apply configs the hub publishes on the retained config/desired topic "
        "(only the hub's broker user may write it); false: only signed config.apply commands",
    )

    @field_validator("public_key", "model_public_key")
    @classmethod
    def _loads(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                protocol.load_public_key(value)
            except (protocol.ProtocolError, ValueError) as exc:
                raise ValueError(f"not an Ed25519 public key: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _one(self) -> HubSection:
        if (self.public_key is None) == (self.public_key_file is None):
            raise ValueError("give exactly one of public_key and public_key_file")
        return self

    def key_text(self) -> str:
        """The key as configured, read from ``public_key_file`` when that is set."""
        if self.public_key_file is not None:
            return self.public_key_file.read_text()
        assert self.public_key is not None  # the validator guarantees one of the two
        return self.public_key


class OutboxSection(_Section):
    """Where and how much to keep while offline."""

    path: Path = Path("state/outbox.db")
    max_bytes: int = Field(default=256 * 1024 * 1024, ge=4096)
    ttl_s: float = Field(default=7 * 86_400, gt=0)
    synchronous: Literal["FULL", "NORMAL"] = "FULL"


class QuietHoursSection(_Section):
    """Local hours in which only messages of ``min_priority`` or above play."""

    start: time
    end: time
    min_priority: Literal["routine", "auto", "operator", "emergency"] = "operator"


class SpeakerSection(_Section):
    """The loudspeaker."""

    backend: Literal["wav", "pyaudio", "null"] = "null"
    wav_dir: Path | None = None
    wav_pace: float = Field(default=0.0, ge=0, le=10, description="wav: 1.0 plays in real time")
    clips: dict[ClipId, Path] = Field(default_factory=dict)
    phrases: dict[ClipId, Annotated[str, StringConstraints(min_length=1, max_length=500)]] = Field(
        default_factory=dict
    )
    volume: float = Field(default=0.8, ge=0, le=1)
    quiet_hours: QuietHoursSection | None = None
    tts_voice: str = "cmn"
    tts_cache: Path = Path("state/tts-cache")
    timezone: str = "Asia/Shanghai"

    @model_validator(mode="after")
    def _checks(self) -> SpeakerSection:
        if self.backend == "wav" and self.wav_dir is None:
            raise ValueError("backend 'wav' needs wav_dir")
        both = set(self.clips) & set(self.phrases)
        if both:
            raise ValueError(f"ids are both clips and phrases: {sorted(both)}")
        return self


class GpsSection(_Section):
    """Where GPS fixes come from (truck units)."""

    source: Literal["none", "nmea-serial", "gpsd", "route"] = "none"
    serial_port: str | None = None
    baud: int = Field(default=9600, ge=1200, le=921_600)
    gpsd_host: str = "127.0.0.1"
    gpsd_port: int = Field(default=2947, ge=1, le=65535)
    route_file: Path | None = None
    route_interval_s: float = Field(default=1.0, gt=0, le=3600)
    track_batch: int = Field(default=30, ge=1, le=10_000)
    track_interval_s: float = Field(default=60.0, gt=0, le=86_400)

    @model_validator(mode="after")
    def _checks(self) -> GpsSection:
        if self.source == "nmea-serial" and not self.serial_port:
            raise ValueError("source 'nmea-serial' needs serial_port")
        if self.source == "route" and self.route_file is None:
            raise ValueError("source 'route' needs route_file")
        return self


class TelemetrySection(_Section):
    """The heartbeat."""

    interval_s: float = Field(default=30.0, ge=0.2, le=3600)


class MetricsSection(_Section):
    """The Prometheus endpoint (``GET /metrics``); off unless ``port`` is set."""

    port: int | None = Field(default=None, ge=1, le=65535)
    host: str = Field(default="127.0.0.1", description="0.0.0.0 to be scraped over the VPN")


class SelftestSection(_Section):
    """Synthetic events to check the uplink end to end (see the module docstring)."""

    events: int = Field(default=0, ge=0, le=10_000_000)
    rate_per_s: float = Field(default=10.0, gt=0, le=100_000)


class LiveSection(_Section):
    """Live view on demand (``live.start``): the most a stream may ask for, the number of
    cameras streamed at once and the bandwidth all live streams share (bytes per second;
    over it a stream lowers its rate, then its JPEG quality, never the events' link)."""

    fps: float = Field(default=5.0, gt=0, le=30)
    width: int = Field(default=640, ge=32, le=4096)
    max_cameras: int = Field(default=2, ge=1, le=16)
    max_bytes_per_s: int = Field(
        default=250_000, ge=8_000, le=100_000_000, description="250 kB/s = 2 Mbit/s"
    )
    max_lease_s: float = Field(default=120.0, ge=1, le=3600)
    overlay: bool = Field(default=True, description="send zones and detections with each frame")


class AgentConfig(BaseSettings):
    """The whole agent config; build it with :func:`load_config` or :func:`parse_config`."""

    model_config = SettingsConfigDict(
        env_prefix="XH_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    config_version: int = Field(default=0, ge=0)
    device: DeviceSection
    mqtt: MqttSection
    hub: HubSection
    outbox: OutboxSection = Field(default_factory=OutboxSection)
    speaker: SpeakerSection = Field(default_factory=SpeakerSection)
    gps: GpsSection = Field(default_factory=GpsSection)
    telemetry: TelemetrySection = Field(default_factory=TelemetrySection)
    selftest: SelftestSection = Field(default_factory=SelftestSection)
    metrics: MetricsSection = Field(default_factory=MetricsSection)
    live: LiveSection = Field(default_factory=LiveSection)
    vision: VisionConfig = Field(default_factory=VisionConfig)
    service_days: ServiceDaysSection = Field(default_factory=ServiceDaysSection)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment overrides the file (passed as init values); no dotenv."""
        return (env_settings, init_settings, file_secret_settings)

    def resolved(self, base: Path) -> AgentConfig:
        """A copy with every relative path made absolute against ``base``."""

        def fix(path: Path | None) -> Path | None:
            if path is None or path.is_absolute():
                return path
            return base / path

        mqtt = self.mqtt
        tls = mqtt.tls
        if tls is not None:
            tls = tls.model_copy(
                update={"ca": fix(tls.ca), "cert": fix(tls.cert), "key": fix(tls.key)}
            )
        mqtt = mqtt.model_copy(update={"tls": tls, "password_file": fix(mqtt.password_file)})
        hub = self.hub.model_copy(update={"public_key_file": fix(self.hub.public_key_file)})
        outbox = self.outbox.model_copy(update={"path": fix(self.outbox.path)})
        sp = self.speaker
        speaker = sp.model_copy(
            update={
                "wav_dir": fix(sp.wav_dir),
                "tts_cache": fix(sp.tts_cache),
                "clips": {k: fix(v) for k, v in sp.clips.items()},
            }
        )
        gps = self.gps.model_copy(update={"route_file": fix(self.gps.route_file)})
        return self.model_copy(
            update={"mqtt": mqtt, "hub": hub, "outbox": outbox, "speaker": speaker, "gps": gps}
        )


def parse_config(data: Mapping[str, Any], base: Path, source: str = "<config>") -> AgentConfig:
    """Validate ``data`` (plus ``XH_`` environment overrides) and resolve paths against ``base``.

    Raises :class:`ConfigError` listing every problem.
    """
    try:
        config = AgentConfig(**dict(data))
    except ValidationError as exc:
        raise ConfigError(source, protocol.error_lines(exc)) from exc
    return config.resolved(base)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), [f"<file>: cannot read: {exc}"]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "<file>"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(path), [f"{where}: YAML syntax error: {problem}"]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), [f"<root>: expected a mapping, got {type(data).__name__}"])
    return data


def read_config_data(path: Path) -> dict[str, Any]:
    """The raw mapping in a config file (no validation); :class:`ConfigError` if unreadable."""
    return _read_yaml(path)


def load_config(path: Path) -> AgentConfig:
    """Load the config file at ``path`` (with environment overrides); see the module docs."""
    return parse_config(_read_yaml(path), path.resolve().parent, str(path))


def save_config_file(path: Path, data: Mapping[str, Any]) -> None:
    """Replace the config file at ``path`` with ``data`` atomically (fsynced); the file it
    replaces is kept as ``<name>.prev``. Blocking: call it from a thread."""
    tmp = path.with_name(path.name + ".new")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True))
        handle.flush()
        os.fsync(handle.fileno())
    if path.exists():
        shutil.copy2(path, path.with_name(path.name + ".prev"))
    tmp.replace(path)


def validate_file(path: Path) -> list[str]:
    """Every problem of the config file at ``path`` as ``field.path: message``; [] if valid."""
    try:
        load_config(path)
    except ConfigError as exc:
        return exc.errors
    return []


def _validate_command(args: argparse.Namespace) -> int:
    path = Path(args.file)
    errors = validate_file(path)
    if errors:
        print(f"{path}: {len(errors)} error(s)", file=sys.stderr)
        for line in errors:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"{path}: ok")
    return 0


def register(subparsers: Any) -> None:
    """Add ``validate FILE`` to the ``edge-agent`` command line."""
    parser = subparsers.add_parser(
        "validate", help="check a device config file and print every error with its field path"
    )
    parser.add_argument("file", help="the device's YAML config file")
    parser.set_defaults(func=_validate_command)
