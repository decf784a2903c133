"""The vendor file in the console: a phone-sized lookup by name with a required reason,
a person's page (photo, colour badge, violations with their cases and evidence,
counsellings), forms to create a person and record a counselling, and on a 0501 case's
page the person it is linked to or the ways to link one.

Only the roles the city allows (``XH_HUB_VENDOR_FILE_ROLES``) get any of it: every
route here answers 403 to the others, the nav link and the case page's section are left
out for them, and every look is recorded by :mod:`central_hub.services.vendor_file`.
Names and numbers travel in POST bodies, never in URLs. Photos are re-encoded without
EXIF like every console upload and kept in the file's own store.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile

from central_hub.console.errors import UploadRefused
from central_hub.console.render import page
from central_hub.console.security import Forbidden, Viewer, ViewerDep
from central_hub.console.state import ConsoleState, console_state
from central_hub.console.uploads import check_size, normalise_photo
from central_hub.domain.vendor_file import NAME_MAX, NOTE_MAX, REASON_MAX, VENDOR_CODE, Outcome
from central_hub.errors import ConflictError, InvalidInputError, NotFoundError
from central_hub.services.cases import CaseView
from central_hub.services.vendor_file import PHONE_MAX, PersonSummary
from edge_agent.protocol import MAX_WIRE_INT

log = logging.getLogger(__name__)

__all__ = ["COLOURS", "may_see_vendor_file", "router", "vendor_case_context"]

router = APIRouter()

#: The badge colours (background, text) of the file's colours.
COLOURS = {
    "none": ("#9e9e9e", "#fff"),
    "yellow": ("#f2c200", "#222"),
    "green": ("#2e7d32", "#fff"),
    "red": ("#c62828", "#fff"),
}


def may_see_vendor_file(request: Request, who: Viewer | None) -> bool:
    """Whether ``who`` may see the vendor file (nav link, case section, pages)."""
    return who is not None and console_state(request).hub.vendor_file.may(who.user)


async def _vendor_viewer(request: Request, who: ViewerDep) -> Viewer:
    if not may_see_vendor_file(request, who):
        raise Forbidden(f"role {who.role.value} may not do this")
    return who


VendorViewer = Annotated[Viewer, Depends(_vendor_viewer)]


def _field(form: FormData, name: str, limit: int = 400) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _row_id(text: str, field: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_WIRE_INT:
        raise InvalidInputError(f"{field}: {text[:20]!r} is not a number from 1 to {MAX_WIRE_INT}")
    return int(text)


def _vendor_page(
    request: Request, who: Viewer, template: str, code: int = 200, **extra: Any
) -> Response:
    return page(
        request,
        who,
        template,
        code,
        colours=COLOURS,
        name_max=NAME_MAX,
        reason_max=REASON_MAX,
        note_max=NOTE_MAX,
        phone_max=PHONE_MAX,
        outcomes=[o.value for o in Outcome],
        **extra,
    )


@router.get("/vendor-file", response_model=None)
async def lookup_page(request: Request, who: VendorViewer, for_case: int = 0) -> Response:
    """The phone-sized lookup form (``for_case``: offer to link the results to a case)."""
    return _vendor_page(
        request, who, "vendor_lookup.html", results=None, q="", reason="", for_case=for_case
    )


@router.post("/vendor-file/search", response_model=None)
async def search(request: Request, who: VendorViewer) -> Response:
    """People by name (or identity number), with the required reason; recorded."""
    state = console_state(request)
    form = await request.form(max_part_size=64 * 1024)
    name, number = _field(form, "name"), _field(form, "id_number")
    reason = _field(form, "reason", 1000)
    for_case_text = _field(form, "for_case", 20)
    for_case = int(for_case_text) if for_case_text.isdigit() and len(for_case_text) < 19 else 0
    ctx: dict[str, Any] = {"q": name, "reason": reason, "for_case": for_case}
    try:
        if number:
            found = await state.hub.vendor_file.find_by_id_number(who.user, number, reason)
        else:
            found = await state.hub.vendor_file.search(who.user, name, reason)
    except InvalidInputError as exc:
        return _vendor_page(
            request, who, "vendor_lookup.html", 422, results=None, error=str(exc), **ctx
        )
    return _vendor_page(request, who, "vendor_lookup.html", results=found, **ctx)


def _file_url(state: ConsoleState, person_id: int, reason: str, **extra: str) -> str:
    return state.url(f"/vendor-file/persons/{person_id}?" + urlencode({"reason": reason, **extra}))


@router.get("/vendor-file/persons/{person_id}", response_model=None)
async def person_page(
    request: Request, who: VendorViewer, person_id: int, reason: str = "", done: str = ""
) -> Response:
    """A person's file; without a reason, the form that asks for one (nothing shown)."""
    state = console_state(request)
    if not reason.strip():
        return _vendor_page(request, who, "vendor_reason.html", person_id=person_id)
    try:
        got = await state.hub.vendor_file.file(who.user, person_id, reason[:1000])
    except NotFoundError:
        return page(request, who, "error.html", 404, message=who.t("err.not_found"))
    except InvalidInputError as exc:
        return _vendor_page(
            request, who, "vendor_reason.html", 422, person_id=person_id, error=str(exc)
        )
    return _vendor_page(
        request,
        who,
        "vendor_person.html",
        file=got,
        p=got.person,
        reason=reason.strip(),
        done=done if done in ("created", "counselled", "photo_set") else "",
        max_upload=state.settings.upload_max_bytes,
    )


@router.get("/vendor-file/persons/{person_id}/photo", response_model=None)
async def person_photo(
    request: Request, who: VendorViewer, person_id: int, reason: str = ""
) -> Response:
    """A person's photo (only the roles that may see the file), recorded with the
    ``reason`` of the page that shows it."""
    try:
        data = await console_state(request).hub.vendor_file.photo(
            who.user, person_id, reason[:1000]
        )
    except NotFoundError:
        return Response("no photo", status_code=404, media_type="text/plain")
    except InvalidInputError as exc:
        return Response(str(exc), status_code=422, media_type="text/plain")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"})


async def _photo(state: ConsoleState, upload: UploadFile) -> str:
    limit = state.settings.upload_max_bytes
    if upload.size is not None:
        check_size(upload.size, limit)
    data = await upload.read(limit + 1)
    data = await asyncio.to_thread(
        normalise_photo, data, limit=limit, max_side=state.settings.upload_max_side_px
    )
    return await state.hub.vendor_file.photos.put(data)


def _upload(form: FormData) -> UploadFile | None:
    photo = form.get("photo")
    if isinstance(photo, UploadFile) and (photo.filename or photo.size):
        return photo
    return None


@router.get("/vendor-file/new", response_model=None)
async def new_person_page(request: Request, who: VendorViewer, case_id: int = 0) -> Response:
    """The form that creates a person (``case_id``: the 0501 case to link them to)."""
    state = console_state(request)
    return _vendor_page(
        request,
        who,
        "vendor_new.html",
        case_id=case_id or "",
        values={},
        max_upload=state.settings.upload_max_bytes,
    )


@router.post("/vendor-file/persons", response_model=None)
async def create_person(request: Request, who: VendorViewer) -> Response:
    """Create a person (photo, identity number, the case to link); errors re-render the
    form with what was typed and why."""
    state = console_state(request)
    form = await request.form(max_part_size=64 * 1024)
    values = {k: _field(form, k) for k in ("name", "phone", "id_number", "case_id")}
    try:
        case_id = _row_id(values["case_id"], "case_id") if values["case_id"] else None
        upload = _upload(form)
        sha = await _photo(state, upload) if upload is not None else None
        person_id = await state.hub.vendor_file.create_person(
            who.user,
            name=values["name"],
            phone=values["phone"] or None,
            id_number=values["id_number"] or None,
            photo_sha256=sha,
            link_case=case_id,
        )
    except (InvalidInputError, ConflictError, NotFoundError, UploadRefused) as exc:
        code = {InvalidInputError: 422, ConflictError: 409, NotFoundError: 404}.get(type(exc), 422)
        message = str(exc)
        if isinstance(exc, UploadRefused):
            code, message = exc.status, who.t(exc.key, **exc.values)
        values["id_number"] = ""  # never echoed back
        return _vendor_page(
            request,
            who,
            "vendor_new.html",
            code,
            error=message,
            values=values,
            case_id=values["case_id"],
            max_upload=state.settings.upload_max_bytes,
        )
    if case_id is not None:
        return RedirectResponse(
            state.url(f"/cases/{case_id}?done=vendor_linked"), status.HTTP_303_SEE_OTHER
        )
    return RedirectResponse(
        _file_url(state, person_id, who.t("vendor.created"), done="created"),
        status.HTTP_303_SEE_OTHER,
    )


def _local_time(state: ConsoleState, text: str) -> datetime | None:
    """A ``datetime-local`` value in the console's zone (None when empty)."""
    if not text:
        return None
    try:
        naive = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(f"at: {text[:30]!r} is not a date and time") from None
    return naive.replace(tzinfo=state.zone) if naive.tzinfo is None else naive


@router.post("/vendor-file/persons/{person_id}/counsellings", response_model=None)
async def add_counselling(request: Request, who: VendorViewer, person_id: int) -> Response:
    """Record a counselling from the person's page, then show the page again."""
    state = console_state(request)
    form = await request.form(max_part_size=64 * 1024)
    reason = _field(form, "reason", REASON_MAX) or who.t("vendor.counselled")
    try:
        case_text = _field(form, "case_id")
        await state.hub.vendor_file.add_counselling(
            who.user,
            person_id,
            outcome=_field(form, "outcome", 20),
            at=_local_time(state, _field(form, "at", 40)),
            officer=_field(form, "officer", 100) or None,
            case_id=_row_id(case_text, "case_id") if case_text else None,
            note=_field(form, "note", NOTE_MAX + 100),
        )
    except (InvalidInputError, ConflictError) as exc:
        code = 409 if isinstance(exc, ConflictError) else 422
        return page(request, who, "error.html", code, message=str(exc))
    except NotFoundError:
        return page(request, who, "error.html", 404, message=who.t("err.not_found"))
    return RedirectResponse(
        _file_url(state, person_id, reason, done="counselled"), status.HTTP_303_SEE_OTHER
    )


@router.post("/vendor-file/persons/{person_id}/photo", response_model=None)
async def set_photo(request: Request, who: VendorViewer, person_id: int) -> Response:
    """Replace a person's photo."""
    state = console_state(request)
    form = await request.form(max_part_size=64 * 1024)
    reason = _field(form, "reason", REASON_MAX) or who.t("vendor.photo_set")
    upload = _upload(form)
    try:
        if upload is None:
            raise UploadRefused("no photo", key="upload.empty", status=422)
        await state.hub.vendor_file.set_photo(who.user, person_id, await _photo(state, upload))
    except UploadRefused as exc:
        return page(request, who, "error.html", exc.status, message=who.t(exc.key, **exc.values))
    except NotFoundError:
        return page(request, who, "error.html", 404, message=who.t("err.not_found"))
    return RedirectResponse(
        _file_url(state, person_id, reason, done="photo_set"), status.HTTP_303_SEE_OTHER
    )


@router.post("/vendor-file/persons/{person_id}/cases", response_model=None)
async def link_case(request: Request, who: VendorViewer, person_id: int) -> Response:
    """Link a 0501 case to the person (from the lookup opened on a case page); back to
    the case."""
    state = console_state(request)
    form = await request.form(max_part_size=64 * 1024)
    try:
        case_id = _row_id(_field(form, "case_id"), "case_id")
        await state.hub.vendor_file.link_case(who.user, person_id, case_id)
    except InvalidInputError as exc:
        return page(request, who, "error.html", 422, message=str(exc))
    except ConflictError as exc:
        return page(request, who, "error.html", 409, message=str(exc))
    except NotFoundError as exc:
        return page(request, who, "error.html", 404, message=str(exc))
    return RedirectResponse(
        state.url(f"/cases/{case_id}?done=vendor_linked"), status.HTTP_303_SEE_OTHER
    )


async def vendor_case_context(state: ConsoleState, who: Viewer, case: CaseView) -> dict[str, Any]:
    """What a case page shows of the vendor file: nothing (``shown`` false) for a role
    that may not see it or a case of another code; else the linked person (the look
    recorded) or None."""
    vendor_file = state.hub.vendor_file
    if case.code != VENDOR_CODE or not vendor_file.may(who.user):
        return {"shown": False}
    person: PersonSummary | None = await vendor_file.person_of_case(who.user, case.id)
    return {"shown": True, "person": person, "colours": COLOURS}
