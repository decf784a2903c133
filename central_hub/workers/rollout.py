"""The rollout worker: moves running campaigns on every tick (see
:mod:`central_hub.services.rollouts`); ``central-hub serve`` runs it as one task."""

from __future__ import annotations

import asyncio
import logging

import sqlalchemy as sa

from central_hub.errors import HubError
from central_hub.services.rollouts import RolloutService

__all__ = ["RolloutWorker"]

log = logging.getLogger(__name__)


class RolloutWorker:
    """Calls :meth:`RolloutService.tick` every ``tick_s`` seconds, forever."""

    def __init__(self, rollouts: RolloutService, *, tick_s: float = 2.0) -> None:
        self.rollouts = rollouts
        self.tick_s = tick_s

    async def run(self) -> None:
        """Tick until cancelled; a failed pass is logged and the next one tries again."""
        while True:
            try:
                await self.rollouts.tick()
            except (sa.exc.SQLAlchemyError, OSError, HubError) as exc:
                log.error("rollout pass failed, retrying: %s", exc)
            await asyncio.sleep(self.tick_s)
