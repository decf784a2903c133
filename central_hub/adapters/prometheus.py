"""The hub's operations figures in Prometheus' text format (``GET /metrics``).

What an operations team watches: how fast ingest takes messages and how far behind real
time it files them, dead letters, cases by stage, commands by state, units by presence,
and how long the database takes. Counters come from the ingest worker's own tallies;
the database figures are read at most every ``refresh_s`` seconds, so a scrape every
few seconds from several Prometheus servers costs the database one small query set.

Metric names start with ``xh_hub_``; docs/grafana-dashboard.json charts them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from central_hub.db.schema import cases, commands, dead_letters, devices
from central_hub.domain.workflow import Stage
from central_hub.errors import HubError
from central_hub.services.commands import CommandState
from central_hub.workers.ingest import IngestStats

log = logging.getLogger(__name__)

__all__ = ["CONTENT_TYPE", "HubMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class _DbFigures:
    at: float = float("-inf")
    ping_s: float = 0.0
    read_s: float = 0.0
    cases_by_stage: dict[str, int] = field(default_factory=dict)
    commands_by_state: dict[str, int] = field(default_factory=dict)
    devices_by_state: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0


class HubMetrics:
    """A registry with the hub's collector; :meth:`render` answers a scrape."""

    def __init__(
        self, engine: AsyncEngine, ingest: IngestStats | None, *, refresh_s: float = 5.0
    ) -> None:
        self.engine = engine
        self.ingest = ingest
        self.refresh_s = refresh_s
        self._db = _DbFigures()
        self._lock = asyncio.Lock()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    async def refresh_forever(self) -> None:
        """Keep the database figures fresh for :meth:`serve`'s thread, which cannot await."""
        while True:
            try:
                await self._refresh()
            except (OSError, sa.exc.SQLAlchemyError) as exc:  # the next round tries again
                log.warning("metrics: database figures not refreshed: %s", exc)
            await asyncio.sleep(self.refresh_s)

    def serve(self, host: str, port: int) -> Callable[[], None]:
        """Serve the registry on ``host:port`` from a thread; return the function that stops it.

        For a worker that runs without the API (``serve --no-api``); run
        :meth:`refresh_forever` beside it.
        """
        try:
            server, thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise HubError(f"metrics: cannot serve on {host}:{port}: {exc}") from exc

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(5)

        return stop

    async def render(self) -> bytes:
        """The exposition text, with database figures at most ``refresh_s`` old."""
        await self._refresh()
        return generate_latest(self.registry)

    async def _refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._db.at < self.refresh_s:
                return
            figures = _DbFigures()
            async with self.engine.connect() as conn:
                start = time.perf_counter()
                await conn.execute(sa.text("SELECT 1"))
                figures.ping_s = time.perf_counter() - start
                start = time.perf_counter()
                figures.cases_by_stage = await _counts(conn, cases.c.stage)
                figures.commands_by_state = await _counts(conn, commands.c.state)
                figures.devices_by_state = await _counts(conn, devices.c.state)
                figures.dead_letters = int(
                    await conn.scalar(sa.select(sa.func.count()).select_from(dead_letters)) or 0
                )
                figures.read_s = time.perf_counter() - start
            figures.at = time.monotonic()
            self._db = figures

    def collect(self) -> Iterator[Metric]:
        """Yield the metric families (called by the registry during :meth:`render`)."""
        stats = self.ingest
        if stats is not None:
            received = CounterMetricFamily(
                "xh_hub_ingest_messages",
                "Messages ingest committed, by channel",
                labels=["channel"],
            )
            for channel in sorted({"event", "status", "telemetry", *stats.by_channel}):
                received.add_metric([channel], stats.by_channel.get(channel, 0))
            yield received
            yield CounterMetricFamily(
                "xh_hub_ingest_events_new", "Events stored for the first time", stats.events_new
            )
            yield CounterMetricFamily(
                "xh_hub_ingest_events_duplicate",
                "Events received again (redelivery, outbox replay)",
                stats.events_duplicate,
            )
            yield CounterMetricFamily(
                "xh_hub_ingest_dead_letters",
                "Messages dead-lettered by ingest",
                stats.dead_lettered,
            )
            yield CounterMetricFamily(
                "xh_hub_ingest_dead_letters_not_kept",
                "Refused messages not kept: their device was over its dead-letter budget",
                stats.dead_letters_not_kept,
            )
            yield CounterMetricFamily(
                "xh_hub_ingest_batch_retries",
                "Batches the database refused and ingest retried",
                stats.batch_retries,
            )
            yield SummaryMetricFamily(
                "xh_hub_ingest_write_seconds",
                "Time to store a batch (one database transaction)",
                count_value=stats.batches,
                sum_value=stats.write_s,
            )
            yield GaugeMetricFamily(
                "xh_hub_ingest_lag_seconds",
                "Age of the oldest event in the last batch when it was committed",
                stats.lag_s,
            )
        db = self._db
        yield GaugeMetricFamily(
            "xh_hub_db_ping_seconds", "Round trip of SELECT 1 at the last refresh", db.ping_s
        )
        yield GaugeMetricFamily(
            "xh_hub_db_read_seconds",
            "Time the last refresh's count queries took",
            db.read_s,
        )
        by_stage = GaugeMetricFamily("xh_hub_cases", "Cases by workflow stage", labels=["stage"])
        for stage in Stage:
            by_stage.add_metric([stage.value], db.cases_by_stage.get(stage.value, 0))
        yield by_stage
        by_state = GaugeMetricFamily("xh_hub_commands", "Commands by state", labels=["state"])
        for state in sorted({*(c.value for c in CommandState), *db.commands_by_state}):
            by_state.add_metric([state], db.commands_by_state.get(state, 0))
        yield by_state
        units = GaugeMetricFamily("xh_hub_units", "Units by presence state", labels=["state"])
        for state in sorted({"online", "offline", "degraded", *db.devices_by_state}):
            units.add_metric([state], db.devices_by_state.get(state, 0))
        yield units
        yield GaugeMetricFamily(
            "xh_hub_dead_letters", "Dead letters kept in the database", db.dead_letters
        )


async def _counts(conn: AsyncConnection, column: sa.Column[str]) -> dict[str, int]:
    rows = await conn.execute(sa.select(column, sa.func.count()).group_by(column))
    return {str(key): int(n) for key, n in rows.all() if key is not None}
