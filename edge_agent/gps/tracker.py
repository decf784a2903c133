"""The GPS tracker: the latest fix for events and telemetry, and batched ``track`` messages."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

from edge_agent import protocol
from edge_agent.link.outbox import Outbox, Priority

log = logging.getLogger(__name__)

__all__ = ["GpsTracker"]


class GpsTracker:
    """Consumes fixes; keeps the latest; sends batches through the outbox.

    A batch goes out when it holds ``batch`` points or its oldest point is
    ``interval_s`` old. A fix older than ``max_age_s`` is not used for event locations.
    """

    def __init__(
        self,
        device_id: str,
        outbox: Outbox,
        *,
        clock: Callable[[], datetime],
        batch: int = 30,
        interval_s: float = 60.0,
        max_age_s: float = 30.0,
    ) -> None:
        self.device_id = device_id
        self.outbox = outbox
        self.clock = clock
        self.batch = batch
        self.interval = timedelta(seconds=interval_s)
        self.max_age = timedelta(seconds=max_age_s)
        self._topic = protocol.topic(device_id, protocol.Channel.TRACK)
        self._buffer: list[protocol.GpsFix] = []
        self._first_at: datetime | None = None
        self.latest: protocol.GpsFix | None = None
        self._latest_at: datetime | None = None
        #: Track batches stored in the outbox so far.
        self.batches_sent = 0

    def location(self) -> protocol.Location | None:
        """Where the unit is now, from a fresh fix; None without one."""
        if self.latest is None or self._latest_at is None:
            return None
        if self.clock() - self._latest_at > self.max_age:
            return None
        return protocol.Location(lat=self.latest.lat, lon=self.latest.lon, source="gps")

    def current_fix(self) -> protocol.GpsFix | None:
        """The latest fix if it is fresh, for telemetry."""
        return self.latest if self.location() is not None else None

    async def add(self, fix: protocol.GpsFix) -> None:
        """Take one fix; store a batch when it is due."""
        now = self.clock()
        self.latest = fix
        self._latest_at = now
        if not self._buffer:
            self._first_at = now
        self._buffer.append(fix)
        if len(self._buffer) >= self.batch or (
            self._first_at is not None and now - self._first_at >= self.interval
        ):
            await self.flush()

    async def flush(self) -> None:
        """Store what is buffered as one ``track`` message."""
        if not self._buffer:
            return
        points, self._buffer = tuple(self._buffer), []
        track = protocol.Track(device_id=self.device_id, batch_id=protocol.uuid7(), points=points)
        await self.outbox.append(self._topic, protocol.encode(track), priority=Priority.TRACK)
        self.batches_sent += 1

    async def run(self, fixes: AsyncIterator[protocol.GpsFix]) -> None:
        """Consume ``fixes`` until the source ends or the task is cancelled."""
        async for fix in fixes:
            await self.add(fix)
