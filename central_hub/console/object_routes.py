"""The service-object registry in the console: search with a map of the results, an
object's page with its contacts, photos, audit trail and edit form, and the objects a
case concerns on the case page (linked, unlinked by hand).

Every role reads; operators and admins (:data:`EDITORS`) edit, add photos and link
objects to cases, each change audited (the object's trail, or the case's). Contacts are
masked for roles outside :data:`central_hub.domain.service_objects.CONTACT_READERS`, as
the API masks them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Request, status
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile

from central_hub.adapters.spreadsheet import MAX_IMPORT_BYTES
from central_hub.console.errors import UploadRefused
from central_hub.console.present import FormFields
from central_hub.console.render import page
from central_hub.console.security import Viewer, ViewerDep, require
from central_hub.console.state import ConsoleState, console_state
from central_hub.console.uploads import check_size, normalise_photo
from central_hub.domain.open311 import mask_email, mask_name, mask_phone
from central_hub.domain.service_objects import (
    CONTACT_READERS,
    OBJECT_COLUMNS,
    ObjectKind,
)
from central_hub.errors import ConflictError, InvalidInputError, NotFoundError
from central_hub.services.cases import CaseView
from central_hub.services.service_objects import (
    InvalidObject,
    ObjectDetail,
    ObjectQuery,
    ServiceObjects,
)
from edge_agent.protocol import MAX_WIRE_INT

log = logging.getLogger(__name__)

__all__ = ["EDITORS", "ObjectSearch", "object_case_context", "parse_search", "router"]

router = APIRouter()
#: Who edits objects, adds photos and links objects to cases.
EDITORS = tuple(sorted(CONTACT_READERS))
EditorDep = Annotated[Viewer, require(*EDITORS)]
#: Results drawn on the search page's map at most.
MAP_LIMIT = 1000


@dataclass(frozen=True)
class ObjectSearch(FormFields):
    """The search form's fields as sent (already checked)."""

    q: str = ""
    kind: str = ""
    industry: str = ""
    subcategory: str = ""
    cell: str = ""
    page: int = 0


def parse_search(raw: dict[str, str], state: ConsoleState) -> tuple[ObjectSearch, list[str]]:
    """The search from query parameters, and a message for each value that is not valid
    (dropped, so the page shows the search without it)."""
    taxonomy = state.hub.industries
    checks: dict[str, Callable[[str], bool]] = {
        "kind": lambda v: v in {k.value for k in ObjectKind},
        "industry": lambda v: taxonomy.industry(v) is not None,
        "subcategory": lambda v: taxonomy.subcategory(v) is not None,
        "cell": lambda v: v in state.hub.grid,
    }
    fields: dict[str, Any] = {"q": raw.get("q", "").strip()[:100]}
    errors: list[str] = []
    for name, valid in checks.items():
        value = raw.get(name, "").strip()[:64]
        if not value:
            continue
        if valid(value):
            fields[name] = value
        else:
            errors.append(f"{name}: {value!r} is not valid")
    text = raw.get("page") or "0"
    if text.isdigit() and int(text) <= 10_000:
        fields["page"] = int(text)
    else:
        errors.append(f"page: {text[:20]!r} is not a page number")
    return ObjectSearch(**fields), errors


def _query(s: ObjectSearch, state: ConsoleState, limit: int, offset: int = 0) -> ObjectQuery:
    return ObjectQuery(
        text=s.q,
        kind=ObjectKind(s.kind) if s.kind else None,
        industry=s.industry or None,
        subcategory=s.subcategory or None,
        cells=frozenset(state.hub.grid.subtree(s.cell)) if s.cell else None,
        limit=limit,
        offset=offset,
    )


@router.get("/objects", response_model=None)
async def search_page(request: Request, who: ViewerDep) -> Response:
    """Search objects by name or address, filtered; the results on a map of the grid."""
    state = console_state(request)
    s, errors = parse_search(dict(request.query_params), state)
    registry = ServiceObjects.of_hub(state.hub)
    size = state.settings.page_size
    found = await registry.search(_query(s, state, size + 1, s.page * size))
    total = await registry.count(_query(s, state, 1))
    located = [o for o in await registry.search(_query(s, state, MAP_LIMIT)) if o.lat is not None]
    proj = state.projection
    markers = [
        {"id": o.id, "name": o.name, "xy": proj.to_xy(o.lat, o.lon), "kind": o.kind.value}
        for o in located
        if o.lon is not None and o.lat is not None
    ]
    return page(
        request,
        who,
        "objects.html",
        status.HTTP_422_UNPROCESSABLE_CONTENT if errors else 200,
        errors=errors,
        s=s,
        items=found[:size],
        more=len(found) > size,
        total=total,
        markers=markers,
        shapes=state.shapes,
        width=proj.width,
        height=round(proj.height, 1),
        kinds=[k.value for k in ObjectKind],
        industries=state.hub.industries.industries(),
        cells=[c for c in state.hub.grid.cells() if c.level != "area"],
        may_edit=who.role in EDITORS,
    )


@router.post("/objects/import", response_model=None)
async def import_objects(request: Request, who: EditorDep) -> Response:
    """Import a CSV or XLSX of objects (operators and admins): the page lists what was
    created, updated and left alone, and every bad row with its row, column and reason."""
    state = console_state(request)
    # The registry's files run to megabytes: the form's own cap, not the photo cap.
    form = await request.form(max_part_size=MAX_IMPORT_BYTES + 1)
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return page(request, who, "error.html", 422, message="file: choose a CSV or XLSX file")
    data = await upload.read(MAX_IMPORT_BYTES + 1)
    try:
        if len(data) > MAX_IMPORT_BYTES:
            raise InvalidInputError(f"{upload.filename}: over {MAX_IMPORT_BYTES} bytes")
        report = await ServiceObjects.of_hub(state.hub).import_file(
            data, upload.filename[:200], who.user.name
        )
    except InvalidInputError as exc:
        return page(request, who, "error.html", 422, message=str(exc))
    return page(
        request,
        who,
        "objects_import.html",
        422 if report.problems else 200,
        report=report,
    )


def _masked(detail: ObjectDetail, who: Viewer) -> list[dict[str, Any]]:
    full = who.role in CONTACT_READERS
    return [
        {
            "id": c.id,
            "name": c.name if full else mask_name(c.name),
            "role": c.role,
            "phone": c.phone if full else mask_phone(c.phone),
            "email": c.email if full else mask_email(c.email),
        }
        for c in detail.contacts
    ]


def _form_of(detail: ObjectDetail) -> dict[str, str]:
    o = detail.object
    return {
        "kind": o.kind.value,
        "name": o.name,
        "address": o.address,
        "industry": o.industry or "",
        "subcategory": o.subcategory or "",
        "legal_representative": o.legal_representative or "",
        "lat": "" if o.lat is None else f"{o.lat:.7f}",
        "lon": "" if o.lon is None else f"{o.lon:.7f}",
        "notes": o.notes,
    }


async def _render_object(
    request: Request,
    who: Viewer,
    object_id: int,
    *,
    code: int = 200,
    errors: list[str] | None = None,
    form: dict[str, str] | None = None,
    done: bool = False,
) -> Response:
    state = console_state(request)
    try:
        detail = await ServiceObjects.of_hub(state.hub).get(object_id)
    except NotFoundError:
        return page(request, who, "error.html", 404, message=who.t("err.not_found"))
    cell = detail.object.grid_cell_id
    return page(
        request,
        who,
        "object.html",
        code,
        d=detail,
        o=detail.object,
        contacts=_masked(detail, who),
        masked=who.role not in CONTACT_READERS,
        may_edit=who.role in EDITORS,
        form=form or _form_of(detail),
        errors=errors or [],
        done=done,
        kinds=[k.value for k in ObjectKind],
        cell=state.hub.grid.get(cell) if cell and cell in state.hub.grid else None,
        max_upload=state.settings.upload_max_bytes,
    )


@router.get("/objects/{object_id}", response_model=None)
async def object_page(request: Request, who: ViewerDep, object_id: int, done: str = "") -> Response:
    """One object: facts, contacts (masked by role), photos, linked cases, audit trail and,
    for editors, the edit form."""
    if not 1 <= object_id <= MAX_WIRE_INT:
        return page(request, who, "error.html", 404, message=who.t("err.not_found"))
    return await _render_object(request, who, object_id, done=bool(done))


@router.post("/objects/{object_id}", response_model=None)
async def edit_object(request: Request, who: EditorDep, object_id: int) -> Response:
    """Save the edit form (audited); each problem re-renders the page naming its field."""
    state = console_state(request)
    form = await request.form(max_part_size=64 * 1024)
    fields: dict[str, str] = {}
    for key in OBJECT_COLUMNS:
        value = form.get(key)
        fields[key] = value.strip() if isinstance(value, str) else ""
    try:
        await ServiceObjects.of_hub(state.hub).update(object_id, fields, who.user)
    except InvalidObject as exc:
        problems = [f"{p.column}: {p.reason}" for p in exc.problems]
        return await _render_object(request, who, object_id, code=422, errors=problems, form=fields)
    except ConflictError as exc:
        return await _render_object(
            request, who, object_id, code=409, errors=[str(exc)], form=fields
        )
    except NotFoundError:
        return page(request, who, "error.html", 404, message=who.t("err.not_found"))
    return RedirectResponse(state.url(f"/objects/{object_id}?done=1"), status.HTTP_303_SEE_OTHER)


@router.post("/objects/{object_id}/photos", response_model=None)
async def add_photo(request: Request, who: EditorDep, object_id: int) -> Response:
    """Add a photo of the object: re-encoded as a JPEG without EXIF (a phone's position
    never reaches the store), as handling photos are."""
    state = console_state(request)
    form = await request.form(max_part_size=64 * 1024)
    photo = form.get("photo")
    if not isinstance(photo, UploadFile):
        return await _render_object(request, who, object_id, code=422, errors=["photo: missing"])
    limit = state.settings.upload_max_bytes
    try:
        if photo.size is not None:
            check_size(photo.size, limit)
        data = await photo.read(limit + 1)
        jpeg = await asyncio.to_thread(
            normalise_photo, data, limit=limit, max_side=state.settings.upload_max_side_px
        )
    except UploadRefused as exc:
        return await _render_object(
            request, who, object_id, code=exc.status, errors=[who.t(exc.key, **exc.values)]
        )
    sha = await state.hub.evidence.put(jpeg)
    try:
        await ServiceObjects.of_hub(state.hub).add_photo(object_id, sha, who.user)
    except NotFoundError:
        return page(request, who, "error.html", 404, message=who.t("err.not_found"))
    return RedirectResponse(state.url(f"/objects/{object_id}?done=1"), status.HTTP_303_SEE_OTHER)


@router.post("/objects/{object_id}/contacts/{contact_id}/remove", response_model=None)
async def remove_contact(
    request: Request, who: EditorDep, object_id: int, contact_id: int
) -> Response:
    """Remove one of the object's contacts (audited: who, when, what it held)."""
    state = console_state(request)
    if not (1 <= object_id <= MAX_WIRE_INT and 1 <= contact_id <= MAX_WIRE_INT):
        return page(request, who, "error.html", 404, message=who.t("err.not_found"))
    try:
        await ServiceObjects.of_hub(state.hub).remove_contact(object_id, contact_id, who.user)
    except NotFoundError:
        return page(request, who, "error.html", 404, message=who.t("err.not_found"))
    return RedirectResponse(state.url(f"/objects/{object_id}?done=1"), status.HTTP_303_SEE_OTHER)


async def object_case_context(state: ConsoleState, who: Viewer, case: CaseView) -> dict[str, Any]:
    """The case page's objects section: the case's links (a 0504 linked to its nearest
    street shop the first time the page is shown) and whether the viewer may change them."""
    registry = ServiceObjects.of_hub(state.hub)
    await registry.auto_link(case.id)
    return {"links": await registry.links_of_case(case.id), "may_link": who.role in EDITORS}


@router.post("/cases/{case_id}/objects", response_model=None)
async def link_object(request: Request, who: EditorDep, case_id: int) -> Response:
    """Link an object to the case or unlink one, with a reason; audited in the case."""
    state = console_state(request)
    form = await request.form(max_part_size=64 * 1024)
    action = form.get("action")
    raw_id = form.get("object_id")
    raw_reason = form.get("reason")
    reason = raw_reason.strip()[:200] if isinstance(raw_reason, str) else ""
    registry = ServiceObjects.of_hub(state.hub)
    try:
        text = raw_id.strip() if isinstance(raw_id, str) else ""
        if not text.isdigit() or not 1 <= int(text) <= MAX_WIRE_INT:
            raise InvalidInputError(f"object_id: {text[:20]!r} is not an object number")
        if action == "link":
            await registry.link(case_id, int(text), who.user, reason)
        elif action == "unlink":
            await registry.unlink(case_id, int(text), who.user, reason)
        else:
            raise InvalidInputError(f"action: {str(action)[:20]!r} is not link or unlink")
    except InvalidInputError as exc:
        return page(request, who, "error.html", 422, message=str(exc))
    except NotFoundError as exc:
        return page(request, who, "error.html", 404, message=str(exc))
    except ConflictError as exc:
        return page(request, who, "error.html", 409, message=str(exc))
    return RedirectResponse(
        state.url(f"/cases/{case_id}?done=object_{action}"), status.HTTP_303_SEE_OTHER
    )
