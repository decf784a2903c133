"""Waiting for something another thread or process does: the one poll-until-true helper.

Tests, benchmarks and the demo wait for a broker to deliver, a worker to drain or a page to
be served. They poll one predicate against one deadline here instead of each writing its
own loop:

- :func:`eventually` from a coroutine (the predicate may be a plain function or return an
  awaitable, for a database read);
- :func:`eventually_sync` from a thread (Playwright's sync API, paho callbacks).

Both return the predicate's last value, so ``assert await eventually(...)`` reads as what
is expected and a predicate that returns the thing it waited for hands it back.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

__all__ = ["eventually", "eventually_sync"]

T = TypeVar("T")


@overload
async def eventually(
    predicate: Callable[[], Awaitable[T]], within_s: float = 10.0, every_s: float = 0.02
) -> T: ...


@overload
async def eventually(
    predicate: Callable[[], T], within_s: float = 10.0, every_s: float = 0.02
) -> T: ...


async def eventually(
    predicate: Callable[[], Any], within_s: float = 10.0, every_s: float = 0.02
) -> Any:
    """Poll ``predicate`` until it is truthy or ``within_s`` seconds passed; return its value.

    The predicate runs once more at the deadline, so a slow last step is not lost to timing.
    """
    deadline = time.monotonic() + within_s
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(every_s)


def eventually_sync(predicate: Callable[[], T], within_s: float = 10.0, every_s: float = 0.05) -> T:
    """The blocking :func:`eventually`, for threads without an event loop."""
    deadline = time.monotonic() + within_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every_s)
