"""The pure checks of recorded messages: the container from its first bytes, a WAV's
format, the size and duration bounds, each refusal naming what is wrong."""

from __future__ import annotations

import io
import wave

import pytest

from central_hub.domain.voice import (
    ClipLimits,
    InvalidClip,
    check_duration,
    container_of,
    wav_info,
)


def wav(rate: int, channels: int, width: int, frames: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(b"\0" * frames * channels * width)
    return out.getvalue()


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (wav(16_000, 1, 2, 10), "wav"),
        (b"OggS\0\2" + b"x" * 20, "ogg"),
        (b"\x1a\x45\xdf\xa3\x9f" + b"x" * 20, "webm"),
    ],
)
def test_containers_by_their_first_bytes(head: bytes, kind: str) -> None:
    assert container_of(head) == kind


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"ID3\x04 an mp3", "starts with b'ID3\\x04': not WebM, Ogg or WAV"),
        (b"RIFF\0\0\0\0AVI LIST", "not WebM, Ogg or WAV"),
        (b"OggS" + b"\0" * 197, "201 bytes; at most 200"),
    ],
)
def test_uploads_refused_with_the_reason(data: bytes, message: str) -> None:
    limits = ClipLimits(max_upload_bytes=200)
    with pytest.raises(InvalidClip) as caught:
        container_of(data, limits)
    assert message in str(caught.value)


def test_wav_format_and_whether_units_play_it_as_it_is() -> None:
    info = wav_info(wav(16_000, 1, 2, 8000))
    assert info.duration_s == 0.5
    assert info.plays_on_units
    assert not wav_info(wav(48_000, 1, 2, 10)).plays_on_units
    assert not wav_info(wav(16_000, 2, 2, 10)).plays_on_units
    assert not wav_info(wav(16_000, 1, 1, 10)).plays_on_units
    streamed = bytearray(wav(16_000, 1, 2, 8000))
    streamed[40:44] = b"\xff\xff\xff\xff"  # the data chunk's size, as ffmpeg writes to a pipe
    info = wav_info(bytes(streamed))
    assert info.duration_s == 0.5  # counted from the data
    assert not info.header_ok
    assert not info.plays_on_units  # rewritten before a unit gets it
    with pytest.raises(InvalidClip, match="not a readable PCM WAV"):
        wav_info(b"RIFF\x10\0\0\0WAVEjunk")


def test_duration_bounds() -> None:
    limits = ClipLimits(min_duration_s=0.3, max_duration_s=30)
    assert check_duration(5.0, limits) == 5.0
    with pytest.raises(InvalidClip, match=r"0\.10 s long; at least 0\.3 s"):
        check_duration(0.1, limits)
    with pytest.raises(InvalidClip, match=r"31\.0 s long; at most 30 s"):
        check_duration(31.0, limits)
