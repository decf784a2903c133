"""Live view on demand: stream a camera's frames while the hub holds a lease.

``live.start`` (signed like every command; a forged or expired one never gets here)
grants or renews a lease on one camera for ``lease_s`` seconds; ``live.stop`` ends it.
While a lease is held the :class:`LiveStreamer` takes the frames the running pipeline
already captured and detected (a tap, no second capture or inference), resizes them to
the asked width, encodes a JPEG and publishes it QoS 0 on the ``live`` channel, never
through the outbox: a lost live frame is not worth resending. A lease not renewed in
time lapses and the camera stops.

The pure part (:class:`LeaseBook`, :func:`pace`) decides who streams and how fast: at
most ``max_cameras`` cameras at once, and a bandwidth cap shared by the streams that
lowers the frame rate first and the JPEG quality after, so live view never takes the
link from the unit's events.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from edge_agent import protocol
from edge_agent.config import LiveSection
from edge_agent.link.commands import CommandFailed, CommandRefused

log = logging.getLogger(__name__)

__all__ = [
    "Lease",
    "LeaseBook",
    "LiveRefused",
    "LiveRequest",
    "LiveStreamer",
    "Pace",
    "pace",
    "parse_start",
]

#: The JPEG quality steps the bandwidth cap walks down once the rate is at its floor.
QUALITY_STEPS = (70, 55, 40, 30)
#: Below this frame rate the cap lowers the quality instead (a picture every 2 s).
MIN_FPS = 0.5


class LiveRefused(ValueError):
    """A live command the unit will not carry out; the message names the field or limit."""


@dataclass(frozen=True)
class LiveRequest:
    """The parameters of a ``live.start``: which camera, how long, how fast, how wide."""

    camera_id: str
    lease_s: float
    fps: float
    width: int


def parse_start(params: Mapping[str, Any], limits: LiveSection) -> LiveRequest:
    """Check a ``live.start``'s parameters against the unit's limits (pure).

    ``fps`` and ``width`` are optional (the unit's defaults) and are lowered to the
    unit's maximum, never refused for being high; a missing camera or a lease outside
    ``1..max_lease_s`` is refused naming the parameter.
    """
    camera = params.get("camera_id")
    if not isinstance(camera, str) or not camera:
        raise LiveRefused("params.camera_id: a camera id is required")
    lease = params.get("lease_s")
    if not isinstance(lease, int | float) or isinstance(lease, bool):
        raise LiveRefused("params.lease_s: a number of seconds is required")
    if not 1 <= lease <= limits.max_lease_s:
        raise LiveRefused(f"params.lease_s: must be 1..{limits.max_lease_s:g}, got {lease:g}")
    fps = params.get("fps", limits.fps)
    if not isinstance(fps, int | float) or isinstance(fps, bool) or not fps > 0:
        raise LiveRefused("params.fps: a positive number is required")
    width = params.get("width", limits.width)
    if not isinstance(width, int) or isinstance(width, bool) or width < 32:
        raise LiveRefused("params.width: an integer of at least 32 pixels is required")
    return LiveRequest(
        camera_id=camera,
        lease_s=float(lease),
        fps=min(float(fps), limits.fps),
        width=min(width, limits.width),
    )


@dataclass(frozen=True)
class Lease:
    """A camera streaming until ``until`` (monotonic seconds) unless renewed."""

    request: LiveRequest
    until: float


class LeaseBook:
    """Who streams now (pure; the monotonic time is passed in)."""

    def __init__(self, max_cameras: int) -> None:
        self.max_cameras = max_cameras
        self._leases: dict[str, Lease] = {}

    def grant(self, request: LiveRequest, now: float) -> bool:
        """Grant or renew ``request``'s lease; True when the camera was not streaming.

        Raises :class:`LiveRefused` when a new camera would exceed ``max_cameras``.
        """
        self.expire(now)
        new = request.camera_id not in self._leases
        if new and len(self._leases) >= self.max_cameras:
            busy = ", ".join(sorted(self._leases))
            raise LiveRefused(
                f"this unit streams at most {self.max_cameras} camera(s) at once (now: {busy})"
            )
        self._leases[request.camera_id] = Lease(request, now + request.lease_s)
        return new

    def stop(self, camera_id: str) -> bool:
        """End ``camera_id``'s lease; True if it had one."""
        return self._leases.pop(camera_id, None) is not None

    def expire(self, now: float) -> list[str]:
        """Drop the leases that ran out by ``now``; return their cameras."""
        gone = [c for c, lease in self._leases.items() if lease.until <= now]
        for camera_id in gone:
            del self._leases[camera_id]
        return gone

    def active(self) -> dict[str, Lease]:
        """The leases held (call :meth:`expire` first)."""
        return dict(self._leases)

    def next_expiry(self) -> float | None:
        """When the first lease runs out, if any is held."""
        return min((lease.until for lease in self._leases.values()), default=None)


@dataclass(frozen=True)
class Pace:
    """How one stream sends: seconds between frames and the JPEG quality."""

    interval_s: float
    quality: int

    @property
    def fps(self) -> float:
        """Frames per second at this pace."""
        return 1.0 / self.interval_s


def pace(fps: float, frame_bytes: float, cap_bytes_per_s: float, streams: int) -> Pace:
    """The pace of one of ``streams`` streams whose frames weigh ``frame_bytes`` (pure).

    Each stream gets an equal share of the cap. Its rate is ``fps`` unless that share
    cannot carry it; then the rate drops (down to :data:`MIN_FPS`), and below that the
    quality steps down, on the guess that size follows quality roughly in proportion.
    """
    share = cap_bytes_per_s / max(1, streams)
    interval = 1.0 / fps
    if frame_bytes <= 0 or frame_bytes / interval <= share:
        return Pace(interval, QUALITY_STEPS[0])
    needed = frame_bytes / share
    if needed <= 1.0 / MIN_FPS:
        return Pace(needed, QUALITY_STEPS[0])
    # Too heavy even at the floor rate: step the quality down until it would fit.
    quality = QUALITY_STEPS[-1]
    for q in QUALITY_STEPS:
        if frame_bytes * q / QUALITY_STEPS[0] / share <= 1.0 / MIN_FPS:
            quality = q
            break
    return Pace(1.0 / MIN_FPS, quality)


# --------------------------------------------------------------------------- adapter


class LiveSource(Protocol):
    """What the streamer needs of the vision service."""

    def live_tap(self, camera_id: str, tap: Callable[[Any, Sequence[Any]], None] | None) -> None:
        """Hand each processed frame of ``camera_id`` with its detections to ``tap``."""
        ...

    def zones_of(self, camera_id: str) -> dict[str, tuple[tuple[float, float], ...]]:
        """The camera's zones (raises KeyError for an unknown camera)."""
        ...


#: Encodes ``(image, width, quality)`` to ``(jpeg, width, height)`` (OpenCV, in a thread).
Encoder = Callable[[Any, int, int], tuple[bytes, int, int]]


class _Slot:
    """The newest frame a tap left for one camera (written by the inference thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.frame: Any = None
        self.dets: Sequence[Any] = ()
        self.fresh = False


class LiveStreamer:
    """Streams the leased cameras; runs as the agent's ``live`` stage.

    ``source`` returns the vision service (None on a unit without cameras), ``publish``
    hands a QoS 0 message to the broker link (False when it was not taken), ``encode``
    resizes and JPEG-encodes an image.
    """

    def __init__(
        self,
        device_id: str,
        settings: Callable[[], LiveSection],
        source: Callable[[], LiveSource | None],
        publish: Callable[[str, bytes], bool],
        encode: Encoder,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.device_id = device_id
        self._settings = settings
        self._source = source
        self._publish = publish
        self._encode = encode
        self._now = monotonic
        self._book = LeaseBook(settings().max_cameras)
        self._slots: dict[str, _Slot] = {}
        self._seq: dict[str, int] = {}
        self._due: dict[str, float] = {}
        self._avg_bytes: dict[str, float] = {}
        self._tapped: dict[str, LiveSource] = {}
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Frames and bytes sent, per camera (for tests and the metrics).
        self.sent: dict[str, int] = {}
        self.sent_bytes = 0
        #: The pace each stream last sent at.
        self.paces: dict[str, Pace] = {}

    # ------------------------------------------------------------------ commands

    async def start_command(self, command: protocol.Command) -> str:
        """``live.start``: grant or renew a lease (executor of the command handler)."""
        limits = self._settings()
        try:
            request = parse_start(command.params, limits)
        except LiveRefused as exc:
            raise CommandRefused(str(exc)) from exc
        source = self._source()
        if source is None:
            raise CommandFailed("this unit has no cameras configured")
        try:
            source.zones_of(request.camera_id)
        except KeyError:
            raise CommandRefused(f"params.camera_id: no camera {request.camera_id!r}") from None
        self._book.max_cameras = limits.max_cameras
        try:
            new = self._book.grant(request, self._now())
        except LiveRefused as exc:
            raise CommandRefused(str(exc)) from exc
        if new or self._tapped.get(request.camera_id) is not source:
            self._attach(request.camera_id, source)
        self._wake.set()
        verb = "streaming" if new else "renewed"
        return (
            f"{verb} {request.camera_id} for {request.lease_s:g} s at up to "
            f"{request.fps:g} fps, {request.width} px"
        )

    async def stop_command(self, command: protocol.Command) -> str:
        """``live.stop``: end a camera's lease now."""
        camera = command.params.get("camera_id")
        if not isinstance(camera, str) or not camera:
            raise CommandRefused("params.camera_id: a camera id is required")
        stopped = self._book.stop(camera)
        self._detach(camera)
        return f"stopped {camera}" if stopped else f"{camera} was not streaming"

    def streaming(self) -> list[str]:
        """The cameras with a lease now."""
        self._book.expire(self._now())
        return sorted(self._book.active())

    # ------------------------------------------------------------------ taps

    def _attach(self, camera_id: str, source: LiveSource) -> None:
        slot = self._slots.setdefault(camera_id, _Slot())
        loop = self._loop

        def tap(frame: Any, dets: Sequence[Any]) -> None:  # the inference thread
            with slot.lock:
                slot.frame, slot.dets, slot.fresh = frame, tuple(dets), True
            if loop is not None:
                loop.call_soon_threadsafe(self._wake.set)

        source.live_tap(camera_id, tap)
        self._tapped[camera_id] = source

    def _detach(self, camera_id: str) -> None:
        source = self._tapped.pop(camera_id, None)
        if source is not None:
            source.live_tap(camera_id, None)
        self._slots.pop(camera_id, None)
        self._due.pop(camera_id, None)
        self.paces.pop(camera_id, None)

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Send the leased cameras' frames until cancelled."""
        self._loop = asyncio.get_running_loop()
        for camera_id, source in list(self._tapped.items()):
            self._attach(camera_id, source)  # taps made before the loop was known
        try:
            while True:
                self._wake.clear()  # before the step: a frame arriving during it wakes us
                timeout = await self._step()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
        finally:
            for camera_id in list(self._tapped):
                self._detach(camera_id)

    async def _step(self) -> float:
        """Send what is due; return how long to wait at most before the next look."""
        now = self._now()
        for camera_id in self._book.expire(now):
            log.info("live view of %s ended: its lease lapsed", camera_id)
            self._detach(camera_id)
        leases = self._book.active()
        limits = self._settings()
        wait = 1.0
        for camera_id, lease in leases.items():
            slot = self._slots.get(camera_id)
            if slot is None:
                continue
            due = self._due.get(camera_id, 0.0)
            if now < due:
                wait = min(wait, due - now)
                continue
            with slot.lock:
                if not slot.fresh:
                    continue
                frame, dets, slot.fresh = slot.frame, slot.dets, False
            p = pace(
                lease.request.fps,
                self._avg_bytes.get(camera_id, 0.0),
                limits.max_bytes_per_s,
                len(leases),
            )
            self.paces[camera_id] = p
            size = await self._send(camera_id, lease.request, frame, dets, p, limits)
            if size:
                old = self._avg_bytes.get(camera_id, float(size))
                self._avg_bytes[camera_id] = 0.7 * old + 0.3 * size
            self._due[camera_id] = now + p.interval_s
            wait = min(wait, p.interval_s)
        expiry = self._book.next_expiry()
        if expiry is not None:
            wait = min(wait, max(0.0, expiry - now))
        return max(wait, 0.001)

    async def _send(
        self,
        camera_id: str,
        request: LiveRequest,
        frame: Any,
        dets: Sequence[Any],
        p: Pace,
        limits: LiveSection,
    ) -> int:
        jpeg, width, height = await asyncio.to_thread(
            self._encode, frame.image, request.width, p.quality
        )
        seq = self._seq.get(camera_id, 0) + 1
        self._seq[camera_id] = seq
        source = self._tapped.get(camera_id)
        zones = source.zones_of(camera_id) if source is not None and limits.overlay else {}
        objects = (
            tuple(protocol.LiveObject(label=d.label[:64], score=d.score, box=d.box) for d in dets)
            if limits.overlay
            else ()
        )
        message = protocol.LiveFrame(
            device_id=self.device_id,
            camera_id=camera_id,
            seq=seq,
            ts=frame.ts,
            jpeg_b64=base64.b64encode(jpeg).decode("ascii"),
            width=width,
            height=height,
            fps=round(min(30.0, max(p.fps, 0.01)), 2),
            zones=zones,
            objects=objects[:256],
        )
        payload = protocol.encode(message)
        if not self._publish(protocol.topic(self.device_id, protocol.Channel.LIVE), payload):
            return 0  # not connected: the frame is simply lost
        self.sent[camera_id] = self.sent.get(camera_id, 0) + 1
        self.sent_bytes += len(payload)
        return len(payload)
