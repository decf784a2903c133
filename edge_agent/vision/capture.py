"""Capture loops: one thread per camera keeps only its newest frame, reconnects, reports.

The :class:`FrameBoard` holds at most one frame per camera. A capture loop puts each
new frame there, replacing (and counting as dropped) one the detector has not taken
yet; the detector takes every camera's newest frame at once, as one batch. A source that
fails is reopened after a capped, jittered exponential backoff; a camera that delivers
nothing for ``stall_after_s`` reports ``stalled``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from edge_agent.backoff import Backoff
from edge_agent.vision.errors import SourceError
from edge_agent.vision.frames import Frame, Image
from edge_agent.vision.sources import Source

__all__ = [
    "BACKOFF_BASE_S",
    "BACKOFF_CAP_S",
    "CameraHealthView",
    "CaptureLoop",
    "FrameBoard",
]

logger = logging.getLogger(__name__)

#: First reconnect delay and the cap it doubles up to (tests set them small).
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0

HealthState = Literal["ok", "stalled", "reconnecting", "stopped"]


class FrameBoard:
    """The newest untaken frame of each camera, and a count of those replaced unseen."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frames: dict[str, Frame] = {}
        self._busy: set[str] = set()
        self._wanted: set[str] = set()
        self._snaps: dict[str, Image] = {}
        self.dropped: dict[str, int] = {}
        # Weak: a snapshot may use the newest image while something still holds it, but
        # the board never keeps a frame alive by itself (memory: 2.7 MB per 720p camera).
        self._latest: dict[str, weakref.ref[Image]] = {}

    def put(self, frame: Frame) -> None:
        """Post ``frame``; a frame of the same camera still waiting is dropped."""
        with self._cond:
            if frame.camera_id in self._frames:
                self.dropped[frame.camera_id] = self.dropped.get(frame.camera_id, 0) + 1
            self._frames[frame.camera_id] = frame
            self._latest[frame.camera_id] = weakref.ref(frame.image)
            if frame.camera_id in self._wanted:
                self._wanted.discard(frame.camera_id)
                self._snaps[frame.camera_id] = frame.image
            self._cond.notify_all()

    def take_all(self, timeout: float, limit: int | None = None) -> list[Frame]:
        """Waiting frames (one per camera, at most ``limit``), waiting up to ``timeout``.

        A camera whose previous frame is still being processed (taken and not yet
        :meth:`done`) is skipped, so each camera's frames are processed in order even
        with several inference workers.
        """
        with self._cond:
            ready = [c for c in self._frames if c not in self._busy]
            if not ready:
                self._cond.wait(timeout)
                ready = [c for c in self._frames if c not in self._busy]
            if limit is not None:
                ready = ready[:limit]
            frames = [self._frames.pop(c) for c in ready]
            self._busy.update(ready)
            return frames

    def done(self, frames: list[Frame]) -> None:
        """Mark the cameras of ``frames`` free for their next frame."""
        with self._cond:
            for frame in frames:
                self._busy.discard(frame.camera_id)
            self._cond.notify_all()

    def latest(self, camera_id: str) -> Image | None:
        """The newest image of ``camera_id`` if it is still in memory, else None."""
        ref = self._latest.get(camera_id)
        return None if ref is None else ref()

    def next_image(self, camera_id: str, timeout: float) -> Image | None:
        """The newest image of ``camera_id`` if still in memory, else the next one to
        arrive within ``timeout`` seconds (blocking), else None."""
        deadline = time.monotonic() + timeout
        with self._cond:
            image = self.latest(camera_id)
            if image is not None:
                return image
            self._wanted.add(camera_id)
            while camera_id not in self._snaps:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._wanted.discard(camera_id)
                    return None
                self._cond.wait(remaining)
            return self._snaps.pop(camera_id)

    def wake(self) -> None:
        """Wake a waiting :meth:`take_all` (used on shutdown)."""
        with self._cond:
            self._cond.notify_all()


@dataclass(frozen=True)
class CameraHealthView:
    """A camera's health as of now."""

    state: HealthState
    fps: float
    frames: int
    last_error: str | None


class CaptureLoop:
    """Runs one camera's source in a thread until ``stop`` is set or a replay ends."""

    def __init__(
        self,
        source: Source,
        board: FrameBoard,
        *,
        stall_after_s: float,
        stop: threading.Event,
        monotonic: Callable[[], float] = time.monotonic,
        seed: int | None = None,
    ) -> None:
        self.source = source
        self.camera_id = source.camera_id
        self._board = board
        self._stall_after = stall_after_s
        self._stop = stop
        self._mono = monotonic
        self._rng = random.Random(seed)
        self._connected = False
        self._ended = False
        self._started = monotonic()
        self._last_frame: float | None = None
        self._stamps: deque[float] = deque(maxlen=64)
        self.frames = 0
        self.reconnects = 0
        self.last_error: str | None = None

    def health(self) -> CameraHealthView:
        """State (ok, stalled, reconnecting, stopped) and recent frame rate."""
        now = self._mono()
        if self._ended:
            state: HealthState = "stopped"
        elif not self._connected:
            state = "reconnecting"
        elif now - (self._last_frame or self._started) > self._stall_after:
            state = "stalled"
        else:
            state = "ok"
        recent = [t for t in self._stamps if now - t <= 10.0]
        fps = 0.0
        if len(recent) >= 2 and now - recent[0] > 0:
            fps = (len(recent) - 1) / max(now - recent[0], 1e-6)
        return CameraHealthView(state, round(fps, 2), self.frames, self.last_error)

    def run(self) -> None:
        """The thread body: open, read into the board, reopen on failure with backoff."""
        # Read the module's constants now, so tests can set them small; jittered so many
        # cameras do not retry in step.
        backoff = Backoff(BACKOFF_BASE_S, BACKOFF_CAP_S, uniform=self._rng.uniform)
        try:
            while not self._stop.is_set():
                try:
                    self.source.open()
                except SourceError as exc:
                    self._fail(exc, backoff)
                    if not self.source.live:
                        break
                    continue
                self._connected = True
                self._started = self._mono()
                if backoff.attempts:
                    logger.info(
                        "camera %s: back after %d attempt(s)", self.camera_id, backoff.attempts
                    )
                backoff.reset()
                self.last_error = None
                try:
                    while not self._stop.is_set():
                        frame = self.source.read()
                        if frame is None:
                            self._ended = True
                            return
                        now = self._mono()
                        self._last_frame = now
                        self._stamps.append(now)
                        self.frames += 1
                        self._board.put(frame)
                        # Do not hold the image while waiting for the next one: once the
                        # detector is done with it, it should be freed (2.7 MB at 720p).
                        del frame
                except SourceError as exc:
                    self._connected = False
                    self.source.close()
                    self._fail(exc, backoff)
        finally:
            self._connected = False
            self.source.close()
            if self._stop.is_set() or not self.source.live:
                self._ended = True

    def _fail(self, exc: SourceError, backoff: Backoff) -> None:
        self.last_error = str(exc)
        self.reconnects += 1
        delay = backoff.next()
        logger.warning("%s; retrying in %.1f s", exc, delay)
        self._stop.wait(delay)
