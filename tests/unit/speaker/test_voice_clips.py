"""``speaker.play_clip`` on the unit: params checked by name; the clip fetched from a real
local HTTP server with its token, checked and played at operator priority (pre-empting an
automatic shout); a clip that is not the one the command names is rejected unplayed, a
download that fails is failed."""

from __future__ import annotations

import hashlib
import http.server
import math
import struct
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edge_agent import protocol
from edge_agent.link.commands import CommandFailed, CommandRefused
from edge_agent.speaker.audio import read_wav
from edge_agent.speaker.backends import WavBackend
from edge_agent.speaker.player import Speaker, SpeakPriority
from edge_agent.speaker.voice import MAX_CLIP_BYTES, VoiceClips, clip_params
from simulators.polling import eventually

KEY = protocol.generate_signing_key()
TOKEN = "tok-123"


def tone(seconds: float, freq: float = 440.0, rate: int = 16_000) -> bytes:
    """A WAV file of a sine tone."""
    from central_hub.adapters.audio_convert import pcm_wav

    n = int(seconds * rate)
    pcm = struct.pack(
        f"<{n}h", *(int(8000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(n))
    )
    return pcm_wav(pcm, rate)


class Clips(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Clips

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        data = self.server.files.get(self.path.lstrip("/"))
        if data is None or self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.send_error(404 if data is None else 401)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server() -> Iterator[Clips]:
    s = Clips()
    yield s
    s.shutdown()
    s.server_close()


def cmd(**params: object) -> protocol.Command:
    return protocol.sign_command(
        KEY,
        device_id="pole-01",
        kind="speaker.play_clip",
        params=params,
        issued_at=datetime.now(UTC),
    )


def params_for(data: bytes, url: str, **extra: object) -> dict[str, object]:
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "url": url,
        "token": TOKEN,
        **extra,
    }


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({}, ["sha256", "size", "url", "token"]),
        ({"sha256": "AB" * 32, "size": 10, "url": "http://h/x", "token": "t"}, ["sha256"]),
        (
            {"sha256": "ab" * 32, "size": MAX_CLIP_BYTES + 1, "url": "http://h", "token": "t"},
            ["size"],
        ),
        ({"sha256": "ab" * 32, "size": True, "url": "ftp://h", "token": "t"}, ["size", "url"]),
        (
            {"sha256": "ab" * 32, "size": 5, "url": "http://h", "token": "t", "priority": "x"},
            ["priority"],
        ),
    ],
)
def test_bad_params_are_named(params: dict[str, object], named: list[str]) -> None:
    with pytest.raises(CommandFailed) as caught:
        clip_params(params)
    for name in named:
        assert name in str(caught.value)
    for other in {"sha256", "size", "url", "token", "priority"} - set(named):
        assert f"{other} (" not in str(caught.value)


def test_good_params_default_to_operator_priority() -> None:
    got = clip_params({"sha256": "ab" * 32, "size": 5, "url": "https://h/c", "token": "t"})
    assert got.priority is SpeakPriority.OPERATOR
    assert got.size == 5


async def test_plays_the_clip_it_fetched(server: Clips, tmp_path: Path) -> None:
    data = tone(0.5)
    server.files["c1"] = data
    speaker = Speaker(WavBackend(tmp_path / "out"))
    voice = VoiceClips(lambda: speaker, tmp_path / "voice")
    detail = await voice.play_clip(cmd(**params_for(data, server.url("c1"))))
    assert detail.startswith(f"played clip {hashlib.sha256(data).hexdigest()[:12]}")
    [played] = list((tmp_path / "out").glob("*.wav"))
    assert read_wav(played).pcm == read_wav(data).pcm  # the same samples
    assert speaker.history[-1].priority is SpeakPriority.OPERATOR
    assert list((tmp_path / "voice").glob("*")) == []  # nothing kept after playing


async def test_a_clip_other_than_the_command_names_is_rejected_unplayed(
    server: Clips, tmp_path: Path
) -> None:
    data = tone(0.5)
    server.files["c1"] = data
    speaker = Speaker(WavBackend(tmp_path / "out"))
    voice = VoiceClips(lambda: speaker, tmp_path / "voice")
    wrong = params_for(tone(0.5, 880.0), server.url("c1"))  # same size, other samples
    with pytest.raises(CommandRefused, match="sha256"):
        await voice.play_clip(cmd(**wrong))
    smaller = params_for(data, server.url("c1"), size=len(data) - 10)
    with pytest.raises(CommandRefused, match="refused"):
        await voice.play_clip(cmd(**smaller))
    assert list((tmp_path / "out").glob("*.wav")) == []
    assert speaker.history == []


async def test_a_failed_download_fails(server: Clips, tmp_path: Path) -> None:
    data = tone(0.5)
    speaker = Speaker(WavBackend(tmp_path / "out"))
    voice = VoiceClips(lambda: speaker, tmp_path / "voice")
    with pytest.raises(CommandFailed, match="HTTP 404") as caught:
        await voice.play_clip(cmd(**params_for(data, server.url("missing"))))
    assert not isinstance(caught.value, CommandRefused)
    assert speaker.history == []


async def test_pre_empts_an_automatic_shout(server: Clips, tmp_path: Path) -> None:
    data = tone(0.4)
    server.files["c1"] = data
    long = tmp_path / "no-vending.wav"
    long.write_bytes(tone(3.0))
    speaker = Speaker(WavBackend(tmp_path / "out", pace=1.0), clips={"no-vending": long})
    voice = VoiceClips(lambda: speaker, tmp_path / "voice")
    await speaker.shout("no-vending")  # a rule's automatic warning, started
    assert speaker.playing == "shout-no-vending"
    detail = await voice.play_clip(cmd(**params_for(data, server.url("c1"))))
    assert detail.startswith("played clip")
    names = sorted(p.name for p in (tmp_path / "out").glob("*.wav"))
    assert names[0].endswith("shout-no-vending.stopped.wav")
    assert "voice-" in names[1]
    assert not names[1].endswith(".stopped.wav")
    await eventually(lambda: speaker.playing is None, within_s=2)
