"""The persistent command queue: signed with the hub's Ed25519 key, sent when the device is online.

States: ``queued → sent → delivered → succeeded | failed | rejected | expired``. A command
is signed once, when queued, with ``issued_at`` = the enqueue time and ``expires_at`` =
``issued_at + ttl``; the stored payload is what goes on the wire, byte for byte, on every
send. Acks from the device move the state forward only (never back), so duplicated or
reordered acks are harmless. The sweeper marks what is still unfinished at its expiry as
``expired``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from central_hub.db.schema import commands, devices
from central_hub.errors import BrokerError, CommandError, NotFoundError
from central_hub.services.publisher import Publisher
from edge_agent.protocol import (
    Channel,
    CommandAck,
    ProtocolError,
    encode,
    sign_command,
    topic,
)

log = logging.getLogger(__name__)

__all__ = ["OPEN_STATES", "CommandService", "CommandState", "CommandView", "apply_ack"]


class CommandState(enum.StrEnum):
    """Where a command is in its life."""

    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def final(self) -> bool:
        """True for the states a command never leaves."""
        return self in _FINAL


_FINAL = frozenset(
    {CommandState.SUCCEEDED, CommandState.FAILED, CommandState.REJECTED, CommandState.EXPIRED}
)
#: The states of a command not yet acked, failed or expired.
OPEN_STATES = [CommandState.QUEUED.value, CommandState.SENT.value, CommandState.DELIVERED.value]
#: Ack state → command state.
_FROM_ACK = {
    "received": CommandState.DELIVERED,
    "succeeded": CommandState.SUCCEEDED,
    "failed": CommandState.FAILED,
    "rejected": CommandState.REJECTED,
    "expired": CommandState.EXPIRED,
}


class CommandView(BaseModel):
    """A command as the API shows it."""

    model_config = ConfigDict(frozen=True)

    cmd_id: str
    device_id: str
    kind: str
    params: dict[str, Any]
    issued_at: datetime
    expires_at: datetime
    state: CommandState
    detail: str
    created_by: str
    sent_at: datetime | None
    updated_at: datetime


def _view(row: sa.Row[Any]) -> CommandView:
    return CommandView(
        cmd_id=row.cmd_id,
        device_id=row.device_id,
        kind=row.kind,
        params=row.params,
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        state=CommandState(row.state),
        detail=row.detail,
        created_by=row.created_by,
        sent_at=row.sent_at,
        updated_at=row.updated_at,
    )


async def apply_ack(conn: AsyncConnection, ack: CommandAck, now: datetime) -> bool:
    """Move a command forward on a device's ack; return True if the state changed.

    ``received`` only moves ``queued``/``sent`` to ``delivered``; a final state is
    applied to any open command. An ack for an unknown command or a finished one (a
    duplicate) changes nothing.
    """
    new = _FROM_ACK[ack.state]
    allowed = OPEN_STATES if new.final else [CommandState.QUEUED.value, CommandState.SENT.value]
    result = await conn.execute(
        commands.update()
        .where(
            commands.c.cmd_id == ack.cmd_id,
            commands.c.device_id == ack.device_id,
            commands.c.state.in_(allowed),
        )
        .values(state=new.value, detail=ack.detail, updated_at=now)
    )
    return result.rowcount > 0


class CommandService:
    """Queues, sends and expires commands.

    :class:`central_hub.workers.dispatch.CommandDispatcher` calls :meth:`expire` and
    :meth:`flush` every tick and whenever :attr:`woken` is set.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        key: Ed25519PrivateKey,
        publisher: Publisher | None,
        clock: Callable[[], datetime],
    ) -> None:
        self.engine = engine
        self.key = key
        self.publisher = publisher
        self.clock = clock
        #: Set by :meth:`wake`; the dispatcher waits on it between ticks.
        self.woken = asyncio.Event()

    def wake(self) -> None:
        """Ask the dispatcher to look at the queue now (a device came online, a command queued)."""
        self.woken.set()

    async def enqueue(
        self,
        device_id: str,
        kind: str,
        params: dict[str, Any] | None = None,
        *,
        ttl: timedelta = timedelta(minutes=10),
        actor: str,
    ) -> CommandView:
        """Sign and queue a command for a registered device; the sender delivers it."""
        now = self.clock()
        try:
            cmd = sign_command(
                self.key, device_id=device_id, kind=kind, params=params, issued_at=now, ttl=ttl
            )
        except ProtocolError as exc:
            raise CommandError(str(exc)) from exc
        async with self.engine.begin() as conn:
            known = (
                await conn.execute(
                    sa.select(devices.c.device_id).where(devices.c.device_id == device_id)
                )
            ).first()
            if known is None:
                raise NotFoundError(f"no device {device_id!r}")
            await conn.execute(
                commands.insert().values(
                    cmd_id=cmd.cmd_id,
                    device_id=device_id,
                    kind=kind,
                    params=cmd.params,
                    issued_at=cmd.issued_at,
                    expires_at=cmd.expires_at,
                    payload=encode(cmd).decode("utf-8"),
                    state=CommandState.QUEUED.value,
                    detail="",
                    created_by=actor,
                    updated_at=now,
                )
            )
        log.info("queued %s %s for %s by %s", kind, cmd.cmd_id, device_id, actor)
        self.wake()
        return await self.get(cmd.cmd_id)

    async def get(self, cmd_id: str) -> CommandView:
        """One command; NotFoundError when unknown."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(commands.select().where(commands.c.cmd_id == cmd_id))).first()
        if row is None:
            raise NotFoundError(f"no command {cmd_id!r}")
        return _view(row)

    async def list_for(self, device_id: str, limit: int = 100) -> list[CommandView]:
        """A device's commands, newest first."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    commands.select()
                    .where(commands.c.device_id == device_id)
                    .order_by(commands.c.issued_at.desc(), commands.c.cmd_id.desc())
                    .limit(limit)
                )
            ).all()
        return [_view(r) for r in rows]

    async def expire(self, now: datetime | None = None) -> int:
        """Mark unfinished commands past their expiry ``expired``; return how many."""
        now = now or self.clock()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                commands.update()
                .where(commands.c.state.in_(OPEN_STATES), commands.c.expires_at <= now)
                .values(state=CommandState.EXPIRED.value, detail="expired at hub", updated_at=now)
            )
        if result.rowcount:
            log.info("expired %d commands", result.rowcount)
        return int(result.rowcount)

    async def flush(self, now: datetime | None = None) -> int:
        """Publish queued, unexpired commands of reachable devices; return how many went out.

        Every hub process runs a dispatcher, so each command is first claimed (``queued``
        to ``sent`` in one conditional update) and published only by the process whose
        claim changed the row: a device given a command twice refuses the second as a
        replay, and that refusal would end a command it is carrying out as ``rejected``.
        A claim whose publish fails goes back to ``queued``; a process killed between
        claim and publish leaves the command ``sent`` until it expires (shown as expired,
        not lost silently).
        """
        if self.publisher is None or not self.publisher.connected:
            return 0
        now = now or self.clock()
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(commands.c.cmd_id, commands.c.device_id, commands.c.payload)
                    .join(devices, devices.c.device_id == commands.c.device_id)
                    .where(
                        commands.c.state == CommandState.QUEUED.value,
                        commands.c.expires_at > now,
                        devices.c.state.in_(["online", "degraded"]),
                    )
                    .order_by(commands.c.issued_at)
                    .limit(500)
                )
            ).all()
        sent = 0
        for row in rows:
            if not await self._move(row.cmd_id, CommandState.QUEUED, CommandState.SENT, now):
                continue  # another hub process claimed it, or it was cancelled meanwhile
            try:
                await self.publisher.publish(
                    topic(row.device_id, Channel.CMD), row.payload.encode("utf-8"), qos=1
                )
            except BrokerError as exc:
                log.warning("could not send %s to %s: %s", row.cmd_id, row.device_id, exc)
                await self._move(row.cmd_id, CommandState.SENT, CommandState.QUEUED, now)
                break
            sent += 1
        return sent

    async def _move(self, cmd_id: str, old: CommandState, new: CommandState, now: datetime) -> bool:
        """Move a command from ``old`` to ``new`` if it is still in ``old``; True if it was."""
        sent_at = now if new is CommandState.SENT else None
        async with self.engine.begin() as conn:
            result = await conn.execute(
                commands.update()
                .where(commands.c.cmd_id == cmd_id, commands.c.state == old.value)
                .values(state=new.value, sent_at=sent_at, updated_at=now)
            )
        return result.rowcount == 1
