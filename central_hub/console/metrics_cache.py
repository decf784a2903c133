"""Metrics kept warm: recent views are served from memory and refreshed in the background.

Computing the metrics reads every case open in the period and its audit trail, which
takes 0.5-1.3 s for a month of 10,000 cases on a 2-core box (bench/console.py), and
competes with ingest for the same cores. Each computed view (period and area)
remembers the cases' fingerprint (count, newest id, latest update) it was computed at:

* unchanged fingerprint: served from memory;
* changed, but the view is younger than ``fresh_s``: served from memory (the page says
  when it was computed) while the background refresher recomputes it;
* changed and older, never computed, or ``force``: computed on the request.

The refresher recomputes, at most every ``fresh_s``, the views someone asked for in the
last ``keep_s`` whose fingerprint changed, so the page usually opens at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from central_hub.domain.errors import MetricsError
from central_hub.domain.metrics import DailyCounts, Metrics
from central_hub.services.metrics import MetricsService

log = logging.getLogger(__name__)

__all__ = ["MetricsCache", "MetricsKey", "MetricsView"]


@dataclass(frozen=True)
class MetricsKey:
    """A view: the period's UTC bounds and the grid cell (None for the whole district)."""

    start: datetime
    end: datetime
    cell: str | None


@dataclass(frozen=True)
class MetricsView:
    """Computed figures and when they were computed."""

    metrics: Metrics
    daily: list[DailyCounts]
    computed_at: datetime
    fingerprint: tuple[Any, ...] = ()


class MetricsCache:
    """Serves :class:`MetricsView` per :class:`MetricsKey`; see the module doc."""

    def __init__(
        self,
        service: MetricsService,
        clock: Callable[[], datetime],
        fingerprint: Callable[[], Awaitable[tuple[Any, ...]]],
        *,
        fresh_s: float = 30.0,
        keep_s: float = 600.0,
        max_views: int = 32,
    ) -> None:
        self.service = service
        self.clock = clock
        self.fingerprint = fingerprint
        self.fresh = timedelta(seconds=fresh_s)
        self.keep = timedelta(seconds=keep_s)
        self.max_views = max_views
        self._views: dict[MetricsKey, MetricsView] = {}
        self._asked: dict[MetricsKey, datetime] = {}
        self._locks: dict[MetricsKey, asyncio.Lock] = {}
        self._task: asyncio.Task[None] | None = None

    async def _compute(self, key: MetricsKey, fingerprint: tuple[Any, ...]) -> MetricsView:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            view = self._views.get(key)
            if view is not None and view.fingerprint == fingerprint:
                return view  # someone computed it while we waited
            now = self.clock()
            metrics, daily = await self.service.overview(
                key.start, key.end, cell_id=key.cell, now=now
            )
            view = MetricsView(metrics, daily, now, fingerprint)
            self._views[key] = view
            return view

    async def get(self, key: MetricsKey, *, force: bool = False) -> MetricsView:
        """The view for ``key`` (see the module doc for when it is computed now)."""
        self._asked[key] = self.clock()
        self._forget_old()
        self._ensure_refresher()
        fingerprint = await self.fingerprint()
        view = self._views.get(key)
        if view is not None and not force:
            if view.fingerprint == fingerprint:
                return view
            if self.clock() - view.computed_at < self.fresh:
                return view
        if force:
            self._views.pop(key, None)
        return await self._compute(key, fingerprint)

    def warm(self, key: MetricsKey) -> None:
        """Mark ``key`` as wanted so the background refresher computes it soon."""
        self._asked.setdefault(key, self.clock())
        self._ensure_refresher()

    def _forget_old(self) -> None:
        now = self.clock()
        old = [k for k, at in self._asked.items() if now - at > self.keep]
        for k in old:
            self._asked.pop(k, None)
            self._views.pop(k, None)
            self._locks.pop(k, None)
        while len(self._asked) > self.max_views:
            oldest = min(self._asked, key=lambda k: self._asked[k])
            self._asked.pop(oldest)
            self._views.pop(oldest, None)

    def _ensure_refresher(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._refresh_forever(), name="console-metrics"
            )

    async def refresh_once(self) -> int:
        """Recompute every wanted view that is missing or older than ``fresh_s``."""
        self._forget_old()
        done = 0
        fingerprint = await self.fingerprint()
        for key in list(self._asked):
            view = self._views.get(key)
            stale = view is not None and view.fingerprint != fingerprint
            if view is None or (stale and self.clock() - view.computed_at >= self.fresh):
                try:
                    await self._compute(key, fingerprint)
                except (SQLAlchemyError, OSError, MetricsError) as exc:
                    # A failed refresh keeps the old figures; the next pass tries again.
                    log.warning("statistics refresh failed for %s: %s", key, exc)
                    continue
                done += 1
        return done

    async def _refresh_forever(self) -> None:
        while self._asked:
            try:
                await self.refresh_once()
            except (SQLAlchemyError, OSError) as exc:
                log.warning("statistics refresher cannot read the database: %s", exc)
            await asyncio.sleep(min(2.0, self.fresh.total_seconds()))
        self._task = None

    async def close(self) -> None:
        """Stop the background refresher."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
