"""What the mobile "snap and report" page reads and files through.

* :class:`PlateBook`: the city's QR plates (the points file) and the secret their links
  are signed with; :meth:`PlateBook.point` turns a scanned token into its point or
  refuses it (:class:`~central_hub.domain.errors.PlateRefused`).
* :class:`CitizenPageData`: the page's own Open311 client (:data:`PAGE_CLIENT`, a row in
  ``open311_keys`` whose secret nobody knows: the page files in-process, so revoking that
  client with ``central-hub open311 key revoke snap-and-report`` switches the page off),
  the open reports near a point, and a report's history for its status page.

Reports themselves are filed by :class:`central_hub.services.citizen_reports.CitizenReports`
like every Open311 client's.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from central_hub.db.schema import audits, cases, citizen_reports, open311_keys
from central_hub.domain.citizen_page import Nearby, StatusEntry, bounding_box, closest, timeline
from central_hub.domain.errors import PlateError
from central_hub.domain.grid import Grid
from central_hub.domain.open311 import RequestView
from central_hub.domain.qr_plates import (
    SAMPLE_POINTS_PATH,
    PlatePoint,
    load_points,
    points_outside,
    verify_plate,
)
from central_hub.domain.workflow import FINAL_STAGES, Stage
from central_hub.services.citizen_reports import CitizenReports, Open311Key
from central_hub.services.qr_plates import load_or_create_plate_secret, plate_secret_path
from central_hub.services.users import hash_token
from central_hub.settings import HubSettings

log = logging.getLogger(__name__)

__all__ = ["PAGE_CLIENT", "CitizenPageData", "PlateBook", "ReportStatus"]

#: The page's name among Open311 clients.
PAGE_CLIENT = "snap-and-report"
#: Candidates read from the database for "is it one of these?" before the exact distance.
_NEARBY_ROWS = 200
_FINALS = sorted(s.value for s in FINAL_STAGES)


@dataclass(frozen=True)
class PlateBook:
    """The city's plates by id and the secret their links are signed with."""

    points: dict[str, PlatePoint]
    secret: bytes

    @classmethod
    def load(cls, points_file: Path, secret_file: Path, grid: Grid) -> PlateBook:
        """Read the points file and the plate secret (made on first use).

        Raises :class:`PlateError` naming the file and every problem, a plate standing in
        no street cell of ``grid`` included (its reports would reach no squad).
        """
        points = load_points(points_file)
        outside = points_outside(points, grid)
        if outside:
            said = outside[0] if len(outside) == 1 else f"{len(outside)} plates outside the grid"
            raise PlateError(f"{points_file}: {said}", tuple(outside))
        return cls({p.id: p for p in points}, load_or_create_plate_secret(secret_file))

    @classmethod
    def of_hub(cls, settings: HubSettings, grid: Grid) -> PlateBook:
        """The plates ``settings`` name (the sample's by default) with the hub's secret."""
        return cls.load(
            settings.plate_points or SAMPLE_POINTS_PATH, plate_secret_path(settings), grid
        )

    def point(self, token: str) -> PlatePoint:
        """The plate a scanned token (``<id>.<signature>``) names; PlateRefused if not."""
        return self.points[verify_plate(token, self.secret, self.points)]


@dataclass(frozen=True)
class ReportStatus:
    """A report as its status page shows it: the public view and its history."""

    view: RequestView
    history: list[StatusEntry]


class CitizenPageData:
    """The page's client key, nearby open reports and report histories."""

    def __init__(
        self, engine: AsyncEngine, reports: CitizenReports, clock: Callable[[], datetime]
    ) -> None:
        self.engine = engine
        self.reports = reports
        self.clock = clock

    async def client(self) -> Open311Key:
        """The page's Open311 client, made on first use (never with a usable key)."""
        async with self.engine.begin() as conn:
            row = await self._client_row(conn)
            if row is None:
                try:
                    async with conn.begin_nested():
                        await conn.execute(
                            open311_keys.insert().values(
                                name=PAGE_CLIENT,
                                # A hash of a secret nobody keeps: no request can present it.
                                key_hash=hash_token(secrets.token_urlsafe(32)),
                                created_at=self.clock(),
                            )
                        )
                except sa.exc.IntegrityError:
                    pass  # another process made it meanwhile
                row = await self._client_row(conn)
                log.info("made the Open311 client %s for the report page", PAGE_CLIENT)
        assert row is not None
        return Open311Key(row.id, row.name, row.created_at, row.revoked_at)

    @staticmethod
    async def _client_row(conn: AsyncConnection) -> Any:
        return (
            await conn.execute(open311_keys.select().where(open311_keys.c.name == PAGE_CLIENT))
        ).first()

    async def nearby(self, lat: float, lon: float, radius_m: float, limit: int = 5) -> list[Nearby]:
        """Open citizen reports within ``radius_m``, nearest first."""
        lat_min, lat_max, lon_min, lon_max = bounding_box(lat, lon, radius_m)
        q = (
            sa.select(
                citizen_reports.c.report_id,
                citizen_reports.c.code,
                citizen_reports.c.lat,
                citizen_reports.c.lon,
                citizen_reports.c.created_at,
                cases.c.stage,
            )
            .select_from(citizen_reports.join(cases, cases.c.id == citizen_reports.c.case_id))
            .where(
                citizen_reports.c.lat.between(lat_min, lat_max),
                citizen_reports.c.lon.between(lon_min, lon_max),
                cases.c.stage.not_in(_FINALS),
                citizen_reports.c.hidden_at.is_(None),  # hidden by a moderator: not public
            )
            .order_by(citizen_reports.c.created_at.desc())
            .limit(_NEARBY_ROWS)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        found = (
            Nearby(r.report_id, r.code, r.lat, r.lon, r.created_at, Stage(r.stage)) for r in rows
        )
        return closest(found, lat, lon, radius_m, limit)

    async def status(self, token: str) -> ReportStatus | None:
        """The report whose token is ``token`` and its history; None if there is none."""
        found = await self.reports.by_token(token)
        if found is None:
            return None
        view = await self.reports.get(found[0], include_hidden=True)  # the reporter's own
        if view is None:
            return None
        async with self.engine.connect() as conn:
            case_id = (
                await conn.execute(
                    sa.select(citizen_reports.c.case_id).where(citizen_reports.c.report_id == token)
                )
            ).scalar_one()
            moves = (
                await conn.execute(
                    sa.select(audits.c.at, audits.c.to_stage)
                    .where(audits.c.case_id == case_id)
                    .order_by(audits.c.at, audits.c.id)
                )
            ).all()
        history = timeline(view.requested_at, [(at, Stage(stage)) for at, stage in moves])
        return ReportStatus(view, history)
