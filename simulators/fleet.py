"""Fleet simulator: N virtual devices that speak the wire protocol, without vision, for load.

Each virtual device announces itself (retained ``status`` online), sends ``telemetry``
every ``telemetry_interval_s`` and an ``event`` with a small JPEG snapshot every
``event_interval_s`` (phases spread at random so the load is even), and answers commands
on its ``cmd`` topic: it verifies the hub's signature, target and expiry like a real unit
(when given the hub's public key) and acks ``received`` then ``succeeded`` (or
``rejected``/``expired`` with the reason). At the end it says ``offline`` and reports what
it sent (:class:`FleetReport`).

All devices share one MQTT connection (one paho client and its network thread): 500
devices cost one socket, not 500 threads. The broker user therefore needs the hub's
rights on ``xh/v1/#`` (or an anonymous test broker), and there is one connection-level
last will, not one per device.

The pure part (:class:`FleetPlan`, :func:`device_ids`, :func:`build_event`,
:func:`build_telemetry`, :func:`answer_command`) is separate from the adapter
(:class:`Fleet`). Run it as ``python -m simulators.fleet --port N --devices 500``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import heapq
import io
import json
import logging
import random
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_agent import protocol

log = logging.getLogger(__name__)

__all__ = [
    "EVENT_CODES",
    "CommandAnswer",
    "Fleet",
    "FleetError",
    "FleetExecutor",
    "FleetPlan",
    "FleetReport",
    "answer_command",
    "build_event",
    "build_telemetry",
    "device_ids",
    "main",
    "small_jpeg",
]

#: Event (code, kind, label) a virtual device raises, picked at random per event.
EVENT_CODES: tuple[tuple[str, str, str], ...] = (
    ("0501", "unlicensed_vendor", "stall"),
    ("0504", "shop_front_overflow", "goods"),
    ("0505", "illegal_parking", "car"),
    ("0102", "exposed_garbage", "garbage"),
    ("2103", "bin_overflow", "bin_overflow"),
)
#: Centres the virtual devices are spread around (the sample district's two streets).
SITES: tuple[tuple[float, float], ...] = ((28.6472, 121.2615), (28.6455, 121.2650))
MODEL = protocol.ModelRef(name="street-detector", version="1.0.0")


class FleetError(RuntimeError):
    """The fleet could not connect or was misconfigured."""


@dataclass(frozen=True)
class FleetPlan:
    """How many devices, how often each sends what, and the random seed."""

    devices: int = 10
    event_interval_s: float = 10.0
    telemetry_interval_s: float = 30.0
    id_prefix: str = "sim"
    seed: int = 0
    snapshot: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.devices <= 100_000:
            raise FleetError(f"devices must be 1..100000, got {self.devices}")
        if self.event_interval_s <= 0 or self.telemetry_interval_s <= 0:
            raise FleetError("event and telemetry intervals must be positive")
        protocol.check_device_id(f"{self.id_prefix}-0")


@dataclass
class FleetReport:
    """What the fleet sent and received, with per-event send times for latency figures."""

    devices: int = 0
    status: int = 0
    telemetry: int = 0
    events: int = 0
    events_acked: int = 0
    commands: int = 0
    acks: int = 0
    commands_refused: int = 0
    publish_failures: int = 0
    #: event_id → wall-clock time.time() when it was handed to the client.
    event_sent_at: dict[str, float] = field(default_factory=dict, repr=False)
    #: cmd_id → wall-clock time the fleet received it.
    command_seen_at: dict[str, float] = field(default_factory=dict, repr=False)

    def summary(self) -> dict[str, int]:
        """The counters, without the per-message maps."""
        data = asdict(self)
        data.pop("event_sent_at")
        data.pop("command_seen_at")
        return data


def device_ids(plan: FleetPlan) -> list[str]:
    """The virtual devices' ids: ``{prefix}-0000`` ..."""
    width = max(4, len(str(plan.devices - 1)))
    return [f"{plan.id_prefix}-{i:0{width}d}" for i in range(plan.devices)]


def small_jpeg(width: int = 160, height: int = 120, seed: int = 0) -> bytes:
    """A small noisy JPEG (a few KB) to stand in for an evidence snapshot."""
    from PIL import Image

    rng = random.Random(seed)
    pixels = bytes(rng.randrange(60, 200) for _ in range(width * height))
    out = io.BytesIO()
    Image.frombytes("L", (width, height), pixels).save(out, format="JPEG", quality=70)
    return out.getvalue()


def device_site(device_id: str, seed: int = 0) -> tuple[float, float]:
    """A fixed position for a virtual device: within ~150 m of one of :data:`SITES`."""
    rng = random.Random(f"{seed}:{device_id}")
    lat, lon = SITES[rng.randrange(len(SITES))]
    return lat + rng.uniform(-0.0012, 0.0012), lon + rng.uniform(-0.0012, 0.0012)


def build_event(
    device_id: str,
    seq: int,
    now: datetime,
    rng: random.Random,
    *,
    site: tuple[float, float],
    snapshot: bytes | None,
) -> protocol.Event:
    """One plausible event of a virtual device."""
    code, kind, label = EVENT_CODES[rng.randrange(len(EVENT_CODES))]
    x, y = rng.uniform(0.05, 0.6), rng.uniform(0.3, 0.6)
    box = (round(x, 4), round(y, 4), round(x + 0.2, 4), round(y + 0.3, 4))
    snap = None
    if snapshot is not None:
        snap = protocol.Snapshot(
            jpeg_b64=base64.b64encode(snapshot).decode("ascii"), width=160, height=120
        )
    return protocol.Event(
        event_id=protocol.uuid7(),
        device_id=device_id,
        camera_id="cam-1",
        seq=seq,
        kind=kind,
        code=code,
        started_at=now,
        detected_at=now,
        dwell_s=round(rng.uniform(60, 600), 1),
        confidence=round(rng.uniform(0.5, 0.99), 3),
        objects=(
            protocol.DetectedObject(
                label=label, score=round(rng.uniform(0.5, 0.99), 3), box=box, track_id=seq
            ),
        ),
        zone="zone-1",
        location=protocol.Location(lat=site[0], lon=site[1], source="fixed"),
        snapshot=snap,
        model=MODEL,
    )


def build_telemetry(device_id: str, now: datetime, uptime_s: float) -> protocol.Telemetry:
    """A heartbeat of a healthy virtual device."""
    return protocol.Telemetry(
        device_id=device_id,
        ts=now,
        uptime_s=uptime_s,
        fps=2.0,
        inference_ms=35.0,
        outbox_depth=0,
        outbox_bytes=0,
        evicted=0,
    )


#: Carries out a command a virtual device verified that takes time (a model install):
#: returns the final ack's ``(state, detail)``, e.g. ``("succeeded", "installed 1.1.0")``.
FleetExecutor = Callable[[str, protocol.Command], Awaitable[tuple[str, str]]]


@dataclass(frozen=True)
class CommandAnswer:
    """What a virtual device makes of a command: the command if it verified, and its acks."""

    command: protocol.Command | None
    acks: list[protocol.CommandAck]


def answer_command(
    device_id: str,
    payload: bytes,
    *,
    now: datetime,
    public_key: Any | None,
    replay: protocol.ReplayGuard,
) -> CommandAnswer:
    """The acks a virtual device sends for a command it received (pure).

    With ``public_key`` the command is verified like a real unit does (signature,
    target, expiry, replay); without, only its shape is checked. A command that fails is
    answered ``rejected``/``expired`` with the reason, as the real agent does.
    """
    try:
        if public_key is not None:
            cmd = protocol.verify_command(
                payload, public_key=public_key, device_id=device_id, now=now, replay=replay
            )
        else:
            cmd = protocol.decode(protocol.Command, payload)
    except protocol.CommandRejected as exc:
        refused = protocol.CommandAck(
            cmd_id=exc.cmd_id or "unknown",
            device_id=device_id,
            state=exc.ack_state,
            detail=exc.detail[:2000],
            ts=now,
        )
        return CommandAnswer(None, [refused])
    except protocol.ProtocolError as exc:
        refused = protocol.CommandAck(
            cmd_id="unknown", device_id=device_id, state="rejected", detail=str(exc), ts=now
        )
        return CommandAnswer(None, [refused])
    return CommandAnswer(
        cmd,
        [
            protocol.CommandAck(cmd_id=cmd.cmd_id, device_id=device_id, state="received", ts=now),
            protocol.CommandAck(
                cmd_id=cmd.cmd_id,
                device_id=device_id,
                state="succeeded",
                detail=f"{cmd.kind} done (simulated)",
                ts=now,
            ),
        ],
    )


class Fleet:
    """The virtual devices on one MQTT connection (see the module docstring)."""

    def __init__(
        self,
        plan: FleetPlan,
        *,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        public_key: Any | None = None,
        client_id: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        executors: Mapping[str, FleetExecutor] | None = None,
    ) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.plan = plan
        #: Command kinds carried out in their own task (see :data:`FleetExecutor`); the
        #: rest are answered at once.
        self.executors = dict(executors or {})
        #: The model each device reports in its status (``name@version`` after an install).
        self.models = dict.fromkeys(device_ids(plan), "street-detector")
        self._tasks: set[asyncio.Task[None]] = set()
        self.ids = device_ids(plan)
        self.report = FleetReport(devices=plan.devices)
        self._clock = clock
        self._public_key = public_key
        self._replay: dict[str, protocol.MemoryReplayGuard] = {}
        self._rng = random.Random(plan.seed)
        self._jpeg = small_jpeg(seed=plan.seed) if plan.snapshot else None
        self._sites = {d: device_site(d, plan.seed) for d in self.ids}
        self._seq = dict.fromkeys(self.ids, 0)
        self._host, self._port = host, port
        self._mids: dict[int, str] = {}
        self._early: set[int] = set()
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = time.monotonic()
        self._client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"fleet-{plan.id_prefix}-{plan.seed}",
            clean_session=True,
            protocol=paho.MQTTv311,
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        self._client.max_inflight_messages_set(10_000)
        self._client.max_queued_messages_set(0)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message

    # ------------------------------------------------------------------ paho thread

    def _on_connect(self, client: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the fleet: %s", reason)
            return
        client.subscribe(f"{protocol.TOPIC_ROOT}/dev/+/cmd", qos=1)
        self._connected.set()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._connected.clear()
        log.warning("fleet disconnected: %s", reason)

    def _on_publish(self, _c: Any, _u: Any, mid: int, _r: Any, _p: Any) -> None:
        # The callback may run before publish() has returned the mid to the loop side.
        with self._lock:
            event_id = self._mids.pop(mid, None)
            if event_id is None:
                if len(self._early) > 50_000:  # QoS 0 mids nobody waits for
                    self._early.clear()
                self._early.add(mid)
            elif event_id:
                self.report.events_acked += 1

    def _on_message(self, _c: Any, _u: Any, message: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._command, message.topic, bytes(message.payload))

    # ------------------------------------------------------------------ loop side

    def _publish(
        self, topic: str, payload: bytes, qos: int, retain: bool = False, event_id: str = ""
    ) -> int | None:
        """Hand a message to paho (never under our lock: paho takes its own locks)."""
        import paho.mqtt.client as paho

        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            self.report.publish_failures += 1
            return None
        mid = int(info.mid)
        with self._lock:
            if mid in self._early:
                self._early.discard(mid)
                if event_id:
                    self.report.events_acked += 1
            elif qos > 0:
                self._mids[mid] = event_id
        return mid

    def _command(self, topic: str, payload: bytes) -> None:
        try:
            device_id, channel = protocol.parse_topic(topic)
        except protocol.TopicError:
            return
        if channel is not protocol.Channel.CMD or device_id not in self._seq:
            return
        self.report.commands += 1
        replay = self._replay.setdefault(device_id, protocol.MemoryReplayGuard())
        answer = answer_command(
            device_id, payload, now=self._clock(), public_key=self._public_key, replay=replay
        )
        acks = answer.acks
        executor = self.executors.get(answer.command.kind) if answer.command else None
        if answer.command is not None and executor is not None:
            self._send_acks(device_id, acks[:1])  # received; the outcome comes later
            task = asyncio.get_running_loop().create_task(
                self._execute(device_id, answer.command, executor)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        if acks and acks[-1].state != "succeeded":
            self.report.commands_refused += 1
        elif acks:
            self.report.command_seen_at[acks[-1].cmd_id] = time.time()
        self._send_acks(device_id, acks)

    def _send_acks(self, device_id: str, acks: Sequence[protocol.CommandAck]) -> None:
        ack_topic = protocol.topic(device_id, protocol.Channel.CMD_ACK)
        for ack in acks:
            self._publish(ack_topic, protocol.encode(ack), 1)
            self.report.acks += 1

    async def _execute(
        self, device_id: str, command: protocol.Command, executor: FleetExecutor
    ) -> None:
        try:
            state, detail = await executor(device_id, command)
        except Exception as exc:  # a simulated unit reports what broke, as an agent does
            state, detail = "failed", f"{type(exc).__name__}: {exc}"
        if state == "succeeded":
            self.report.command_seen_at[command.cmd_id] = time.time()
        else:
            self.report.commands_refused += 1
        ack = protocol.CommandAck(
            cmd_id=command.cmd_id,
            device_id=device_id,
            state=state,
            detail=detail[:2000],
            ts=self._clock(),
        )
        self._send_acks(device_id, [ack])
        self._status(device_id, "online")  # the model it now runs

    def _status(self, device_id: str, state: str) -> None:
        status = protocol.Status(
            device_id=device_id,
            state=state,
            boot_id=f"sim{self.plan.seed}",
            fw="fleet-sim",
            model=self.models.get(device_id, "street-detector")[:64],
            config_version=0,
            ts=self._clock(),
        )
        topic = protocol.topic(device_id, protocol.Channel.STATUS)
        self._publish(topic, protocol.encode(status), 1, retain=True)
        self.report.status += 1

    def _send_event(self, device_id: str) -> None:
        self._seq[device_id] += 1
        event = build_event(
            device_id,
            self._seq[device_id],
            self._clock(),
            self._rng,
            site=self._sites[device_id],
            snapshot=self._jpeg,
        )
        payload = protocol.encode(event)
        topic = protocol.topic(device_id, protocol.Channel.EVENT)
        sent_at = time.time()
        if self._publish(topic, payload, 1, event_id=event.event_id) is not None:
            self.report.events += 1
            self.report.event_sent_at[event.event_id] = sent_at

    def _send_telemetry(self, device_id: str) -> None:
        tel = build_telemetry(device_id, self._clock(), time.monotonic() - self._started)
        self._publish(
            protocol.topic(device_id, protocol.Channel.TELEMETRY), protocol.encode(tel), 0
        )
        self.report.telemetry += 1

    async def connect(self, wait_s: float = 10.0) -> None:
        """Connect and announce every device online."""
        self._loop = asyncio.get_running_loop()
        try:
            await asyncio.to_thread(self._client.connect, self._host, self._port, 30)
        except OSError as exc:
            raise FleetError(f"cannot reach the broker {self._host}:{self._port}: {exc}") from exc
        self._client.loop_start()
        if not await asyncio.to_thread(self._connected.wait, wait_s):
            self._client.loop_stop()
            raise FleetError(f"the broker at {self._host}:{self._port} did not accept the fleet")
        for device_id in self.ids:
            self._status(device_id, "online")

    async def run(self, duration_s: float, *, events: bool = True) -> FleetReport:
        """Send telemetry and events on schedule for ``duration_s`` seconds."""
        rng = random.Random(self.plan.seed + 1)
        now = time.monotonic()
        due: list[tuple[float, int, str, str]] = []
        for n, device_id in enumerate(self.ids):
            if events:
                due.append((now + rng.uniform(0, self.plan.event_interval_s), n, "e", device_id))
            tel_at = now + rng.uniform(0, self.plan.telemetry_interval_s)
            due.append((tel_at, n, "t", device_id))
        heapq.heapify(due)
        end = now + duration_s
        while due:
            at, n, what, device_id = due[0]
            if at >= end:
                break
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            heapq.heappop(due)
            if what == "e":
                self._send_event(device_id)
                heapq.heappush(due, (at + self.plan.event_interval_s, n, what, device_id))
            else:
                self._send_telemetry(device_id)
                heapq.heappush(due, (at + self.plan.telemetry_interval_s, n, what, device_id))
        remaining = end - time.monotonic()
        if remaining > 0:
            await asyncio.sleep(remaining)
        return self.report

    async def wait_acked(self, wait_s: float = 30.0) -> bool:
        """Wait until the broker has acknowledged every event; True if it has."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            with self._lock:
                if not any(self._mids.values()):
                    return True
            await asyncio.sleep(0.05)
        return False

    async def close(self) -> None:
        """Say every device is offline, then disconnect."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        if self._connected.is_set():
            for device_id in self.ids:
                self._status(device_id, "offline")
            await self.wait_acked(5.0)
        await asyncio.to_thread(self._client.disconnect)
        await asyncio.to_thread(self._client.loop_stop)


def _read(path: str | None) -> str | None:
    return Path(path).read_text(encoding="utf-8").strip() if path else None


async def _cli(args: argparse.Namespace) -> dict[str, Any]:
    key_text = _read(args.hub_key)
    key = protocol.load_public_key(key_text) if key_text else None
    password = _read(args.password_file)
    fleet = Fleet(
        FleetPlan(
            devices=args.devices,
            event_interval_s=args.event_interval,
            telemetry_interval_s=args.telemetry_interval,
            id_prefix=args.prefix,
            seed=args.seed,
        ),
        host=args.host,
        port=args.port,
        username=args.username,
        password=password,
        public_key=key,
    )
    await fleet.connect()
    try:
        report = await fleet.run(args.duration)
        await fleet.wait_acked()
    finally:
        await fleet.close()
    return report.summary()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m simulators.fleet``: run a fleet and print its report as JSON."""
    parser = argparse.ArgumentParser(prog="python -m simulators.fleet", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--devices", type=int, default=10)
    parser.add_argument("--event-interval", type=float, default=10.0, help="s between events")
    parser.add_argument("--telemetry-interval", type=float, default=30.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--prefix", default="sim", help="device id prefix")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--username")
    parser.add_argument("--password-file")
    parser.add_argument("--hub-key", help="file with the hub's public key (verifies commands)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        summary = asyncio.run(_cli(args))
    except (FleetError, OSError, protocol.ProtocolError) as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
