"""Live updates: one poller notices changes in the database and tells every open page.

The poller reads a small fingerprint of each topic (cases, devices, commands, rollouts) once per
``poll_s`` while at least one browser listens, and puts the names of the topics that
changed on each listener's queue; the SSE endpoint turns them into events and the page
fetches what it shows again. Reading the database (instead of hooking the services)
also sees what ingest workers in other processes filed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.db.schema import cases, commands, devices, rollout_units, rollouts

log = logging.getLogger(__name__)

__all__ = ["TOPICS", "ChangeFeed"]

#: What a page can ask to be told about.
TOPICS = ("cases", "devices", "commands", "rollouts")

_QUERIES: dict[str, sa.Executable] = {
    "cases": sa.select(
        sa.func.count(),
        sa.func.max(cases.c.id),
        sa.func.max(cases.c.updated_at),
        sa.func.max(cases.c.last_event_at),
    ),
    "devices": sa.select(
        sa.func.count(),
        sa.func.max(devices.c.seen_at),
        sa.func.max(devices.c.status_ts),
        sa.func.max(devices.c.telemetry_at),
        sa.func.max(devices.c.reported_at),
        sa.func.sum(devices.c.desired_version),
    ),
    "commands": sa.select(sa.func.count(), sa.func.max(commands.c.updated_at)),
    "rollouts": sa.select(
        sa.select(sa.func.count()).select_from(rollouts).scalar_subquery(),
        sa.select(sa.func.max(rollouts.c.updated_at)).scalar_subquery(),
        sa.select(sa.func.max(rollout_units.c.started_at)).scalar_subquery(),
        sa.select(sa.func.max(rollout_units.c.finished_at)).scalar_subquery(),
        sa.select(sa.func.sum(rollout_units.c.bytes_served)).scalar_subquery(),
        sa.select(sa.func.count(rollout_units.c.rollback_cmd_id)).scalar_subquery(),
    ),
}


class ChangeFeed:
    """Fans database changes out to listeners; started on the first :meth:`listen`."""

    def __init__(self, engine: AsyncEngine, *, poll_s: float = 1.0) -> None:
        self.engine = engine
        self.poll_s = poll_s
        self._listeners: set[asyncio.Queue[frozenset[str]]] = set()
        self._task: asyncio.Task[None] | None = None
        self._last: dict[str, tuple[Any, ...]] = {}
        self.closed = asyncio.Event()

    async def fingerprint(self) -> dict[str, tuple[Any, ...]]:
        """The current fingerprint of each topic."""
        out: dict[str, tuple[Any, ...]] = {}
        async with self.engine.connect() as conn:
            for name, query in _QUERIES.items():
                row = (await conn.execute(query)).one()
                out[name] = tuple(row)
        return out

    async def topic_fingerprint(self, name: str) -> tuple[Any, ...]:
        """The current fingerprint of one topic (one of :data:`TOPICS`)."""
        async with self.engine.connect() as conn:
            return tuple((await conn.execute(_QUERIES[name])).one())

    def _changed(self, now: dict[str, tuple[Any, ...]]) -> frozenset[str]:
        changed = frozenset(k for k, v in now.items() if self._last.get(k) != v)
        self._last = now
        return changed

    async def _run(self) -> None:
        while self._listeners and not self.closed.is_set():
            try:
                changed = self._changed(await self.fingerprint())
            except (sa.exc.SQLAlchemyError, OSError) as exc:
                log.warning("live feed: cannot read the database: %s", exc)
                changed = frozenset()
            if changed:
                for queue in list(self._listeners):
                    queue.put_nowait(changed)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_s):
                    await self.closed.wait()
        self._task = None

    @contextlib.asynccontextmanager
    async def listen(self) -> AsyncIterator[asyncio.Queue[frozenset[str]]]:
        """A queue of changed-topic sets for as long as the context is open."""
        queue: asyncio.Queue[frozenset[str]] = asyncio.Queue()
        if not self._last:
            self._last = await self.fingerprint()
        self._listeners.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="console-live")
        try:
            yield queue
        finally:
            self._listeners.discard(queue)

    @property
    def listeners(self) -> int:
        """How many pages listen now."""
        return len(self._listeners)

    async def close(self) -> None:
        """Stop polling and end every stream (hub shutdown)."""
        self.closed.set()
        for queue in list(self._listeners):
            queue.put_nowait(frozenset())
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
