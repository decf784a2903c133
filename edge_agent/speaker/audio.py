"""PCM audio in memory: reading and writing WAV files, volume scaling (pure, no devices)."""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
        samples = np.frombuffer(self.pcm, dtype="<i2").astype(np.float32) * volume
        clipped = np.clip(np.rint(samples), -32768, 32767).astype("<i2")
        return Audio(clipped.tobytes(), self.rate, self.channels)

    def peak(self) -> int:
        """The largest absolute sample value (0 for silence)."""
        if not self.pcm:
            return 0
        return int(np.abs(np.frombuffer(self.pcm, dtype="<i2").astype(np.int32)).max())


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
