"""Build the speaker a config's ``speaker`` section describes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from edge_agent.config import SpeakerSection
from edge_agent.speaker.backends import make_backend
from edge_agent.speaker.player import QuietWindow, Speaker, SpeakPriority
from edge_agent.speaker.tts import EspeakTts

__all__ = ["build_speaker"]


async def build_speaker(section: SpeakerSection, clock: Callable[[], datetime]) -> Speaker:
    """The speaker with its backend, library, TTS and quiet hours, every clip loaded and
    every phrase rendered (so a later auto-shout plays at once). Raises a
    :class:`~edge_agent.speaker.errors.SpeakerError` when any of that fails."""
    quiet = None
    if section.quiet_hours is not None:
        quiet = QuietWindow(
            section.quiet_hours.start,
            section.quiet_hours.end,
            SpeakPriority[section.quiet_hours.min_priority.upper()],
            section.timezone,
        )
    speaker = Speaker(
        make_backend(section.backend, wav_dir=section.wav_dir, pace=section.wav_pace),
        clips=dict(section.clips),
        phrases=section.phrases,
        tts=EspeakTts(section.tts_cache, voice=section.tts_voice),
        volume=section.volume,
        quiet=quiet,
        clock=clock,
    )
    await speaker.warm()
    return speaker
