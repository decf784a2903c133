"""``/api/v1/service-objects``, ``/api/v1/industries``, ``/api/v1/vehicles`` and a case's
objects (``/api/v1/cases/{id}/objects``): the service-object and vehicle registries.

Every role reads objects; operators and admins create, edit and import them (each change
audited with who and what) and link them to cases. Contacts and vehicle owners are
personal data: their names, phones and e-mails are masked (``138****5678``) for roles
outside :data:`central_hub.domain.service_objects.CONTACT_READERS` (operators, admins),
who send the notices. A vehicle is looked up by plate however it is typed (the parking
loop's ``浙J·A12345``, or ``浙JA12345``).

An import takes a CSV (UTF-8 or GB18030) or XLSX file of at most 64 MB and answers with
the counts and every problem of its bad rows (row, column, reason): 200 even when some
rows were bad, since the good ones were stored.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, UploadFile, status
from pydantic import BaseModel, ConfigDict, Field

from central_hub.adapters.spreadsheet import MAX_IMPORT_BYTES
from central_hub.api.deps import ALL_ROLES, CurrentUser, HubDep, Offset, RowId, guard
from central_hub.domain.open311 import mask_email, mask_name, mask_phone
from central_hub.domain.service_objects import CONTACT_READERS, MAX_LEN, ObjectKind
from central_hub.errors import NotFoundError, TooLargeError
from central_hub.services.service_objects import (
    CaseLink,
    ContactRow,
    ImportReport,
    ObjectAudit,
    ObjectDetail,
    ObjectQuery,
    ObjectView,
    ServiceObjects,
)
from central_hub.services.users import User
from central_hub.services.vehicles import VehicleRegistry, VehicleView

__all__ = [
    "EDITORS",
    "ContactIn",
    "IndustryView",
    "LinkRequest",
    "ObjectFields",
    "ObjectPage",
    "masked_contact",
    "router",
]

router = APIRouter()
#: Who creates, edits and imports objects and vehicles, and links objects to cases.
EDITORS = tuple(sorted(CONTACT_READERS))
_Code = Annotated[str | None, Query(max_length=8, pattern=r"^[0-9]{2,8}$")]


class ContactIn(BaseModel):
    """An object's contact: a name and a phone or an e-mail (a notice goes there)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=MAX_LEN["contact_name"])
    role: str = Field(default="", max_length=MAX_LEN["contact_role"])
    phone: str = Field(default="", max_length=40)
    email: str = Field(default="", max_length=MAX_LEN["contact_email"])


class ObjectFields(BaseModel):
    """An object as created or replaced: the rules are the import's (a business needs an
    industry, a subcategory of it and a legal representative; a location lies in the
    district), every problem a 422 naming its field. ``industry`` and ``subcategory``
    take a code or a name; ``contact`` adds or updates the contact of that name."""

    model_config = ConfigDict(extra="forbid")

    kind: ObjectKind
    name: str = Field(max_length=MAX_LEN["name"])
    address: str = Field(max_length=MAX_LEN["address"])
    industry: str = Field(default="", max_length=64)
    subcategory: str = Field(default="", max_length=64)
    legal_representative: str = Field(default="", max_length=MAX_LEN["legal_representative"])
    lat: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False)
    lon: float | None = Field(default=None, ge=-180, le=180, allow_inf_nan=False)
    notes: str = Field(default="", max_length=MAX_LEN["notes"])
    contact: ContactIn | None = None

    def columns(self) -> dict[str, object]:
        """The fields as an import row's columns."""
        out: dict[str, object] = {
            "kind": self.kind.value,
            "name": self.name,
            "address": self.address,
            "industry": self.industry,
            "subcategory": self.subcategory,
            "legal_representative": self.legal_representative,
            "lat": "" if self.lat is None else repr(self.lat),
            "lon": "" if self.lon is None else repr(self.lon),
            "notes": self.notes,
        }
        if self.contact is not None:
            out |= {
                "contact_name": self.contact.name,
                "contact_role": self.contact.role,
                "contact_phone": self.contact.phone,
                "contact_email": self.contact.email,
            }
        return out


class ObjectPage(BaseModel):
    """One object with its contacts (masked unless the caller's role sends notices),
    photos, audit trail and the cases linked to it."""

    model_config = ConfigDict(frozen=True)

    object: ObjectView
    contacts: list[ContactRow]
    contacts_masked: bool
    photos: list[str]
    audits: list[ObjectAudit]
    case_ids: list[int]


class IndustryView(BaseModel):
    """An industry of the taxonomy and its subcategories (code -> Chinese name)."""

    model_config = ConfigDict(frozen=True)

    code: str
    name_zh: str
    name_en: str
    subcategories: dict[str, str]


class LinkRequest(BaseModel):
    """The object a case concerns, and why it is linked by hand."""

    model_config = ConfigDict(extra="forbid")

    object_id: int = Field(ge=1, le=2**63 - 1)
    reason: str = Field(default="", max_length=200)


def masked_contact(contact: ContactRow, *, full: bool) -> ContactRow:
    """``contact`` in full, or with its name, phone and e-mail masked."""
    if full:
        return contact
    return contact.model_copy(
        update={
            "name": mask_name(contact.name) or "",
            "phone": mask_phone(contact.phone),
            "email": mask_email(contact.email),
        }
    )


def _page(registry_detail: ObjectDetail, user: User) -> ObjectPage:
    full = user.role in CONTACT_READERS
    return ObjectPage(
        object=registry_detail.object,
        contacts=[masked_contact(c, full=full) for c in registry_detail.contacts],
        contacts_masked=not full,
        photos=registry_detail.photos,
        audits=registry_detail.audits,
        case_ids=registry_detail.case_ids,
    )


async def _upload(file: UploadFile) -> bytes:
    data = await file.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        raise TooLargeError(f"an import file is limited to {MAX_IMPORT_BYTES} bytes")
    return data


@router.get("/industries", tags=["service objects"], **guard(*ALL_ROLES))
async def list_industries(hub: HubDep) -> list[IndustryView]:
    """The industry taxonomy objects are filed under (a data file the city edits)."""
    return [
        IndustryView(
            code=i.code,
            name_zh=i.name_zh,
            name_en=i.name_en,
            subcategories={s.code: s.name_zh for s in i.subcategories},
        )
        for i in hub.industries
    ]


@router.get("/service-objects", tags=["service objects"], **guard(*ALL_ROLES))
async def search_objects(
    hub: HubDep,
    q: Annotated[str, Query(max_length=100, description="in the name or address")] = "",
    kind: ObjectKind | None = None,
    industry: _Code = None,
    subcategory: _Code = None,
    cell: Annotated[str | None, Query(max_length=64, description="a grid cell's area")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> list[ObjectView]:
    """Objects by name, filtered by kind, industry, subcategory and grid area (404 for an
    unknown cell)."""
    cells = frozenset(hub.grid.subtree(cell)) if cell is not None else None
    query = ObjectQuery(
        text=q,
        kind=kind,
        industry=industry,
        subcategory=subcategory,
        cells=cells,
        limit=limit,
        offset=offset,
    )
    return await ServiceObjects.of_hub(hub).search(query)


@router.post(
    "/service-objects",
    status_code=status.HTTP_201_CREATED,
    tags=["service objects"],
    **guard(*EDITORS),
)
async def create_object(hub: HubDep, user: CurrentUser, body: ObjectFields) -> ObjectPage:
    """Register an object; 409 when its name and address are registered already."""
    return _page(await ServiceObjects.of_hub(hub).create(body.columns(), user), user)


@router.post("/service-objects/import", tags=["service objects"], **guard(*EDITORS))
async def import_objects(hub: HubDep, user: CurrentUser, file: UploadFile) -> ImportReport:
    """Import a CSV or XLSX of objects (columns as ``central-hub objects import``); an
    object already registered under its name and address is updated."""
    data = await _upload(file)
    name = (file.filename or "upload")[:200]
    return await ServiceObjects.of_hub(hub).import_file(data, name, user.name)


@router.get("/service-objects/{object_id}", tags=["service objects"], **guard(*ALL_ROLES))
async def get_object(hub: HubDep, user: CurrentUser, object_id: RowId) -> ObjectPage:
    """One object with its contacts, photos, audit trail and linked cases."""
    return _page(await ServiceObjects.of_hub(hub).get(object_id), user)


@router.put("/service-objects/{object_id}", tags=["service objects"], **guard(*EDITORS))
async def update_object(
    hub: HubDep, user: CurrentUser, object_id: RowId, body: ObjectFields
) -> ObjectPage:
    """Replace an object's fields, audited field by field; 409 when another object has
    that name and address."""
    return _page(await ServiceObjects.of_hub(hub).update(object_id, body.columns(), user), user)


@router.delete(
    "/service-objects/{object_id}/contacts/{contact_id}",
    tags=["service objects"],
    **guard(*EDITORS),
)
async def remove_contact(
    hub: HubDep, user: CurrentUser, object_id: RowId, contact_id: RowId
) -> ObjectPage:
    """Remove one contact of an object (audited); 404 when it is not the object's."""
    registry = ServiceObjects.of_hub(hub)
    await registry.remove_contact(object_id, contact_id, user)
    return _page(await registry.get(object_id), user)


@router.get("/cases/{case_id}/objects", tags=["cases"], **guard(*ALL_ROLES))
async def case_objects(hub: HubDep, case_id: RowId) -> list[CaseLink]:
    """The objects a case concerns (a 0504 is linked to the nearest street shop the first
    time it is read)."""
    await hub.cases.get(case_id)  # 404 for an unknown case
    registry = ServiceObjects.of_hub(hub)
    await registry.auto_link(case_id)
    return await registry.links_of_case(case_id)


@router.post("/cases/{case_id}/objects", tags=["cases"], **guard(*EDITORS))
async def link_object(
    hub: HubDep, user: CurrentUser, case_id: RowId, body: LinkRequest
) -> list[CaseLink]:
    """Link an object to a case (in its audit trail); 409 when it is linked already."""
    registry = ServiceObjects.of_hub(hub)
    await registry.link(case_id, body.object_id, user, body.reason)
    return await registry.links_of_case(case_id)


@router.delete("/cases/{case_id}/objects/{object_id}", tags=["cases"], **guard(*EDITORS))
async def unlink_object(
    hub: HubDep, user: CurrentUser, case_id: RowId, object_id: RowId
) -> list[CaseLink]:
    """Take an object off a case (in its audit trail; it is not linked again by itself)."""
    registry = ServiceObjects.of_hub(hub)
    await registry.unlink(case_id, object_id, user)
    return await registry.links_of_case(case_id)


@router.get("/vehicles/{plate}", tags=["vehicles"], **guard(*ALL_ROLES))
async def lookup_vehicle(
    hub: HubDep,
    user: CurrentUser,
    plate: Annotated[str, Path(min_length=1, max_length=20, description="e.g. 浙J·A12345")],
) -> VehicleView:
    """A vehicle's owner by plate (typed any usual way); 404 when it is not registered,
    422 when it is not a plate. Owner and phone are masked outside operators and admins."""
    found = await VehicleRegistry(hub.engine, hub.clock).lookup(plate)
    if found is None:
        raise NotFoundError(f"no vehicle with plate {plate}")
    if user.role in CONTACT_READERS:
        return found
    return found.model_copy(
        update={"owner_name": mask_name(found.owner_name) or "", "phone": mask_phone(found.phone)}
    )


@router.post("/vehicles/import", tags=["vehicles"], **guard(*EDITORS))
async def import_vehicles(hub: HubDep, user: CurrentUser, file: UploadFile) -> ImportReport:
    """Import a CSV or XLSX of vehicles (``plate, owner_name, phone, notes``)."""
    data = await _upload(file)
    name = (file.filename or "upload")[:200]
    return await VehicleRegistry(hub.engine, hub.clock).import_file(data, name, user.name)
