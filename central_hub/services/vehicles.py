"""The vehicle registry: plates to the owner's contact, for move-your-car reminders.

Imported like service objects (:mod:`central_hub.services.service_objects`): a CSV or XLSX
with ``plate``, ``owner_name``, ``phone`` and ``notes`` columns, every bad row reported
by row, column and reason and the rest stored; a plate already stored is updated (its
owner or phone changed) or left alone. Plates are kept as the plate reader writes them
(``浙J·A12345``), so a parking event's ``plate_text`` finds its owner with
:meth:`VehicleRegistry.lookup` whichever way the import typed it.

Owners' names and phones are personal data (PIPL): the API masks them for roles outside
:data:`central_hub.domain.service_objects.CONTACT_READERS`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.adapters.spreadsheet import read_sheet
from central_hub.db.schema import vehicles
from central_hub.domain.service_objects import check_vehicles, normalise_plate
from central_hub.errors import InvalidInputError
from central_hub.services.service_objects import (
    IMPORT_BATCH,
    ImportReport,
    import_report,
    sheet_rows,
)

__all__ = ["VehicleRegistry", "VehicleView"]


class VehicleView(BaseModel):
    """A registered vehicle: plate, owner, phone (in full: mask it where needed)."""

    model_config = ConfigDict(frozen=True)

    id: int
    plate: str
    owner_name: str
    phone: str
    notes: str
    updated_at: datetime
    updated_by: str


class VehicleRegistry:
    """Plates and owners over the database."""

    def __init__(self, engine: AsyncEngine, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.clock = clock

    async def import_file(self, data: bytes, name: str, actor: str) -> ImportReport:
        """Import a CSV or XLSX of vehicles (columns ``plate, owner_name, phone, notes``
        or 车牌, 车主, 电话, 备注)."""
        sheet = await asyncio.to_thread(read_sheet, data, name)
        rows, header_problems = sheet_rows(sheet, vehicles=True)
        if header_problems:
            return import_report(name, len(sheet.rows), 0, 0, 0, header_problems)
        return await self.import_rows(rows, name, actor)

    async def import_rows(
        self, rows: Sequence[tuple[int, Mapping[str, object]]], name: str, actor: str
    ) -> ImportReport:
        """Store the good rows (created, or updated by plate) and report the bad ones."""
        good, problems = check_vehicles(rows)
        created = updated = unchanged = 0
        t = vehicles
        for start in range(0, len(good), IMPORT_BATCH):
            chunk = [v for _, v in good[start : start + IMPORT_BATCH]]
            now = self.clock()
            async with self.engine.begin() as conn:
                stored = {
                    r.plate: r
                    for r in await conn.execute(
                        sa.select(t.c.id, t.c.plate, t.c.owner_name, t.c.phone, t.c.notes).where(
                            t.c.plate.in_([v.plate for v in chunk])
                        )
                    )
                }
                inserts, updates = [], []
                for v in chunk:
                    old = stored.get(v.plate)
                    values = {"owner_name": v.owner_name, "phone": v.phone, "notes": v.notes}
                    if old is None:
                        inserts.append(
                            {
                                "plate": v.plate,
                                **values,
                                "created_at": now,
                                "updated_at": now,
                                "updated_by": actor,
                            }
                        )
                    elif (old.owner_name, old.phone, old.notes) == tuple(values.values()):
                        unchanged += 1
                    else:
                        updates.append(
                            {f"v_{k}": x for k, x in values.items()}
                            | {"v_id": old.id, "v_updated_at": now, "v_updated_by": actor}
                        )
                if inserts:
                    await conn.execute(t.insert(), inserts)
                if updates:
                    columns = ("owner_name", "phone", "notes", "updated_at", "updated_by")
                    await conn.execute(
                        t.update()
                        .where(t.c.id == sa.bindparam("v_id"))
                        .values({c: sa.bindparam(f"v_{c}") for c in columns}),
                        updates,
                    )
            created, updated = created + len(inserts), updated + len(updates)
        return import_report(name, len(rows), created, updated, unchanged, problems)

    async def lookup(self, plate: str) -> VehicleView | None:
        """The vehicle with ``plate`` (typed any usual way), or None; InvalidInputError
        when ``plate`` is not a plate at all."""
        normal = normalise_plate(plate)
        if normal is None:
            raise InvalidInputError(f"plate: {plate[:20]!r} is not a plate")
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(sa.select(vehicles).where(vehicles.c.plate == normal)))
                .mappings()
                .first()
            )
        if row is None:
            return None
        return VehicleView(**{k: row[k] for k in VehicleView.model_fields})

    async def count(self) -> int:
        """How many vehicles are registered."""
        async with self.engine.connect() as conn:
            return int(
                (await conn.execute(sa.select(sa.func.count()).select_from(vehicles))).scalar_one()
            )
