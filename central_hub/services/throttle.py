"""Failed logins and refused tokens, counted per source, and the sources refused a while;
and :class:`RateBudget`, a per-key allowance (dead letters per device).

A source (the client's address) with ``limit`` failures within ``window_s`` seconds is
refused for ``block_s`` seconds before its token is even looked at; a success clears its
count. Pure apart from the clock it is given. Each hub process keeps its own counts.
Every failure is also recorded in ``auth_failures`` (:func:`record_failure`).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.db.schema import auth_failures

__all__ = ["FailureThrottle", "RateBudget", "record_failure"]


class FailureThrottle:
    """See the module docstring."""

    def __init__(
        self,
        *,
        limit: int = 10,
        window_s: float = 60.0,
        block_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        sources: int = 10_000,
    ) -> None:
        self.limit, self.window_s, self.block_s = limit, window_s, block_s
        self.clock = clock
        self.sources = sources
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._blocked: dict[str, float] = {}

    def wait_s(self, source: str) -> float:
        """Seconds ``source`` must wait before it may try again (0: it may now)."""
        until = self._blocked.get(source)
        if until is None:
            return 0.0
        left = until - self.clock()
        if left <= 0:
            del self._blocked[source]
            return 0.0
        return left

    def failed(self, source: str) -> None:
        """Count a failure of ``source``; block it at ``limit`` within the window."""
        now = self.clock()
        seen = self._failures.pop(source, deque())
        seen.append(now)
        while seen and seen[0] < now - self.window_s:
            seen.popleft()
        self._failures[source] = seen
        while len(self._failures) > self.sources:  # bounded memory: forget the oldest
            self._failures.popitem(last=False)
        if len(seen) >= self.limit:
            self._blocked[source] = now + self.block_s
            seen.clear()

    def succeeded(self, source: str) -> None:
        """Forget ``source``'s failures."""
        self._failures.pop(source, None)


class RateBudget:
    """At most ``burst`` takes per key at once, refilled at ``per_minute``: a token bucket
    per key, pure apart from the clock. Keys not seen for a while are forgotten (bounded
    memory); what a key was refused is counted until :meth:`take` next allows it, so the
    record that is kept can say how many were not.
    """

    def __init__(
        self,
        *,
        per_minute: float = 30.0,
        burst: int = 30,
        clock: Callable[[], float] = time.monotonic,
        keys: int = 50_000,
    ) -> None:
        self.rate_s = per_minute / 60.0
        self.burst = float(burst)
        self.clock = clock
        self.keys = keys
        # key -> (tokens, at, refused since the last allowed take)
        self._state: OrderedDict[str, tuple[float, float, int]] = OrderedDict()

    def take(self, key: str) -> tuple[bool, int]:
        """Whether ``key`` may have one more now, and how many it was refused before
        this (reset to 0 by an allowed take)."""
        now = self.clock()
        tokens, at, refused = self._state.pop(key, (self.burst, now, 0))
        tokens = min(self.burst, tokens + (now - at) * self.rate_s)
        if tokens >= 1.0:
            self._state[key] = (tokens - 1.0, now, 0)
            allowed = (True, refused)
        else:
            self._state[key] = (tokens, now, refused + 1)
            allowed = (False, refused + 1)
        while len(self._state) > self.keys:
            self._state.popitem(last=False)
        return allowed


async def record_failure(
    engine: AsyncEngine, *, at: datetime, source: str, name: str, reason: str
) -> None:
    """Keep one failure (or a refusal while blocked) for the audit."""
    async with engine.begin() as conn:
        await conn.execute(
            auth_failures.insert().values(
                at=at, source=source[:64], user_name=name[:64], reason=reason[:200]
            )
        )
