"""The uplink: drains the outbox into the broker with a bounded in-flight window.

It knows nothing about paho: it talks to a :class:`Transport` (the MQTT adapter, or a
fake in tests). Rows are published in outbox order (highest priority first, oldest first
within a priority); a row is deleted only when its PUBACK comes back. At most ``window``
rows are in flight; while the link is down, nothing new is handed out. After a restart
the outbox starts rewound, so everything still stored is sent again in order.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from edge_agent.link.outbox import Outbox

log = logging.getLogger(__name__)

__all__ = ["Transport", "Uplink"]


class Transport(Protocol):
    """Something that publishes and later reports PUBACKs by message id."""

    @property
    def connected(self) -> bool:
        """True while messages can be sent."""
        ...

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> int | None:
        """Send; return the message id to expect in a PUBACK, or None if not taken."""
        ...


class Uplink:
    """Moves outbox rows to a :class:`Transport`; feed it PUBACKs with :meth:`published`."""

    def __init__(self, outbox: Outbox, transport: Transport, *, window: int = 1000) -> None:
        if window < 1:
            raise ValueError(f"in-flight window must be at least 1, got {window}")
        self.outbox = outbox
        self.transport = transport
        self.window = window
        self._inflight: dict[int, int] = {}  # mid -> row id
        self._wake = asyncio.Event()
        #: Rows acknowledged by the broker since start.
        self.delivered = 0

    @property
    def inflight(self) -> int:
        """Rows published and not yet acknowledged."""
        return len(self._inflight)

    def wake(self) -> None:
        """Re-check for work now (link came up, rows were added)."""
        self._wake.set()

    def published(self, mids: list[int]) -> None:
        """PUBACKs arrived: delete the rows they confirm."""
        ids = [row for mid in mids if (row := self._inflight.pop(mid, None)) is not None]
        if ids:
            self.delivered += len(ids)
            self.outbox.ack(ids)
            self._wake.set()

    async def run(self) -> None:
        """Drain forever (until cancelled)."""
        while True:
            free = self.window - len(self._inflight)
            if not self.transport.connected or free <= 0:
                await self._wait()
                continue
            self.outbox.changed.clear()
            rows = await self.outbox.next_batch(min(free, 500))
            if not rows:
                await self._wait()
                continue
            refused = False
            for index, row in enumerate(rows):
                mid = self.transport.publish(row.topic, row.payload, row.qos, row.retain)
                if mid is None:
                    # Not taken (link dropped): hand these rows out again later, in order.
                    log.debug("link refused a publish; rewinding %d rows", len(rows) - index)
                    self.outbox.rewind()
                    self._inflight.clear()
                    refused = True
                    break
                self._inflight[mid] = row.id
            if refused:
                await self._wait()  # no busy loop while the link refuses
            else:
                # Let the loop run PUBACK deliveries and producers between batches.
                await asyncio.sleep(0)

    async def _wait(self) -> None:
        self._wake.clear()
        changed = asyncio.ensure_future(self.outbox.changed.wait())
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({changed, woken}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
            woken.cancel()
