"""The speaker's command executors: parameters checked, outcomes reported."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge_agent import protocol
from edge_agent.link.commands import CommandFailed
from edge_agent.speaker.backends import WavBackend
from edge_agent.speaker.commands import SpeakerCommands
from edge_agent.speaker.player import Speaker
from simulators.polling import eventually

CHIME = Path(__file__).resolve().parents[3] / "firmware_config" / "clips" / "chime.wav"
KEY = protocol.generate_signing_key()


def cmd(kind: str, **params: object) -> protocol.Command:
    return protocol.sign_command(
        KEY, device_id="pole-01", kind=kind, params=params, issued_at=datetime.now(UTC)
    )


@pytest.fixture
def speaker(tmp_path: Path) -> Speaker:
    return Speaker(WavBackend(tmp_path / "out"), clips={"chime": CHIME})


async def test_play_and_stop(speaker: Speaker, tmp_path: Path) -> None:
    commands = SpeakerCommands(lambda: speaker)
    assert set(commands.executors()) == {"speaker.play", "speaker.say", "speaker.stop"}
    detail = await commands.play(cmd("speaker.play", clip="chime", volume=0.5))
    assert detail.startswith("played clip chime")
    assert len(list((tmp_path / "out").glob("*.wav"))) == 1
    assert await commands.stop(cmd("speaker.stop")) == "nothing was playing"


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("speaker.play", {}, "params.clip"),
        ("speaker.play", {"clip": "siren"}, "no clip 'siren'"),
        ("speaker.play", {"clip": "chime", "priority": "loud"}, "params.priority"),
        ("speaker.play", {"clip": "chime", "volume": 2}, "params.volume"),
        ("speaker.play", {"clip": "chime", "volume": True}, "params.volume"),
        ("speaker.say", {"text": "  "}, "params.text"),
        ("speaker.say", {"text": "你好"}, "text-to-speech is not configured"),
    ],
)
async def test_bad_parameters_fail_with_reason(
    speaker: Speaker, tmp_path: Path, kind: str, params: dict[str, object], message: str
) -> None:
    commands = SpeakerCommands(lambda: speaker)
    executor = commands.executors()[kind]
    with pytest.raises(CommandFailed, match=message):
        await executor(cmd(kind, **params))
    assert not list((tmp_path / "out").glob("*.wav"))


async def test_interrupted_playback_fails(tmp_path: Path) -> None:
    speaker = Speaker(WavBackend(tmp_path / "out", pace=50.0), clips={"chime": CHIME})
    commands = SpeakerCommands(lambda: speaker)
    task = asyncio.create_task(commands.play(cmd("speaker.play", clip="chime")))
    await eventually(lambda: speaker.playing, 2, every_s=0.01)
    assert await commands.stop(cmd("speaker.stop")) == "stopped"
    with pytest.raises(CommandFailed, match="interrupted"):
        await task
