"""The statistics cache: served from memory while nothing changed, recomputed when it did."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from central_hub.console.metrics_cache import MetricsCache, MetricsKey
from central_hub.testing import FakeClock

T0 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
KEY = MetricsKey(T0 - timedelta(days=7), T0, None)


class FakeService:
    """Counts computations; returns the call number as the 'metrics'."""

    def __init__(self) -> None:
        self.calls = 0

    async def overview(self, start: datetime, end: datetime, **kw: Any) -> tuple[Any, list[Any]]:
        self.calls += 1
        return self.calls, []


def make(clock: FakeClock, fp: list[int]) -> tuple[MetricsCache, FakeService]:
    service = FakeService()

    async def fingerprint() -> tuple[Any, ...]:
        return (fp[0],)

    cache = MetricsCache(service, clock, fingerprint, fresh_s=30)  # type: ignore[arg-type]
    return cache, service


async def test_unchanged_cases_are_served_from_memory() -> None:
    clock, fp = FakeClock(T0), [1]
    cache, service = make(clock, fp)
    first = await cache.get(KEY)
    clock.advance(minutes=5)
    again = await cache.get(KEY)
    assert again is first
    assert service.calls == 1
    await cache.close()


async def test_changed_cases_recompute_once_the_view_is_older_than_fresh() -> None:
    clock, fp = FakeClock(T0), [1]
    cache, _service = make(clock, fp)
    await cache.get(KEY)
    fp[0] = 2
    clock.advance(seconds=10)
    assert (await cache.get(KEY)).metrics == 1  # young enough: served, refreshed later
    clock.advance(seconds=25)
    assert (await cache.get(KEY)).metrics == 2
    assert (await cache.get(KEY, force=True)).metrics == 3
    await cache.close()


async def test_the_refresher_recomputes_wanted_views_whose_cases_changed() -> None:
    clock, fp = FakeClock(T0), [1]
    cache, _service = make(clock, fp)
    cache.warm(KEY)
    assert await cache.refresh_once() == 1  # never computed: computed
    assert await cache.refresh_once() == 0  # nothing changed
    fp[0] = 2
    clock.advance(seconds=31)
    assert await cache.refresh_once() == 1
    assert (await cache.get(KEY)).metrics == 2
    clock.advance(hours=1)  # nobody asked for an hour: forgotten
    assert await cache.refresh_once() == 0
    await cache.close()
