"""The hub's services wired together: one object the API, the CLI and tests share."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.adapters.evidence import EvidenceStore
from central_hub.adapters.id_cipher import load_key_file
from central_hub.adapters.mqtt import HubMqtt
from central_hub.db.engine import create_engine
from central_hub.db.migrate import migrate
from central_hub.domain.calendar import WorkCalendar
from central_hub.domain.catalogue import Catalogue
from central_hub.domain.grid import Grid
from central_hub.domain.industries import Taxonomy
from central_hub.domain.voice_phrases import PhraseBook, load_phrases
from central_hub.errors import HubError
from central_hub.services.case_filing import CaseFiler
from central_hub.services.cases import CaseService
from central_hub.services.citizen_followup import ReporterFollowUp
from central_hub.services.city_data import load_city_data
from central_hub.services.commands import CommandService
from central_hub.services.devices import DeviceService
from central_hub.services.keys import identity_key
from central_hub.services.live import LIVE_FILTER, LiveViews
from central_hub.services.metrics import MetricsService
from central_hub.services.notices import HubAudiences, NoticeService, RegistryAudiences
from central_hub.services.packages import PackageStore
from central_hub.services.parking import ParkingLoop, parking_policy
from central_hub.services.publisher import Publisher
from central_hub.services.records import RecordService
from central_hub.services.rollouts import RolloutService
from central_hub.services.service_days import ServiceDayGate, ServiceDayService
from central_hub.services.service_objects import ServiceObjects
from central_hub.services.throttle import FailureThrottle
from central_hub.services.users import UserService
from central_hub.services.vehicles import VehicleRegistry
from central_hub.services.vendor_file import VendorFile, vendor_photos_path
from central_hub.services.voice import VoiceService
from central_hub.services.voice_schedules import VoiceSchedules
from central_hub.settings import HubSettings
from central_hub.workers.dispatch import CommandDispatcher
from central_hub.workers.ingest import IngestWorker
from central_hub.workers.notices import NoticeWorker, notices_from_settings
from central_hub.workers.rollout import RolloutWorker
from edge_agent.protocol import (
    Channel,
    ProtocolError,
    generate_signing_key,
    hub_subscriptions,
    load_private_key,
    private_key_pem,
    utc_now,
)

log = logging.getLogger(__name__)

__all__ = ["Hub", "build_hub", "hub_client_id", "load_or_create_key", "share_group_of"]


def load_or_create_key(path: Path, *, create: bool = True) -> Ed25519PrivateKey:
    """The hub's Ed25519 signing key from ``path``; created (mode 0600) when absent."""
    if path.exists():
        try:
            return load_private_key(path)
        except (ProtocolError, ValueError) as exc:
            raise HubError(f"{path}: not an Ed25519 private key in PEM ({exc})") from exc
    if not create:
        raise HubError(f"no hub key at {path}: run `central-hub keygen`")
    key = generate_signing_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_key_pem(key))
    log.info("created the hub signing key at %s", path)
    return key


def _key_secret(key: Ed25519PrivateKey, purpose: bytes) -> str:
    """20 hex digits only holders of the hub's signing key can compute."""
    raw = key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return hashlib.sha256(b"xiuhua\0" + purpose + b"\0" + raw).hexdigest()[:20]


def share_group_of(setting: str | None, key: Ed25519PrivateKey) -> str | None:
    """The ``$share`` group the hub's workers subscribe in: ``auto`` derives one from the
    signing key (a device that cannot name the group cannot join it and take a share of
    the events, which its ACL would then drop), None subscribes plainly."""
    if setting == "auto":
        return "hub-" + _key_secret(key, b"share-group")
    return setting


def hub_client_id(name: str, key: Ed25519PrivateKey) -> str:
    """This worker's MQTT client id: its name and a suffix derived from the signing key, so
    no device can connect under it and knock the worker off (brokers that bind client ids
    to users, as the shipped Mosquitto config does, enforce that regardless)."""
    return f"{name}-{_key_secret(key, b'client-id')[:12]}"


@dataclass
class Hub:
    """Every service of one hub process."""

    engine: AsyncEngine
    clock: Callable[[], datetime]
    catalogue: Catalogue
    grid: Grid
    calendar: WorkCalendar
    #: The convenience service days: pushed to units, listed in the console.
    service_days: ServiceDayService
    evidence: EvidenceStore
    #: Clean frames for retraining: unblurred, so apart from the evidence, admins only.
    frames: EvidenceStore
    key: Ed25519PrivateKey
    users: UserService
    devices: DeviceService
    commands: CommandService
    dispatcher: CommandDispatcher
    cases: CaseService
    records: RecordService
    metrics: MetricsService
    filer: CaseFiler
    packages: PackageStore
    rollouts: RolloutService
    rollout_worker: RolloutWorker
    #: Notices (texts, e-mails, announcements) and the worker that sends them.
    notices: NoticeService
    notice_worker: NoticeWorker
    #: The vendor file (people, their 0501 cases, counsellings), for the city's roles.
    vendor_file: VendorFile
    #: The move-your-car loop (reminders and rechecks of parked cars).
    parking: ParkingLoop | None = None
    #: Tells citizen reporters of their cases' status changes (when a channel exists).
    followup: ReporterFollowUp | None = None
    #: Operators' recorded messages to units' loudspeakers (高空喊话).
    voice: VoiceService | None = None
    #: Announcements to a grid area's loudspeakers at set times.
    voice_schedules: VoiceSchedules | None = None
    #: What a loudspeaker can say with one pick, by violation type (a data file).
    voice_phrases: PhraseBook = field(default_factory=lambda: PhraseBook({}))
    mqtt: HubMqtt | None = None
    #: Live view on demand (with its own broker session for the units' live frames).
    live: LiveViews | None = None
    ingest: IngestWorker | None = None
    #: Failed logins and refused tokens per client address (this process's).
    auth_throttle: FailureThrottle = field(default_factory=FailureThrottle)
    #: The service objects' industry taxonomy (a data file a city edits).
    industries: Taxonomy = field(default_factory=Taxonomy.load)
    #: A 0504 case is linked to the nearest street shop within this many metres.
    object_link_radius_m: float = 15.0

    async def close(self) -> None:
        """Release the database pool."""
        await self.engine.dispose()


async def build_hub(
    settings: HubSettings,
    *,
    clock: Callable[[], datetime] = utc_now,
    mqtt: bool = True,
    ingest: bool = True,
    run_migrations: bool = True,
    engine: AsyncEngine | None = None,
    publisher: Publisher | None = None,
) -> Hub:
    """Open the database (migrating it), load data files and the key, wire the services.

    With ``mqtt`` a :class:`HubMqtt` is created (not started) and, with ``ingest``, an
    ingest worker reading from it. Tests pass their own ``engine`` or ``publisher``.
    """
    engine = engine or create_engine(settings.database_url)
    if run_migrations:
        await migrate(engine)
    city = load_city_data(settings)
    catalogue, grid, calendar = city.catalogue, city.grid, city.calendar
    key = load_or_create_key(settings.hub_key_path)
    identity = identity_key(settings, key)  # what the client id and share group come from
    evidence = EvidenceStore(settings.evidence_path)
    frames = EvidenceStore(settings.frames_path)
    broker = None
    if mqtt:
        settings.check_mqtt_tls()
        broker = HubMqtt(
            host=settings.mqtt_host,
            port=settings.mqtt_port,
            client_id=hub_client_id(settings.mqtt_client_id, identity),
            subscriptions=[
                *(
                    hub_subscriptions(share_group_of(settings.share_group, identity))
                    if ingest
                    else []
                ),
                LIVE_FILTER,  # every process serving viewers gets the frames (not shared)
            ],
            username=settings.mqtt_username,
            password=settings.mqtt_secret(),
            tls_ca=settings.mqtt_tls_ca,
            tls_cert=settings.mqtt_tls_cert,
            tls_key=settings.mqtt_tls_key,
        )
    pub: Publisher | None = publisher or broker
    filer = CaseFiler(catalogue, grid, calendar)
    commands = CommandService(engine, key, pub, clock)
    packages = PackageStore(engine, settings.packages_path, clock)
    rollouts = RolloutService(engine, commands, packages, grid, clock, public_url=settings.api_url)
    devices = DeviceService(engine, pub, clock, key)
    notices, notice_worker = notices_from_settings(
        settings, engine, clock, grid, calendar, commands
    )
    hub = Hub(
        engine=engine,
        clock=clock,
        catalogue=catalogue,
        grid=grid,
        calendar=calendar,
        service_days=ServiceDayService(engine, devices, city.service_days, grid, clock),
        evidence=evidence,
        frames=frames,
        key=key,
        users=UserService(engine, clock),
        devices=devices,
        commands=commands,
        dispatcher=CommandDispatcher(commands, tick_s=settings.command_tick_s),
        cases=CaseService(engine, calendar, clock),
        records=RecordService(engine),
        metrics=MetricsService(engine, grid, clock),
        filer=filer,
        packages=packages,
        rollouts=rollouts,
        rollout_worker=RolloutWorker(rollouts, tick_s=settings.rollout_tick_s),
        notices=notices,
        notice_worker=notice_worker,
        vendor_file=VendorFile(
            engine,
            EvidenceStore(vendor_photos_path(settings)),
            clock,
            roles=settings.vendor_file_role_set,
            cipher=load_key_file(key_file) if (key_file := settings.vendor_file_key_file) else None,
        ),
        mqtt=broker,
        industries=Taxonomy.load(settings.industries_path),
        object_link_radius_m=settings.object_link_radius_m,
    )
    hub.voice = VoiceService(
        engine, commands, settings.voice_path, clock, public_url=settings.api_url
    )
    hub.voice_schedules = VoiceSchedules(engine, notices, clock, tz=calendar.tz)
    hub.voice_phrases = load_phrases(catalogue)
    can_text = settings.notice_sms_url is not None
    can_mail = settings.notice_smtp_host is not None
    if settings.parking_enabled:
        hub.parking = ParkingLoop(
            engine,
            cases_service=hub.cases,
            vehicles=VehicleRegistry(engine, clock),
            notices_service=notices,
            commands_service=commands,
            grid=grid,
            clock=clock,
            policy=parking_policy(settings, grid),
            can_text=can_text,
            tick_s=settings.parking_tick_s,
        )
    if can_text or can_mail:
        hub.followup = ReporterFollowUp(
            engine,
            notices,
            clock,
            public_url=settings.api_url,
            can_text=can_text,
            can_mail=can_mail,
            tick_s=settings.followup_tick_s,
        )
    if broker is not None:
        # Live frames come on the hub's one session (a second session under the same
        # broker user would be knocked off by it, and knock it off, where the broker names
        # clients after their user): tapped off before ingest, never stored.
        hub.live = LiveViews(
            engine,
            key,
            broker,
            clock,
            lease_s=settings.live_lease_s,
            fps=settings.live_fps,
            width=settings.live_width,
        )
        broker.tap(f"/{Channel.LIVE.value}", hub.live.deliver)
    # Notices to the registry's audiences: an object, an industry, a subcategory, an area.
    notices.resolver = HubAudiences(engine, grid, RegistryAudiences(ServiceObjects.of_hub(hub)))
    if broker is not None and ingest:
        hub.ingest = IngestWorker(
            engine,
            broker,
            evidence,
            filer,
            clock,
            batch_size=settings.ingest_batch,
            on_device_reachable=lambda _device: commands.wake(),
            frames=frames,
            max_ahead=timedelta(seconds=settings.max_clock_ahead_s),
            held_back=ServiceDayGate(city.service_days, grid) if city.service_days.days else None,
        )
    return hub
