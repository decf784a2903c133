"""The one wait-until helper: returns what it waited for, or the last falsy value in time."""

from __future__ import annotations

import time

from simulators.polling import eventually, eventually_sync


async def test_returns_the_value_once_it_is_truthy() -> None:
    calls: list[int] = []

    def third_time() -> list[int] | None:
        calls.append(1)
        return list(calls) if len(calls) >= 3 else None

    assert await eventually(third_time, 5, every_s=0.001) == [1, 1, 1]


async def test_awaits_a_coroutine_predicate() -> None:
    seen = 0

    async def read() -> int:
        nonlocal seen
        seen += 1
        return seen if seen >= 2 else 0

    assert await eventually(read, 5, every_s=0.001) == 2


async def test_gives_up_after_the_limit_with_the_last_value() -> None:
    start = time.monotonic()
    assert await eventually(lambda: 0, 0.1, every_s=0.01) == 0
    assert 0.1 <= time.monotonic() - start < 2


def test_sync_variant_behaves_alike() -> None:
    ticks = iter(range(100))
    assert eventually_sync(lambda: next(ticks) >= 3, 5, every_s=0.001) is True
    assert eventually_sync(lambda: "", 0.05, every_s=0.01) == ""
