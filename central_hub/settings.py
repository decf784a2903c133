"""The hub's settings: pydantic-settings with ``XH_HUB_`` environment overrides."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from central_hub.domain.retention import RetentionPolicy
from central_hub.domain.workflow import Role
from central_hub.errors import SettingsError

__all__ = ["HubSettings"]


class HubSettings(BaseSettings):
    """Everything a hub process needs; each field can be set as ``XH_HUB_<NAME>``.

    ``db_url`` defaults to an SQLite file under ``data_dir``; a production hub sets it to
    ``postgresql+asyncpg://...``. The MQTT password comes from ``mqtt_password`` or, better,
    from ``mqtt_password_file`` (what ``central-hub provision`` writes); with ``mqtt_tls_ca``
    (and the hub user's ``mqtt_tls_cert``/``mqtt_tls_key``) it connects over TLS.

    A city's own data: ``grid_path`` (GeoJSON; default the grid ``central-hub grid import``
    stored in ``data_dir``, else the sample district), ``catalogue_path`` and
    ``calendar_path`` (YAML; default the packaged ones), ``service_days_path`` (YAML;
    default none).
    """

    model_config = SettingsConfigDict(env_prefix="XH_HUB_", extra="forbid")

    data_dir: Path = Field(default=Path("var/hub"), description="state: db, evidence, key")
    db_url: str | None = Field(default=None, description="SQLAlchemy async URL")
    evidence_dir: Path | None = Field(default=None, description="default: data_dir/evidence")
    key_path: Path | None = Field(default=None, description="default: data_dir/hub_key.pem")
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(default=1883, ge=1, le=65535)
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_password_file: Path | None = None
    mqtt_tls_ca: Path | None = Field(
        default=None,
        description="the CA that signed the broker's certificate; set, the hub connects over "
        "TLS (then mqtt_port is the broker's TLS port, 8883 as provisioned); `central-hub "
        "provision` writes BROKER_DIR/tls/ca.crt",
    )
    mqtt_tls_cert: Path | None = Field(
        default=None,
        description="the hub user's client certificate (BROKER_DIR/tls/<hub user>.crt)",
    )
    mqtt_tls_key: Path | None = Field(
        default=None, description="its private key (BROKER_DIR/tls/<hub user>.key)"
    )
    mqtt_client_id: str = Field(
        default="hub-1",
        pattern=r"^[A-Za-z0-9_-]{1,40}$",
        description="this worker's name, stable across restarts; the MQTT client id is it "
        "plus a suffix derived from the hub's signing key, so no device can guess it",
    )
    share_group: str | None = Field(
        default="auto",
        description=(
            "$share group for ingest. auto: a name derived from the hub's signing key (every "
            "worker with the key joins it; no device can guess it, so none can join and take "
            "a share of the events); empty: plain subscription (one worker); or a name"
        ),
    )
    grid_path: Path | None = Field(default=None, description="the city's grid GeoJSON")
    catalogue_path: Path | None = Field(default=None, description="the event catalogue YAML")
    calendar_path: Path | None = Field(default=None, description="the working calendar YAML")
    service_days_path: Path | None = Field(
        default=None,
        description="the city's convenience service days YAML (default: none; the packaged "
        "central_hub/domain/data/service_days.yaml is the sample district's example)",
    )
    metrics_token: SecretStr | None = Field(
        default=None, description="bearer token GET /metrics asks for; unset: open"
    )
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="a worker's own /metrics port (for --no-api)"
    )
    metrics_host: str = "127.0.0.1"
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=1, le=65535)
    api_tls_cert: Path | None = Field(
        default=None,
        description="serve the API and console over HTTPS with this certificate "
        "(`central-hub provision --api-name HOST` issues one from the city's CA)",
    )
    api_tls_key: Path | None = Field(default=None, description="its private key")
    ingest_batch: int = Field(default=200, ge=1, le=10_000)
    command_tick_s: float = Field(default=1.0, gt=0)
    max_clock_ahead_s: float = Field(
        default=600.0,
        ge=0,
        description="a unit's timestamps more than this ahead of the hub's clock are "
        "refused (dead letters); the demo, whose scenes run faster than real time, raises it",
    )
    rollout_tick_s: float = Field(default=2.0, gt=0, description="how often campaigns move on")
    retention_evidence_days: int = Field(
        default=730, ge=0, description="case photos, from closure (0: keep for ever)"
    )
    retention_frames_days: int = Field(
        default=180, ge=0, description="clean unblurred frames for retraining, from detection"
    )
    retention_snapshots_days: int = Field(
        default=90, ge=0, description="photos taken on an operator's request"
    )
    retention_tracks_days: int = Field(default=180, ge=0, description="trucks' GPS tracks")
    retention_dead_letters_days: int = Field(
        default=30, ge=0, description="refused messages with their raw bytes"
    )
    retention_shadow_days: int = Field(
        default=60, ge=0, description="shadow candidates' would-be events"
    )
    retention_citizen_contact_days: int = Field(
        default=180,
        ge=0,
        description="citizen reporters' contact details, from their case's closure",
    )
    retention_voice_days: int = Field(
        default=90,
        ge=0,
        description="operators' recorded loudspeaker messages, from their last sending",
    )
    followup_tick_s: float = Field(
        default=10.0,
        gt=0,
        description="how often citizen reporters' follow-ups are looked for (needs an SMS "
        "gateway or SMTP)",
    )
    retention_every_s: float = Field(
        default=6 * 3600.0, gt=0, description="how often serve runs a retention pass"
    )
    open311_address_per_min: float = Field(
        default=10.0, gt=0, description="Open311 reports a client address may post a minute"
    )
    open311_address_burst: int = Field(
        default=20, ge=1, description="Open311 reports a client address may post at once"
    )
    open311_key_per_min: float = Field(
        default=120.0, gt=0, description="Open311 reports one api_key may post a minute"
    )
    open311_key_burst: int = Field(
        default=240, ge=1, description="Open311 reports one api_key may post at once"
    )
    report_page_client_per_min: float = Field(
        default=10.0, gt=0, description="reports the report page takes a minute per client"
    )
    report_page_client_burst: int = Field(
        default=20, ge=1, description="reports the report page takes at once per client"
    )
    report_page_plate_per_min: float = Field(
        default=1.0, gt=0, description="reports the report page takes a minute per QR plate"
    )
    report_page_plate_burst: int = Field(
        default=10, ge=1, description="reports the report page takes at once per QR plate"
    )
    plate_points: Path | None = Field(
        default=None,
        description="the city's QR plates (GeoJSON points) the report page accepts; "
        "default: the sample's 200 plates",
    )
    industries_path: Path | None = Field(
        default=None,
        description="the service objects' industry taxonomy YAML (default: the packaged 20 "
        "industries and 131 subcategories)",
    )
    object_link_radius_m: float = Field(
        default=15.0,
        ge=0,
        le=500,
        description="a 0504 case is linked to the nearest street shop within this many metres "
        "(0: never)",
    )
    parking_enabled: bool = Field(
        default=True,
        description="run the move-your-car loop (0505 cases with a known owner are texted "
        "and rechecked); false: every 0505 case goes to the operators as before",
    )
    parking_wait_s: float = Field(
        default=600.0,
        gt=0,
        le=86_400,
        description="the move-your-car loop: seconds between the reminder and the unit's "
        "recheck (the bureau's 10 minutes)",
    )
    parking_wait_by_area: str = Field(
        default="",
        max_length=10_000,
        description="other waits per grid area, 'CELL=SECONDS,CELL=SECONDS' (any level; the "
        "most specific cell on a case's path wins)",
    )
    parking_answer_s: float = Field(
        default=300.0,
        gt=0,
        le=3600,
        description="how long a unit has to answer a recheck before the operators take over",
    )
    parking_tick_s: float = Field(
        default=2.0, gt=0, le=60, description="how often the move-your-car loop looks"
    )
    live_lease_s: float = Field(
        default=30.0,
        ge=3,
        le=120,
        description="live view: how long a unit streams unless renewed (renewed every third "
        "of it while someone watches; a closed page stops the unit within it)",
    )
    live_fps: float = Field(default=5.0, gt=0, le=30, description="live view: frames per second")
    live_width: int = Field(default=640, ge=32, le=4096, description="live view: frame width")
    vendor_file_key_file: Path | None = Field(
        default=None,
        description="the vendor file's key (64 hex digits, `central-hub vendor-file keygen`): "
        "identity numbers are encrypted with it; serve refuses to start without it, or with "
        "another key, once people are stored",
    )
    vendor_file_roles: str = Field(
        default="handler,admin",
        description="the roles that may see and edit the vendor file, comma-separated "
        "(operator, dispatcher, handler, admin); every other role gets 403 and no trace of it",
    )
    public_url: str | None = Field(
        default=None,
        description="the API's address as units reach it (model packages are fetched from "
        "there); default http://api_host:api_port",
    )

    notice_sms_url: str | None = Field(
        default=None,
        description="the SMS gateway's webhook, a URL template with {phone} and {id} "
        "(http or https); unset: no texts",
    )
    notice_sms_secret_file: Path | None = Field(
        default=None,
        description="the file holding the secret shared with the SMS gateway: requests are "
        "signed and its receipts checked with HMAC-SHA256 of it (needed with notice_sms_url)",
    )
    notice_sms_timeout_s: float = Field(default=10.0, gt=0, le=120)
    notice_sms_per_s: float = Field(default=50.0, gt=0, description="texts a second, per hub")
    notice_sms_burst: int = Field(default=100, ge=1, le=100_000)
    notice_sms_concurrency: int = Field(default=32, ge=1, le=1_000)
    notice_smtp_host: str | None = Field(default=None, description="unset: no e-mail")
    notice_smtp_port: int = Field(default=25, ge=1, le=65535)
    notice_smtp_from: str | None = Field(default=None, description="the notices' From address")
    notice_smtp_starttls: bool = False
    notice_smtp_username: str | None = None
    notice_smtp_password_file: Path | None = None
    notice_email_per_s: float = Field(default=5.0, gt=0, description="e-mails a second")
    notice_email_burst: int = Field(default=20, ge=1, le=100_000)
    notice_speaker_per_s: float = Field(default=1.0, gt=0, description="announcements a second")
    notice_speaker_burst: int = Field(default=20, ge=1, le=100_000)
    notice_quiet_hours: str | None = Field(
        default="22:00-07:00",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$|^$",
        description="HH:MM-HH:MM local (the calendar's zone) when notices wait; empty: none",
    )
    notice_retry_initial_s: float = Field(default=10.0, gt=0)
    notice_retry_cap_s: float = Field(default=900.0, gt=0)
    notice_max_attempts: int = Field(default=8, ge=1, le=100)
    notice_lease_s: float = Field(
        default=60.0, gt=0, description="a claimed delivery is sent again after this"
    )
    notice_tick_s: float = Field(default=1.0, gt=0)

    @field_validator("share_group")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("vendor_file_roles")
    @classmethod
    def _known_roles(cls, value: str) -> str:
        names = [n.strip() for n in value.split(",") if n.strip()]
        known = {r.value for r in Role}
        unknown = [n for n in names if n not in known]
        if unknown or not names:
            raise ValueError(
                f"{unknown[0] if unknown else value!r} is not a role; "
                f"give some of {', '.join(r.value for r in Role)}, comma-separated"
            )
        return ",".join(names)

    @property
    def vendor_file_role_set(self) -> frozenset[Role]:
        """The roles that may see the vendor file."""
        return frozenset(Role(n) for n in self.vendor_file_roles.split(","))

    @model_validator(mode="after")
    def _one_password(self) -> HubSettings:
        if self.mqtt_password is not None and self.mqtt_password_file is not None:
            raise ValueError("set mqtt_password or mqtt_password_file, not both")
        if (self.mqtt_tls_cert is None) != (self.mqtt_tls_key is None):
            raise ValueError("set both mqtt_tls_cert and mqtt_tls_key, or neither")
        if (self.api_tls_cert is None) != (self.api_tls_key is None):
            raise ValueError("set both api_tls_cert and api_tls_key, or neither")
        if self.mqtt_tls_cert is not None and self.mqtt_tls_ca is None:
            raise ValueError("mqtt_tls_cert needs mqtt_tls_ca (the CA of the broker)")
        return self

    def parking_waits(self) -> dict[str, float]:
        """``parking_wait_by_area`` as ``{cell id: seconds}`` (checked when settings load)."""
        waits: dict[str, float] = {}
        for item in filter(None, (p.strip() for p in self.parking_wait_by_area.split(","))):
            cell, sep, value = item.partition("=")
            try:
                seconds = float(value) if sep and cell.strip() else -1.0
            except ValueError:
                seconds = -1.0
            if not 0 < seconds <= 86_400:
                raise ValueError(
                    f"parking_wait_by_area: {item!r} is not CELL=SECONDS (0 < SECONDS <= 86400)"
                )
            waits[cell.strip()] = seconds
        return waits

    @model_validator(mode="after")
    def _parking(self) -> HubSettings:
        self.parking_waits()
        return self

    @model_validator(mode="after")
    def _notice_channels(self) -> HubSettings:
        url = self.notice_sms_url
        if url is not None:
            if not url.startswith(("http://", "https://")):
                raise ValueError("notice_sms_url: not an http:// or https:// URL")
            rest = url.replace("{phone}", "").replace("{id}", "")
            if "{" in rest or "}" in rest:
                raise ValueError("notice_sms_url: only {phone} and {id} may be filled in")
            if self.notice_sms_secret_file is None:
                raise ValueError("notice_sms_url needs notice_sms_secret_file")
        if (self.notice_smtp_host is None) != (self.notice_smtp_from is None):
            raise ValueError("set both notice_smtp_host and notice_smtp_from, or neither")
        if self.notice_retry_initial_s > self.notice_retry_cap_s:
            raise ValueError("notice_retry_initial_s is above notice_retry_cap_s")
        return self

    def notice_secret(self, name: str) -> bytes:
        """The contents of the notice secret file setting ``name`` (stripped);
        :class:`SettingsError` naming the setting when it cannot be read or is empty."""
        path: Path | None = getattr(self, name)
        variable = f"XH_HUB_{name.upper()}"
        if path is None:
            raise SettingsError(f"{name} ({variable}): not set")
        try:
            secret = path.read_bytes().strip()
        except FileNotFoundError as exc:
            raise SettingsError(f"{name} ({variable}): no such file {path}") from exc
        except OSError as exc:
            raise SettingsError(f"{name} ({variable}): cannot read {path}: {exc.strerror}") from exc
        if not secret:
            raise SettingsError(f"{name} ({variable}): {path} is empty")
        return secret

    def check_mqtt_tls(self) -> None:
        """Raise :class:`SettingsError` naming the setting when a TLS file that is set
        cannot be read (checked when the hub connects, not when settings load, so
        commands that never touch the broker work without them)."""
        for name in ("mqtt_tls_ca", "mqtt_tls_cert", "mqtt_tls_key"):
            path: Path | None = getattr(self, name)
            if path is None:
                continue
            variable = f"XH_HUB_{name.upper()}"
            try:
                with path.open("rb") as fh:
                    fh.read(1)
            except FileNotFoundError as exc:
                raise SettingsError(f"{name} ({variable}): no such file {path}") from exc
            except OSError as exc:
                raise SettingsError(
                    f"{name} ({variable}): cannot read {path}: {exc.strerror}"
                ) from exc

    @property
    def database_url(self) -> str:
        """The effective database URL."""
        return self.db_url or f"sqlite+aiosqlite:///{self.data_dir / 'hub.db'}"

    @property
    def imported_grid_path(self) -> Path:
        """Where ``central-hub grid import`` stores a city's grid."""
        return self.data_dir / "grid.geojson"

    @property
    def evidence_path(self) -> Path:
        """The effective evidence folder."""
        return self.evidence_dir or self.data_dir / "evidence"

    @property
    def retention(self) -> RetentionPolicy:
        """The city's retention policy from the ``retention_*_days`` settings."""
        return RetentionPolicy(
            evidence_days=self.retention_evidence_days,
            frames_days=self.retention_frames_days,
            snapshots_days=self.retention_snapshots_days,
            tracks_days=self.retention_tracks_days,
            dead_letters_days=self.retention_dead_letters_days,
            shadow_days=self.retention_shadow_days,
            citizen_contact_days=self.retention_citizen_contact_days,
            voice_days=self.retention_voice_days,
        )

    @property
    def voice_path(self) -> Path:
        """Where operators' recorded messages are kept (by sha256), for units to fetch."""
        return self.data_dir / "voice"

    @property
    def frames_path(self) -> Path:
        """Where clean frames (unblurred, for retraining) are kept, apart from the evidence."""
        return self.data_dir / "frames"

    @property
    def packages_path(self) -> Path:
        """Where published model packages (tar archives) are kept."""
        return self.data_dir / "packages"

    @property
    def api_url(self) -> str:
        """The API's address as units reach it."""
        scheme = "https" if self.api_tls_cert is not None else "http"
        return self.public_url or f"{scheme}://{self.api_host}:{self.api_port}"

    @property
    def hub_key_path(self) -> Path:
        """The effective path of the hub's Ed25519 signing key."""
        return self.key_path or self.data_dir / "hub_key.pem"

    @property
    def model_key_path(self) -> Path:
        """The hub's model-signing key (kept apart from the command key: it may live
        offline, with whoever builds model packages)."""
        return self.data_dir / "model_key.pem"

    def mqtt_secret(self) -> str | None:
        """The MQTT password, read from the file when one is configured."""
        if self.mqtt_password_file is not None:
            return self.mqtt_password_file.read_text(encoding="utf-8").strip()
        return self.mqtt_password.get_secret_value() if self.mqtt_password else None
