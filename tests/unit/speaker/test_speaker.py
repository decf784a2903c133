"""The speaker: audio helpers, wav backend, TTS cache, priorities, quiet hours, shout."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time
from pathlib import Path

import pytest

from edge_agent.speaker.audio import Audio, read_wav, write_wav
from edge_agent.speaker.backends import NullBackend, WavBackend, make_backend
from edge_agent.speaker.errors import (
    AudioFormatError,
    BackendUnavailable,
    ClipNotFound,
    QuietHours,
    SpeakerBusy,
    TtsError,
)
from edge_agent.speaker.player import QuietWindow, Speaker, SpeakPriority
from edge_agent.speaker.tts import EspeakTts
from simulators.polling import eventually

CHIME = Path(__file__).resolve().parents[3] / "firmware_config" / "clips" / "chime.wav"


def tone(seconds: float, rate: int = 8000, level: int = 10000) -> Audio:
    samples = bytearray()
    for i in range(int(seconds * rate)):
        value = level if (i // 10) % 2 else -level
        samples += value.to_bytes(2, "little", signed=True)
    return Audio(bytes(samples), rate)


def test_volume_scales_and_clips_and_wav_round_trips(tmp_path: Path) -> None:
    audio = tone(0.1)
    assert audio.peak() == 10000
    assert audio.scaled(0.5).peak() == 5000
    assert audio.scaled(0.0).peak() == 0
    with pytest.raises(ValueError, match="volume"):
        audio.scaled(1.5)
    back = read_wav(write_wav(tmp_path / "t.wav", audio))
    assert back == audio
    assert back.duration_s == pytest.approx(0.1)


def test_bad_wav_files_are_named(tmp_path: Path) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not a wav")
    with pytest.raises(AudioFormatError, match=r"junk\.wav"):
        read_wav(junk)


def test_backend_factory() -> None:
    assert isinstance(make_backend("null"), NullBackend)
    with pytest.raises(BackendUnavailable, match="wav_dir"):
        make_backend("wav")
    with pytest.raises(BackendUnavailable, match="unknown"):
        make_backend("alsa")


def test_tts_renders_chinese_once_and_caches(tmp_path: Path) -> None:
    tts = EspeakTts(tmp_path / "cache")
    first = tts.render_sync("请勿占道经营")
    assert first.duration_s > 0.5
    assert first.peak() > 1000
    cached = tts.cache_path("请勿占道经营")
    assert cached.is_file()
    stamp = cached.stat().st_mtime_ns
    assert tts.render_sync("请勿占道经营") == first
    assert cached.stat().st_mtime_ns == stamp, "the cache was not used"
    with pytest.raises(TtsError, match="empty"):
        tts.render_sync("  ")
    with pytest.raises(TtsError, match="not installed"):
        EspeakTts(tmp_path / "c2", program="no-such-tts-program").render_sync("你好")


async def test_clip_library_and_missing_clip(tmp_path: Path) -> None:
    speaker = Speaker(WavBackend(tmp_path / "out"), clips={"chime": CHIME}, volume=1.0)
    record = await speaker.play_clip("chime", SpeakPriority.ROUTINE)
    assert record.finished
    (written,) = (tmp_path / "out").glob("*.wav")
    assert read_wav(written) == read_wav(CHIME)
    with pytest.raises(ClipNotFound, match="chime"):
        await speaker.play_clip("siren", SpeakPriority.ROUTINE)


async def test_operator_preempts_routine_and_lower_is_refused(tmp_path: Path) -> None:
    speaker = Speaker(WavBackend(tmp_path / "out", pace=1.0))
    routine = asyncio.create_task(speaker.play(tone(5.0), SpeakPriority.AUTO, "reminder"))
    assert await eventually(lambda: speaker.playing is not None, 5, every_s=0.01), (
        "playback did not start"
    )
    with pytest.raises(SpeakerBusy, match="reminder"):
        await speaker.play(tone(0.1), SpeakPriority.ROUTINE, "lower")
    urgent = await speaker.play(tone(0.05), SpeakPriority.OPERATOR, "operator")
    assert urgent.finished
    interrupted = await asyncio.wait_for(routine, 2)
    assert not interrupted.finished
    names = sorted(p.name for p in (tmp_path / "out").glob("*.wav"))
    assert names == ["000001-reminder.stopped.wav", "000002-operator.wav"]


async def test_stop_ends_playback(tmp_path: Path) -> None:
    speaker = Speaker(WavBackend(tmp_path / "out", pace=1.0))
    task = asyncio.create_task(speaker.play(tone(5.0), SpeakPriority.OPERATOR, "long"))
    assert await eventually(lambda: speaker.playing is not None, 5, every_s=0.01), (
        "playback did not start"
    )
    assert await speaker.stop()
    assert not (await asyncio.wait_for(task, 2)).finished
    assert not await speaker.stop()


async def test_quiet_hours_refuse_low_priority_only(tmp_path: Path) -> None:
    night = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai
    quiet = QuietWindow(time(22, 0), time(7, 0), SpeakPriority.OPERATOR, "Asia/Shanghai")
    assert quiet.active(night)
    assert not quiet.active(datetime(2026, 11, 26, 4, 0, tzinfo=UTC))  # 12:00 local
    speaker = Speaker(WavBackend(tmp_path / "out"), quiet=quiet, clock=lambda: night)
    with pytest.raises(QuietHours, match="22:00-07:00"):
        await speaker.play(tone(0.05), SpeakPriority.ROUTINE, "routine")
    assert (await speaker.play(tone(0.05), SpeakPriority.OPERATOR, "operator")).finished
    assert len(list((tmp_path / "out").glob("*.wav"))) == 1


async def test_shout_plays_at_once_and_never_raises(tmp_path: Path) -> None:
    speaker = Speaker(
        WavBackend(tmp_path / "out"),
        clips={"chime": CHIME},
        phrases={"no-vending": "请勿占道经营"},
        tts=EspeakTts(tmp_path / "cache"),
    )
    await speaker.warm()
    await speaker.shout("no-vending")
    await speaker.wait_idle()
    await speaker.shout("此处禁止停车")  # not a clip id: spoken as text
    await speaker.wait_idle()
    await speaker.close()
    names = sorted(p.name for p in (tmp_path / "out").glob("*.wav"))
    assert names == ["000001-shout-no-vending.wav", "000002-shout.wav"]
    quiet = Speaker(
        NullBackend(),
        quiet=QuietWindow(time(0, 0), time(23, 59)),
        clips={"chime": CHIME},
    )
    await quiet.shout("chime")  # refused by quiet hours: logged, not raised
    await quiet.shout("no tts configured")  # failure: logged, not raised
    assert quiet.history == []
