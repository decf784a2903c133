"""PCM audio in memory: reading and writing WAV files, volume scaling (pure, no devices)."""

from __future__ import annotations

import io
import sys
import wave
from array import array
from dataclasses import dataclass
from pathlib import Path

from edge_agent.speaker.errors import AudioFormatError

__all__ = ["Audio", "read_wav", "write_wav"]


@dataclass(frozen=True)
class Audio:
    """Signed 16-bit little-endian PCM, interleaved when ``channels`` > 1."""

    pcm: bytes
    rate: int
    channels: int = 1

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return len(self.pcm) / (2 * self.channels * self.rate)

    def scaled(self, volume: float) -> Audio:
        """A copy with every sample multiplied by ``volume`` (0..1), clipped to 16 bits."""
        if not 0.0 <= volume <= 1.0:
            raise ValueError(f"volume must be within 0..1, got {volume}")
        if volume == 1.0:
            return self
        samples = _samples(self.pcm)
        scaled = array("h", (max(-32768, min(32767, round(v * volume))) for v in samples))
        return Audio(_pcm(scaled), self.rate, self.channels)

    def peak(self) -> int:
        """The largest absolute sample value (0 for silence)."""
        samples = _samples(self.pcm)
        return max((abs(v) for v in samples), default=0)


def _samples(pcm: bytes) -> array[int]:
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def _pcm(samples: array[int]) -> bytes:
    if sys.byteorder == "big":
        samples = array("h", samples)
        samples.byteswap()
    return samples.tobytes()


def read_wav(source: Path | bytes) -> Audio:
    """Load a 16-bit PCM WAV file (or its bytes); raise :class:`AudioFormatError` otherwise."""
    name = str(source) if isinstance(source, Path) else "<bytes>"
    try:
        with wave.open(
            str(source) if isinstance(source, Path) else io.BytesIO(source), "rb"
        ) as handle:
            width = handle.getsampwidth()
            frames = handle.readframes(handle.getnframes())
            rate, channels = handle.getframerate(), handle.getnchannels()
    except (OSError, EOFError, wave.Error) as exc:
        raise AudioFormatError(f"{name}: not a readable WAV file ({exc})") from exc
    if width != 2:
        raise AudioFormatError(f"{name}: {8 * width}-bit samples; use 16-bit PCM WAV")
    return Audio(frames, rate, channels)


def write_wav(path: Path, audio: Audio) -> Path:
    """Write ``audio`` as a 16-bit PCM WAV file at ``path`` (atomically) and return it."""
    tmp = path.with_name(path.name + ".part")
    with wave.open(str(tmp), "wb") as handle:
        handle.setnchannels(audio.channels)
        handle.setsampwidth(2)
        handle.setframerate(audio.rate)
        handle.writeframes(audio.pcm)
    tmp.replace(path)
    return path
