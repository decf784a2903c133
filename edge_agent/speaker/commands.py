"""The speaker's command executors: ``speaker.play``, ``speaker.say``, ``speaker.stop``.

Parameters: ``play`` takes ``clip`` (a library id), ``say`` takes ``text``; both take an
optional ``priority`` (``routine`` | ``auto`` | ``operator`` | ``emergency``, default
``operator``) and ``volume`` (0..1, default the configured volume). A playback that is
interrupted, refused (busy, quiet hours) or cannot be rendered fails with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edge_agent import protocol
from edge_agent.link.commands import CommandFailed, Executor
from edge_agent.speaker.errors import SpeakerError
from edge_agent.speaker.player import Speaker, SpeakPriority

__all__ = ["SpeakerCommands"]


def _priority(params: dict[str, Any]) -> SpeakPriority:
    name = str(params.get("priority", "operator")).upper()
    try:
        return SpeakPriority[name]
    except KeyError:
        choices = [p.name.lower() for p in SpeakPriority]
        raise CommandFailed(f"params.priority must be one of {choices}") from None


def _volume(params: dict[str, Any]) -> float | None:
    value = params.get("volume")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise CommandFailed("params.volume must be a number within 0..1")
    return float(value)


class SpeakerCommands:
    """Executors bound to whichever :class:`Speaker` ``current()`` returns (it changes when
    ``config.apply`` rebuilds the speaker)."""

    def __init__(self, current: Callable[[], Speaker]) -> None:
        self.current = current

    def executors(self) -> dict[str, Executor]:
        """The executors by command kind."""
        return {"speaker.play": self.play, "speaker.say": self.say, "speaker.stop": self.stop}

    async def play(self, command: protocol.Command) -> str:
        """``speaker.play``: play a library clip to the end."""
        p = command.params
        clip = p.get("clip")
        if not isinstance(clip, str) or not clip:
            raise CommandFailed("params.clip (a clip id) is required")
        try:
            record = await self.current().play_clip(clip, _priority(p), volume=_volume(p))
        except SpeakerError as exc:
            raise CommandFailed(str(exc)) from exc
        if not record.finished:
            raise CommandFailed(f"clip {clip} was interrupted")
        return f"played clip {clip} ({record.duration_s:.1f} s)"

    async def say(self, command: protocol.Command) -> str:
        """``speaker.say``: speak a text through the offline TTS to the end."""
        p = command.params
        text = p.get("text")
        if not isinstance(text, str) or not text.strip():
            raise CommandFailed("params.text (what to say) is required")
        try:
            record = await self.current().say(text, _priority(p), volume=_volume(p))
        except SpeakerError as exc:
            raise CommandFailed(str(exc)) from exc
        if not record.finished:
            raise CommandFailed("speech was interrupted")
        return f"said {len(text)} characters ({record.duration_s:.1f} s)"

    async def stop(self, command: protocol.Command) -> str:
        """``speaker.stop``: stop whatever is playing."""
        return "stopped" if await self.current().stop() else "nothing was playing"
