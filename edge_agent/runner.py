"""The whole edge agent under one asyncio loop: wiring and supervised stages.

The :class:`Agent` opens the outbox, starts the MQTT link (one paho client, its own
thread), and runs named, supervised stages: ``uplink`` (outbox → broker), ``telemetry``
(the heartbeat), and the config-dependent stages ``gps``, ``vision`` and ``selftest``.
A crashed stage is restarted with backoff and counted in telemetry's ``restarts``.

Commands from the hub are verified and run by
:class:`edge_agent.link.commands.CommandHandler`. A new config, from a signed
``config.apply`` command or from the retained ``config/desired`` topic (unless
``hub.accept_config_desired`` is false), goes through
:class:`edge_agent.config_apply.ConfigApplier`; the agent's part is
:meth:`Agent._switch_stages`: restart the config-dependent stages on it, or roll back.

Run it as ``edge-agent run --config FILE`` (:mod:`edge_agent.run_command`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from edge_agent import protocol
from edge_agent.agent.heartbeat import BoardFigures, build_telemetry, read_board
from edge_agent.agent.live import LiveStreamer
from edge_agent.agent.metrics import AgentFigures, MetricsServer
from edge_agent.agent.recheck import run_recheck
from edge_agent.agent.selftest import run_selftest
from edge_agent.agent.snapshot import send_snapshot
from edge_agent.agent.supervisor import Supervisor
from edge_agent.config import AgentConfig, read_config_data
from edge_agent.config_apply import APPLY_PROBE_S, CONFIG_STAGES, ConfigApplier, crashed_stages
from edge_agent.gps.sources import open_fixes
from edge_agent.gps.tracker import GpsTracker
from edge_agent.link.commands import CommandFailed, CommandHandler, CommandRefused, Executor
from edge_agent.link.mqtt import BrokerLink, LinkSettings, TlsFiles
from edge_agent.link.outbox import Outbox, Priority
from edge_agent.link.trust import TrustStore
from edge_agent.link.uplink import Uplink
from edge_agent.model_install import (
    INSTALL_TIMEOUT_S,
    InstallParams,
    ModelInstaller,
    download_client,
)
from edge_agent.speaker.backends import NullBackend
from edge_agent.speaker.commands import SpeakerCommands
from edge_agent.speaker.factory import build_speaker
from edge_agent.speaker.player import Speaker
from edge_agent.speaker.voice import VoiceClips
from edge_agent.update.overrides import with_installed
from edge_agent.update.store import ModelStore

if TYPE_CHECKING:  # the vision package (OpenCV) loads only on units with cameras
    from edge_agent.vision.config import VisionConfig
    from edge_agent.vision.recheck import RecheckResult
    from edge_agent.vision.sources import SourceFactory

log = logging.getLogger(__name__)

__all__ = ["Agent"]


class _Vision(Protocol):
    """What the runner uses of ``edge_agent.vision.pipeline.VisionService``."""

    def run(
        self,
        sink: Callable[[protocol.Event], Awaitable[None]],
        shout: Callable[[str], Awaitable[None]] | None = None,
    ) -> Awaitable[None]: ...

    def stats(self) -> Any: ...

    def snapshot(self, camera_id: str) -> Awaitable[bytes]: ...

    def live_tap(
        self, camera_id: str, tap: Callable[[Any, Sequence[Any]], None] | None
    ) -> None: ...

    def zones_of(self, camera_id: str) -> dict[str, tuple[tuple[float, float], ...]]: ...

    def recheck(
        self,
        camera_id: str,
        zone: str,
        plate: str | None,
        box: tuple[float, float, float, float] | None,
    ) -> Awaitable[tuple[RecheckResult, bytes]]: ...

    @property
    def problems(self) -> list[str]:
        """Models that could not load (the box runs without them)."""
        ...


@dataclass
class _Stages:
    """What one config builds: the speaker, the GPS tracker, the vision service."""

    config: AgentConfig
    speaker: Speaker
    gps: GpsTracker | None
    vision: _Vision | None
    factories: dict[str, Callable[[], Awaitable[None]]] = field(default_factory=dict)


class Agent:
    """One edge agent: see the module docstring. ``await Agent(config).run()``.

    ``source_factory`` makes the cameras' sources (default: the agent's own
    ``edge_agent.vision.sources.make_source``); a simulator passes one that knows its
    scenes.
    """

    def __init__(
        self,
        config: AgentConfig,
        *,
        config_path: Path | None = None,
        clock: Callable[[], datetime] = protocol.utc_now,
        source_factory: SourceFactory | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.clock = clock
        self.source_factory = source_factory
        self.device_id = config.device.id
        self.boot_id = uuid.uuid4().hex[:12]
        self.started = time.monotonic()
        self.supervisor = Supervisor()
        self._stop = asyncio.Event()
        self._seq = 0
        self._outbox: Outbox | None = None
        self._link: BrokerLink | None = None
        self._uplink: Uplink | None = None
        self._stages: _Stages | None = None
        self._commands: CommandHandler | None = None
        self._metrics: MetricsServer | None = None
        #: Parts that could not start (the unit then reports ``degraded``).
        self.problems: list[str] = []
        #: When the current broker connection began: the ``ts`` of every status it carries.
        self._connection_started: datetime | None = None
        # The config file as written (relative paths kept): a pushed config that leaves
        # a section out keeps that section from here.
        raw: dict[str, Any] = {}
        if config_path is not None and config_path.exists():
            raw = read_config_data(config_path)
        self._applier = ConfigApplier(
            device_id=self.device_id,
            raw=raw,
            config_path=config_path,
            current=lambda: self.config,
            switch=self._switch_stages,
            report=self._report,
            status_changed=self._publish_status,
            public_key=lambda: self.trust.keys(),  # noqa: PLW0108 (self.trust comes below)
        )
        self._side_tasks: set[asyncio.Task[None]] = set()
        #: Live view on demand (``live.start``): QoS 0 frames while the hub holds a lease.
        self.live = LiveStreamer(
            self.device_id,
            lambda: self.config.live,
            lambda: self._stages.vision if self._stages is not None else None,
            self._publish_live,
            _encode_live,
        )
        #: The hub keys trusted now (the config's; more while the hub rotates its key).
        self.trust = TrustStore(
            config.outbox.path.parent / "trusted_keys.json",
            lambda: self.config.hub.key_text(),  # noqa: PLW0108 (a new config, a new object)
            self.clock,
        )
        #: Model packages the hub installed, beside the outbox (see ``model_install``).
        self.models = ModelStore(config.outbox.path.parent / "models")
        #: A package being tried: slot -> its directory, on top of the store's actives.
        self._staged: dict[str, Path] = {}
        #: What the status says runs: ``name@version`` of each model.
        self._model_label: str | None = None
        self._installer = ModelInstaller(
            self.models,
            current=lambda: self.config,
            switch=self._switch_models,
            probe=_probe_package,
            status_changed=self._publish_status,
        )
        #: Operators' recorded messages, fetched from the hub beside the outbox and played.
        self._voice = VoiceClips(
            lambda: self.speaker,
            config.outbox.path.parent / "voice",
            client_for=lambda url: download_client(self.config, url),
        )

    # ------------------------------------------------------------------ wiring

    @property
    def outbox(self) -> Outbox:
        """The open outbox (only while running)."""
        if self._outbox is None:
            raise RuntimeError("the agent is not running")
        return self._outbox

    def next_seq(self) -> int:
        """The next per-device event counter value (persisted with each stored event)."""
        self._seq += 1
        return self._seq

    def location(self) -> protocol.Location | None:
        """Where events happen: a fresh GPS fix, else the unit's surveyed position."""
        stages = self._stages
        if stages is not None and stages.gps is not None:
            found = stages.gps.location()
            if found is not None:
                return found
        fixed = self.config.device.location
        return protocol.Location(lat=fixed.lat, lon=fixed.lon, source="fixed") if fixed else None

    def _will(self) -> tuple[str, bytes]:
        """The last will of the connection about to be made; it starts the connection's time.

        Every status of one connection carries the time it began (the birth, any status
        sent again later, the will), so the hub, which keeps the newest status, takes the
        will over its own connection's statuses, and a later connection's over the will.
        """
        self._connection_started = self.clock()
        return self._status("offline")

    def _status(self, state: str) -> tuple[str, bytes]:
        vision_cfg = self.config.vision
        stages = self._stages
        vision_problems = stages.vision.problems if stages and stages.vision else []
        if state == "online" and (self.problems or vision_problems):
            state = "degraded"
        status = protocol.Status(
            device_id=self.device_id,
            state=state,
            boot_id=self.boot_id,
            fw=self.config.device.fw,
            model=(
                self._model_label or ", ".join(d.model.name for d in vision_cfg.models.values())
            )[:64]
            if vision_cfg.cameras
            else None,
            config_version=self.config.config_version,
            ts=self._connection_started or self.clock(),
        )
        return protocol.topic(self.device_id, protocol.Channel.STATUS), protocol.encode(status)

    def _subscriptions(self) -> list[str]:
        topics = [protocol.topic(self.device_id, protocol.Channel.CMD)]
        if self.config.hub.accept_config_desired:
            topics.append(protocol.topic(self.device_id, protocol.Channel.CONFIG_DESIRED))
        return topics

    def _link_settings(self) -> LinkSettings:
        m = self.config.mqtt
        tls = TlsFiles(m.tls.ca, m.tls.cert, m.tls.key) if m.tls is not None else None
        return LinkSettings(
            host=m.host,
            port=m.port,
            client_id=self.device_id,
            username=m.username,
            password=m.secret(),
            tls=tls,
            keepalive=m.keepalive,
            backoff_initial_s=m.backoff_initial_s,
            backoff_cap_s=m.backoff_cap_s,
            max_inflight=m.inflight_window,
        )

    # ------------------------------------------------------------------ running

    def request_stop(self) -> None:
        """Ask :meth:`run` to shut down cleanly."""
        self._stop.set()

    async def run(self) -> None:
        """Run until :meth:`request_stop` (or SIGTERM through :func:`main`)."""
        cfg = self.config
        outbox = await Outbox.open(
            cfg.outbox.path,
            max_bytes=cfg.outbox.max_bytes,
            ttl_s=cfg.outbox.ttl_s,
            synchronous=cfg.outbox.synchronous,
        )
        self._outbox = outbox
        self._seq = outbox.counter("seq")
        try:
            link = BrokerLink(
                self._link_settings(),
                subscriptions=self._subscriptions(),
                birth=lambda: self._status("online"),
                will=self._will,
            )
            self._link = link
            uplink = Uplink(outbox, link, window=cfg.mqtt.inflight_window)
            self._uplink = uplink
            self._stages = await self._build(cfg, strict=False)
            commands = CommandHandler(
                device_id=self.device_id,
                public_key=self.trust.keys,
                outbox=outbox,
                executors=self._executors(),
                clock=self.clock,
                timeouts={"model.install": INSTALL_TIMEOUT_S},
            )
            self._commands = commands
            self._serve_metrics(cfg)  # before the link: a problem shows in the birth status
            link.start(_Listener(uplink, commands, self.config_desired))
            self.supervisor.start("uplink", uplink.run)
            self.supervisor.start("telemetry", self._telemetry)
            self.supervisor.start("live", self.live.run)
            self._start_stages(self._stages)
            self._resume_install()
            log.info("agent %s running (boot %s)", self.device_id, self.boot_id)
            await self._stop.wait()
        finally:
            await self._shutdown()

    def _serve_metrics(self, cfg: AgentConfig) -> None:
        if cfg.metrics.port is None:
            return
        try:
            self._metrics = MetricsServer(
                self.figures,
                asyncio.get_running_loop(),
                host=cfg.metrics.host,
                port=cfg.metrics.port,
            )
        except OSError as exc:  # a taken port must not keep the unit from its work
            problem = f"metrics: cannot serve on {cfg.metrics.host}:{cfg.metrics.port}: {exc}"
            log.error("%s", problem)
            self.problems.append(problem)
            return
        log.info("metrics on http://%s:%d/metrics", cfg.metrics.host, self._metrics.port)

    def figures(self) -> AgentFigures:
        """A snapshot for the metrics endpoint (call it on the event loop)."""
        stages = self._stages
        speaker = stages.speaker if stages is not None else None
        return AgentFigures(
            uptime_s=time.monotonic() - self.started,
            outbox=self.outbox.stats(),
            link_connected=self._link is not None and self._link.connected,
            vision=stages.vision.stats() if stages is not None and stages.vision else None,
            speaker_playing=speaker is not None and speaker.playing is not None,
            speaker_plays=len(speaker.history) if speaker is not None else 0,
            restarts=dict(self.supervisor.restarts),
        )

    async def _shutdown(self) -> None:
        log.info("agent %s stopping", self.device_id)
        if self._metrics is not None:
            await asyncio.to_thread(self._metrics.close)
        await self.supervisor.stop()
        for task in list(self._side_tasks):
            task.cancel()
        if self._side_tasks:
            await asyncio.wait(set(self._side_tasks))
        if self._commands is not None:
            await self._commands.close()
        if self._stages is not None:
            await self._stages.speaker.close()
        if self._link is not None:
            await self._link.stop(final=self._status("offline"))
        if self._outbox is not None:
            await self._outbox.close()

    # ------------------------------------------------------------------ stages

    async def _build(self, cfg: AgentConfig, *, strict: bool = True) -> _Stages:
        """Build the config-dependent stages.

        ``strict`` (``config.apply``): raise if any part cannot be built, so the caller
        rolls back. Otherwise (start-up) a part that cannot be built is left out (a silent
        speaker, no cameras), the problem is logged and the unit reports ``degraded``: the
        uplink and the outbox must run whatever else is broken.
        """
        self.problems = []
        try:
            speaker = await build_speaker(cfg.speaker, self.clock)
        except Exception as exc:
            if strict:
                raise
            self._problem("speaker", exc)
            speaker = Speaker(NullBackend(), clock=self.clock)
        stages = _Stages(cfg, speaker, None, None)
        if cfg.gps.source != "none":
            tracker = GpsTracker(
                self.device_id,
                self.outbox,
                clock=self.clock,
                batch=cfg.gps.track_batch,
                interval_s=cfg.gps.track_interval_s,
            )
            stages.gps = tracker
            stages.factories["gps"] = lambda: tracker.run(open_fixes(cfg.gps, self.clock))
        if cfg.vision.cameras:
            try:
                vision = self._make_vision(cfg)
            except Exception as exc:
                if strict:
                    raise
                self._problem("vision", exc)
            else:
                stages.vision = vision
                stages.factories["vision"] = lambda: vision.run(self._store_event, speaker.shout)
        if cfg.selftest.events > 0:
            stages.factories["selftest"] = lambda: self._selftest(cfg)
        return stages

    def _problem(self, part: str, exc: BaseException) -> None:
        text = f"{part}: {type(exc).__name__}: {exc}"
        self.problems.append(text)
        log.error("cannot start %s; running without it (status degraded)", text)

    def _vision_config(self, cfg: AgentConfig) -> VisionConfig:
        """The config's vision section with the installed (and any staged) models in."""
        vision, unknown = with_installed(cfg.vision, {**self.models.overrides(), **self._staged})
        if unknown:
            log.warning(
                "installed model(s) for %s unused: the config has no such detector", unknown
            )
        for slot, (path, cameras) in self.models.shadows().items():
            # Imported here: units without cameras never load the vision package.
            from edge_agent.vision.config import ShadowConfig

            ids = {c.id for c in vision.cameras}
            if slot not in vision.models or not set(cameras) <= ids:
                log.warning("the shadow model of slot %s does not fit this config; unused", slot)
                continue
            shadow = ShadowConfig(slot=slot, model=path, cameras=cameras)
            vision = vision.model_copy(update={"shadow": shadow})
            break  # one shadow per box
        return vision

    def _make_vision(self, cfg: AgentConfig) -> _Vision:
        # Imported here: OpenCV and onnxruntime load only on units with cameras.
        from edge_agent.vision.exemptions import unused_exemptions
        from edge_agent.vision.pipeline import VisionService
        from edge_agent.vision.sources import make_source

        vision = self._vision_config(cfg)
        self._model_label = _model_label(vision)
        exemptions = cfg.service_days.exemptions
        for line in unused_exemptions(exemptions, vision):
            log.warning("unused service-day exemption: %s", line)
        if exemptions:
            log.info(
                "%d service-day exemption(s) from calendar %s",
                len(exemptions),
                cfg.service_days.calendar or "(unnamed)",
            )
        service: _Vision = VisionService(
            vision,
            device_id=self.device_id,
            next_seq=self.next_seq,
            location=self.location,
            clock=self.clock,
            on_problem=self._publish_status,
            source_factory=self.source_factory or make_source,
            package_key=(
                protocol.load_public_key(cfg.hub.model_public_key)
                if cfg.hub.model_public_key
                else None
            ),
            exemptions=exemptions,
        )
        return service

    def _publish_status(self) -> None:
        """Publish the retained status again (a part that failed after the birth message,
        such as a model that could not load, turns it degraded)."""
        if self._link is not None and self._link.connected:
            topic, payload = self._status("online")
            self._link.publish(topic, payload, qos=1, retain=True)

    def _publish_live(self, topic: str, payload: bytes) -> bool:
        """A live frame straight to the broker, QoS 0 (never through the outbox)."""
        link = self._link
        if link is None or not link.connected:
            return False
        return link.publish(topic, payload, qos=protocol.Channel.LIVE.qos) is not None

    def _start_stages(self, stages: _Stages) -> None:
        for name, factory in stages.factories.items():
            self.supervisor.start(name, factory)

    async def _store_event(self, event: protocol.Event) -> None:
        topic = protocol.topic(self.device_id, protocol.Channel.EVENT)
        if event.shadow:  # outside the event sequence, and below every real message
            await self.outbox.append(topic, protocol.encode(event), priority=Priority.SHADOW)
            return
        await self.outbox.append(
            topic, protocol.encode(event), priority=Priority.EVENT, counters={"seq": event.seq}
        )

    async def _selftest(self, cfg: AgentConfig) -> None:
        await run_selftest(
            self.outbox,
            device_id=self.device_id,
            events=cfg.selftest.events,
            rate_per_s=cfg.selftest.rate_per_s,
            next_seq=self.next_seq,
            location=self.location,
            clock=self.clock,
        )

    # ------------------------------------------------------------------ telemetry

    def telemetry(self, board: BoardFigures | None = None) -> protocol.Telemetry:
        """The heartbeat as it would be sent now (``board`` from :func:`read_board`)."""
        stages = self._stages
        return build_telemetry(
            device_id=self.device_id,
            now=self.clock(),
            uptime_s=time.monotonic() - self.started,
            outbox=self.outbox.stats(),
            vision=stages.vision.stats() if stages is not None and stages.vision else None,
            gps=stages.gps.current_fix() if stages is not None and stages.gps else None,
            restarts=self.supervisor.restarts,
            board=board or BoardFigures(),
        )

    async def _telemetry(self) -> None:
        topic = protocol.topic(self.device_id, protocol.Channel.TELEMETRY)
        while True:
            link = self._link
            if link is not None and link.connected:
                board = await read_board(self.config.outbox.path)
                link.publish(topic, protocol.encode(self.telemetry(board)), qos=0)
            await asyncio.sleep(self.config.telemetry.interval_s)

    # ------------------------------------------------------------------ commands

    def _executors(self) -> dict[str, Executor]:
        return {
            **SpeakerCommands(lambda: self.speaker).executors(),
            "speaker.play_clip": self._voice.play_clip,
            "config.apply": self._applier.apply_command,
            "snapshot.request": self._cmd_snapshot,
            "spot.recheck": self._cmd_recheck,
            "live.start": self.live.start_command,
            "live.stop": self.live.stop_command,
            "model.install": self._installer.install_command,
            "model.rollback": self._installer.rollback_command,
            "model.shadow_stop": self._installer.stop_shadow_command,
            "keys.trust": self.trust.trust,
        }

    async def _switch_models(self, cfg: AgentConfig, staged: Mapping[str, Path]) -> str | None:
        """Restart the stages with ``staged`` models tried on top of the installed ones."""
        self._staged = dict(staged)
        try:
            return await self._switch_stages(cfg)
        finally:
            self._staged = {}

    def _resume_install(self) -> None:
        """Finish an install a power cut interrupted, in its own task, and ack it."""
        pending = self._installer.pending()
        if pending is None:
            return
        cmd_id, params = pending
        log.info("resuming the install of %s %s (command %s)", params.name, params.version, cmd_id)
        task = asyncio.get_running_loop().create_task(
            self._finish_install(cmd_id, params), name="model-install"
        )
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _finish_install(self, cmd_id: str, params: InstallParams) -> None:
        commands = self._commands
        assert commands is not None  # started before this
        try:
            detail = await self._installer.install(params)
        except CommandRefused as exc:
            await commands.finish(cmd_id, "rejected", str(exc))
        except CommandFailed as exc:
            await commands.finish(cmd_id, "failed", str(exc))
        else:
            await commands.finish(cmd_id, "succeeded", detail)

    @property
    def speaker(self) -> Speaker:
        """The current speaker (only while running)."""
        if self._stages is None:
            raise RuntimeError("the agent is not running")
        return self._stages.speaker

    async def _cmd_snapshot(self, command: protocol.Command) -> str:
        stages = self._stages
        if stages is None or stages.vision is None:
            raise CommandFailed("this unit has no cameras configured")
        camera_id = str(command.params.get("camera_id") or stages.config.vision.cameras[0].id)
        # Imported here: only units with cameras load the vision package.
        from edge_agent.vision.errors import VisionError

        try:
            return await send_snapshot(
                command, camera_id, stages.vision.snapshot, outbox=self.outbox, clock=self.clock
            )
        except (KeyError, VisionError) as exc:
            raise CommandFailed(f"snapshot of {camera_id!r} failed: {exc}") from exc

    async def _cmd_recheck(self, command: protocol.Command) -> str:
        stages = self._stages
        if stages is None or stages.vision is None:
            raise CommandFailed("this unit has no cameras configured")
        return await run_recheck(
            command, stages.vision.recheck, outbox=self.outbox, clock=self.clock
        )

    def config_desired(self, payload: bytes) -> None:
        """A retained ``config/desired`` message arrived: apply it in its own task."""
        task = asyncio.get_running_loop().create_task(
            self._applier.apply_desired(payload), name="config-desired"
        )
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _switch_stages(self, new: AgentConfig) -> str | None:
        """Run the config-dependent stages on ``new`` and make it the agent's config;
        if they cannot start or crash within ``APPLY_PROBE_S``, go back to the old
        stages and return the problem."""
        old_stages = self._stages
        assert old_stages is not None  # commands run only while the agent runs
        await self.supervisor.stop(CONFIG_STAGES)
        before = dict(self.supervisor.restarts)
        old_problems = list(self.problems)
        problem: str | None = None
        try:
            new_stages = await self._build(new)
        except Exception as exc:
            # Any failure to build a stage means the config cannot run here: roll back.
            problem = f"{type(exc).__name__}: {exc}"
        else:
            self._stages = new_stages
            self._start_stages(new_stages)
            await asyncio.sleep(APPLY_PROBE_S)
            crashed = crashed_stages(before, self.supervisor.restarts)
            if crashed:
                problem = f"stage(s) {', '.join(crashed)} crashed on the new config"
                await self.supervisor.stop(CONFIG_STAGES)
                await new_stages.speaker.close()
        if problem is not None:
            self._stages = old_stages
            self.problems = old_problems
            self._start_stages(old_stages)
            return problem
        await old_stages.speaker.close()
        self.config = new
        return None

    async def _report(self, version: int, state: str, errors: Sequence[str]) -> None:
        reported = protocol.ConfigReported(
            device_id=self.device_id,
            version=version,
            state=state,
            errors=tuple(e[:2000] for e in errors),
            ts=self.clock(),
        )
        await self.outbox.append(
            protocol.topic(self.device_id, protocol.Channel.CONFIG_REPORTED),
            protocol.encode(reported),
            priority=Priority.CONFIG,
            retain=True,
        )


def _encode_live(image: Any, width: int, quality: int) -> tuple[bytes, int, int]:
    """Resize and JPEG-encode a live frame (OpenCV: units with cameras only)."""
    from edge_agent.vision.live_jpeg import encode_live

    return encode_live(image, width, quality)


def _probe_package(directory: Path, cfg: AgentConfig, slot: str) -> None:
    """Load the package in ``directory`` once as ``slot``'s model: its signature is
    checked against the hub's model key and onnxruntime must accept it."""
    from edge_agent.vision.onnx_detector import OnnxDetector  # units with cameras only

    key = cfg.hub.model_public_key
    detector = OnnxDetector(
        cfg.vision.models[slot].model_copy(update={"model": directory}),
        spinning=False,
        package_key=protocol.load_public_key(key) if key else None,
    )
    del detector


def _model_label(vision: VisionConfig) -> str | None:
    """What the status says runs: ``name@version`` of the model as its manifest says (the
    directory's name without one); with several, ``slot=name@version`` each."""
    from edge_agent.vision.errors import ModelError
    from edge_agent.vision.manifest import load_manifest

    labels = {}
    for slot, config in vision.models.items():
        try:
            manifest = load_manifest(config.model)
        except ModelError:
            labels[slot] = config.model.name
            continue
        labels[slot] = f"{manifest.name}@{manifest.version}"
    if len(labels) == 1:
        return next(iter(labels.values()))
    return ", ".join(f"{slot}={label}" for slot, label in labels.items()) or None


class _Listener:
    """Routes what the link reports (on the event loop) to the parts that handle it."""

    def __init__(
        self, uplink: Uplink, commands: CommandHandler, config_desired: Callable[[bytes], None]
    ) -> None:
        self.uplink = uplink
        self.commands = commands
        self.config_desired = config_desired

    def link_up(self) -> None:
        self.uplink.wake()

    def link_down(self, reason: str) -> None:
        log.debug("link down: %s", reason)

    def message(self, topic: str, payload: bytes) -> None:
        if topic.endswith("/config/desired"):
            self.config_desired(payload)
        elif topic.endswith("/cmd"):
            self.commands.submit(payload)

    def published(self, mids: list[int]) -> None:
        self.uplink.published(mids)
