"""Camera sources: OpenCV ``VideoCapture`` (RTSP/HTTP/USB/file), and the factory type.

A :class:`Source` hands out frames at the camera's detect rate, each stamped with its
capture time: the wall clock for live cameras, the scenario's or the video's own clock
in replays. Live streams are drained with ``grab()`` and only the frame that is due is
decoded into an image with ``retrieve()``, so a slow consumer never sees stale frames.
OpenCV stops here: nothing else sees a ``VideoCapture``. Whoever runs the pipeline
passes a :class:`SourceFactory`; :func:`make_source` is the agent's own, and sources the
agent does not make (simulated scenes) come from a factory that is passed in.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import cv2

from edge_agent.protocol import utc_now
from edge_agent.vision.config import CameraConfig, SourceSpec
from edge_agent.vision.errors import SourceError
from edge_agent.vision.frames import Frame, as_image

__all__ = [
    "SCENARIO_NEEDS_FACTORY",
    "CaptureSource",
    "Source",
    "SourceFactory",
    "UnavailableSource",
    "make_source",
    "redact",
]

logger = logging.getLogger(__name__)

#: How long OpenCV may take to open a network stream, and to wait for one frame.
OPEN_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 5.0
#: FFmpeg decoder threads per camera unless its config says otherwise. One: a box runs
#: many cameras on few cores, and every extra decoder thread carries its own frame
#: buffers (about 7 MB per 720p camera).
DECODE_THREADS = 1


def redact(target: str) -> str:
    """A source string safe to log: credentials in a URL are replaced by ``***``."""
    return re.sub(r"(://)[^/@\s]+@", r"\1***@", target)


class Source(Protocol):
    """Frames of one camera, at its detect rate."""

    camera_id: str
    #: True for cameras that keep going (reconnect on failure); False for finite replays.
    live: bool

    def open(self) -> None:
        """Connect; raise :class:`SourceError` naming the camera and what failed."""
        ...

    def read(self) -> Frame | None:
        """Block until the next due frame; None at the end of a finite source.

        Raises :class:`SourceError` when the stream fails (the caller reconnects).
        """
        ...

    def close(self) -> None:
        """Release the device or stream; safe to call twice."""
        ...


class CaptureSource:
    """A camera or video read through OpenCV.

    ``replay=True`` reads a file as fast as possible and stamps frames with
    ``start_time`` plus their position in the video; otherwise frames are stamped with
    ``clock()`` and a file is paced at its own frame rate (and restarted at its end when
    ``loop``), so it stands in for a real camera.
    """

    def __init__(
        self,
        camera_id: str,
        spec: SourceSpec,
        *,
        detect_fps: float,
        clock: Callable[[], datetime] = utc_now,
        replay: bool = False,
        loop: bool = False,
        start_time: datetime | None = None,
        decode_threads: int = DECODE_THREADS,
    ) -> None:
        if spec.kind not in ("url", "device", "file"):
            raise SourceError(f"camera {camera_id}: {spec.kind} sources are not OpenCV sources")
        self.camera_id = camera_id
        self.spec = spec
        self.live = not replay
        self._interval = 1.0 / detect_fps
        self._clock = clock
        self._replay = replay
        self._loop = loop
        self._start_time = start_time or clock()
        self._decode_threads = decode_threads
        self._cap: Any = None
        self._index = 0
        self._video_fps = 0.0
        self._frame_no = 0
        self._next_due = 0.0
        self._t0 = 0.0

    @property
    def _paced_file(self) -> bool:
        return self.spec.kind == "file" and not self._replay

    def open(self) -> None:
        """Open the stream, device or file (FFmpeg with timeouts for network streams)."""
        self.close()
        target = self.spec.target
        shown = redact(target)
        if self.spec.kind == "file" and not Path(target).is_file():
            raise SourceError(f"camera {self.camera_id}: video file {shown} does not exist")
        if self.spec.kind == "device":
            cap = (
                cv2.VideoCapture(int(target))
                if target.isdigit()
                else cv2.VideoCapture(target, cv2.CAP_V4L2)
            )
        elif self.spec.kind == "url":
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                int(OPEN_TIMEOUT_S * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                int(READ_TIMEOUT_S * 1000),
                cv2.CAP_PROP_N_THREADS,
                self._decode_threads,
            ]
            cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
        else:
            cap = cv2.VideoCapture(
                target, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, self._decode_threads]
            )
            if not cap.isOpened():  # a format FFmpeg does not read: let OpenCV choose
                cap.release()
                cap = cv2.VideoCapture(target)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"camera {self.camera_id}: cannot open {self.spec.kind} {shown}")
        self._cap = cap
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self._video_fps = fps if 0.5 <= fps <= 240.0 else 25.0
        self._frame_no = 0
        self._next_due = 0.0
        self._t0 = time.monotonic()
        logger.info("camera %s: opened %s %s", self.camera_id, self.spec.kind, shown)

    def _grab(self) -> bool:
        ok = bool(self._cap.grab())
        if ok:
            self._frame_no += 1
            return True
        if self.spec.kind == "file" and self._loop and self._frame_no > 0:
            # Restart the clip: a looping file is a camera that never ends.
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._t0 += self._frame_no / self._video_fps
            self._next_due -= self._frame_no / self._video_fps
            self._frame_no = 0
            ok = bool(self._cap.grab())
            if ok:
                self._frame_no = 1
        return ok

    def read(self) -> Frame | None:
        """The next due frame; frames in between are grabbed (drained) but not decoded."""
        if self._cap is None:
            raise SourceError(f"camera {self.camera_id}: source is not open")
        while True:
            if self._paced_file:
                # The frame about to be grabbed is shown at this offset into the clip.
                wait = self._t0 + self._frame_no / self._video_fps - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            if not self._grab():
                if self.spec.kind == "file" and not self._loop:
                    return None
                raise SourceError(f"camera {self.camera_id}: stream lost (no frame)")
            if self.spec.kind == "file":
                position = (self._frame_no - 1) / self._video_fps
            else:
                position = time.monotonic() - self._t0
            if position + 1e-6 < self._next_due:
                continue
            self._next_due = max(self._next_due + self._interval, position)
            ok, image = self._cap.retrieve()
            if not ok or image is None:
                raise SourceError(f"camera {self.camera_id}: could not decode a frame")
            ts = self._start_time + timedelta(seconds=position) if self._replay else self._clock()
            frame = Frame(self.camera_id, self._index, ts, as_image(image))
            self._index += 1
            return frame

    def close(self) -> None:
        """Release the capture."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class UnavailableSource:
    """A camera whose source kind this agent cannot make (a ``scenario:`` without a
    factory that knows scenarios): :meth:`open` raises a :class:`SourceError` saying why,
    so the camera reports it and retries like any camera that cannot open."""

    def __init__(self, camera_id: str, reason: str, *, replay: bool = False) -> None:
        self.camera_id = camera_id
        self.reason = reason
        self.live = not replay

    def open(self) -> None:
        """Fail: this source cannot be opened here."""
        raise SourceError(f"camera {self.camera_id}: {self.reason}")

    def read(self) -> Frame | None:
        """Fail: the source never opens."""
        raise SourceError(f"camera {self.camera_id}: {self.reason}")

    def close(self) -> None:
        """Nothing to release."""


class SourceFactory(Protocol):
    """Makes the :class:`Source` of a camera; the vision service and :func:`replay` take
    one, so a simulator or a test plugs in sources the agent does not know.

    ``clock`` stamps live frames; ``replay`` reads as fast as possible with the source's
    own clock from ``start_time``; ``loop`` restarts a paced file at its end; ``video``
    replaces the camera's own source with a clip.
    """

    def __call__(
        self,
        camera: CameraConfig,
        *,
        clock: Callable[[], datetime] = ...,
        replay: bool = False,
        loop: bool = False,
        video: Path | None = None,
        start_time: datetime | None = None,
    ) -> Source:
        """The source of ``camera``."""
        ...


#: Why :func:`make_source` cannot make a ``scenario:`` source.
SCENARIO_NEEDS_FACTORY = (
    "scenario sources need the simulator's source factory "
    "(run through `xiuhua demo` or the tests); this agent makes url, device and file sources"
)


def make_source(
    camera: CameraConfig,
    *,
    clock: Callable[[], datetime] = utc_now,
    replay: bool = False,
    loop: bool = False,
    video: Path | None = None,
    start_time: datetime | None = None,
) -> Source:
    """The source of ``camera`` (or of ``video`` in its place, for replays).

    The agent's own :class:`SourceFactory`: OpenCV sources (url, device, file). A
    ``scenario:`` camera gets an :class:`UnavailableSource` whose ``open`` says that
    scenarios need the simulator's factory.
    """
    spec = SourceSpec("file", str(video)) if video is not None else camera.source_spec
    if spec.kind == "scenario":
        return UnavailableSource(camera.id, SCENARIO_NEEDS_FACTORY, replay=replay)
    return CaptureSource(
        camera.id,
        spec,
        detect_fps=camera.detect_fps,
        clock=clock,
        replay=replay,
        loop=loop,
        start_time=start_time,
        decode_threads=camera.decode_threads,
    )
