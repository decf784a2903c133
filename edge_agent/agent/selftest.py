"""Synthetic events for checking the uplink end to end without a camera (``selftest``).

A technician sets ``selftest: {events: N, rate_per_s: R}`` in the unit's config; the
agent then stores N events (kind ``selftest``, code ``0000``, camera ``selftest``) through
the real outbox. How many were stored is a counter committed with each event, so a
restart resumes the run instead of starting it again, and each ``seq`` is used once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime

from edge_agent import protocol
from edge_agent.link.outbox import Outbox, Priority

log = logging.getLogger(__name__)

__all__ = ["SENT_COUNTER", "run_selftest"]

#: The outbox counter holding how many selftest events were stored.
SENT_COUNTER = "selftest_sent"
_NOWHERE = protocol.Location(lat=0.0, lon=0.0, source="fixed")


def selftest_event(
    device_id: str, seq: int, number: int, now: datetime, location: protocol.Location | None
) -> protocol.Event:
    """The ``number``-th synthetic event."""
    return protocol.Event(
        event_id=protocol.uuid7(),
        device_id=device_id,
        camera_id="selftest",
        seq=seq,
        kind="selftest",
        code=protocol.SELFTEST_CODE,
        started_at=now,
        detected_at=now,
        dwell_s=0.0,
        confidence=1.0,
        objects=(
            protocol.DetectedObject(
                label="selftest", score=1.0, box=(0.4, 0.4, 0.6, 0.6), track_id=number
            ),
        ),
        zone="selftest",
        location=location or _NOWHERE,
        model=protocol.ModelRef(name="selftest", version="1"),
    )


async def run_selftest(
    outbox: Outbox,
    *,
    device_id: str,
    events: int,
    rate_per_s: float,
    next_seq: Callable[[], int],
    location: Callable[[], protocol.Location | None],
    clock: Callable[[], datetime],
) -> None:
    """Store the events still due, at most ``rate_per_s`` per second; return when done."""
    sent = outbox.counter(SENT_COUNTER)
    if sent >= events:
        return
    log.info("selftest: storing events %d..%d", sent + 1, events)
    topic = protocol.topic(device_id, protocol.Channel.EVENT)
    interval = 1.0 / rate_per_s
    due = time.monotonic()
    while sent < events:
        seq = next_seq()
        event = selftest_event(device_id, seq, sent + 1, clock(), location())
        await outbox.append(
            topic,
            protocol.encode(event),
            priority=Priority.EVENT,
            counters={"seq": seq, SENT_COUNTER: sent + 1},
        )
        sent += 1
        due += interval
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    log.info("selftest: all %d events stored", events)
