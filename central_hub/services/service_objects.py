"""The service-object registry: import, search, edit with audit, contacts for notices, and
the objects cases concern.

The rules are :mod:`central_hub.domain.service_objects`'s; this module stores what they
let through. An import (CSV or XLSX, :mod:`central_hub.adapters.spreadsheet`) stores
every good row and reports every bad one with its row, column and reason; an object whose
name and address are already stored is updated (and left alone when nothing changed), in
transactions of :data:`IMPORT_BATCH` rows so a running hub's other writers never wait
long for SQLite's lock. Every creation and change is written to
``service_object_audits`` (who, when, field -> [old, new]).

Notices reach people through the four audience queries: one object's contacts
(:meth:`ServiceObjects.contacts_of_object`), an industry's, a subcategory's and a grid
area's (the cell and every cell below it). They return contacts in full: the caller sends
to them; pages and the API mask them for roles outside
:data:`central_hub.domain.service_objects.CONTACT_READERS`.

A case of a code in :data:`AUTO_LINK_CODES` (0504, trading outside the shop) is linked to
the nearest street shop within ``link_radius_m`` of its place the first time its page is
shown (:meth:`ServiceObjects.auto_link`), not while filing, which stays as fast as it was;
an operator links and unlinks objects by hand, each written to the case's audit trail.
An unlinked object stays in ``case_objects`` with who and when, so the automatic link is
never made again behind the operator's back.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from central_hub.adapters.spreadsheet import Sheet, read_sheet
from central_hub.db.engine import insert_ignore
from central_hub.db.schema import (
    audits,
    case_objects,
    cases,
    service_object_audits,
    service_object_contacts,
    service_object_photos,
    service_objects,
)
from central_hub.domain.grid import Grid
from central_hub.domain.industries import Taxonomy
from central_hub.domain.service_objects import (
    ObjectKind,
    ObjectRecord,
    Problem,
    check_header,
    check_objects,
    clean_text,
    distance_m,
    search_text,
)
from central_hub.errors import ConflictError, InvalidInputError, NotFoundError
from central_hub.services.users import User

if TYPE_CHECKING:
    from central_hub.hub import Hub

__all__ = [
    "AUTO_LINK_CODES",
    "IMPORT_BATCH",
    "AudienceContact",
    "CaseLink",
    "ContactRow",
    "ImportReport",
    "InvalidObject",
    "ObjectAudit",
    "ObjectDetail",
    "ObjectQuery",
    "ObjectView",
    "ProblemView",
    "ServiceObjects",
    "import_report",
    "sheet_rows",
]

#: Codes whose cases concern the shop in front of which they happen.
AUTO_LINK_CODES = frozenset({"0504"})
#: Rows stored per transaction of an import.
IMPORT_BATCH = 1000
#: Who an automatic link is by, in the link and the case's audit trail.
HUB_ACTOR = "hub"
_SYSTEM_ROLE = "system"
#: Metres per degree of latitude, underestimated so a search box holds its whole circle.
_M_PER_DEG = 110_000.0
#: The object fields an edit compares (contacts are rows of their own).
_FIELDS = (
    "kind",
    "name",
    "address",
    "industry",
    "subcategory",
    "legal_representative",
    "lat",
    "lon",
    "grid_cell_id",
    "notes",
)


class InvalidObject(InvalidInputError):
    """An object's fields break the registry's rules; ``problems`` names each field."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(f"{p.column}: {p.reason}" for p in problems))
        self.problems = tuple(problems)


class ProblemView(BaseModel):
    """One problem of an import: the row (as the spreadsheet numbers it), column, reason."""

    model_config = ConfigDict(frozen=True)

    row: int
    column: str
    reason: str


class ImportReport(BaseModel):
    """What an import did: rows read, objects created, updated, unchanged, and every
    problem of the rows it left out (``bad_rows`` of them; a row may have several)."""

    model_config = ConfigDict(frozen=True)

    file: str
    rows: int
    created: int
    updated: int
    unchanged: int
    bad_rows: int
    problems: list[ProblemView]


class ObjectView(BaseModel):
    """A service object as lists and pages show it (industry and subcategory with their
    Chinese names from the taxonomy)."""

    model_config = ConfigDict(frozen=True)

    id: int
    kind: ObjectKind
    name: str
    address: str
    industry: str | None
    industry_name: str | None
    subcategory: str | None
    subcategory_name: str | None
    legal_representative: str | None
    lat: float | None
    lon: float | None
    grid_cell_id: str | None
    notes: str
    created_at: datetime
    updated_at: datetime
    updated_by: str


class ContactRow(BaseModel):
    """A contact of an object, in full (mask it for roles that may not read it)."""

    model_config = ConfigDict(frozen=True)

    id: int
    object_id: int
    name: str
    role: str
    phone: str | None
    email: str | None


class AudienceContact(BaseModel):
    """A notice recipient: a contact and the object it speaks for."""

    model_config = ConfigDict(frozen=True)

    contact_id: int
    object_id: int
    object_name: str
    object_address: str
    kind: ObjectKind
    industry: str | None
    subcategory: str | None
    grid_cell_id: str | None
    name: str
    role: str
    phone: str | None
    email: str | None


class ObjectAudit(BaseModel):
    """Who did what to an object, when (``changes``: field -> [old, new], or what an
    import or a photo recorded)."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    actor: str
    action: str
    changes: dict[str, Any]


class ObjectDetail(BaseModel):
    """One object with its contacts, photos (SHA-256 in the evidence store), audit trail
    and the open links of cases to it."""

    model_config = ConfigDict(frozen=True)

    object: ObjectView
    contacts: list[ContactRow]
    photos: list[str]
    audits: list[ObjectAudit]
    case_ids: list[int]


class CaseLink(BaseModel):
    """An object a case concerns: how it was linked (auto or manual), by whom, when."""

    model_config = ConfigDict(frozen=True)

    object: ObjectView
    how: str
    linked_at: datetime
    linked_by: str


@dataclass(frozen=True)
class ObjectQuery:
    """A search: ``text`` in the name or address (any case), kind, industry, subcategory,
    a grid cell's area (``cells``: the cell and those below it)."""

    text: str = ""
    kind: ObjectKind | None = None
    industry: str | None = None
    subcategory: str | None = None
    cells: frozenset[str] | None = None
    limit: int = 50
    offset: int = 0


def sheet_rows(
    sheet: Sheet, *, vehicles: bool = False
) -> tuple[list[tuple[int, dict[str, object]]], list[Problem]]:
    """A sheet's rows by column, or its header's problems (then no rows: a file whose
    header is wrong is refused whole, see :func:`check_header`)."""
    where, problems = check_header(sheet.header, vehicles=vehicles)
    if problems:
        return [], [replace(p, row=sheet.header_row) for p in problems]
    width = {k: i for k, i in where.items()}
    rows = [
        (number, {k: cells[i] if i < len(cells) else None for k, i in width.items()})
        for number, cells in sheet.rows
    ]
    return rows, []


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _upsert(conn: AsyncConnection, table: sa.Table, keys: list[str], update: list[str]) -> Any:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE SET update = excluded.update``."""
    if conn.dialect.name == "postgresql":
        pg = postgresql.insert(table)
        return pg.on_conflict_do_update(
            index_elements=keys, set_={c: pg.excluded[c] for c in update}
        )
    lite = sqlite.insert(table)
    return lite.on_conflict_do_update(
        index_elements=keys, set_={c: lite.excluded[c] for c in update}
    )


class ServiceObjects:
    """The registry over the database, the industry taxonomy and the grid."""

    def __init__(
        self,
        engine: AsyncEngine,
        taxonomy: Taxonomy,
        grid: Grid,
        clock: Callable[[], datetime],
        *,
        link_radius_m: float = 15.0,
    ) -> None:
        self.engine = engine
        self.taxonomy = taxonomy
        self.grid = grid
        self.clock = clock
        self.link_radius_m = link_radius_m

    @classmethod
    def of_hub(cls, hub: Hub) -> ServiceObjects:
        """The registry of ``hub`` (its database, taxonomy, grid, clock, link radius)."""
        return cls(
            hub.engine,
            hub.industries,
            hub.grid,
            hub.clock,
            link_radius_m=hub.object_link_radius_m,
        )

    # ----------------------------------------------------------------- views

    def _view(self, row: Mapping[Any, Any]) -> ObjectView:
        industry = self.taxonomy.industry(row["industry"]) if row["industry"] else None
        sub = self.taxonomy.subcategory(row["subcategory"]) if row["subcategory"] else None
        return ObjectView(
            id=row["id"],
            kind=ObjectKind(row["kind"]),
            name=row["name"],
            address=row["address"],
            industry=row["industry"],
            industry_name=industry.name_zh if industry else None,
            subcategory=row["subcategory"],
            subcategory_name=sub.name_zh if sub else None,
            legal_representative=row["legal_representative"],
            lat=row["lat"],
            lon=row["lon"],
            grid_cell_id=row["grid_cell_id"],
            notes=row["notes"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            updated_by=row["updated_by"],
        )

    # ----------------------------------------------------------------- import

    async def import_file(self, data: bytes, name: str, actor: str) -> ImportReport:
        """Import a CSV or XLSX file of objects (see :func:`sheet_rows` for its header)."""
        sheet = await asyncio.to_thread(read_sheet, data, name)
        rows, header_problems = sheet_rows(sheet)
        if header_problems:
            return import_report(name, len(sheet.rows), 0, 0, 0, header_problems)
        return await self.import_rows(rows, name, actor)

    async def import_rows(
        self, rows: Sequence[tuple[int, Mapping[str, object]]], name: str, actor: str
    ) -> ImportReport:
        """Store the good rows (created or updated by name and address) and report the
        bad ones; ``name`` is the file named in the audit trail."""
        good, problems = await asyncio.to_thread(check_objects, rows, self.taxonomy, self.grid)
        created = updated = unchanged = 0
        for start in range(0, len(good), IMPORT_BATCH):
            chunk = good[start : start + IMPORT_BATCH]
            async with self.engine.begin() as conn:
                c, u, s = await self._store(conn, chunk, actor, f"import {name}")
            created, updated, unchanged = created + c, updated + u, unchanged + s
        return import_report(name, len(rows), created, updated, unchanged, problems)

    def _values(self, record: ObjectRecord, now: datetime, actor: str) -> dict[str, Any]:
        return {
            "kind": record.kind.value,
            "name": record.name,
            "address": record.address,
            "industry": record.industry,
            "subcategory": record.subcategory,
            "legal_representative": record.legal_representative,
            "lat": record.lat,
            "lon": record.lon,
            "grid_cell_id": record.grid_cell_id,
            "grid_version": self.grid.version if record.grid_cell_id else None,
            "notes": record.notes,
            "search_text": search_text(record.name, record.address),
            "updated_at": now,
            "updated_by": actor,
        }

    async def _store(
        self,
        conn: AsyncConnection,
        chunk: Sequence[tuple[int, ObjectRecord]],
        actor: str,
        action_note: str,
    ) -> tuple[int, int, int]:
        """Create or update a batch of records; (created, updated, unchanged)."""
        now = self.clock()
        t = service_objects
        names = sorted({r.name for _, r in chunk})
        cols = [t.c[f] for f in ("id", "created_at", *_FIELDS)]
        existing = {
            (m["name"], m["address"]): m
            for m in (await conn.execute(sa.select(*cols).where(t.c.name.in_(names)))).mappings()
        }
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        audit_rows: list[dict[str, Any]] = []
        ids: dict[tuple[str, str], int] = {}
        unchanged = touched = 0
        known = await self._known_contacts(conn, [m["id"] for m in existing.values()])
        for row, record in chunk:
            values = self._values(record, now, actor)
            old = existing.get(record.key)
            if old is None:
                inserts.append({**values, "created_at": now})
                continue
            ids[record.key] = old["id"]
            changes = _changes(old, values)
            contact = record.contact
            if contact is not None:
                before = known.get((old["id"], contact.name))
                after = [contact.role, contact.phone, contact.email]
                if before != after:
                    changes[f"contact {contact.name}"] = [before, after]
            if not changes:
                unchanged += 1
                continue
            touched += 1
            if any(f in changes for f in _FIELDS):
                updates.append({f"v_{k}": v for k, v in values.items()} | {"v_id": old["id"]})
            audit_rows.append(
                {
                    "object_id": old["id"],
                    "at": now,
                    "actor": actor,
                    "action": "update",
                    "changes": {**changes, "_source": [action_note, row]},
                }
            )
        if inserts:
            result = await conn.execute(
                t.insert().returning(t.c.id, t.c.name, t.c.address), inserts
            )
            new_ids = {(r.name, r.address): r.id for r in result}
            ids.update(new_ids)
            row_of = {rec.key: row for row, rec in chunk}
            audit_rows.extend(
                {
                    "object_id": i,
                    "at": now,
                    "actor": actor,
                    "action": "create",
                    "changes": {"_source": [action_note, row_of[key]]},
                }
                for key, i in new_ids.items()
            )
        if updates:
            columns = [k[2:] for k in updates[0] if k != "v_id"]
            stmt = (
                t.update()
                .where(t.c.id == sa.bindparam("v_id"))
                .values({k: sa.bindparam(f"v_{k}") for k in columns})
            )
            await conn.execute(stmt, updates)
        if audit_rows:
            await conn.execute(service_object_audits.insert(), audit_rows)
        contacts = [
            {
                "object_id": ids[r.key],
                "name": r.contact.name,
                "role": r.contact.role,
                "phone": r.contact.phone,
                "email": r.contact.email,
                "updated_at": now,
            }
            for _, r in chunk
            if r.contact is not None
        ]
        if contacts:
            stmt = _upsert(
                conn,
                service_object_contacts,
                ["object_id", "name"],
                ["role", "phone", "email", "updated_at"],
            )
            await conn.execute(stmt, contacts)
        return len(inserts), touched, unchanged

    async def _known_contacts(
        self, conn: AsyncConnection, object_ids: list[int]
    ) -> dict[tuple[int, str], list[str | None]]:
        """(object id, contact name) -> [role, phone, email] of the objects' contacts."""
        if not object_ids:
            return {}
        c = service_object_contacts
        rows = await conn.execute(
            sa.select(c.c.object_id, c.c.name, c.c.role, c.c.phone, c.c.email).where(
                c.c.object_id.in_(object_ids)
            )
        )
        return {(r.object_id, r.name): [r.role, r.phone, r.email] for r in rows}

    # ----------------------------------------------------------------- search

    def _where(self, q: ObjectQuery) -> list[sa.ColumnElement[bool]]:
        t = service_objects
        where: list[sa.ColumnElement[bool]] = []
        text = clean_text(q.text).casefold()
        if text:
            where.append(t.c.search_text.like(f"%{_escape_like(text)}%", escape="\\"))
        if q.kind is not None:
            where.append(t.c.kind == q.kind.value)
        if q.industry:
            where.append(t.c.industry == q.industry)
        if q.subcategory:
            where.append(t.c.subcategory == q.subcategory)
        if q.cells is not None:
            where.append(t.c.grid_cell_id.in_(sorted(q.cells)))
        return where

    async def search(self, q: ObjectQuery) -> list[ObjectView]:
        """Objects matching ``q``, by name, at most ``q.limit`` from ``q.offset``."""
        t = service_objects
        stmt = (
            sa.select(t)
            .where(*self._where(q))
            .order_by(t.c.name, t.c.address)  # the unique index's order: walked, not sorted
            .limit(q.limit)
            .offset(q.offset)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [self._view(r) for r in rows]

    async def count(self, q: ObjectQuery) -> int:
        """How many objects match ``q`` (all of them, whatever the limit)."""
        stmt = sa.select(sa.func.count()).select_from(service_objects).where(*self._where(q))
        async with self.engine.connect() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    # ----------------------------------------------------------------- one object

    async def get(self, object_id: int) -> ObjectDetail:
        """One object with its contacts, photos, audit trail and linked cases; 404 else."""
        t = service_objects
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(t).where(t.c.id == object_id))).mappings().first()
            if row is None:
                raise NotFoundError(f"no service object {object_id}")
            contacts = await self._contacts(conn, object_id)
            photos = (
                await conn.execute(
                    sa.select(service_object_photos.c.sha256)
                    .where(service_object_photos.c.object_id == object_id)
                    .order_by(service_object_photos.c.id)
                )
            ).scalars()
            a = service_object_audits
            trail = (
                await conn.execute(
                    sa.select(a.c.at, a.c.actor, a.c.action, a.c.changes)
                    .where(a.c.object_id == object_id)
                    .order_by(a.c.id)
                )
            ).mappings()
            linked = (
                await conn.execute(
                    sa.select(case_objects.c.case_id)
                    .where(case_objects.c.object_id == object_id)
                    .where(case_objects.c.unlinked_at.is_(None))
                    .order_by(case_objects.c.case_id.desc())
                )
            ).scalars()
            return ObjectDetail(
                object=self._view(row),
                contacts=contacts,
                photos=list(photos),
                audits=[ObjectAudit(**dict(r)) for r in trail],
                case_ids=list(linked),
            )

    async def _contacts(self, conn: AsyncConnection, object_id: int) -> list[ContactRow]:
        c = service_object_contacts
        rows = await conn.execute(
            sa.select(c.c.id, c.c.object_id, c.c.name, c.c.role, c.c.phone, c.c.email)
            .where(c.c.object_id == object_id)
            .order_by(c.c.id)
        )
        return [ContactRow(**dict(r)) for r in rows.mappings()]

    def check(self, fields: Mapping[str, object]) -> ObjectRecord:
        """The record ``fields`` describe (an import row's columns), or InvalidObject."""
        good, problems = check_objects([(0, fields)], self.taxonomy, self.grid)
        if problems:
            raise InvalidObject(problems)
        if not good:
            raise InvalidObject([Problem(0, "name", "required")])
        return good[0][1]

    async def create(self, fields: Mapping[str, object], user: User) -> ObjectDetail:
        """Create an object (and its contact when the fields hold one); 409 when its
        name and address are taken, 422 naming each field that is wrong."""
        record = self.check(fields)
        async with self.engine.begin() as conn:
            taken = await conn.execute(
                sa.select(service_objects.c.id).where(
                    service_objects.c.name == record.name,
                    service_objects.c.address == record.address,
                )
            )
            if taken.first() is not None:
                raise ConflictError(f"{record.name} at {record.address} is registered already")
            await self._store(conn, [(0, record)], user.name, "created by hand")
            new_id = (
                await conn.execute(
                    sa.select(service_objects.c.id).where(
                        service_objects.c.name == record.name,
                        service_objects.c.address == record.address,
                    )
                )
            ).scalar_one()
        return await self.get(int(new_id))

    async def update(
        self, object_id: int, fields: Mapping[str, object], user: User
    ) -> ObjectDetail:
        """Replace an object's fields (and add or update the contact the fields name),
        auditing what changed; 404, 409 (another object has that name and address) or
        422 naming each field that is wrong."""
        record = self.check(fields)
        now = self.clock()
        t = service_objects
        async with self.engine.begin() as conn:
            cols = [t.c[f] for f in ("id", *_FIELDS)]
            old = (await conn.execute(sa.select(*cols).where(t.c.id == object_id))).mappings()
            current = old.first()
            if current is None:
                raise NotFoundError(f"no service object {object_id}")
            clash = await conn.execute(
                sa.select(t.c.id).where(
                    t.c.name == record.name, t.c.address == record.address, t.c.id != object_id
                )
            )
            if clash.first() is not None:
                raise ConflictError(
                    f"another object is registered as {record.name} at {record.address}"
                )
            values = self._values(record, now, user.name)
            changes = _changes(current, values)
            if changes:
                await conn.execute(t.update().where(t.c.id == object_id).values(values))
            if record.contact is not None:
                changes.update(await self._put_contact(conn, object_id, record, now))
            if changes:
                await conn.execute(
                    service_object_audits.insert().values(
                        object_id=object_id,
                        at=now,
                        actor=user.name,
                        action="update",
                        changes=changes,
                    )
                )
        return await self.get(object_id)

    async def _put_contact(
        self, conn: AsyncConnection, object_id: int, record: ObjectRecord, now: datetime
    ) -> dict[str, Any]:
        contact = record.contact
        assert contact is not None
        c = service_object_contacts
        before = (
            await conn.execute(
                sa.select(c.c.role, c.c.phone, c.c.email).where(
                    c.c.object_id == object_id, c.c.name == contact.name
                )
            )
        ).first()
        after = (contact.role, contact.phone, contact.email)
        if before is not None and tuple(before) == after:
            return {}
        await conn.execute(
            _upsert(conn, c, ["object_id", "name"], ["role", "phone", "email", "updated_at"]),
            [
                {
                    "object_id": object_id,
                    "name": contact.name,
                    "role": contact.role,
                    "phone": contact.phone,
                    "email": contact.email,
                    "updated_at": now,
                }
            ],
        )
        return {f"contact {contact.name}": [list(before) if before else None, list(after)]}

    async def remove_contact(self, object_id: int, contact_id: int, user: User) -> None:
        """Remove one contact of an object (audited); 404 when it is not the object's."""
        c = service_object_contacts
        async with self.engine.begin() as conn:
            gone = (
                await conn.execute(
                    c.delete()
                    .where(c.c.id == contact_id, c.c.object_id == object_id)
                    .returning(c.c.name, c.c.role, c.c.phone, c.c.email)
                )
            ).first()
            if gone is None:
                raise NotFoundError(f"object {object_id} has no contact {contact_id}")
            await conn.execute(
                service_object_audits.insert().values(
                    object_id=object_id,
                    at=self.clock(),
                    actor=user.name,
                    action="update",
                    changes={f"contact {gone.name}": [list(gone[1:]), None]},
                )
            )

    async def add_photo(self, object_id: int, sha256: str, user: User) -> None:
        """Attach a photo already in the evidence store (a JPEG without EXIF); audited."""
        now = self.clock()
        async with self.engine.begin() as conn:
            found = await conn.execute(
                sa.select(service_objects.c.id).where(service_objects.c.id == object_id)
            )
            if found.first() is None:
                raise NotFoundError(f"no service object {object_id}")
            await conn.execute(
                service_object_photos.insert().values(
                    object_id=object_id, sha256=sha256, added_at=now, added_by=user.name
                )
            )
            await conn.execute(
                service_object_audits.insert().values(
                    object_id=object_id,
                    at=now,
                    actor=user.name,
                    action="photo",
                    changes={"photo": [None, sha256]},
                )
            )

    # ----------------------------------------------------------------- audiences

    async def _audience(self, *where: sa.ColumnElement[bool]) -> list[AudienceContact]:
        o, c = service_objects, service_object_contacts
        stmt = (
            sa.select(
                c.c.id.label("contact_id"),
                o.c.id.label("object_id"),
                o.c.name.label("object_name"),
                o.c.address.label("object_address"),
                o.c.kind,
                o.c.industry,
                o.c.subcategory,
                o.c.grid_cell_id,
                c.c.name,
                c.c.role,
                c.c.phone,
                c.c.email,
            )
            .join(o, o.c.id == c.c.object_id)
            .where(*where)
            .order_by(o.c.id, c.c.id)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [AudienceContact(**dict(r)) for r in rows]

    async def contacts_of_object(self, object_id: int) -> list[AudienceContact]:
        """One object's contacts (a notice to one shop); 404 for an unknown object."""
        async with self.engine.connect() as conn:
            found = await conn.execute(
                sa.select(service_objects.c.id).where(service_objects.c.id == object_id)
            )
            if found.first() is None:
                raise NotFoundError(f"no service object {object_id}")
        return await self._audience(service_objects.c.id == object_id)

    async def contacts_of_industry(self, industry: str) -> list[AudienceContact]:
        """The contacts of every object in an industry (by code); 422 for an unknown one."""
        if self.taxonomy.industry(industry) is None:
            raise InvalidInputError(f"industry: {industry[:20]!r} is not in the taxonomy")
        return await self._audience(service_objects.c.industry == industry)

    async def contacts_of_subcategory(self, subcategory: str) -> list[AudienceContact]:
        """The contacts of every object in a subcategory (by code); 422 for an unknown one."""
        if self.taxonomy.subcategory(subcategory) is None:
            raise InvalidInputError(f"subcategory: {subcategory[:20]!r} is not in the taxonomy")
        return await self._audience(service_objects.c.subcategory == subcategory)

    async def contacts_in_area(self, cell_id: str) -> list[AudienceContact]:
        """The contacts of every object placed in a grid cell or any cell below it (a
        street, a zone, a squadron's jurisdiction); UnknownCell (404) for an unknown one."""
        cells = sorted(self.grid.subtree(cell_id))
        return await self._audience(service_objects.c.grid_cell_id.in_(cells))

    # ----------------------------------------------------------------- cases

    async def nearest(
        self, lat: float, lon: float, kind: ObjectKind, radius_m: float
    ) -> tuple[ObjectView, float] | None:
        """The object of ``kind`` nearest to (lat, lon) within ``radius_m``, and how far."""
        if not (math.isfinite(lat) and math.isfinite(lon)) or radius_m <= 0:
            return None
        t = service_objects
        dlat = radius_m / _M_PER_DEG
        dlon = dlat / max(math.cos(math.radians(min(abs(lat) + dlat, 89.0))), 1e-6)
        stmt = sa.select(t).where(
            t.c.kind == kind.value,
            t.c.lat.between(lat - dlat, lat + dlat),
            t.c.lon.between(lon - dlon, lon + dlon),
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        best: tuple[float, int, Mapping[Any, Any]] | None = None
        for r in rows:
            d = distance_m(lat, lon, r["lat"], r["lon"])
            if d <= radius_m and (best is None or (d, r["id"]) < best[:2]):
                best = (d, r["id"], r)
        return (self._view(best[2]), best[0]) if best else None

    async def links_of_case(self, case_id: int) -> list[CaseLink]:
        """The objects a case concerns now (unlinked ones left out), oldest link first."""
        t, k = service_objects, case_objects
        stmt = (
            sa.select(t, k.c.how, k.c.linked_at, k.c.linked_by)
            .join(k, k.c.object_id == t.c.id)
            .where(k.c.case_id == case_id, k.c.unlinked_at.is_(None))
            .order_by(k.c.linked_at, t.c.id)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [
            CaseLink(
                object=self._view(r),
                how=r["how"],
                linked_at=r["linked_at"],
                linked_by=r["linked_by"],
            )
            for r in rows
        ]

    async def auto_link(self, case_id: int) -> CaseLink | None:
        """Link a case of :data:`AUTO_LINK_CODES` to the nearest street shop within the
        link radius, once: a case that ever had a link (kept or unlinked) is left alone.
        The link and its audit row are written together; two pages opening the case at
        once link it once."""
        async with self.engine.connect() as conn:
            case = (
                await conn.execute(
                    sa.select(cases.c.code, cases.c.lat, cases.c.lon, cases.c.stage).where(
                        cases.c.id == case_id
                    )
                )
            ).first()
            if case is None or case.code not in AUTO_LINK_CODES:
                return None
            if case.lat is None or case.lon is None:
                return None
            ever = await conn.execute(
                sa.select(case_objects.c.object_id).where(case_objects.c.case_id == case_id)
            )
            if ever.first() is not None:
                return None
        found = await self.nearest(case.lat, case.lon, ObjectKind.STREET_SHOP, self.link_radius_m)
        if found is None:
            return None
        shop, metres = found
        now = self.clock()
        async with self.engine.begin() as conn:
            ever = await conn.execute(
                sa.select(case_objects.c.object_id).where(case_objects.c.case_id == case_id)
            )
            if ever.first() is not None:
                return None
            stmt = insert_ignore(case_objects, conn.dialect, ["case_id", "object_id"])
            done = await conn.execute(
                stmt.values(
                    case_id=case_id,
                    object_id=shop.id,
                    how="auto",
                    linked_at=now,
                    linked_by=HUB_ACTOR,
                )
            )
            if done.rowcount != 1:
                return None
            await conn.execute(
                audits.insert().values(
                    case_id=case_id,
                    at=now,
                    from_stage=case.stage,
                    to_stage=case.stage,
                    action="object_link",
                    actor=HUB_ACTOR,
                    role=_SYSTEM_ROLE,
                    reason=f"nearest street shop: #{shop.id} {shop.name} ({metres:.0f} m)",
                    attachments=[],
                )
            )
        return CaseLink(object=shop, how="auto", linked_at=now, linked_by=HUB_ACTOR)

    async def link(self, case_id: int, object_id: int, user: User, reason: str = "") -> None:
        """Link an object to a case by hand (again, when it was unlinked); 404 for either
        unknown, 409 when it is linked already. Written to the case's audit trail."""
        await self._relink(case_id, object_id, user, reason, link=True)

    async def unlink(self, case_id: int, object_id: int, user: User, reason: str = "") -> None:
        """Take an object off a case (the row stays, with who and when); 404 when it is
        not linked. Written to the case's audit trail."""
        await self._relink(case_id, object_id, user, reason, link=False)

    async def _relink(
        self, case_id: int, object_id: int, user: User, reason: str, *, link: bool
    ) -> None:
        now = self.clock()
        k = case_objects
        async with self.engine.begin() as conn:
            stage = (
                await conn.execute(sa.select(cases.c.stage).where(cases.c.id == case_id))
            ).scalar_one_or_none()
            if stage is None:
                raise NotFoundError(f"no case {case_id}")
            obj = (
                await conn.execute(
                    sa.select(service_objects.c.name).where(service_objects.c.id == object_id)
                )
            ).scalar_one_or_none()
            if obj is None:
                raise NotFoundError(f"no service object {object_id}")
            row = (
                await conn.execute(
                    sa.select(k.c.unlinked_at).where(
                        k.c.case_id == case_id, k.c.object_id == object_id
                    )
                )
            ).first()
            key = (k.c.case_id == case_id) & (k.c.object_id == object_id)
            if link:
                if row is not None and row.unlinked_at is None:
                    raise ConflictError(f"object {object_id} is linked to case {case_id} already")
                values = {
                    "how": "manual",
                    "linked_at": now,
                    "linked_by": user.name,
                    "unlinked_at": None,
                    "unlinked_by": None,
                }
                if row is None:
                    await conn.execute(
                        k.insert().values(case_id=case_id, object_id=object_id, **values)
                    )
                else:
                    await conn.execute(k.update().where(key).values(values))
            else:
                if row is None or row.unlinked_at is not None:
                    raise NotFoundError(f"object {object_id} is not linked to case {case_id}")
                await conn.execute(
                    k.update().where(key).values(unlinked_at=now, unlinked_by=user.name)
                )
            words = f"#{object_id} {obj}" + (f": {reason}" if reason else "")
            await conn.execute(
                audits.insert().values(
                    case_id=case_id,
                    at=now,
                    from_stage=stage,
                    to_stage=stage,
                    action="object_link" if link else "object_unlink",
                    actor=user.name,
                    role=user.role.value,
                    reason=words[:2000],
                    attachments=[],
                )
            )


def _same(old: object, new: object) -> bool:
    if isinstance(old, float) and isinstance(new, float):
        return abs(old - new) < 1e-9
    return old == new


def _changes(old: Mapping[Any, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """field -> [old, new] for each compared field that differs."""
    return {f: [old[f], values[f]] for f in _FIELDS if not _same(old[f], values[f])}


def import_report(
    name: str, rows: int, created: int, updated: int, unchanged: int, problems: Iterable[Problem]
) -> ImportReport:
    """An import's report: its counts and every problem, by row then column."""
    found = sorted(problems)
    return ImportReport(
        file=name,
        rows=rows,
        created=created,
        updated=updated,
        unchanged=unchanged,
        bad_rows=len({p.row for p in found}),
        problems=[ProblemView(row=p.row, column=p.column, reason=p.reason) for p in found],
    )
