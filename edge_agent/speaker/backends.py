"""Audio output backends behind one interface: ``wav`` (files), ``null`` and ``pyaudio``.

A backend's :meth:`AudioBackend.play` blocks until the audio has played or ``stop`` is
set, so the player runs it in a thread; it returns True when it played to the end.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
from pathlib import Path
from typing import Any, Protocol

from edge_agent.speaker.audio import Audio, write_wav
from edge_agent.speaker.errors import BackendUnavailable

log = logging.getLogger(__name__)

__all__ = ["AudioBackend", "NullBackend", "PyAudioBackend", "WavBackend", "make_backend"]


class AudioBackend(Protocol):
    """Plays PCM audio; one call at a time."""

    def play(self, audio: Audio, stop: threading.Event, label: str) -> bool:
        """Play ``audio``; return early (False) when ``stop`` is set, True when finished."""
        ...


class NullBackend:
    """Discards audio at once (a unit without a loudspeaker)."""

    def play(self, audio: Audio, stop: threading.Event, label: str) -> bool:
        """Do nothing; report the playback as finished unless already stopped."""
        return not stop.is_set()


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class WavBackend:
    """Writes each playback to ``folder`` as a numbered WAV file (tests and dry runs).

    With ``pace`` > 0 a playback also lasts ``pace`` times the audio's duration, so
    preemption behaves as on a real speaker; a preempted file gets ``.stopped`` in its name.
    """

    def __init__(self, folder: Path, pace: float = 0.0) -> None:
        self.folder = folder
        self.pace = pace
        folder.mkdir(parents=True, exist_ok=True)
        start = max((_number(p) for p in folder.glob("*.wav")), default=0)
        self._counter = itertools.count(start + 1)

    def play(self, audio: Audio, stop: threading.Event, label: str) -> bool:
        """Write the file, then wait out the (paced) duration unless stopped."""
        name = f"{next(self._counter):06d}-{_SAFE.sub('_', label)[:40]}.wav"
        path = write_wav(self.folder / name, audio)
        log.info("speaker (wav): %s, %.1f s", path.name, audio.duration_s)
        finished = not stop.wait(audio.duration_s * self.pace) if self.pace > 0 else True
        finished = finished and not stop.is_set()
        if not finished:
            path.replace(path.with_name(path.stem + ".stopped.wav"))
        return finished


def _number(path: Path) -> int:
    head = path.name.split("-", 1)[0]
    return int(head) if head.isdigit() else 0


class PyAudioBackend:
    """A real output device through PortAudio (the ``audio`` extra: ``pip install pyaudio``)."""

    CHUNK_FRAMES = 1024

    def __init__(self, device_index: int | None = None) -> None:
        try:
            import pyaudio
        except ImportError as exc:
            raise BackendUnavailable(
                "speaker.backend 'pyaudio' needs the pyaudio package (pip install 'xiuhua[audio]')"
            ) from exc
        self._pyaudio: Any = pyaudio
        self._device_index = device_index

    def play(self, audio: Audio, stop: threading.Event, label: str) -> bool:
        """Stream ``audio`` to the device in small chunks, checking ``stop`` between them."""
        pa = self._pyaudio.PyAudio()
        try:
            stream = pa.open(
                format=self._pyaudio.paInt16,
                channels=audio.channels,
                rate=audio.rate,
                output=True,
                output_device_index=self._device_index,
            )
        except OSError as exc:
            pa.terminate()
            raise BackendUnavailable(f"cannot open the audio output device: {exc}") from exc
        step = self.CHUNK_FRAMES * 2 * audio.channels
        try:
            for start in range(0, len(audio.pcm), step):
                if stop.is_set():
                    return False
                stream.write(audio.pcm[start : start + step])
            return True
        finally:
            stream.stop_stream()
            stream.close()
            pa.terminate()


def make_backend(kind: str, *, wav_dir: Path | None = None, pace: float = 0.0) -> AudioBackend:
    """Build the backend named in config: ``wav``, ``null`` or ``pyaudio``."""
    if kind == "null":
        return NullBackend()
    if kind == "wav":
        if wav_dir is None:
            raise BackendUnavailable("speaker.backend 'wav' needs speaker.wav_dir")
        return WavBackend(wav_dir, pace)
    if kind == "pyaudio":
        return PyAudioBackend()
    raise BackendUnavailable(f"unknown speaker backend {kind!r}; use wav, pyaudio or null")
