"""Named, supervised asyncio tasks: a crashed stage is restarted (with backoff) and counted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from edge_agent.backoff import Backoff

log = logging.getLogger(__name__)

__all__ = ["Supervisor"]

StageFactory = Callable[[], Awaitable[None]]


class Supervisor:
    """Owns the agent's long-lived tasks by name.

    A stage that raises is logged, counted in :attr:`restarts` (reported in telemetry)
    and started again after a capped, jittered delay; a stage that returns is finished.
    """

    def __init__(self, *, backoff_initial_s: float = 1.0, backoff_cap_s: float = 30.0) -> None:
        self.backoff_initial_s = backoff_initial_s
        self.backoff_cap_s = backoff_cap_s
        self.restarts: dict[str, int] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, factory: StageFactory) -> None:
        """Run ``factory()`` as the stage ``name``, restarting it when it crashes."""
        if name in self._tasks and not self._tasks[name].done():
            raise RuntimeError(f"stage {name!r} is already running")
        self._tasks[name] = asyncio.get_running_loop().create_task(
            self._guard(name, factory), name=name
        )

    def running(self) -> list[str]:
        """Names of stages that have not finished."""
        return [name for name, task in self._tasks.items() if not task.done()]

    async def stop(self, names: Iterable[str] | None = None) -> None:
        """Cancel the named stages (all when None) and wait until they have ended."""
        chosen = list(self._tasks) if names is None else [n for n in names if n in self._tasks]
        tasks = [self._tasks.pop(name) for name in chosen]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def _guard(self, name: str, factory: StageFactory) -> None:
        backoff = Backoff(self.backoff_initial_s, self.backoff_cap_s)
        while True:
            try:
                await factory()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A crashed stage is reported and restarted, never silently lost.
                self.restarts[name] = self.restarts.get(name, 0) + 1
                delay = backoff.next()
                log.error(
                    "stage %s crashed (%s: %s); restart %d in %.1f s",
                    name,
                    type(exc).__name__,
                    exc,
                    self.restarts[name],
                    delay,
                    exc_info=exc,
                )
                await asyncio.sleep(delay)
                continue
            log.info("stage %s finished", name)
            return
