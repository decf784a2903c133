"""What the console keeps per app: the hub, its settings, sessions, live feed, templates."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.templating import Jinja2Templates

from central_hub.console.live import ChangeFeed
from central_hub.console.mapdraw import MapProjection, MapShape, grid_shapes
from central_hub.console.metrics_cache import MetricsCache
from central_hub.console.sessions import SessionStore
from central_hub.console.settings import ConsoleSettings
from central_hub.hub import Hub

__all__ = ["TEMPLATES_DIR", "ConsoleState", "console_state"]

#: The Jinja2 templates shipped with the package.
TEMPLATES_DIR = Path(__file__).with_name("templates")


@dataclass
class ConsoleState:
    """Everything the console's routes share; one per app (``app.state.console``)."""

    hub: Hub
    settings: ConsoleSettings
    sessions: SessionStore
    feed: ChangeFeed
    templates: Jinja2Templates
    projection: MapProjection
    metrics: MetricsCache
    shapes: list[MapShape] = field(default_factory=list)

    @classmethod
    def build(cls, hub: Hub, settings: ConsoleSettings) -> ConsoleState:
        """Wire the state for ``hub``; draws the grid once."""
        projection = MapProjection.for_bounds(hub.grid.bounds())
        feed = ChangeFeed(hub.engine, poll_s=settings.live_poll_s)
        return cls(
            hub=hub,
            settings=settings,
            sessions=SessionStore(
                hub.clock,
                idle=timedelta(seconds=settings.session_idle_s),
                max_age=timedelta(seconds=settings.session_max_s),
            ),
            feed=feed,
            templates=Jinja2Templates(directory=str(TEMPLATES_DIR)),
            projection=projection,
            metrics=MetricsCache(
                hub.metrics,
                hub.clock,
                lambda: feed.topic_fingerprint("cases"),
                fresh_s=settings.stats_fresh_s,
            ),
            shapes=grid_shapes(projection, hub.grid.to_geojson()["features"]),
        )

    @property
    def zone(self) -> ZoneInfo:
        """The time zone pages show times in."""
        return ZoneInfo(self.settings.tz)

    async def close(self) -> None:
        """End live streams and stop refreshing statistics (hub shutdown)."""
        await self.feed.close()
        await self.metrics.close()

    def url(self, path: str = "/") -> str:
        """An absolute path under the console's prefix."""
        return self.settings.prefix + (path if path.startswith("/") else "/" + path)


def console_state(request: Request) -> ConsoleState:
    """The :class:`ConsoleState` of the app serving ``request``."""
    state: ConsoleState = request.app.state.console
    return state
