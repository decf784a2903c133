"""Builders and fakes for tests and benchmarks: valid wire messages and an in-memory source."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from central_hub.adapters.mqtt import Inbound
from edge_agent.protocol import Channel, Event, Status, encode, topic, uuid7

if TYPE_CHECKING:
    from central_hub.hub import Hub
    from central_hub.settings import HubSettings

__all__ = [
    "PG_ADMIN_URL",
    "TINY_JPEG",
    "FakeClock",
    "ListSource",
    "RecordingPublisher",
    "fresh_pg_database",
    "hub_cli",
    "inbound",
    "make_event",
    "make_status",
    "running_hub",
]

#: A PostgreSQL role that may create databases, where benches and tests find one.
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextlib.contextmanager
def fresh_pg_database(admin_url: str, tag: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one run; its SQLAlchemy URL. Dropped after.

    ``admin_url`` is a libpq URL of a role that may create databases.
    """
    import asyncpg

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    name = f"xh_{tag}_{os.getpid()}_{uuid7()[-8:]}"
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


#: The smallest bytes that pass the protocol's JPEG check (SOI marker and padding).
TINY_JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 12 + b"\xff\xd9"

#: Default event location: the market pole of the sample district.
MARKET_POLE = (28.6472, 121.2615)


def hub_cli(
    data: Path | None,
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float = 120,
) -> str:
    """Run ``central-hub [--data-dir DATA] ARGS...`` as a newcomer would (tests and the
    benchmarks that serve a hub); its standard output, stripped. A failing command raises
    RuntimeError with the command and its standard error."""
    where = ["--data-dir", str(data)] if data is not None else []
    done = subprocess.run(
        [sys.executable, "-m", "central_hub.cli", *where, *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        env=env,
        cwd=cwd,
    )
    if done.returncode != 0:
        raise RuntimeError(f"central-hub {' '.join(args)}: {done.stderr.strip()[-2000:]}")
    return done.stdout.strip()


def make_event(
    device_id: str = "pole-1",
    *,
    code: str = "0504",
    seq: int = 1,
    at: datetime | None = None,
    lat: float = MARKET_POLE[0],
    lon: float = MARKET_POLE[1],
    snapshot: bytes | None = None,
    frame: bytes | None = None,
    event_id: str | None = None,
    plate: str | None = None,
) -> Event:
    """A valid event for ``device_id`` (at the market pole unless told otherwise), with
    the licence plate ``plate`` read when given."""
    at = at or datetime.now(UTC)
    fields: dict[str, Any] = {
        "event_id": event_id or uuid7(int(at.timestamp() * 1000)),
        "device_id": device_id,
        "camera_id": "cam-1",
        "seq": seq,
        "kind": "shop_front_overflow",
        "code": code,
        "started_at": at - timedelta(seconds=60),
        "detected_at": at,
        "dwell_s": 60.0,
        "confidence": 0.8,
        "objects": [{"label": "goods", "score": 0.8, "box": [0.1, 0.1, 0.3, 0.4], "track_id": 1}],
        "zone": "door-line",
        "location": {"lat": lat, "lon": lon, "source": "fixed"},
        "model": {"name": "xh-det", "version": "1"},
    }
    for name, image in (("snapshot", snapshot), ("frame", frame)):
        if image is not None:
            fields[name] = {"jpeg_b64": base64.b64encode(image).decode(), "width": 64, "height": 48}
    if plate is not None:
        fields["plate"] = {"text": plate, "score": 0.9}
    return Event.model_validate(fields)


def make_status(
    device_id: str = "pole-1",
    state: str = "online",
    at: datetime | None = None,
    *,
    boot_id: str = "boot-1",
) -> Status:
    """A status message."""
    return Status.model_validate(
        {
            "device_id": device_id,
            "state": state,
            "boot_id": boot_id,
            "fw": "0.1.0",
            "config_version": 0,
            "ts": at or datetime.now(UTC),
        }
    )


def inbound(message: Any, channel: Channel | None = None, *, mid: int = 0) -> Inbound:
    """Wrap a protocol message as if it had arrived from the broker."""
    ch = (
        channel
        or {
            "xh.event/1": Channel.EVENT,
            "xh.status/1": Channel.STATUS,
            "xh.telemetry/1": Channel.TELEMETRY,
            "xh.cmd_ack/1": Channel.CMD_ACK,
            "xh.config_reported/1": Channel.CONFIG_REPORTED,
            "xh.track/1": Channel.TRACK,
            "xh.snapshot/1": Channel.SNAPSHOT,
        }[message.SCHEMA]
    )
    return Inbound(
        topic=topic(message.device_id, ch), payload=encode(message), qos=1, retain=False, mid=mid
    )


class ListSource:
    """A :class:`central_hub.workers.ingest.MessageSource` fed by the test; records acks."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Inbound] = asyncio.Queue()
        self.acked: list[Inbound] = []

    def put(self, *items: Inbound) -> None:
        """Make messages available to the worker."""
        for item in items:
            self._queue.put_nowait(item)

    async def receive(self, max_items: int) -> list[Inbound]:
        """Wait for one message, then take what else is queued, up to ``max_items``."""
        out = [await self._queue.get()]
        while len(out) < max_items and not self._queue.empty():
            out.append(self._queue.get_nowait())
        return out

    def ack(self, messages: list[Inbound]) -> None:
        """Record the acks."""
        self.acked.extend(messages)


class FakeClock:
    """A clock tests move by hand; call it to read the time."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        """The current fake time."""
        return self.now

    def advance(self, **delta: float) -> datetime:
        """Move forward by ``timedelta(**delta)``; return the new time."""
        self.now += timedelta(**delta)
        return self.now


class RecordingPublisher:
    """A :class:`central_hub.services.publisher.Publisher` that records what it sends."""

    def __init__(self, connected: bool = True) -> None:
        self.connected = connected
        self.sent: list[tuple[str, bytes, int, bool]] = []

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Record the message."""
        self.sent.append((topic, payload, qos, retain))


@contextlib.asynccontextmanager
async def running_hub(settings: HubSettings, *, api: bool = False) -> AsyncIterator[Hub]:
    """A hub built from ``settings`` and running (ingest, commands, with ``api`` the API) as
    ``central-hub serve`` runs it, subscribed at its broker before this yields; stopped and
    closed after."""
    from central_hub.app import run_hub
    from central_hub.hub import build_hub

    hub = await build_hub(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(run_hub(hub, settings, api=api, stop=stop))
    try:
        if hub.mqtt is not None:
            async with asyncio.timeout(15):
                await hub.mqtt.wait_subscribed()
        yield hub
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await hub.close()
