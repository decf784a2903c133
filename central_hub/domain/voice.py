"""Operators' recorded messages (高空喊话), the pure part: what an upload is and its bounds.

A browser's MediaRecorder sends WebM or Ogg (Opus); a WAV file is taken too. Units play
16-bit PCM WAV, 16 kHz mono (:data:`UNIT_RATE`), which the hub converts every clip to
before it is stored by its sha256. This module recognises the container from its first
bytes, reads a WAV header and checks size and duration; every refusal names what is wrong.
"""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass

__all__ = [
    "UNIT_RATE",
    "ClipLimits",
    "InvalidClip",
    "WavInfo",
    "check_duration",
    "container_of",
    "wav_info",
]

#: What units play: 16-bit PCM, mono, at this rate.
UNIT_RATE = 16_000


class InvalidClip(ValueError):
    """An upload that is not a message the hub can send; the text says why."""


@dataclass(frozen=True)
class ClipLimits:
    """Bounds of one message."""

    #: The largest upload taken, in bytes (a 30 s WebM/Opus message is ~100 kB).
    max_upload_bytes: int = 4 * 1024 * 1024
    #: The longest message, in seconds.
    max_duration_s: float = 30.0
    #: The shortest: a tap on the talk button is not a message.
    min_duration_s: float = 0.3


@dataclass(frozen=True)
class WavInfo:
    """A WAV file's format and length."""

    rate: int
    channels: int
    sample_bytes: int
    frames: int
    #: False when the header's length is not the data's (a WAV written to a pipe says
    #: 0xFFFFFFFF): ``frames`` then counts the data.
    header_ok: bool = True

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return self.frames / self.rate if self.rate else 0.0

    @property
    def plays_on_units(self) -> bool:
        """True when units play it as it is (16-bit PCM, 16 kHz, mono)."""
        return self.header_ok and (self.rate, self.channels, self.sample_bytes) == (UNIT_RATE, 1, 2)


def container_of(data: bytes, limits: ClipLimits = ClipLimits()) -> str:
    """``wav``, ``ogg`` or ``webm`` from the upload's first bytes; :class:`InvalidClip` else."""
    if not data:
        raise InvalidClip("the upload is empty: no audio was recorded")
    if len(data) > limits.max_upload_bytes:
        raise InvalidClip(
            f"the upload is {len(data)} bytes; at most {limits.max_upload_bytes} "
            f"(about {limits.max_duration_s:.0f} s of speech)"
        )
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"OggS":
        return "ogg"
    if data[:4] == b"\x1a\x45\xdf\xa3":  # EBML: WebM/Matroska
        return "webm"
    raise InvalidClip(
        f"the upload starts with {data[:4]!r}: not WebM, Ogg or WAV audio "
        "(record with the console's talk button, or send a WAV file)"
    )


def wav_info(data: bytes) -> WavInfo:
    """The format of a WAV file's bytes; :class:`InvalidClip` when they are not one."""
    try:
        with wave.open(io.BytesIO(data), "rb") as handle:
            rate, channels, width = (
                handle.getframerate(),
                handle.getnchannels(),
                handle.getsampwidth(),
            )
            said = handle.getnframes()
            frame_bytes = channels * width
            got = len(handle.readframes(said)) // frame_bytes if frame_bytes else 0
    except (EOFError, wave.Error) as exc:
        raise InvalidClip(f"not a readable PCM WAV file: {exc}") from exc
    return WavInfo(rate, channels, width, got, header_ok=got == said)


def check_duration(seconds: float, limits: ClipLimits = ClipLimits()) -> float:
    """``seconds`` if within the limits; :class:`InvalidClip` naming the bound otherwise."""
    if seconds < limits.min_duration_s:
        raise InvalidClip(
            f"the message is {seconds:.2f} s long; at least {limits.min_duration_s} s "
            "(hold the talk button while speaking)"
        )
    if seconds > limits.max_duration_s:
        raise InvalidClip(
            f"the message is {seconds:.1f} s long; at most {limits.max_duration_s:.0f} s"
        )
    return seconds
