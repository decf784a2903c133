"""The speaker service: one thing plays at a time, by priority, within quiet hours.

* Priorities (:class:`SpeakPriority`): a request of equal or higher priority stops what
  is playing and takes over (an operator's message interrupts a routine reminder); a
  lower one is refused with :class:`SpeakerBusy`.
* Quiet hours: between ``start`` and ``end`` (local time of the unit) requests below
  ``min_priority`` are refused with :class:`QuietHours`.
* Volume: a master volume (0..1) applied to every playback, optionally overridden per
  request.
* Auto-shout (:meth:`Speaker.shout`): a rule's local warning, a clip id or a text,
  started at once without the hub; it returns when playback has *started*.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from edge_agent.protocol import utc_now
from edge_agent.speaker.audio import Audio, read_wav
from edge_agent.speaker.backends import AudioBackend
from edge_agent.speaker.errors import ClipNotFound, QuietHours, SpeakerBusy, SpeakerError
from edge_agent.speaker.tts import EspeakTts

log = logging.getLogger(__name__)

__all__ = ["PlayRecord", "QuietWindow", "SpeakPriority", "Speaker"]


class SpeakPriority(enum.IntEnum):
    """Who asked: higher numbers interrupt lower ones."""

    ROUTINE = 10
    AUTO = 20
    OPERATOR = 30
    EMERGENCY = 40


@dataclass(frozen=True)
class QuietWindow:
    """Local quiet hours; ``start`` > ``end`` spans midnight (22:00-07:00)."""

    start: time
    end: time
    min_priority: SpeakPriority = SpeakPriority.OPERATOR
    tz: str = "Asia/Shanghai"

    def active(self, now: datetime) -> bool:
        """True if ``now`` falls in the window."""
        local = now.astimezone(ZoneInfo(self.tz)).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


@dataclass(frozen=True)
class PlayRecord:
    """One playback, for tests, logs and acks."""

    label: str
    priority: SpeakPriority
    started_at: datetime
    duration_s: float
    finished: bool


@dataclass
class _Playing:
    label: str
    priority: SpeakPriority
    stop: threading.Event
    task: asyncio.Task[bool]
    started_at: datetime = field(default_factory=utc_now)


class Speaker:
    """Plays clips and speech on one backend; see the module docstring."""

    def __init__(
        self,
        backend: AudioBackend,
        *,
        clips: Mapping[str, Path] | None = None,
        phrases: Mapping[str, str] | None = None,
        tts: EspeakTts | None = None,
        volume: float = 1.0,
        quiet: QuietWindow | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if not 0.0 <= volume <= 1.0:
            raise ValueError(f"volume must be within 0..1, got {volume}")
        self.backend = backend
        self.clips = dict(clips or {})
        self.phrases = dict(phrases or {})
        self.tts = tts
        self.volume = volume
        self.quiet = quiet
        self.clock = clock
        self._cache: dict[str, Audio] = {}
        self._lock = asyncio.Lock()
        self._current: _Playing | None = None
        self._started: set[asyncio.Task[bool]] = set()
        #: Every playback started, oldest first.
        self.history: list[PlayRecord] = []

    # ------------------------------------------------------------------ sources

    async def clip(self, clip_id: str) -> Audio:
        """The audio of a library clip (a WAV file, or a phrase rendered by TTS)."""
        if clip_id in self._cache:
            return self._cache[clip_id]
        if clip_id in self.clips:
            audio = await asyncio.to_thread(read_wav, self.clips[clip_id])
        elif clip_id in self.phrases:
            audio = await self._speech(self.phrases[clip_id])
        else:
            known = sorted({*self.clips, *self.phrases})
            raise ClipNotFound(f"no clip {clip_id!r}; the library has {known}")
        self._cache[clip_id] = audio
        return audio

    async def _speech(self, text: str) -> Audio:
        if self.tts is None:
            raise SpeakerError("text-to-speech is not configured (speaker.tts_voice)")
        return await self.tts.render(text)

    async def warm(self) -> None:
        """Load every clip and render every phrase now, so shouts play at once later."""
        for clip_id in sorted({*self.clips, *self.phrases}):
            await self.clip(clip_id)

    # ------------------------------------------------------------------ playing

    async def play_clip(
        self, clip_id: str, priority: SpeakPriority, *, volume: float | None = None
    ) -> PlayRecord:
        """Play a library clip to the end (or until preempted); see :meth:`play`."""
        return await self.play(await self.clip(clip_id), priority, f"clip-{clip_id}", volume)

    async def say(
        self, text: str, priority: SpeakPriority, *, volume: float | None = None
    ) -> PlayRecord:
        """Speak ``text`` through TTS to the end (or until preempted)."""
        return await self.play(await self._speech(text), priority, "say", volume)

    async def play(
        self, audio: Audio, priority: SpeakPriority, label: str, volume: float | None = None
    ) -> PlayRecord:
        """Play ``audio``; return its record once it finished or was stopped."""
        playing = await self._start(audio, priority, label, volume)
        finished = await asyncio.shield(playing.task)
        return PlayRecord(label, priority, playing.started_at, audio.duration_s, finished)

    async def shout(self, ref: str) -> None:
        """A rule's local warning: a clip id if the library has it, else text to speak.

        Starts at once at :attr:`SpeakPriority.AUTO` and returns without waiting for the
        end; refusals (busy, quiet hours) and failures are logged, never raised, so a
        rule is never stopped by the speaker.
        """
        try:
            known = ref in self.clips or ref in self.phrases
            audio = await self.clip(ref) if known else await self._speech(ref)
            await self._start(audio, SpeakPriority.AUTO, f"shout-{ref}" if known else "shout")
        except (SpeakerBusy, QuietHours) as exc:
            log.info("auto-shout %r not played: %s", ref, exc)
        except SpeakerError as exc:
            log.warning("auto-shout %r failed: %s", ref, exc)

    async def stop(self) -> bool:
        """Stop what is playing; return True if something was."""
        async with self._lock:
            current = self._current
            if current is None or current.task.done():
                return False
            current.stop.set()
            await asyncio.wait({current.task})
            return True

    async def wait_idle(self) -> None:
        """Wait until nothing is playing."""
        current = self._current
        if current is not None and not current.task.done():
            await asyncio.wait({current.task})

    @property
    def playing(self) -> str | None:
        """The label of what is playing now, or None."""
        current = self._current
        return current.label if current is not None and not current.task.done() else None

    async def _start(
        self, audio: Audio, priority: SpeakPriority, label: str, volume: float | None = None
    ) -> _Playing:
        now = self.clock()
        if self.quiet is not None and priority < self.quiet.min_priority and self.quiet.active(now):
            raise QuietHours(
                f"quiet hours {self.quiet.start:%H:%M}-{self.quiet.end:%H:%M}: "
                f"only {self.quiet.min_priority.name.lower()} messages play"
            )
        level = self.volume if volume is None else volume
        scaled = audio.scaled(level)
        async with self._lock:
            current = self._current
            if current is not None and not current.task.done():
                if priority < current.priority:
                    raise SpeakerBusy(
                        f"speaker is playing {current.label} at {current.priority.name.lower()}"
                        f" priority, above {priority.name.lower()}"
                    )
                log.info("speaker: %s preempts %s", label, current.label)
                current.stop.set()
                await asyncio.wait({current.task})
            stop = threading.Event()
            task = asyncio.create_task(
                asyncio.to_thread(self.backend.play, scaled, stop, label), name=f"speaker-{label}"
            )
            self._started.add(task)
            task.add_done_callback(self._started.discard)
            task.add_done_callback(_log_failure)
            playing = _Playing(label, priority, stop, task, now)
            self._current = playing
            self.history.append(PlayRecord(label, priority, now, audio.duration_s, False))
            return playing

    async def close(self) -> None:
        """Stop playback and wait for the backend thread to return."""
        await self.stop()
        if self._started:
            await asyncio.wait(set(self._started))


def _log_failure(task: asyncio.Task[bool]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("speaker backend failed: %s", exc)
