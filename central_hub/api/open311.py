"""Open311 GeoReport v2 under ``/open311/v2``: citizens' reports from the city's app.

Routes, each in XML or JSON by the suffix (``services.xml``, ``services.json``)::

    GET  /open311/discovery.{fmt}          the Service Discovery document (also under v2/)
    GET  /open311/v2/services.{fmt}        the citizen-facing catalogue codes
    GET  /open311/v2/services/{code}.{fmt} a code's attributes (service definition)
    POST /open311/v2/requests.{fmt}        file a report (api_key; form or multipart)
    GET  /open311/v2/requests.{fmt}        reports by id, code, status, 90-day range
    GET  /open311/v2/requests/{id}.{fmt}   one report
    GET  /open311/v2/tokens/{token}.{fmt}  a report's id from its token

GET routes are public; POST needs a trusted client's ``api_key``
(``central-hub open311 key add``) and is throttled per api_key and per client address
(429 with Retry-After). Everything that goes wrong is answered in the spec's error list
(``<errors><error><code/><description/></error></errors>`` or its JSON array), never
FastAPI's JSON, so parameters are read here by hand and the routes stay out of the
``/api/v1`` OpenAPI document (Open311 has its own auth and its own spec).

An uploaded ``media`` photo is re-encoded without metadata
(:func:`central_hub.console.uploads.normalise_photo`) into the evidence store, for
operators; it is never published as ``media_url``: faces and plates in citizens' photos
are not blurred hub-side yet.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from central_hub.console.errors import UploadRefused
from central_hub.console.uploads import normalise_photo
from central_hub.domain.open311 import (
    CONTENT_TYPES,
    Format,
    Open311Error,
    Problem,
    citizen_service,
    discovery_document,
    error_document,
    parse_query,
    parse_report,
    render,
    request_document,
    service_definition_document,
    services_document,
    submitted_document,
    token_document,
)
from central_hub.hub import Hub
from central_hub.services.citizen_reports import CitizenReports, Open311Keys
from central_hub.services.throttle import RateBudget

log = logging.getLogger(__name__)

__all__ = ["PREFIX", "Open311Limits", "Open311State", "install", "router"]

PREFIX = "/open311"
#: Largest photo taken (before re-encoding) and largest request body.
MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_BODY_BYTES = MAX_PHOTO_BYTES + 256 * 1024
#: The discovery document's changeset: when this endpoint last changed.
CHANGESET = datetime.fromisoformat("2026-12-06T00:00:00+08:00")
CONTACT = "城市管理局指挥中心 / the city-management bureau's command centre"
KEY_SERVICE = (
    "api_keys are for trusted clients (the city's app): ask the bureau, whose admin "
    "issues one with `central-hub open311 key add NAME`"
)

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@dataclass(frozen=True)
class Open311Limits:
    """Reports posted a minute and at once, per client address and per api_key (the
    city's app: many citizens behind one key). Settings ``XH_HUB_OPEN311_*``."""

    per_address_per_min: float = 10.0
    per_address_burst: int = 20
    per_key_per_min: float = 120.0
    per_key_burst: int = 240


class Open311State:
    """What the routes share: the services and the POST budgets (this process's)."""

    def __init__(self, hub: Hub, limits: Open311Limits) -> None:
        self.hub = hub
        self.limits = limits
        self.reports = CitizenReports(hub.engine, hub.filer, hub.clock)
        self.keys = Open311Keys(hub.engine, hub.clock)
        self.per_address = RateBudget(
            per_minute=limits.per_address_per_min, burst=limits.per_address_burst
        )
        self.per_key = RateBudget(per_minute=limits.per_key_per_min, burst=limits.per_key_burst)


def install(app: Any, hub: Hub, limits: Open311Limits | None = None) -> None:
    """Mount the routes on ``app`` with their state."""
    app.state.open311 = Open311State(hub, limits or Open311Limits())
    app.include_router(router)


def _state(request: Request) -> Open311State:
    state: Open311State = request.app.state.open311
    return state


def _answer(body: bytes, fmt: Format, status: int = 200, **headers: str) -> Response:
    return Response(body, status_code=status, media_type=CONTENT_TYPES[fmt], headers=headers)


def _error(exc: Open311Error, fmt: Format, request: Request) -> Response:
    zone = _state(request).hub.calendar.zone
    body = render("errors", error_document(exc.problems), fmt, zone)
    headers = {}
    if exc.retry_after_s is not None:
        headers["Retry-After"] = str(exc.retry_after_s)
    return _answer(body, fmt, exc.status, **headers)


def _format(fmt: str) -> Format:
    if fmt == "xml":
        return "xml"
    if fmt == "json":
        return "json"
    raise Open311Error(404, f"format {fmt[:20]!r} is not served: use .xml or .json")


async def _run(
    request: Request, fmt_text: str, make: Callable[[Format], Awaitable[Response]]
) -> Response:
    """Answer with ``make``'s response, or any Open311Error in the spec's error format."""
    fmt: Format = "json" if fmt_text == "json" else "xml"
    try:
        fmt = _format(fmt_text)
        return await make(fmt)
    except Open311Error as exc:
        return _error(exc, fmt, request)


def _locale(request: Request) -> str | None:
    return request.query_params.get("locale")


def _doc(request: Request, root: str, document: Any, fmt: Format) -> Response:
    return _answer(render(root, document, fmt, _state(request).hub.calendar.zone), fmt)


@router.get("/discovery.{fmt}")
@router.get("/v2/discovery.{fmt}")
async def discovery(request: Request, fmt: str) -> Response:
    """The Service Discovery document of this endpoint."""

    async def make(f: Format) -> Response:
        url = str(request.base_url).rstrip("/") + PREFIX + "/v2"
        return _doc(
            request, "discovery", discovery_document(url, CHANGESET, CONTACT, KEY_SERVICE), f
        )

    return await _run(request, fmt, make)


@router.get("/v2/services.{fmt}")
async def services(request: Request, fmt: str) -> Response:
    """GET Service List: the catalogue's citizen-facing codes."""

    async def make(f: Format) -> Response:
        doc = services_document(_state(request).hub.catalogue, _locale(request))
        return _doc(request, "services", doc, f)

    return await _run(request, fmt, make)


@router.get("/v2/services/{code}.{fmt}")
async def service_definition(request: Request, code: str, fmt: str) -> Response:
    """GET Service Definition: a code's attributes."""

    async def make(f: Format) -> Response:
        entry = citizen_service(_state(request).hub.catalogue, code)
        doc = service_definition_document(entry, _locale(request))
        return _doc(request, "service_definition", doc, f)

    return await _run(request, fmt, make)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _throttled(budget: RateBudget, key: str, what: str) -> None:
    allowed, _refused = budget.take(key)
    if not allowed:
        wait = max(1, math.ceil(60.0 / max(budget.rate_s * 60.0, 1e-9)))
        raise Open311Error(
            429, f"too many reports from this {what}; try again in {wait} s", retry_after_s=wait
        )


async def _photo(request: Request, upload: UploadFile) -> str:
    """Store an uploaded photo re-encoded without metadata; its SHA-256."""
    data = await upload.read(MAX_PHOTO_BYTES + 1)
    try:
        jpeg = await asyncio.to_thread(normalise_photo, data, limit=MAX_PHOTO_BYTES)
    except UploadRefused as exc:
        raise Open311Error(400, Problem(exc.status, f"media: {exc}")) from exc
    return await _state(request).hub.evidence.put(jpeg)


@router.post("/v2/requests.{fmt}")
async def post_request(request: Request, fmt: str) -> Response:
    """POST Service Request: file a citizen's report."""

    async def make(f: Format) -> Response:
        state = _state(request)
        _throttled(state.per_address, _client(request), "address")
        size = request.headers.get("content-length", "")
        if size.isdigit() and int(size) > MAX_BODY_BYTES:
            raise Open311Error(400, Problem(413, f"request larger than {MAX_BODY_BYTES} bytes"))
        try:
            form = await request.form(max_files=1, max_fields=200, max_part_size=64 * 1024)
        except MultiPartException as exc:
            raise Open311Error(400, f"the form cannot be read: {exc}") from exc
        try:
            fields = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
            given = next((v for k, v in fields if k == "api_key"), None)
            key = await state.keys.authenticate(given or request.query_params.get("api_key"))
            if key is None:
                what = "Invalid" if given or request.query_params.get("api_key") else "Missing"
                raise Open311Error(
                    403, f"{what} api_key received -- can't proceed with create_request."
                )
            _throttled(state.per_key, f"key:{key.id}", "api_key")
            report = parse_report(fields, state.hub.catalogue, state.hub.grid)
            media = form.get("media")
            photo = await _photo(request, media) if isinstance(media, UploadFile) else None
        finally:
            await form.close()
        idem = request.headers.get("idempotency-key")
        if idem is not None and not 1 <= len(idem) <= 64:
            raise Open311Error(400, "Idempotency-Key: 1-64 characters")
        done = await state.reports.submit(report, key=key, idempotency_key=idem, photo_sha256=photo)
        entry = state.hub.catalogue.get(report.service_code)
        doc = submitted_document(done.id, entry, done.account_id, _locale(request))
        return _doc(request, "service_requests", doc, f)

    return await _run(request, fmt, make)


@router.get("/v2/requests.{fmt}")
async def get_requests(request: Request, fmt: str) -> Response:
    """GET Service Requests: by ids, or by code, status and a range of at most 90 days."""

    async def make(f: Format) -> Response:
        state = _state(request)
        query = parse_query(request.query_params, state.hub.clock())
        views = await state.reports.find(query)
        doc = request_document(views, state.hub.catalogue, _locale(request))
        return _doc(request, "service_requests", doc, f)

    return await _run(request, fmt, make)


@router.get("/v2/requests/{request_id}.{fmt}")
async def get_request(request: Request, request_id: str, fmt: str) -> Response:
    """GET Service Request: one report."""

    async def make(f: Format) -> Response:
        state = _state(request)
        view = None
        if request_id.isdigit() and 1 <= int(request_id) < 2**63:
            view = await state.reports.get(int(request_id))
        if view is None:
            raise Open311Error(404, f"service_request_id {request_id[:40]!r} was not found")
        doc = request_document([view], state.hub.catalogue, _locale(request))
        return _doc(request, "service_requests", doc, f)

    return await _run(request, fmt, make)


@router.get("/v2/tokens/{token}.{fmt}")
async def get_token(request: Request, token: str, fmt: str) -> Response:
    """GET service_request_id from a token."""

    async def make(f: Format) -> Response:
        found = await _state(request).reports.by_token(token[:64])
        if found is None:
            raise Open311Error(404, f"token {token[:64]!r} was not found")
        return _doc(request, "service_requests", token_document(*found), f)

    return await _run(request, fmt, make)


@router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
async def unknown(request: Request, rest: str) -> Response:
    """Anything else under /open311: the spec's 404, in the suffix's format."""
    fmt: Format = "json" if rest.endswith(".json") else "xml"
    return _error(Open311Error(404, f"no such resource: /open311/{rest[:100]}"), fmt, request)
