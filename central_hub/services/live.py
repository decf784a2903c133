"""Live view at the hub: one unit stream per camera, fanned out to every viewer.

The console opens a viewer with :meth:`LiveViews.watch`. The first viewer of a camera
makes the hub send the unit a signed ``live.start`` (lease ``lease_s``); while anyone
watches, a renewal (the same command again) goes out every third of the lease; the last
viewer leaving sends ``live.stop``. Frames arrive on the hub's own MQTT subscription to
``xh/v1/dev/+/live`` (never through ingest or the database) and each goes to every
viewer's small queue (a slow viewer loses its oldest frame, never slows the others).
Each viewer is an audit row (``live_views``): who, which camera, from which case, from
when to when, how many frames.

Live commands are published directly (QoS 1, a lease-long expiry), not queued in the
``commands`` table: a renewal every few seconds would bury the unit's command list, and
a start that cannot go out now is worth nothing later. The unit still checks each
signature, expiry and replay like any command's.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.adapters.mqtt import Inbound
from central_hub.db.schema import cases, live_views
from central_hub.domain.live import Audience, Camera
from central_hub.errors import BrokerError
from edge_agent.protocol import (
    TOPIC_ROOT,
    Channel,
    LiveFrame,
    ProtocolError,
    decode_from_topic,
    encode,
    sign_command,
    topic,
)

log = logging.getLogger(__name__)

__all__ = ["LIVE_FILTER", "LiveLink", "LiveViewRow", "LiveViews", "Viewer"]

#: The topic filter of every unit's live frames (a plain subscription: each hub process
#: that serves viewers needs every frame of its cameras).
LIVE_FILTER = f"{TOPIC_ROOT}/dev/+/{Channel.LIVE.value}"
#: Frames a viewer may fall behind before its oldest is dropped.
VIEWER_QUEUE = 2
#: How often the housekeeping loop looks at renewals and ended viewers.
TICK_S = 0.5


class LiveLink(Protocol):
    """What the live view needs of the broker: to publish its commands. Frames come the
    other way, handed to :meth:`LiveViews.deliver` by the session that receives them
    (``HubMqtt.tap`` on the hub's one session, subscribed to LIVE_FILTER)."""

    @property
    def connected(self) -> bool:
        """True while messages can be published."""
        ...

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Publish; raise BrokerError on failure."""
        ...

    async def start(self) -> None:
        """Connect (in the background) and subscribe."""
        ...

    async def stop(self) -> None:
        """Disconnect."""
        ...


class LiveViewRow(BaseModel):
    """One audit row: who watched which camera, when, from which case."""

    model_config = ConfigDict(frozen=True)

    id: int
    device_id: str
    camera_id: str
    user_name: str
    case_id: int | None
    started_at: datetime
    ended_at: datetime | None
    frames: int


@dataclass
class Viewer:
    """One open viewer: its frames come on :attr:`queue` (None: the stream ended)."""

    id: int
    camera: Camera
    view_id: int
    queue: asyncio.Queue[LiveFrame | None]
    frames: int = 0

    async def frames_until_closed(self) -> AsyncIterator[LiveFrame]:
        """The frames as they come, until the hub shuts the viewer."""
        while True:
            frame = await self.queue.get()
            if frame is None:
                return
            self.frames += 1
            yield frame


class LiveViews:
    """See the module docstring. Run :meth:`run` as a hub task; the session that receives
    the frames hands them to :meth:`deliver` (``HubMqtt.tap``), and ``link`` is only used
    to publish (it is started and stopped by its owner)."""

    def __init__(
        self,
        engine: AsyncEngine,
        key: Ed25519PrivateKey,
        link: LiveLink | None,
        clock: Callable[[], datetime],
        *,
        lease_s: float = 30.0,
        fps: float = 5.0,
        width: int = 640,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.key = key
        self.link = link
        self.clock = clock
        self.lease_s = lease_s
        self.fps = fps
        self.width = width
        self._now = monotonic
        self.audience = Audience(renew_s=lease_s / 3)
        self._viewers: dict[Camera, dict[int, Viewer]] = {}
        self._ids = itertools.count(1)
        #: Viewers gone (their audit rows to close, a stop to send), for the housekeeper.
        self._ended: asyncio.Queue[tuple[Viewer, datetime, bool]] = asyncio.Queue()
        self._kick = asyncio.Event()
        #: Counters: streams asked for (a renewal is not one), frames received, fanned out.
        self.starts = 0
        self.received = 0
        self.delivered = 0
        #: The newest frame of each watched camera (the console's overlay reads it).
        self.latest: dict[Camera, LiveFrame] = {}

    @property
    def available(self) -> bool:
        """Whether live view can work here (a broker connection)."""
        return self.link is not None

    # ------------------------------------------------------------------ viewers

    @contextlib.asynccontextmanager
    async def watch(
        self, device_id: str, camera_id: str, *, user: str, case_id: int | None = None
    ) -> AsyncIterator[Viewer]:
        """Open a viewer of ``device_id``'s ``camera_id`` for ``user`` (audited).

        Leaving the block ends the viewer without awaiting anything (it may be leaving
        because its HTTP request was cancelled): the audit row and a ``live.stop`` for
        the last viewer are finished by :meth:`run`.
        """
        camera = Camera(device_id, camera_id)
        now = self.clock()
        async with self.engine.begin() as conn:
            view_id = int(
                (
                    await conn.execute(
                        live_views.insert()
                        .values(
                            device_id=device_id,
                            camera_id=camera_id,
                            user_name=user,
                            case_id=case_id,
                            started_at=now,
                        )
                        .returning(live_views.c.id)
                    )
                ).scalar_one()
            )
        viewer = Viewer(next(self._ids), camera, view_id, asyncio.Queue(VIEWER_QUEUE))
        self._viewers.setdefault(camera, {})[viewer.id] = viewer
        first = self.audience.join(camera, viewer.id)
        log.info("live: %s watches %s/%s (view %d)", user, device_id, camera_id, view_id)
        if first:
            self.starts += 1
            await self._ask(camera)
        try:
            yield viewer
        finally:
            self._viewers.get(camera, {}).pop(viewer.id, None)
            last = self.audience.leave(camera, viewer.id)
            if last:
                self._viewers.pop(camera, None)
                self.latest.pop(camera, None)
            self._ended.put_nowait((viewer, self.clock(), last))
            self._kick.set()

    async def case_exists(self, case_id: int) -> bool:
        """Whether ``case_id`` names a case (a view is audited with it)."""
        async with self.engine.connect() as conn:
            found = await conn.execute(sa.select(cases.c.id).where(cases.c.id == case_id))
            return found.first() is not None

    def latest_of(self, device_id: str, camera_id: str) -> LiveFrame | None:
        """The newest frame of a watched camera (None while nobody watches it)."""
        return self.latest.get(Camera(device_id, camera_id))

    def viewers(self, device_id: str, camera_id: str) -> int:
        """How many watch this camera now."""
        return self.audience.viewers(Camera(device_id, camera_id))

    async def history(
        self, *, device_id: str | None = None, case_id: int | None = None, limit: int = 20
    ) -> list[LiveViewRow]:
        """The newest audit rows of a device or of a case."""
        query = sa.select(live_views).order_by(live_views.c.id.desc()).limit(limit)
        if device_id is not None:
            query = query.where(live_views.c.device_id == device_id)
        if case_id is not None:
            query = query.where(live_views.c.case_id == case_id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [LiveViewRow.model_validate(r._mapping) for r in rows]

    # ------------------------------------------------------------------ frames

    def deliver(self, message: Inbound) -> None:
        """Fan one received live frame out to its camera's viewers (bad ones are dropped)."""
        try:
            device_id, _, frame = decode_from_topic(message.topic, message.payload)
        except ProtocolError as exc:
            log.warning("live: dropped a frame on %s: %s", message.topic, exc)
            return
        assert isinstance(frame, LiveFrame)  # the topic's channel is LIVE
        self.received += 1
        camera = Camera(device_id, frame.camera_id)
        watchers = self._viewers.get(camera)
        if not watchers:
            return  # nobody watches (any more): the unit's lease lapses by itself
        self.latest[camera] = frame
        for viewer in watchers.values():
            if viewer.queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    viewer.queue.get_nowait()
            viewer.queue.put_nowait(frame)
            self.delivered += 1

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Keep leases and audit rows until cancelled; ends every viewer on the way out."""
        try:
            await self._housekeep()
        finally:
            self.close()

    def close(self) -> None:
        """End every open viewer's stream (their requests then finish)."""
        for watchers in list(self._viewers.values()):
            for viewer in watchers.values():
                with contextlib.suppress(asyncio.QueueFull):
                    if viewer.queue.full():
                        viewer.queue.get_nowait()
                    viewer.queue.put_nowait(None)

    async def _housekeep(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), TICK_S)
            self._kick.clear()
            await self.tick()

    async def tick(self) -> None:
        """Close the audit rows of viewers gone, stop what nobody watches, renew leases."""
        while not self._ended.empty():
            viewer, ended_at, last = self._ended.get_nowait()
            async with self.engine.begin() as conn:
                await conn.execute(
                    live_views.update()
                    .where(live_views.c.id == viewer.view_id)
                    .values(ended_at=ended_at, frames=viewer.frames)
                )
            if last and self.audience.viewers(viewer.camera) == 0:
                await self._send(viewer.camera, "live.stop", {"camera_id": viewer.camera.camera_id})
        for camera in self.audience.due(self._now()):
            await self._ask(camera)

    async def _ask(self, camera: Camera) -> None:
        """Send (or renew) the lease of ``camera``; a failure is retried at the next tick."""
        params = {
            "camera_id": camera.camera_id,
            "lease_s": self.lease_s,
            "fps": self.fps,
            "width": self.width,
        }
        if await self._send(camera, "live.start", params):
            self.audience.asked(camera, self._now())

    async def _send(self, camera: Camera, kind: str, params: dict[str, object]) -> bool:
        if self.link is None or not self.link.connected:
            return False
        command = sign_command(
            self.key,
            device_id=camera.device_id,
            kind=kind,
            params=params,
            issued_at=self.clock(),
            ttl=timedelta(seconds=max(self.lease_s, 10.0)),
        )
        try:
            await self.link.publish(topic(camera.device_id, Channel.CMD), encode(command), qos=1)
        except BrokerError as exc:
            log.warning("live: could not send %s to %s: %s", kind, camera.device_id, exc)
            return False
        return True
