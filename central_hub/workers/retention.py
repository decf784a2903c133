"""Runs a retention pass every ``every_s`` seconds (:mod:`central_hub.services.retention`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.adapters.evidence import EvidenceStore
from central_hub.domain.retention import RetentionPolicy
from central_hub.errors import HubError
from central_hub.services.retention import apply_retention

log = logging.getLogger(__name__)

__all__ = ["RetentionWorker"]


class RetentionWorker:
    """A pass at start, then one every ``every_s`` seconds; a failed pass is logged and
    the next one tries again. Several hub workers may each run one: passes are idempotent."""

    def __init__(
        self,
        engine: AsyncEngine,
        evidence: EvidenceStore,
        frames: EvidenceStore,
        policy: RetentionPolicy,
        clock: Callable[[], datetime],
        *,
        every_s: float,
        voice: Path | None = None,
    ) -> None:
        self.engine, self.evidence, self.frames = engine, evidence, frames
        self.policy, self.clock, self.every_s = policy, clock, every_s
        self.voice = voice

    async def run(self) -> None:
        """Pass, sleep, repeat until cancelled."""
        while True:
            try:
                await apply_retention(
                    self.engine,
                    self.evidence,
                    self.frames,
                    self.policy,
                    self.clock(),
                    voice=self.voice,
                )
            except (sa.exc.SQLAlchemyError, OSError, HubError) as exc:
                log.error("retention pass failed, retrying later: %s", exc)
            await asyncio.sleep(self.every_s)
