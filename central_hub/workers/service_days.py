"""The service-day worker: pushes the city's service days to the units, at start and then
every ``every_s`` seconds (see :class:`central_hub.services.service_days.ServiceDayService`);
``central-hub serve`` runs it as one task when it has a broker.

A push leaves alone every unit whose exemptions still to come are unchanged, so the
passes after the first cost one read of the registry; they reach units registered since
the last pass.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import sqlalchemy as sa

from central_hub.errors import HubError
from central_hub.services.service_days import ServiceDayService

__all__ = ["PUSH_EVERY_S", "ServiceDayWorker"]

log = logging.getLogger(__name__)

#: Seconds between two pushes of the calendar.
PUSH_EVERY_S = 3600.0


class ServiceDayWorker:
    """Calls :meth:`ServiceDayService.push` once ``ready`` returns, then every ``every_s``."""

    def __init__(
        self,
        service: ServiceDayService,
        *,
        ready: Callable[[], Awaitable[None]] | None = None,
        every_s: float = PUSH_EVERY_S,
    ) -> None:
        self.service = service
        self.ready = ready
        self.every_s = every_s
        #: Completed passes (for tests and logs).
        self.passes = 0

    async def run(self) -> None:
        """Push until cancelled; a failed pass is logged and the next one tries again."""
        if self.ready is not None:
            await self.ready()
        while True:
            try:
                outcomes = await self.service.push()
            except (sa.exc.SQLAlchemyError, OSError, HubError) as exc:
                log.error("pushing the service days failed, retrying: %s", exc)
            else:
                pushed = [o for o in outcomes if o.version is not None]
                for o in pushed:
                    log.info(
                        "service days: %d exemption(s) pushed to %s (desired config v%d)",
                        o.exemptions,
                        o.device_id,
                        o.version,
                    )
                for o in outcomes:
                    if o.note:
                        log.warning("service days for %s not published: %s", o.device_id, o.note)
                self.passes += 1
            await asyncio.sleep(self.every_s)
