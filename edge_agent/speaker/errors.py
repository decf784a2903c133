"""Errors of the speaker package."""

from __future__ import annotations


class SpeakerError(Exception):
    """Base of every error raised by :mod:`edge_agent.speaker`."""


class AudioFormatError(SpeakerError):
    """A WAV file the speaker cannot play (not 16-bit PCM, unreadable)."""


class ClipNotFound(SpeakerError):
    """A clip id that is not in the configured library."""


class TtsError(SpeakerError):
    """The text-to-speech program is missing or failed."""


class SpeakerBusy(SpeakerError):
    """A request refused because something of higher priority is playing."""


class QuietHours(SpeakerError):
    """A request refused because it is quiet hours and its priority is too low."""


class BackendUnavailable(SpeakerError):
    """An audio backend that cannot be used here (no pyaudio, no output device)."""
