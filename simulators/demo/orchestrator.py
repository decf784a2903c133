"""The closed-loop demo: broker, hub, two pole units and a truck unit, in one run folder.

:class:`Demo` sets everything up the way a real deployment is set up, then starts it:

1. a run folder ``runs/demo-<UTC time>/`` with ``logs/``, ``broker/``, ``hub/`` and
   ``devices/<id>/`` (each child process logs to ``logs/<name>.log``);
2. the hub's signing keys, the shipped models copied to ``models/`` and signed with the
   model key, then ``provision_device`` for each unit: its broker user and password, the
   broker's password and ACL files, its config file with the hub's public keys (so the
   unit loads only signed models; the demo then adds the site's sections: camera,
   rules, speaker, GPS);
3. the hub's database (migrated), the units registered, and four API users (admin,
   operator, dispatcher, handler) whose tokens go to ``tokens.json`` (mode 0600);
4. a broker on a free port with that password file and ACL, anonymous access off:
   Mosquitto from PATH, or the embedded Python broker when there is none. Mosquitto runs
   the listeners provisioning wrote: MQTT over TLS, where the hub and each unit show the
   client certificate provisioning issued them and then their password, and plain MQTT on
   127.0.0.1 only (which nothing here uses). NATS gets the same certificates on its MQTT
   port (a client certificate, then the password); the embedded broker stays plain;
5. the hub (``central-hub serve`` as :mod:`simulators.demo.hub` runs it: SQLite, the
   sample district, one worker) and one edge agent per unit.

``demo.json`` in the run folder says where everything is. :meth:`Demo.stop` stops the
agents (they flush and say goodbye), the hub, then the broker, and writes
``summary.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
import yaml

from simulators.demo.plan import (
    PARKING_WAIT_SCENE_S,
    DemoDevice,
    DemoPlanError,
    agent_config,
    demo_devices,
    demo_vehicles,
    route_csv,
    scene_rate,
)
from simulators.demo.processes import Child, ChildError
from simulators.demo.status import StatusPoller, StatusView, render
from simulators.sms_gateway import SmsGateway

log = logging.getLogger(__name__)

__all__ = ["Demo", "DemoError", "DemoOptions", "find_model_dir"]

#: How long the hub may take to answer its API after start (migrations, imports).
HUB_START_S = 90.0
#: How long a stopping agent may take to flush its outbox and say goodbye.
AGENT_STOP_S = 15.0
ROLES = ("admin", "operator", "dispatcher", "handler")


class DemoError(RuntimeError):
    """The demo could not be set up or started; the message says what and where to look."""


class BrokerHandle(Protocol):
    """What the demo needs of a broker (Mosquitto or the embedded one)."""

    host: str
    port: int | None

    def start(self) -> None:
        """Start and wait until it accepts connections."""

    def stop(self) -> None:
        """Stop and wait until the port is closed."""


@dataclass(frozen=True)
class DemoOptions:
    """How to run the demo (the ``xiuhua demo`` flags)."""

    duration: float | None = None
    speed: float = 1.0
    runs_dir: Path = Path("runs")
    broker: Literal["auto", "mosquitto", "embedded", "nats"] = "auto"
    sound: Literal["auto", "wav", "card"] = "auto"
    api_port: int | None = None
    status_interval_s: float = 2.0
    #: Also write this process's log to ``logs/demo.log`` in the run folder.
    log_to_run_dir: bool = False
    #: Run the hub's move-your-car loop (a test that judges the parking pole's reports
    #: itself turns it off, so they stay with the operators).
    parking_loop: bool = True


@dataclass
class _Layout:
    run: Path
    logs: Path = field(init=False)
    broker: Path = field(init=False)
    hub: Path = field(init=False)
    devices: Path = field(init=False)

    def __post_init__(self) -> None:
        self.logs = self.run / "logs"
        self.broker = self.run / "broker"
        self.hub = self.run / "hub"
        self.devices = self.run / "devices"
        for path in (self.logs, self.broker, self.hub, self.devices):
            path.mkdir(parents=True, exist_ok=True)


def find_model_dir(name: str = "street-detector", variable: str = "XH_DEMO_MODEL") -> Path:
    """A shipped detector: the folder in ``variable`` or ``models/NAME`` of the checkout."""
    override = os.environ.get(variable)
    candidates = [Path(override)] if override else []
    candidates.append(Path(__file__).resolve().parents[2] / "models" / name)
    for path in candidates:
        if (path / "model.onnx").is_file():
            return path
    raise DemoError(
        f"the shipped detector is missing: expected models/{name}/model.onnx in the "
        f"checkout (or set {variable} to its folder)"
    )


def _sound_card() -> bool:
    if not Path("/dev/snd").is_dir() or not any(Path("/dev/snd").glob("pcmC*p")):
        return False
    try:
        import pyaudio  # noqa: F401
    except ImportError:
        return False
    return True


def _start_shielded(broker: BrokerHandle) -> None:
    """Start ``broker`` with SIGINT blocked, so the child inherits the block.

    Mosquitto runs in the terminal's process group: without this, Ctrl-C would reach it
    at once and the agents could not say goodbye through it while the demo stops them in
    order (the demo stops the broker last, with SIGTERM).
    """
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        broker.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _new_run_dir(runs_dir: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    base = runs_dir / f"demo-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    path.mkdir(parents=True)
    return path.resolve()


class Demo:
    """The whole demo (see the module docstring): ``await start()``, then ``await stop()``."""

    def __init__(self, options: DemoOptions) -> None:
        self.options = options
        self.devices: tuple[DemoDevice, ...] = demo_devices()
        for device in self.devices:
            scene_rate(device.kind, options.speed)  # reject a bad speed before any work
        self.layout: _Layout | None = None
        self.broker: BrokerHandle | None = None
        self.broker_kind = ""
        #: The port the hub and the units connect to (Mosquitto's TLS listener).
        self.mqtt_port: int | None = None
        self.hub: Child | None = None
        self.agents: dict[str, Child] = {}
        self.tokens: dict[str, str] = {}
        self.api_url = ""
        self.started_at: float | None = None
        self._stop = asyncio.Event()
        self.last_view: StatusView | None = None
        self._log_handler: logging.Handler | None = None
        #: The stand-in SMS gateway the hub's move-your-car reminders go to.
        self.sms: SmsGateway | None = None

    # ------------------------------------------------------------------ setup

    @property
    def run_dir(self) -> Path:
        """The run folder (after :meth:`start` began)."""
        if self.layout is None:
            raise DemoError("the demo has not started")
        return self.layout.run

    def device_dir(self, device_id: str) -> Path:
        """Where a unit's config, outbox, speaker WAVs and TTS cache live."""
        return self.run_dir / "devices" / device_id

    async def start(self) -> None:
        """Set everything up and start broker, hub and agents (see the module docstring)."""
        from simulators.mosquitto import free_port

        self.layout = layout = _Layout(_new_run_dir(self.options.runs_dir))
        if self.options.log_to_run_dir:
            handler = logging.FileHandler(layout.logs / "demo.log", encoding="utf-8")
            handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
            )
            logging.getLogger().addHandler(handler)
            self._log_handler = handler
        model_dir = find_model_dir()
        general_dir = find_model_dir("general-detector", "XH_DEMO_GENERAL_MODEL")
        self.broker_kind = self._choose_broker()
        broker_port = self.mqtt_port = free_port()
        plain_port = free_port()
        api_port = self.options.api_port or free_port()
        self.api_url = f"http://127.0.0.1:{api_port}"
        settings = self._hub_settings(broker_port, api_port)
        await asyncio.to_thread(
            self._provision, settings, broker_port, plain_port, model_dir, general_dir
        )
        await self._prepare_hub(settings)
        sms_env = await self._start_sms_gateway()
        self.broker = await asyncio.to_thread(self._start_broker, broker_port)
        self.hub = Child(
            "hub",
            [
                sys.executable,
                "-m",
                "simulators.demo.hub",
                "--data-dir",
                str(layout.hub),
                "--mqtt-port",
                str(broker_port),
                "--api-port",
                str(api_port),
            ],
            layout.logs / "hub.log",
            cwd=layout.hub,
            env={
                **os.environ,
                "XH_HUB_MQTT_USERNAME": "hub",
                "XH_HUB_MQTT_PASSWORD_FILE": str(layout.broker / "hub.password"),
                **self._hub_tls_env(),
                "XH_HUB_COMMAND_TICK_S": "0.5",
                **sms_env,
                # NATS grants $share groups but delivers nothing to them (docs/brokers.md).
                **({"XH_HUB_SHARE_GROUP": ""} if self.broker_kind == "nats" else {}),
            },
        )
        self.hub.start()
        await self._wait_for_api()
        for device in self.devices:
            cwd = self.device_dir(device.device_id)
            child = Child(
                device.device_id,
                [
                    sys.executable,
                    "-m",
                    "simulators.demo.agent",
                    "--config",
                    str(cwd / "agent.yaml"),
                ],
                layout.logs / f"{device.device_id}.log",
                cwd=cwd,
            )
            child.start()
            self.agents[device.device_id] = child
        self.started_at = time.monotonic()
        self._write_manifest()

    @property
    def tls(self) -> bool:
        """Whether the broker, the hub and the units speak TLS (Mosquitto and NATS do)."""
        return self.broker_kind in ("mosquitto", "nats")

    def _hub_tls_env(self) -> dict[str, str]:
        """The hub's TLS settings as ``XH_HUB_`` variables (empty without TLS)."""
        assert self.layout is not None
        if not self.tls:
            return {}
        tls = self.layout.broker / "tls"
        return {
            "XH_HUB_MQTT_TLS_CA": str(tls / "ca.crt"),
            "XH_HUB_MQTT_TLS_CERT": str(tls / "hub.crt"),
            "XH_HUB_MQTT_TLS_KEY": str(tls / "hub.key"),
        }

    async def _start_sms_gateway(self) -> dict[str, str]:
        """Start the stand-in SMS gateway; the hub's settings that send texts to it and
        run the move-your-car loop at the demo's speed (a wait of
        :data:`PARKING_WAIT_SCENE_S` scene seconds)."""
        assert self.layout is not None
        secret = self.layout.hub / "sms.secret"
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(secrets.token_hex(32))
        self.sms = SmsGateway(secret.read_bytes().strip(), keep_requests=True)
        port = await self.sms.start()
        return {
            "XH_HUB_NOTICE_SMS_URL": f"http://127.0.0.1:{port}/sms?to={{phone}}&ref={{id}}",
            "XH_HUB_NOTICE_SMS_SECRET_FILE": str(secret),
            "XH_HUB_PARKING_WAIT_S": f"{PARKING_WAIT_SCENE_S / self.options.speed:g}",
            "XH_HUB_PARKING_TICK_S": "0.5",
            "XH_HUB_PARKING_ENABLED": "true" if self.options.parking_loop else "false",
            # The demo texts at any hour; a city keeps its quiet hours (22:00-07:00).
            "XH_HUB_NOTICE_QUIET_HOURS": "",
        }

    def _hub_settings(self, broker_port: int, api_port: int) -> Any:
        from central_hub.settings import HubSettings

        assert self.layout is not None
        tls = self.layout.broker / "tls"
        return HubSettings(
            data_dir=self.layout.hub,
            mqtt_host="127.0.0.1",
            mqtt_port=broker_port,
            mqtt_username="hub",
            mqtt_password_file=self.layout.broker / "hub.password",
            mqtt_tls_ca=tls / "ca.crt" if self.tls else None,
            mqtt_tls_cert=tls / "hub.crt" if self.tls else None,
            mqtt_tls_key=tls / "hub.key" if self.tls else None,
            api_port=api_port,
            command_tick_s=0.5,
        )

    def _provision(
        self,
        settings: Any,
        broker_port: int,
        plain_port: int,
        model_dir: Path,
        general_dir: Path,
    ) -> None:
        """Keys, broker users, ACL and each unit's config (blocking file work)."""
        from central_hub.hub import load_or_create_key
        from central_hub.services.provision import provision_device
        from edge_agent.config import ConfigError, parse_config
        from edge_agent.protocol import public_key_b64
        from simulators import scenarios
        from simulators.scenarios.cameras import scenario_camera

        assert self.layout is not None
        public_key = public_key_b64(load_or_create_key(settings.hub_key_path))
        model_key = load_or_create_key(settings.model_key_path)
        # The units load only what the hub signed, as real ones provisioned this way do:
        # the shipped models are copied into the run folder and signed there.
        model_dir, general_dir = (
            self._signed_copy(source, model_key) for source in (model_dir, general_dir)
        )
        speaker_backend = self._speaker_backend()
        for device in self.devices:
            result = provision_device(
                device.device_id,
                kind=device.kind,
                broker_dir=self.layout.broker,
                out_dir=self.layout.devices,
                public_key=public_key,
                mqtt_host="127.0.0.1",
                mqtt_port=broker_port,
                model_public_key=public_key_b64(model_key),
                tls=self.tls,
                plain_port=plain_port,
            )
            provisioned = yaml.safe_load(result.config_path.read_text(encoding="utf-8"))
            cam = device.camera
            scene_speed, detect_fps = scene_rate(device.kind, self.options.speed)
            scene = scenarios.load(cam.scenario, width=cam.width, height=cam.height)
            camera = scenario_camera(
                scene,
                camera_id=cam.camera_id,
                rules=list(cam.rules),
                source=f"scenario:{cam.scenario}?seed=0&speed={scene_speed:g}",
                detect_fps=detect_fps,
                stall_after_s=max(10.0, 3.0 / (detect_fps * scene_speed)),
            )
            state = result.config_path.parent
            route_file = None
            if device.kind == "truck":
                route_file = state / "route.csv"
                route_file.write_text(route_csv(scene.route), encoding="utf-8")
            location = None
            if camera.location is not None:
                location = (camera.location.lat, camera.location.lon)
            config = agent_config(
                provisioned,
                device,
                camera=camera.model_dump(mode="json"),
                location=location,
                state_dir=state,
                model_dir=model_dir,
                general_model_dir=general_dir,
                speaker_backend=speaker_backend,
                route_file=route_file,
                route_interval_s=1.0 / scene_speed,
            )
            try:
                parse_config(config, state, f"{device.device_id} demo config")
            except ConfigError as exc:
                raise DemoError(f"the demo's own config is invalid: {exc}") from exc
            text = f"# Provisioned by the xiuhua demo for {device.device_id}.\n" + yaml.safe_dump(
                config, sort_keys=False, allow_unicode=True
            )
            result.config_path.write_text(text, encoding="utf-8")

    def _signed_copy(self, source: Path, key: Any) -> Path:
        """``source`` copied into the run folder's ``models/`` and signed with ``key``."""
        from edge_agent.vision.package import sign_package

        assert self.layout is not None
        copy = self.layout.run / "models" / source.name
        shutil.copytree(source, copy)
        sign_package(copy, key)
        return copy

    def _speaker_backend(self) -> str:
        choice = self.options.sound
        if choice == "card" or (choice == "auto" and _sound_card()):
            return "pyaudio"
        return "wav"

    async def _prepare_hub(self, settings: Any) -> None:
        """Migrate the database, register the units, create the API users."""
        from central_hub.domain.workflow import Role
        from central_hub.hub import build_hub
        from central_hub.services.vehicles import VehicleRegistry

        assert self.layout is not None
        hub = await build_hub(settings, mqtt=False)
        try:
            for device in self.devices:
                await hub.devices.register(device.device_id, device.kind)
            for role in ROLES:
                _, token = await hub.users.add(f"demo-{role}", Role(role))
                self.tokens[role] = token
            await VehicleRegistry(hub.engine, hub.clock).import_rows(
                [(n + 2, row) for n, row in enumerate(demo_vehicles(self.devices))],
                "demo-vehicles",
                "demo",
            )
        finally:
            await hub.close()
        path = self.layout.run / "tokens.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(self.tokens, fh, indent=2)

    def _choose_broker(self) -> str:
        """``mosquitto``, ``nats`` or ``embedded``: the option, where ``auto`` is Mosquitto
        when it is installed."""
        from simulators.mosquitto import BrokerError, find_mosquitto

        choice = self.options.broker
        if choice != "auto":
            return choice
        try:
            find_mosquitto()
        except BrokerError:
            return "embedded"
        return "mosquitto"

    def _start_broker(self, port: int) -> BrokerHandle:
        from simulators.broker.process import EmbeddedBrokerProcess
        from simulators.mosquitto import BrokerError, MosquittoBroker
        from simulators.nats import NatsBroker

        assert self.layout is not None
        broker: BrokerHandle
        passwd, acl = self.layout.broker / "passwd", self.layout.broker / "acl"
        if self.broker_kind == "nats":
            tls = self.layout.broker / "tls"
            broker = NatsBroker(
                self.layout.broker / "nats",
                port=port,
                users=self._nats_users(),
                tls=(tls / "ca.crt", tls / "broker.crt", tls / "broker.key"),
            )
        elif self.broker_kind == "mosquitto":
            from central_hub.services.provision import LISTENERS_CONF

            # The listeners provisioning wrote: TLS on ``port``, plain on loopback.
            broker = MosquittoBroker(
                self.layout.broker / "mosquitto",
                listeners_file=self.layout.broker / LISTENERS_CONF,
            )
        else:
            broker = EmbeddedBrokerProcess(
                self.layout.broker / "embedded",
                port=port,
                password_file=passwd,
                acl_file=acl,
                allow_anonymous=False,
                log_path=self.layout.logs / "broker.log",
            )
        try:
            _start_shielded(broker)
        except (BrokerError, ChildError) as exc:
            raise DemoError(f"the {self.broker_kind} broker did not start: {exc}") from exc
        return broker

    def _nats_users(self) -> tuple[Any, ...]:
        """The hub's and every unit's broker user for NATS, with the topics provisioning
        grants them (NATS keeps its users in its config, with their passwords)."""
        from central_hub.services.provision import HUB_TOPICS, device_topics
        from simulators.nats import NatsUser

        assert self.layout is not None
        secret = (self.layout.broker / "hub.password").read_text(encoding="utf-8").strip()
        users = [NatsUser("hub", secret, (HUB_TOPICS,), (HUB_TOPICS,))]
        for device in self.devices:
            own = self.device_dir(device.device_id) / "mqtt.password"
            write, read = device_topics(device.device_id)
            password = own.read_text(encoding="utf-8").strip()
            users.append(NatsUser(device.device_id, password, tuple(write), tuple(read)))
        return tuple(users)

    async def _wait_for_api(self) -> None:
        assert self.hub is not None
        deadline = time.monotonic() + HUB_START_S
        headers = {"Authorization": f"Bearer {self.tokens['admin']}"}
        async with httpx.AsyncClient(base_url=self.api_url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if not self.hub.running:
                    raise DemoError(
                        f"the hub exited (status {self.hub.returncode}); its log ends:\n"
                        + self.hub.log_tail()
                    )
                try:
                    response = await client.get("/api/v1/me", headers=headers)
                    if response.status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.3)
        raise DemoError(
            f"the hub's API did not answer within {HUB_START_S:.0f} s; see logs/hub.log"
        )

    def _write_manifest(self) -> None:
        assert self.layout is not None
        assert self.broker is not None
        manifest = {
            "run_dir": str(self.layout.run),
            "api_url": self.api_url,
            "api_docs": f"{self.api_url}/api/v1/docs",
            "console": f"{self.api_url}/console/",
            "tokens_file": str(self.layout.run / "tokens.json"),
            "broker": {
                "kind": self.broker_kind,
                "host": "127.0.0.1",
                "port": self.mqtt_port,
                "tls": self.tls,
            },
            "speed": self.options.speed,
            "devices": {
                d.device_id: {
                    "kind": d.kind,
                    "scenario": d.camera.scenario,
                    "config": str(self.device_dir(d.device_id) / "agent.yaml"),
                    "pid": self.agents[d.device_id].pid,
                }
                for d in self.devices
            },
            "hub_pid": self.hub.pid if self.hub else None,
        }
        (self.layout.run / "demo.json").write_text(json.dumps(manifest, indent=2) + "\n")

    # ------------------------------------------------------------------ running

    def header(self) -> list[str]:
        """The lines above the status table."""
        elapsed = 0.0 if self.started_at is None else time.monotonic() - self.started_at
        until = f" of {self.options.duration:.0f} s" if self.options.duration is not None else ""
        broker = f"{self.mqtt_port}{' (TLS)' if self.tls else ''}" if self.broker else "?"
        lines = [
            f"xiuhua demo: {elapsed:5.0f} s{until}, speed x{self.options.speed:g}  (Ctrl-C stops)",
            f"console: {self.api_url}/console/   API: {self.api_url}/api/v1/docs",
            f"broker: {self.broker_kind} on 127.0.0.1:{broker}   "
            f"sign in as demo-operator with its token from {self.run_dir / 'tokens.json'}",
            f"logs: {self.run_dir / 'logs'}",
        ]
        if espeak_missing():
            lines.append(
                "!! espeak-ng is not installed: the poles cannot speak text (make demo installs it)"
            )
        dead = [c for c in self._children() if c.returncode is not None]
        for child in dead:
            lines.append(f"!! {child.name} exited with status {child.returncode}: see its log")
        return lines

    def _children(self) -> list[Child]:
        return [*self.agents.values(), *([self.hub] if self.hub else [])]

    def request_stop(self) -> None:
        """Ask :meth:`run` to finish (Ctrl-C, SIGTERM)."""
        self._stop.set()

    async def run(self, out: Any = None) -> int:
        """Start, show the status table until the duration ends or a stop, then stop."""
        out = out if out is not None else sys.stdout
        try:
            await self.start()
            await self._show(out)
        finally:
            await self.stop()
        if out is not None:
            out.write(f"xiuhua demo: stopped; run folder {self.run_dir}\n")
            out.flush()
        return 0

    async def _show(self, out: Any) -> None:
        poller = StatusPoller(self.api_url, self.tokens["admin"])
        tty = bool(getattr(out, "isatty", lambda: False)())
        deadline = None
        if self.options.duration is not None:
            deadline = time.monotonic() + self.options.duration
        last_plain = 0.0
        try:
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                try:
                    self.last_view = await poller.fetch()
                    table = render(self.last_view, header=self.header())
                except httpx.HTTPError as exc:
                    table = "\n".join([*self.header(), f"(hub not answering: {exc})"]) + "\n"
                if tty:
                    out.write("\x1b[H\x1b[2J" + table)
                    out.flush()
                elif time.monotonic() - last_plain >= 15.0:
                    last_plain = time.monotonic()
                    out.write(table)
                    out.flush()
                wait = self.options.status_interval_s
                if deadline is not None:
                    wait = max(0.0, min(wait, deadline - time.monotonic()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=wait)
        finally:
            await poller.close()

    async def stop(self) -> None:
        """Stop agents, hub and broker (in that order) and write ``summary.json``."""
        agents = list(self.agents.values())
        await asyncio.gather(
            *(asyncio.to_thread(a.stop, AGENT_STOP_S) for a in agents), return_exceptions=True
        )
        if self.hub is not None:
            await asyncio.to_thread(self.hub.stop, 15.0)
        if self.broker is not None:
            await asyncio.to_thread(self.broker.stop)
        if self.sms is not None:
            await self.sms.stop()
        if self.layout is not None:
            summary: dict[str, Any] = {
                "stopped_at": datetime.now(UTC).isoformat(),
                "exit_status": {c.name: c.returncode for c in self._children()},
            }
            if self.last_view is not None:
                summary["status"] = asdict(self.last_view)
            (self.layout.run / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if self._log_handler is not None:
            logging.getLogger().removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None


def espeak_missing() -> bool:
    """True when espeak-ng (the offline TTS the speakers use) is not installed."""
    return shutil.which("espeak-ng") is None


__all__ += ["DemoPlanError", "espeak_missing"]
