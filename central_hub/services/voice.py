"""Operators' recorded messages (高空喊话): stored by sha256, sent as ``speaker.play_clip``.

:meth:`VoiceService.send` takes the recorded audio (WebM/Ogg Opus from the console's
talk button, or WAV), converts it to what units play (16 kHz mono 16-bit WAV, by ffmpeg:
:mod:`central_hub.adapters.audio_convert`), stores it under ``root`` by its sha256 and
queues a signed ``speaker.play_clip`` for the device with the clip's ``sha256``, ``size``,
its ``url`` and a one-time ``token``. The unit fetches ``GET /api/v1/voice/clips/{sha256}``
with that token as a bearer token (:meth:`VoiceService.authorize`): a token opens only its
own clip and only while its command is open (queued, sent or delivered, not past its
expiry), as a rollout's install token does.

Who said what to whom is the command's row: the operator (``created_by``), the device, the
clip's sha256 and the case it was sent from (``case_id`` in its params), kept with the
device's commands and shown on its console page.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.adapters.audio_convert import ConverterMissing, to_unit_wav
from central_hub.db.schema import cases, commands
from central_hub.domain.voice import (
    ClipLimits,
    InvalidClip,
    check_duration,
    container_of,
    wav_info,
)
from central_hub.errors import AuthError, InvalidInputError, NotFoundError
from central_hub.services.commands import OPEN_STATES, CommandService, CommandView

log = logging.getLogger(__name__)

__all__ = ["PLAY_CLIP", "ClipView", "VoiceService"]

#: The command kind that carries a clip.
PLAY_CLIP = "speaker.play_clip"
_SHA = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ClipView:
    """A stored clip: what units play."""

    sha256: str
    size: int
    duration_s: float


class VoiceService:
    """Stores clips under ``root`` and sends them to units; see the module doc."""

    def __init__(
        self,
        engine: AsyncEngine,
        commands_service: CommandService,
        root: Path,
        clock: Callable[[], datetime],
        *,
        public_url: str,
        limits: ClipLimits | None = None,
        ttl: timedelta = timedelta(minutes=2),
    ) -> None:
        self.engine = engine
        self.commands = commands_service
        self.root = root
        self.clock = clock
        self.public_url = public_url.rstrip("/")
        self.limits = limits or ClipLimits()
        #: How long a message may wait for its unit: a late shout is a wrong shout.
        self.ttl = ttl

    def path(self, sha256: str) -> Path:
        """Where the clip of ``sha256`` lies (whether or not it exists)."""
        if not _SHA.match(sha256):
            raise NotFoundError(f"no clip {sha256!r} (a clip is named by its sha256)")
        return self.root / f"{sha256}.wav"

    async def store(self, data: bytes) -> ClipView:
        """Check and convert an upload, keep it by its sha256; InvalidClip says what is wrong."""
        try:
            container = container_of(data, self.limits)
            wav = data
            if container != "wav" or not wav_info(data).plays_on_units:
                wav = await to_unit_wav(data, max_seconds=self.limits.max_duration_s)
            duration = check_duration(wav_info(wav).duration_s, self.limits)
        except (InvalidClip, ConverterMissing) as exc:
            raise InvalidInputError(f"message not sent: {exc}") from exc
        sha = hashlib.sha256(wav).hexdigest()
        await asyncio.to_thread(self._write, sha, wav)
        return ClipView(sha, len(wav), round(duration, 3))

    def _write(self, sha: str, wav: bytes) -> None:
        target = self.path(sha)
        try:
            os.utime(target)  # sent again: retention counts from now (services.retention)
            return
        except FileNotFoundError:
            pass  # new, or swept a moment ago: written below
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{secrets.token_hex(4)}.tmp")
        with tmp.open("wb") as fh:
            fh.write(wav)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)

    async def send(
        self,
        device_id: str,
        data: bytes,
        *,
        actor: str,
        case_id: int | None = None,
        priority: str = "operator",
    ) -> CommandView:
        """Store the message and queue its ``speaker.play_clip`` for ``device_id``."""
        if case_id is not None:
            async with self.engine.connect() as conn:
                found = (
                    await conn.execute(sa.select(cases.c.id).where(cases.c.id == case_id))
                ).first()
            if found is None:
                raise NotFoundError(f"no case {case_id} to keep the message with")
        clip = await self.store(data)
        return await self.send_clip(
            device_id, clip, actor=actor, case_id=case_id, priority=priority
        )

    async def send_clip(
        self,
        device_id: str,
        clip: ClipView,
        *,
        actor: str,
        case_id: int | None = None,
        priority: str = "operator",
    ) -> CommandView:
        """Queue a ``speaker.play_clip`` of a stored clip with a fresh one-time token."""
        params: dict[str, Any] = {
            "sha256": clip.sha256,
            "size": clip.size,
            "url": f"{self.public_url}/api/v1/voice/clips/{clip.sha256}",
            "token": secrets.token_urlsafe(24),
            "priority": priority,
            "duration_s": clip.duration_s,
        }
        if case_id is not None:
            params["case_id"] = case_id
        cmd = await self.commands.enqueue(device_id, PLAY_CLIP, params, ttl=self.ttl, actor=actor)
        log.info(
            "voice: %s sent clip %s (%.1f s) to %s",
            actor,
            clip.sha256[:12],
            clip.duration_s,
            device_id,
        )
        return cmd

    async def sent_for_case(self, case_id: int, device_ids: set[str]) -> list[CommandView]:
        """The messages sent from a case to the units of its events, newest first."""
        if not device_ids:
            return []
        async with self.engine.connect() as conn:
            ids = (
                await conn.execute(
                    sa.select(commands.c.cmd_id, commands.c.params)
                    .where(commands.c.kind == PLAY_CLIP, commands.c.device_id.in_(device_ids))
                    .order_by(commands.c.issued_at.desc())
                    .limit(500)
                )
            ).all()
        found = [c for c, p in ids if isinstance(p, dict) and p.get("case_id") == case_id]
        return [await self.commands.get(c) for c in found]

    async def authorize(self, sha256: str, token: str | None) -> Path:
        """The clip's file, if ``token`` is the one-time token of an open command for it."""
        path = self.path(sha256)
        if not token:
            raise AuthError("a clip download needs the token of its speaker.play_clip command")
        now = self.clock()
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(commands.c.params, commands.c.state, commands.c.expires_at).where(
                        commands.c.kind == PLAY_CLIP, commands.c.state.in_(OPEN_STATES)
                    )
                )
            ).all()
        for params, _state, expires_at in rows:
            if (
                isinstance(params, dict)
                and params.get("sha256") == sha256
                and secrets.compare_digest(str(params.get("token", "")), token)
            ):
                if expires_at <= now:
                    raise AuthError("this token is spent (its command has expired)")
                if not await asyncio.to_thread(path.exists):
                    raise NotFoundError(f"clip {sha256} is no longer stored")
                return path
        raise AuthError("this token does not fetch this clip (or its command is finished)")
