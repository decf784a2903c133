"""The command dispatcher: expires and sends queued commands, every tick and when woken.

The queue itself (signing, states, acks) is :mod:`central_hub.services.commands`; this
worker only decides *when* to look at it, so ``central-hub serve`` runs it as one task.
"""

from __future__ import annotations

import asyncio
import logging

import sqlalchemy as sa

from central_hub.services.commands import CommandService

__all__ = ["CommandDispatcher"]

log = logging.getLogger(__name__)


class CommandDispatcher:
    """Runs the command queue's expiry and sending as one long-lived task."""

    def __init__(self, commands: CommandService, *, tick_s: float = 1.0) -> None:
        self.commands = commands
        self.tick_s = tick_s

    async def run(self) -> None:
        """Expire and send forever: every ``tick_s`` seconds and whenever woken."""
        woken = self.commands.woken
        while True:
            woken.clear()  # a wake-up during this pass triggers the next one at once
            try:
                await self.commands.expire()
                await self.commands.flush()
            except (sa.exc.SQLAlchemyError, OSError) as exc:
                log.error("command queue pass failed, retrying: %s", exc)
            try:
                async with asyncio.timeout(self.tick_s):
                    await woken.wait()
            except TimeoutError:
                pass
