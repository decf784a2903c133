"""Convert a recorded message to what units play, with ffmpeg run as a separate program.

ffmpeg (LGPL, Debian's ``ffmpeg`` package, in ``scripts/system-deps.sh``) decodes WebM
and Ogg Opus from browsers and any WAV; it runs as its own process, so no codec library
is linked into the hub and a decoder crash cannot take the hub down. Input comes on its
stdin, raw 16-bit mono PCM at :data:`~central_hub.domain.voice.UNIT_RATE` on its stdout,
which is wrapped in a WAV header here.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import wave

from central_hub.domain.voice import UNIT_RATE, InvalidClip

__all__ = ["ConverterMissing", "pcm_wav", "to_unit_wav"]

#: The longest a conversion may take.
CONVERT_TIMEOUT_S = 20.0


class ConverterMissing(RuntimeError):
    """ffmpeg is not installed (``scripts/system-deps.sh`` installs it)."""


def pcm_wav(pcm: bytes, rate: int = UNIT_RATE) -> bytes:
    """16-bit mono PCM wrapped in a WAV header."""
    out = io.BytesIO()
    with wave.open(out, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(pcm)
    return out.getvalue()


async def to_unit_wav(data: bytes, *, max_seconds: float, ffmpeg: str = "ffmpeg") -> bytes:
    """``data`` (WebM, Ogg or WAV audio) as a 16 kHz mono 16-bit WAV, cut at ``max_seconds``
    plus one (so an over-long message is still seen as over-long and refused by its caller).

    Raises :class:`InvalidClip` with ffmpeg's reason when it cannot decode the upload.
    """
    program = shutil.which(ffmpeg)
    if program is None:
        raise ConverterMissing(
            f"{ffmpeg!r} is not installed: the hub converts recorded messages with ffmpeg "
            "(run scripts/system-deps.sh)"
        )
    proc = await asyncio.create_subprocess_exec(
        program,
        "-hide_banner",
        "-loglevel",
        "error",
        "-i",
        "pipe:0",
        "-t",
        f"{max_seconds + 1:.1f}",
        "-vn",
        "-ac",
        "1",
        "-ar",
        str(UNIT_RATE),
        "-f",
        "s16le",
        "-acodec",
        "pcm_s16le",
        "pipe:1",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        pcm, err = await asyncio.wait_for(proc.communicate(data), CONVERT_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise InvalidClip(f"the audio took over {CONVERT_TIMEOUT_S:.0f} s to decode") from None
    if proc.returncode != 0 or not pcm:
        reason = err.decode("utf-8", "replace").strip().splitlines()
        raise InvalidClip(
            "the audio could not be decoded: " + (reason[-1] if reason else "no samples in it")
        )
    return pcm_wav(pcm[: len(pcm) - len(pcm) % 2])
