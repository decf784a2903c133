"""The vendor file (文明执法查询平台) under ``/api/v1/vendor-file``, for the roles the city
allows (``XH_HUB_VENDOR_FILE_ROLES``, default handler and admin): every route answers
403 to any other role, before it reads anything.

* ``POST /vendor-file/search``: people by name (contains) or by identity number, with a
  reason; in a body, so no name or number lands in an access log.
* ``GET /vendor-file/persons/{id}?reason=``: a person's file: colour (computed from the
  history), violations (linked 0501 cases with their evidence frames), counsellings.
* ``POST /vendor-file/persons``: create a person (optionally linking a case).
* ``POST /vendor-file/persons/{id}/cases``: link a 0501 case (one person per case).
* ``POST /vendor-file/persons/{id}/counsellings``: record a counselling.
* ``PUT /vendor-file/persons/{id}/photo`` and ``GET ...?reason=``: a person's photo
  (re-encoded without EXIF; every read recorded).
* ``GET /vendor-file/lookups``: who looked into the file, when and why.

Every search and file read is recorded (:mod:`central_hub.services.vendor_file`) before
it is answered. Phones and identity numbers are only ever shown masked. Nothing deletes:
the file is permanent. Routes are built per app (:func:`router_for`) since the roles
are the city's setting; the OpenAPI document's ``x-roles`` names them.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response, UploadFile, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from central_hub.api.deps import CurrentUser, HubDep, Offset, RowId, guard
from central_hub.api.events import MAX_UPLOAD_BYTES
from central_hub.console.errors import UploadRefused
from central_hub.console.uploads import normalise_photo
from central_hub.domain.vendor_file import NAME_MAX, NOTE_MAX, REASON_MAX, Colour, Outcome
from central_hub.domain.workflow import Role
from central_hub.errors import InvalidInputError, TooLargeError
from central_hub.services.vendor_file import PHONE_MAX, PersonFile, PersonSummary
from edge_agent.protocol import MAX_WIRE_INT

__all__ = [
    "CounsellingIn",
    "CreatedRef",
    "LinkIn",
    "PersonIn",
    "PersonView",
    "SearchIn",
    "router_for",
]

Reason = Annotated[
    str, Query(min_length=1, max_length=REASON_MAX, description="why you look (recorded)")
]


class SearchIn(BaseModel):
    """Whom to look for (a name, or an identity number: exactly one) and why."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=NAME_MAX)
    id_number: str | None = Field(default=None, min_length=1, max_length=40)
    reason: str = Field(min_length=1, max_length=REASON_MAX)

    @model_validator(mode="after")
    def _one_key(self) -> SearchIn:
        if (self.name is None) == (self.id_number is None):
            raise ValueError("give name or id_number, not both and not neither")
        return self


class PersonIn(BaseModel):
    """A new person: name; phone, identity number and a 0501 case to link, if known."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=NAME_MAX)
    phone: str | None = Field(default=None, max_length=PHONE_MAX)
    id_number: str | None = Field(default=None, max_length=40)
    case_id: int | None = Field(default=None, ge=1, le=MAX_WIRE_INT)


class LinkIn(BaseModel):
    """A 0501 case to link to the person."""

    model_config = ConfigDict(extra="forbid")

    case_id: int = Field(ge=1, le=MAX_WIRE_INT)


class CounsellingIn(BaseModel):
    """A counselling: its outcome; when (default now), by whom (default you), for which
    of the person's cases, and a note."""

    model_config = ConfigDict(extra="forbid")

    outcome: Outcome
    at: AwareDatetime | None = None
    officer: str | None = Field(default=None, min_length=1, max_length=64)
    case_id: int | None = Field(default=None, ge=1, le=MAX_WIRE_INT)
    note: str = Field(default="", max_length=NOTE_MAX)


class CreatedRef(BaseModel):
    """The id of what was created."""

    id: int


class LinkView(BaseModel):
    """A case's link to a person (``created``: false when it was linked already)."""

    case_id: int
    person_id: int
    linked_by: str
    linked_at: datetime
    created: bool


class PersonView(BaseModel):
    """A person as a search shows them: phone and identity number masked; the colour
    computed from the history, since when, and why."""

    id: int
    name: str
    phone: str | None
    id_number: str | None
    has_photo: bool
    colour: Colour
    colour_since: datetime | None
    colour_reason: str
    violations: int
    counsellings: int
    created_at: datetime


class ViolationOut(BaseModel):
    """A linked 0501 case and its evidence frames (SHA-256 of the snapshots)."""

    case_id: int
    code: str
    title: str
    stage: str
    reported_at: datetime
    linked_by: str
    linked_at: datetime
    frames: list[str]


class CounsellingOut(BaseModel):
    """A recorded counselling."""

    id: int
    at: datetime
    officer: str
    outcome: Outcome
    case_id: int | None
    note: str
    recorded_by: str


class FileView(BaseModel):
    """A person's whole file."""

    person: PersonView
    violations: list[ViolationOut]
    counsellings: list[CounsellingOut]


class LookupView(BaseModel):
    """One recorded look into the file: who, when, why, what, and the people shown."""

    id: int
    user_name: str
    role: str
    at: datetime
    reason: str
    kind: str
    query: str
    shown: list[int]


def person_view(p: PersonSummary) -> PersonView:
    """The API's view of a search result."""
    return PersonView(
        id=p.id,
        name=p.name,
        phone=p.phone_masked,
        id_number=p.id_number_masked,
        has_photo=p.photo_sha256 is not None,
        colour=p.assessment.colour,
        colour_since=p.assessment.since,
        colour_reason=p.assessment.reason,
        violations=p.violations,
        counsellings=p.counsellings,
        created_at=p.created_at,
    )


def file_view(f: PersonFile) -> FileView:
    """The API's view of a person's file."""
    return FileView(
        person=person_view(f.person),
        violations=[
            ViolationOut(
                case_id=v.case_id,
                code=v.code,
                title=v.title,
                stage=v.stage,
                reported_at=v.reported_at,
                linked_by=v.linked_by,
                linked_at=v.linked_at,
                frames=list(v.frames),
            )
            for v in f.violations
        ],
        counsellings=[
            CounsellingOut(
                id=c.id,
                at=c.at,
                officer=c.officer,
                outcome=c.outcome,
                case_id=c.case_id,
                note=c.note,
                recorded_by=c.recorded_by,
            )
            for c in f.counsellings
        ],
    )


def router_for(roles: frozenset[Role]) -> APIRouter:
    """The vendor file's routes, each open to ``roles`` only."""
    router = APIRouter(prefix="/vendor-file", tags=["vendor file"])
    allowed = guard(*roles)

    @router.post("/search", **allowed)
    async def search(hub: HubDep, user: CurrentUser, body: SearchIn) -> list[PersonView]:
        """People whose name contains ``name`` (at most 20), or the one with identity
        number ``id_number``; the look is recorded with ``reason`` first."""
        vf = hub.vendor_file
        if body.name is not None:
            found = await vf.search(user, body.name, body.reason)
        else:
            assert body.id_number is not None
            found = await vf.find_by_id_number(user, body.id_number, body.reason)
        return [person_view(p) for p in found]

    @router.get("/persons/{person_id}", **allowed)
    async def get_file(
        hub: HubDep, user: CurrentUser, person_id: RowId, reason: Reason
    ) -> FileView:
        """A person's file (recorded with ``reason`` first); 404 for an unknown person."""
        return file_view(await hub.vendor_file.file(user, person_id, reason))

    @router.post("/persons", status_code=status.HTTP_201_CREATED, **allowed)
    async def create_person(hub: HubDep, user: CurrentUser, body: PersonIn) -> CreatedRef:
        """Create a person, linking ``case_id`` (a 0501 case) in the same step. 409 for an
        identity number in the file already, a case of another code or linked to someone
        else, or a hub without the vendor file's key; 422 for a bad identity number."""
        new_id = await hub.vendor_file.create_person(
            user, name=body.name, phone=body.phone, id_number=body.id_number, link_case=body.case_id
        )
        return CreatedRef(id=new_id)

    @router.post("/persons/{person_id}/cases", **allowed)
    async def link_case(hub: HubDep, user: CurrentUser, person_id: RowId, body: LinkIn) -> LinkView:
        """Link a 0501 case to the person (again: nothing changes). 404 for an unknown
        person or case; 409 for another code or a case linked to someone else."""
        link = await hub.vendor_file.link_case(user, person_id, body.case_id)
        return LinkView(
            case_id=link.case_id,
            person_id=link.person_id,
            linked_by=link.linked_by,
            linked_at=link.linked_at,
            created=link.created,
        )

    @router.post(
        "/persons/{person_id}/counsellings", status_code=status.HTTP_201_CREATED, **allowed
    )
    async def add_counselling(
        hub: HubDep, user: CurrentUser, person_id: RowId, body: CounsellingIn
    ) -> CreatedRef:
        """Record a counselling. 404 for an unknown person; 409 when ``case_id`` is not one
        of theirs; 422 for a time in the future."""
        new_id = await hub.vendor_file.add_counselling(
            user,
            person_id,
            outcome=body.outcome,
            at=body.at,
            officer=body.officer,
            case_id=body.case_id,
            note=body.note,
        )
        return CreatedRef(id=new_id)

    @router.put("/persons/{person_id}/photo", **allowed)
    async def put_photo(
        hub: HubDep, user: CurrentUser, person_id: RowId, file: UploadFile
    ) -> CreatedRef:
        """Give a person a (new) photo: JPEG, PNG or WebP, re-encoded as a JPEG without
        metadata (EXIF) as the console does. 404 for an unknown person, 413 over 5 MB."""
        vf = hub.vendor_file
        vf.require(user)  # before reading a byte of the upload
        data = await file.read(MAX_UPLOAD_BYTES + 1)
        try:
            photo = await asyncio.to_thread(normalise_photo, data, limit=MAX_UPLOAD_BYTES)
        except UploadRefused as exc:
            if exc.status == 413:
                raise TooLargeError(f"a photo is limited to {MAX_UPLOAD_BYTES} bytes") from exc
            raise InvalidInputError(f"file: a JPEG, PNG or WebP photo, please: {exc}") from exc
        await vf.set_photo(user, person_id, await vf.photos.put(photo))
        return CreatedRef(id=person_id)

    @router.get(
        "/persons/{person_id}/photo",
        response_class=Response,
        **guard(*roles, responses={200: {"content": {"image/jpeg": {}}}}),
    )
    async def get_photo(
        hub: HubDep, user: CurrentUser, person_id: RowId, reason: Reason
    ) -> Response:
        """A person's photo, the read recorded with ``reason`` first. 404 when they have
        none."""
        data = await hub.vendor_file.photo(user, person_id, reason)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @router.get("/lookups", **allowed)
    async def lookups(
        hub: HubDep,
        user: CurrentUser,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        offset: Offset = 0,
    ) -> list[LookupView]:
        """Who looked into the file, newest first."""
        return [
            LookupView(
                id=r.id,
                user_name=r.user_name,
                role=r.role,
                at=r.at,
                reason=r.reason,
                kind=r.kind,
                query=r.query,
                shown=list(r.shown),
            )
            for r in await hub.vendor_file.lookups(user, limit=limit, offset=offset)
        ]

    return router
