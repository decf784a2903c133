"""Signed commands from the hub: verify, remember, run, and ack through the outbox.

Each message on the device's ``cmd`` topic is checked with
:func:`edge_agent.protocol.verify_command` (shape, Ed25519 signature against the hub key
from config, target device, expiry, replay). The replay guard is the outbox database: an
accepted ``cmd_id`` is committed to disk, together with nothing else, before the command
runs, so a replay is refused even after a restart, until the command's expiry.

Acks go through the outbox (highest priority): ``received`` then ``succeeded`` or
``failed``; a refused command gets one ack, ``rejected`` or ``expired``, with the reason
first in ``detail`` (``bad_signature: ...``). Commands run as their own tasks, so
``speaker.stop`` can interrupt a ``speaker.say`` that is still playing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_agent import protocol
from edge_agent.link.errors import EdgeLinkError
from edge_agent.link.outbox import Outbox, Priority

log = logging.getLogger(__name__)

__all__ = ["CommandFailed", "CommandHandler", "CommandRefused", "Executor", "OutboxReplayGuard"]

#: Runs one verified command and returns a short detail for the ``succeeded`` ack.
Executor = Callable[[protocol.Command], Awaitable[str]]

AckState = Literal["received", "succeeded", "failed", "rejected", "expired"]


class CommandFailed(EdgeLinkError):
    """Raised by an executor for a command it could not carry out; the text goes in the ack."""


class CommandRefused(CommandFailed):
    """Raised by an executor for a command it will not carry out as given (a model package
    that is not signed by the hub): acked ``rejected``, not ``failed``."""


class OutboxReplayGuard:
    """A :class:`protocol.ReplayGuard` over the outbox's table of accepted command ids."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def seen(self, cmd_id: str) -> bool:
        """True if ``cmd_id`` was accepted before (in this run or an earlier one)."""
        return self.outbox.command_seen(cmd_id)

    def remember(self, cmd_id: str, expires_at: datetime) -> None:
        """Note ``cmd_id`` at once; the handler commits it before the command runs."""
        self.outbox.reserve_command(cmd_id, expires_at)


class CommandHandler:
    """Verifies, runs and acks commands; feed it payloads with :meth:`submit`."""

    def __init__(
        self,
        *,
        device_id: str,
        public_key: Ed25519PublicKey | Callable[[], Sequence[Ed25519PublicKey]],
        outbox: Outbox,
        executors: Mapping[str, Executor],
        clock: Callable[[], datetime],
        timeout_s: float = 120.0,
        timeouts: Mapping[str, float] | None = None,
    ) -> None:
        self.device_id = device_id
        self.public_key = public_key
        self.outbox = outbox
        self.executors = dict(executors)
        self.clock = clock
        self.timeout_s = timeout_s
        #: Kinds that may take longer than ``timeout_s`` (a model download).
        self.timeouts = dict(timeouts or {})
        self.guard = OutboxReplayGuard(outbox)
        self._tasks: set[asyncio.Task[protocol.CommandAck | None]] = set()
        self._ack_topic = protocol.topic(device_id, protocol.Channel.CMD_ACK)
        #: Final acks sent, newest last (for telemetry and tests).
        self.results: list[protocol.CommandAck] = []

    def submit(self, payload: bytes) -> asyncio.Task[protocol.CommandAck | None]:
        """Handle ``payload`` in its own task (kept until it finishes)."""
        task = asyncio.get_running_loop().create_task(self.handle(payload), name="command")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        """Cancel commands still running and wait for them."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))

    async def handle(self, payload: bytes) -> protocol.CommandAck | None:
        """Verify and run one command; return the final ack (None if none could be sent)."""
        now = self.clock()
        # The keys trusted now: one, or several while the hub rotates its key.
        keys = (
            self.public_key if isinstance(self.public_key, Ed25519PublicKey) else self.public_key()
        )
        try:
            command = protocol.verify_command(
                payload,
                public_key=keys,
                device_id=self.device_id,
                now=now,
                replay=self.guard,
            )
        except protocol.CommandRejected as exc:
            log.warning("command %s refused: %s", exc.cmd_id or "(no id)", exc)
            return await self._ack(exc.cmd_id or "unknown", exc.ack_state, str(exc))
        await self.outbox.remember_command(command.cmd_id, command.expires_at)
        log.info("command %s accepted: %s", command.cmd_id, command.kind)
        await self._ack(command.cmd_id, "received", command.kind)
        executor = self.executors.get(command.kind)
        if executor is None:
            return await self._ack(
                command.cmd_id, "failed", f"this unit does not support {command.kind!r}"
            )
        limit = self.timeouts.get(command.kind, self.timeout_s)
        try:
            async with asyncio.timeout(limit):
                detail = await executor(command)
        except CommandRefused as exc:
            log.warning("command %s (%s) refused: %s", command.cmd_id, command.kind, exc)
            return await self._ack(command.cmd_id, "rejected", str(exc))
        except CommandFailed as exc:
            log.warning("command %s (%s) failed: %s", command.cmd_id, command.kind, exc)
            return await self._ack(command.cmd_id, "failed", str(exc))
        except TimeoutError:
            return await self._ack(command.cmd_id, "failed", f"did not finish within {limit:.0f} s")
        except Exception as exc:
            # The boundary of untrusted work: report it to the hub instead of dying.
            log.exception("command %s (%s) crashed", command.cmd_id, command.kind)
            return await self._ack(command.cmd_id, "failed", f"{type(exc).__name__}: {exc}")
        return await self._ack(command.cmd_id, "succeeded", detail)

    async def finish(self, cmd_id: str, state: AckState, detail: str) -> protocol.CommandAck | None:
        """Ack a command this unit accepted in an earlier run and finished in this one (a
        model install resumed after a power cut)."""
        return await self._ack(cmd_id, state, detail)

    async def _ack(self, cmd_id: str, state: AckState, detail: str) -> protocol.CommandAck | None:
        try:
            ack = protocol.CommandAck(
                cmd_id=cmd_id[:64] or "unknown",
                device_id=self.device_id,
                state=state,
                detail=detail[:2000],
                ts=self.clock(),
            )
        except ValueError as exc:
            log.error("cannot build an ack for %r: %s", cmd_id, exc)
            return None
        await self.outbox.append(self._ack_topic, protocol.encode(ack), priority=Priority.ACK)
        if state != "received":
            self.results.append(ack)
        return ack
