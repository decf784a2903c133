"""Offline Chinese text-to-speech through the ``espeak-ng`` program, with a phrase cache.

Rendered phrases are kept as WAV files named by a hash of voice, speed and text, so a
routine reminder is synthesised once and an auto-shout plays at once, even offline.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import subprocess
from pathlib import Path

from edge_agent.speaker.audio import Audio, read_wav
from edge_agent.speaker.errors import TtsError

log = logging.getLogger(__name__)

__all__ = ["MAX_TEXT_CHARS", "EspeakTts"]

#: Longest text accepted for one utterance.
MAX_TEXT_CHARS = 500


class EspeakTts:
    """Renders text with ``espeak-ng -v {voice}`` into ``cache_dir``."""

    def __init__(
        self,
        cache_dir: Path,
        *,
        voice: str = "cmn",
        speed_wpm: int = 150,
        program: str = "espeak-ng",
    ) -> None:
        self.cache_dir = cache_dir
        self.voice = voice
        self.speed_wpm = speed_wpm
        self.program = program

    def cache_path(self, text: str) -> Path:
        """Where the rendering of ``text`` is (or will be) cached."""
        key = hashlib.sha256(f"{self.voice}\0{self.speed_wpm}\0{text}".encode()).hexdigest()
        return self.cache_dir / f"{key[:32]}.wav"

    def render_sync(self, text: str) -> Audio:
        """Render ``text`` (or load it from the cache); blocking, call from a thread."""
        text = text.strip()
        if not text:
            raise TtsError("nothing to say: the text is empty")
        if len(text) > MAX_TEXT_CHARS:
            raise TtsError(f"text has {len(text)} characters, at most {MAX_TEXT_CHARS} allowed")
        path = self.cache_path(text)
        if path.is_file():
            return read_wav(path)
        program = shutil.which(self.program)
        if program is None:
            raise TtsError(f"{self.program} is not installed (apt-get install espeak-ng)")
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        try:
            subprocess.run(
                [program, "-v", self.voice, "-s", str(self.speed_wpm), "-w", str(tmp), "--", text],
                check=True,
                capture_output=True,
                timeout=30,
            )
        except subprocess.CalledProcessError as exc:
            detail = exc.stderr.decode(errors="replace").strip()
            raise TtsError(f"{self.program} failed: {detail}") from exc
        except (subprocess.TimeoutExpired, OSError) as exc:
            raise TtsError(f"{self.program} failed: {exc}") from exc
        tmp.replace(path)
        log.debug("tts: rendered %d characters into %s", len(text), path.name)
        return read_wav(path)

    async def render(self, text: str) -> Audio:
        """Render ``text`` off the event loop."""
        return await asyncio.to_thread(self.render_sync, text)
