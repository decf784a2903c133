"""``speaker.play_clip``: an operator's recorded message, fetched from the hub and played.

The hub's signed command names the clip by ``sha256`` and ``size``, where to get it
(``url``) and a one-time ``token``. The unit fetches it through the one downloader it has
(:func:`edge_agent.update.download.fetch_with_retries`, the model packages' path), which
checks size and sha256 before the file is kept; only then is it played, at operator
priority unless ``priority`` says otherwise, so it pre-empts an automatic shout.

Acks: a clip that is not the one the signed command names (its sha256 or size differ) is
``rejected`` and never played; a download that fails (the hub unreachable, the token
refused) or a playback that is refused or interrupted is ``failed`` with the reason.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from edge_agent import protocol
from edge_agent.backoff import Backoff
from edge_agent.link.commands import CommandFailed, CommandRefused
from edge_agent.speaker.audio import read_wav
from edge_agent.speaker.errors import SpeakerError
from edge_agent.speaker.player import Speaker, SpeakPriority
from edge_agent.update.download import DownloadError, fetch_with_retries

__all__ = ["MAX_CLIP_BYTES", "ClipParams", "VoiceClips", "clip_params"]

#: The largest clip a unit fetches: 60 s of 16 kHz mono 16-bit PCM and its header.
MAX_CLIP_BYTES = 60 * 16_000 * 2 + 1024

_SHA = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ClipParams:
    """A ``speaker.play_clip`` command's params, checked."""

    sha256: str
    size: int
    url: str
    token: str
    priority: SpeakPriority = SpeakPriority.OPERATOR


def clip_params(params: Mapping[str, Any]) -> ClipParams:
    """The checked params; :class:`CommandFailed` names every one that is wrong."""
    problems = []
    sha, size = params.get("sha256"), params.get("size")
    if not isinstance(sha, str) or not _SHA.match(sha):
        problems.append("sha256 (64 lowercase hex digits)")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_CLIP_BYTES:
        problems.append(f"size (bytes, 1..{MAX_CLIP_BYTES})")
    url, token = params.get("url"), params.get("token")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        problems.append("url (http:// or https://)")
    if not isinstance(token, str) or not token:
        problems.append("token (a non-empty string)")
    name = str(params.get("priority", "operator")).upper()
    if name not in SpeakPriority.__members__:
        problems.append(f"priority (one of {[p.name.lower() for p in SpeakPriority]})")
    if problems:
        raise CommandFailed("speaker.play_clip params need " + ", ".join(problems))
    return ClipParams(str(sha), int(str(size)), str(url), str(token), SpeakPriority[name])


#: An HTTP client for a URL (the city's CA for https), or None for a default one.
ClientFor = Callable[[str], httpx.AsyncClient | None]


class VoiceClips:
    """The ``speaker.play_clip`` executor: fetch into ``folder``, check, play, forget."""

    def __init__(
        self,
        current: Callable[[], Speaker],
        folder: Path,
        *,
        client_for: ClientFor = lambda url: None,
        attempts: int = 3,
    ) -> None:
        self.current = current
        self.folder = folder
        self.client_for = client_for
        self.attempts = attempts

    async def play_clip(self, command: protocol.Command) -> str:
        """Fetch the clip the command names, check it and play it to the end."""
        params = clip_params(command.params)
        dest = self.folder / f"{params.sha256}.wav"
        client = self.client_for(params.url)
        try:
            await fetch_with_retries(
                params.url,
                params.token,
                dest,
                sha256=params.sha256,
                size=params.size,
                client=client,
                attempts=self.attempts,
                timeout_s=10.0,
                backoff=Backoff(initial=0.2, cap=2.0),
            )
        except DownloadError as exc:
            if "sha256" in exc.problem or "bytes of the package" in exc.problem:
                raise CommandRefused(f"clip refused, not played: {exc}") from exc
            raise CommandFailed(f"clip not played: {exc}") from exc
        finally:
            if client is not None:
                await client.aclose()
        try:
            audio = await asyncio.to_thread(read_wav, dest)
            record = await self.current().play(
                audio, params.priority, f"voice-{params.sha256[:12]}"
            )
        except SpeakerError as exc:
            raise CommandFailed(f"clip not played: {exc}") from exc
        finally:
            await asyncio.to_thread(dest.unlink, missing_ok=True)
        if not record.finished:
            raise CommandFailed(f"clip {params.sha256[:12]} was interrupted")
        return f"played clip {params.sha256[:12]} ({record.duration_s:.1f} s)"
