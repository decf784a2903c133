"""The loudspeaker: audio backends, a clip library, offline Chinese TTS and the player.

:mod:`~edge_agent.speaker.audio` (PCM audio and WAV files),
:mod:`~edge_agent.speaker.backends` (``wav``, ``null``, ``pyaudio``),
:mod:`~edge_agent.speaker.tts` (espeak-ng with a phrase cache),
:mod:`~edge_agent.speaker.player` (priorities, preemption, volume, quiet hours, auto-shout).
"""
