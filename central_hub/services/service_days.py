"""Service days on the hub: holding events back from filing, and pushing the calendar to units.

:class:`ServiceDayGate` is what ingest asks before filing an event: the reason it falls
in a service day (its zone, or the grid cells of its place, its code and its detection
time), or None. Such an event is still stored, with the reason in
``events.not_filed_reason``, and no case is filed: a unit with an older calendar (or a
drifting clock) loses nothing and files nothing the city suspended.

:class:`ServiceDayService` pushes to each registered unit the exemptions that concern it
(:meth:`ServiceDays.exemptions_for`) as the ``service_days`` section of its signed desired
config, through :meth:`DeviceService.set_desired` (the one way a desired config is made),
the unit's other desired sections kept as they are. A unit whose exemptions still to come
are unchanged is left alone, so pushing again is harmless. The cameras named through grid
cells are found where the hub knows a camera is: a camera's fixed ``location`` in the
unit's desired vision config, else where its latest event was located.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from central_hub.db.schema import devices, events
from central_hub.domain.grid import Grid
from central_hub.domain.service_days import ServiceDays, Suspension, ZoneRef
from central_hub.errors import HubError
from central_hub.services.devices import DeviceService
from edge_agent.protocol import Event
from edge_agent.vision.exemptions import Exemption, ServiceDaysSection

log = logging.getLogger(__name__)

__all__ = ["HeldEvent", "PushOutcome", "ServiceDayGate", "ServiceDayService"]


class ServiceDayGate:
    """Why an event falls in a service day (so it is stored, not filed), or None."""

    def __init__(self, calendar: ServiceDays, grid: Grid) -> None:
        self.calendar = calendar
        self.grid = grid
        self._by_cell = bool(calendar.cells())

    def suspension(self, event: Event) -> Suspension | None:
        """The service day and window ``event`` falls in, or None."""
        if not self.calendar.days:
            return None
        cells: list[str] = []
        if self._by_cell:
            cell = self.grid.locate(event.location.lat, event.location.lon)
            if cell is not None:
                cells = [c.id for c in self.grid.path(cell.id)]
        return self.calendar.exempt(
            ZoneRef(event.device_id, event.camera_id, event.zone),
            event.code,
            event.detected_at,
            cells=cells,
            kind=event.kind,
        )

    def __call__(self, event: Event) -> str | None:
        """The reason ``event`` is not filed, for an operator; None when it is filed."""
        found = self.suspension(event)
        return None if found is None else found.reason(self.calendar.zone)


class PushOutcome(BaseModel):
    """What pushing the calendar did for one unit."""

    model_config = ConfigDict(frozen=True)

    device_id: str
    exemptions: int
    version: int | None  # the desired version pushed; None when left as it was
    note: str = ""


class HeldEvent(BaseModel):
    """An event stored but not filed because of a service day, for the console."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    device_id: str
    camera_id: str
    zone: str
    code: str
    detected_at: datetime
    reason: str


@dataclass(frozen=True)
class _Unit:
    device_id: str
    desired: dict[str, Any] | None


def _still_to_come(section: object, now: datetime) -> list[Exemption] | None:
    """The exemptions of a pushed section not over at ``now`` (None: no valid section)."""
    if not isinstance(section, dict):
        return None
    try:
        parsed = ServiceDaysSection.model_validate(section)
    except ValueError:
        return None
    return [e for e in parsed.exemptions if e.end > now]


class ServiceDayService:
    """Pushes the service-day calendar to units and lists what it held back."""

    def __init__(
        self,
        engine: AsyncEngine,
        devices_service: DeviceService,
        calendar: ServiceDays,
        grid: Grid,
        clock: Callable[[], datetime],
    ) -> None:
        self.engine = engine
        self.devices = devices_service
        self.calendar = calendar
        self.grid = grid
        self.clock = clock

    @property
    def label(self) -> str:
        """How units are told which calendar they run (the file's digest)."""
        return f"service_days@{self.calendar.digest}" if self.calendar.digest else ""

    async def push(self, *, dry_run: bool = False) -> list[PushOutcome]:
        """Push each registered unit its exemptions where they changed (see the module
        docs); with ``dry_run`` only say what would be pushed."""
        now = self.clock()
        async with self.engine.connect() as conn:
            units = [
                _Unit(r.device_id, r.desired_config)
                for r in await conn.execute(
                    sa.select(devices.c.device_id, devices.c.desired_config).order_by(
                        devices.c.device_id
                    )
                )
            ]
            located = await self._event_places(conn) if self.calendar.cells() else {}
        out = []
        for unit in units:
            cameras = self._camera_cells(unit, located.get(unit.device_id, {}))
            wanted = self.calendar.exemptions_for(unit.device_id, cameras, now)
            current = _still_to_come((unit.desired or {}).get("service_days"), now)
            if list(wanted) == (current or []):
                out.append(
                    PushOutcome(device_id=unit.device_id, exemptions=len(wanted), version=None)
                )
                continue
            section = ServiceDaysSection(calendar=self.label, exemptions=wanted)
            if dry_run:
                out.append(
                    PushOutcome(
                        device_id=unit.device_id,
                        exemptions=len(wanted),
                        version=None,
                        note="would push",
                    )
                )
                continue
            config = {**(unit.desired or {}), "service_days": section.model_dump(mode="json")}
            try:
                version = await self.devices.set_desired(unit.device_id, config)
            except HubError as exc:  # stored or not, say so and go on with the next unit
                log.warning("service days for %s: %s", unit.device_id, exc)
                out.append(
                    PushOutcome(
                        device_id=unit.device_id,
                        exemptions=len(wanted),
                        version=None,
                        note=str(exc),
                    )
                )
                continue
            out.append(
                PushOutcome(device_id=unit.device_id, exemptions=len(wanted), version=version)
            )
        return out

    def _camera_cells(
        self, unit: _Unit, places: Mapping[str, tuple[float, float]]
    ) -> dict[str, list[str]]:
        """Each camera of ``unit`` whose place the hub knows: the grid cells it is in."""
        if not self.calendar.cells():
            return {}
        where = dict(places)
        vision = (unit.desired or {}).get("vision")
        for cam in (vision or {}).get("cameras", []) if isinstance(vision, dict) else []:
            loc = cam.get("location") if isinstance(cam, dict) else None
            if isinstance(loc, dict) and isinstance(cam.get("id"), str):
                try:
                    where[cam["id"]] = (float(loc["lat"]), float(loc["lon"]))
                except (KeyError, TypeError, ValueError):
                    continue
        out = {}
        for camera_id, (lat, lon) in where.items():
            cell = self.grid.locate(lat, lon)
            if cell is not None:
                out[camera_id] = [c.id for c in self.grid.path(cell.id)]
        return out

    @staticmethod
    async def _event_places(conn: AsyncConnection) -> dict[str, dict[str, tuple[float, float]]]:
        """Where each camera's latest real event was located, by device and camera."""
        latest = (
            sa.select(
                events.c.device_id,
                events.c.camera_id,
                sa.func.max(events.c.detected_at).label("at"),
            )
            .where(events.c.shadow.is_(False))
            .group_by(events.c.device_id, events.c.camera_id)
            .subquery()
        )
        rows = await conn.execute(
            sa.select(events.c.device_id, events.c.camera_id, events.c.lat, events.c.lon).join(
                latest,
                sa.and_(
                    events.c.device_id == latest.c.device_id,
                    events.c.camera_id == latest.c.camera_id,
                    events.c.detected_at == latest.c.at,
                ),
            )
        )
        out: dict[str, dict[str, tuple[float, float]]] = {}
        for r in rows:
            out.setdefault(r.device_id, {})[r.camera_id] = (float(r.lat), float(r.lon))
        return out

    async def held(self, limit: int = 50) -> list[HeldEvent]:
        """The latest events stored but not filed because of a service day."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(
                    events.c.event_id,
                    events.c.device_id,
                    events.c.camera_id,
                    events.c.zone,
                    events.c.code,
                    events.c.detected_at,
                    events.c.not_filed_reason,
                )
                .where(events.c.not_filed_reason.is_not(None))
                .order_by(events.c.detected_at.desc(), events.c.event_id.desc())
                .limit(limit)
            )
            return [
                HeldEvent(
                    event_id=r.event_id,
                    device_id=r.device_id,
                    camera_id=r.camera_id,
                    zone=r.zone,
                    code=r.code,
                    detected_at=r.detected_at,
                    reason=r.not_filed_reason,
                )
                for r in rows
            ]
