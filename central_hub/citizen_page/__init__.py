"""The citizens' mobile "snap and report" page (issue #15, item 4), public, no login.

Routes::

    GET  /r/{token}            a scanned QR plate: the form, its place filled in, and the
                               open reports within 50 m ("is it one of these?"); a
                               forged, malformed or unknown plate is refused (404)
    GET  /report               the form without a plate (phone's position or a typed pin)
    GET  /report/nearby.json   open reports within 50 m of lat/lon (the form's script)
    POST /report               file the report, then 303 to its status page
    GET  /report/s/{token}     the report's status and history, by its token

A report is filed exactly as an Open311 client's (:mod:`central_hub.domain.open311`'s
checks, :class:`central_hub.services.citizen_reports.CitizenReports`), as the Open311
client ``snap-and-report``. The photo is re-encoded without metadata into the evidence
store and never shown to anyone but staff. Reports are throttled per client address and
per plate; the form carries a double-submit CSRF secret and an idempotency key, so a
double tap files one report. Pages are zh-CN first, English by ``?lang=en`` or the
browser's preference.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from central_hub.citizen_page.routes import PageLimits, PageState, router
from central_hub.hub import Hub
from central_hub.services.citizen_page import PlateBook

__all__ = ["PageLimits", "install_citizen_page"]

log = logging.getLogger(__name__)

_HERE = Path(__file__).parent


def install_citizen_page(
    app: FastAPI,
    hub: Hub,
    plates: PlateBook,
    *,
    limits: PageLimits | None = None,
    contact_days: int = 180,
) -> PageState:
    """Mount the page's routes and static files on ``app``."""
    state = PageState(
        hub,
        plates,
        Jinja2Templates(directory=str(_HERE / "templates")),
        limits or PageLimits(),
        hub.calendar.zone,
        contact_days,
    )
    app.state.citizen_page = state
    app.include_router(router)
    app.mount("/report/static", StaticFiles(directory=_HERE / "static"), name="report-static")
    log.info("report page at /report (%d QR plates)", len(plates.points))
    return state
