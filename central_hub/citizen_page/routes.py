"""The public report page's routes (no login; see the package doc)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from central_hub.citizen_page.words import Lang, Words, pick_lang
from central_hub.console.errors import UploadRefused
from central_hub.console.mapdraw import MapProjection, grid_shapes
from central_hub.console.present import format_bytes
from central_hub.console.sessions import same_secret
from central_hub.console.uploads import normalise_photo
from central_hub.domain.catalogue import CatalogueEntry
from central_hub.domain.citizen_page import NEARBY_RADIUS_M, Nearby, open311_fields
from central_hub.domain.errors import PlateRefused
from central_hub.domain.open311 import (
    Open311Error,
    agency,
    parse_report,
    stage_note,
    status_notes,
)
from central_hub.domain.qr_plates import PlatePoint
from central_hub.domain.workflow import FINAL_STAGES
from central_hub.hub import Hub
from central_hub.services.citizen_page import CitizenPageData, PlateBook
from central_hub.services.citizen_reports import CitizenReports
from central_hub.services.throttle import RateBudget

log = logging.getLogger(__name__)

__all__ = ["PageLimits", "PageState", "router"]

router = APIRouter(include_in_schema=False)

#: The pin map's width in SVG units.
MAP_WIDTH = 1000.0
#: The cookie holding the form's CSRF secret (double submit: no session here).
CSRF_COOKIE = "xh_report"
#: Headers on every page: no framing, no sniffing, scripts and forms only from here.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # "no-referrer" makes Chromium send Origin: null
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class PageLimits:
    """How much the page takes: the photo's size, and reports per client and per plate."""

    photo_bytes: int = 10 * 1024 * 1024
    per_client_per_min: float = 10.0
    per_client_burst: int = 20
    per_plate_per_min: float = 1.0
    per_plate_burst: int = 10


class PageState:
    """What the page's routes share (``app.state.citizen_page``)."""

    def __init__(
        self,
        hub: Hub,
        plates: PlateBook,
        templates: Jinja2Templates,
        limits: PageLimits,
        zone: tzinfo,
        contact_days: int,
    ) -> None:
        self.hub = hub
        self.plates = plates
        self.templates = templates
        self.limits = limits
        self.zone = zone
        self.contact_days = contact_days
        self.reports = CitizenReports(hub.engine, hub.filer, hub.clock)
        self.data = CitizenPageData(hub.engine, self.reports, hub.clock)
        self.per_client = RateBudget(
            per_minute=limits.per_client_per_min, burst=limits.per_client_burst
        )
        self.per_plate = RateBudget(
            per_minute=limits.per_plate_per_min, burst=limits.per_plate_burst
        )
        # The pin map: the district's streets and roads drawn once, as the console does.
        self.projection = MapProjection.for_bounds(hub.grid.bounds(), width=MAP_WIDTH)
        features = hub.grid.to_geojson()["features"]
        self.shapes = [
            s
            for s in grid_shapes(self.projection, features)
            if s.level in ("area", "zone", "street", "road")
        ]

    def services(self) -> list[CatalogueEntry]:
        """The codes a citizen may report, by code."""
        return sorted(
            (e for e in self.hub.catalogue.entries() if e.citizen_facing), key=lambda e: e.code
        )


def _state(request: Request) -> PageState:
    state: PageState = request.app.state.citizen_page
    return state


def _lang(request: Request) -> Lang:
    return pick_lang(request.query_params.get("lang"), request.headers.get("accept-language"))


def _render(
    request: Request, template: str, lang: Lang, status: int = 200, **extra: Any
) -> HTMLResponse:
    state = _state(request)
    t = Words(lang)
    context = {
        "t": t,
        "lang": lang,
        "other_lang": "en" if lang == "zh" else "zh",
        "name_of": lambda e: e.name_zh if lang == "zh" else e.name_en,
        "local": lambda at: at.astimezone(state.zone).strftime("%Y-%m-%d %H:%M"),
        **extra,
    }
    response = state.templates.TemplateResponse(request, template, context, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _wait_s(budget: RateBudget) -> int:
    return max(1, math.ceil(1.0 / max(budget.rate_s, 1e-9)))


def _ago(at: datetime, now: datetime, t: Words) -> str:
    minutes = max(0, int((now - at).total_seconds() // 60))
    if minutes < 60:
        return t("ago.minutes", n=minutes)
    if minutes < 48 * 60:
        return t("ago.hours", n=minutes // 60)
    return t("ago.days", n=minutes // (24 * 60))


def _nearby_items(state: PageState, found: list[Nearby], lang: Lang) -> list[dict[str, Any]]:
    t, now = Words(lang), state.hub.clock()
    items = []
    for n in found:
        entry = state.hub.catalogue.get(n.code)
        name = (entry.name_zh if lang == "zh" else entry.name_en) if entry else n.code
        items.append(
            {
                "token": n.token,
                "code": n.code,
                "name": name,
                "status": stage_note(n.stage, lang),
                "metres": round(n.distance_m),
                "away": t(
                    "nearby.away", metres=round(n.distance_m), ago=_ago(n.requested_at, now, t)
                ),
            }
        )
    return items


def _form_page(
    request: Request,
    lang: Lang,
    *,
    plate: PlatePoint | None,
    plate_token: str = "",
    nearby: list[dict[str, Any]] | None = None,
    values: dict[str, str] | None = None,
    errors: list[str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    state = _state(request)
    csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = _render(
        request,
        "report.html",
        lang,
        status,
        plate=plate,
        plate_token=plate_token,
        nearby=nearby,
        radius=round(NEARBY_RADIUS_M),
        services=state.services(),
        values=values or {},
        errors=errors or [],
        csrf=csrf,
        idem=secrets.token_urlsafe(18),
        photo_limit=format_bytes(state.limits.photo_bytes),
        map=_map_context(state) if plate is None else None,
        contact_days=state.contact_days,
    )
    secure = request.url.scheme == "https"
    response.set_cookie(
        CSRF_COOKIE, csrf, httponly=True, samesite="strict", secure=secure, path="/report"
    )
    return response


def _map_context(state: PageState) -> dict[str, Any]:
    """What the pin map draws and what its script needs to turn a tap into lat/lon."""
    proj = state.projection
    return {
        "width": proj.width,
        "height": round(proj.height, 1),
        "shapes": state.shapes,
        # to_latlon undone in the browser: lon = min_lon + (x - margin) / (kx * scale),
        # lat = max_lat - (y - margin) / scale.
        "params": {
            "minLon": proj.min_lon,
            "maxLat": proj.max_lat,
            "kx": proj.kx,
            "scale": proj.scale,
            "margin": proj.margin,
        },
    }


@router.get("/r/{token:path}")
async def plate_page(request: Request, token: str) -> HTMLResponse:
    """A scanned plate: the form with the plate's place filled in, and what is open there."""
    state, lang = _state(request), _lang(request)
    try:
        point = state.plates.point(token[:64])
    except PlateRefused as exc:
        level = logging.WARNING if exc.kind == "forged" else logging.INFO
        log.log(level, "plate link refused (%s) from %s: %s", exc.kind, _client(request), exc)
        return _render(request, "refused.html", lang, 404, kind=exc.kind)
    found = await state.data.nearby(point.lat, point.lon, NEARBY_RADIUS_M)
    return _form_page(
        request,
        lang,
        plate=point,
        plate_token=token,
        nearby=_nearby_items(state, found, lang),
    )


@router.get("/report")
async def report_page(request: Request) -> HTMLResponse:
    """The form without a plate: the phone's position or coordinates typed in."""
    return _form_page(request, _lang(request), plate=None)


@router.get("/report/nearby.json")
async def nearby(request: Request) -> JSONResponse:
    """Open reports within 50 m of ``lat``/``lon`` (what the form asks "one of these?")."""
    state, lang = _state(request), _lang(request)
    try:
        lat = float(request.query_params.get("lat", ""))
        lon = float(request.query_params.get("lon", ""))
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ValueError
    except ValueError:
        return JSONResponse(
            {"detail": "lat and lon: decimal degrees (-90..90, -180..180)"}, status_code=400
        )
    found = await state.data.nearby(lat, lon, NEARBY_RADIUS_M)
    return JSONResponse(
        {"radius_m": NEARBY_RADIUS_M, "reports": _nearby_items(state, found, lang)},
        headers={"Cache-Control": "no-store"},
    )


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser, or an old one: the CSRF cookie still decides
    return urlsplit(origin).netloc == request.headers.get("host", "")


class _Refused(Exception):
    """A submission sent back to the form with messages and a status."""

    def __init__(self, status: int, messages: list[str], retry_after: int | None = None) -> None:
        super().__init__("; ".join(messages))
        self.status = status
        self.messages = messages
        self.retry_after = retry_after


@router.post("/report")
async def submit(request: Request) -> Response:
    """File the form's report; on success, on to its status page."""
    state, lang = _state(request), _lang(request)
    t = Words(lang)
    if not _same_origin(request):
        return _render(request, "refused.html", lang, 403, kind="csrf")
    if not state.per_client.take(_client(request))[0]:
        wait = _wait_s(state.per_client)
        response = _render(request, "refused.html", lang, 429, kind="throttled", seconds=wait)
        response.headers["Retry-After"] = str(wait)
        return response
    size = request.headers.get("content-length", "")
    if size.isdigit() and int(size) > state.limits.photo_bytes + 256 * 1024:
        limit = format_bytes(state.limits.photo_bytes)
        return _render(request, "refused.html", lang, 413, kind="too_big", limit=limit)
    try:
        form = await request.form(max_files=1, max_fields=100, max_part_size=64 * 1024)
    except MultiPartException as exc:
        return _render(request, "refused.html", lang, 400, kind="unreadable", why=str(exc))
    values = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    plate: PlatePoint | None = None
    plate_token = values.get("plate", "")
    try:
        if not same_secret(values.get("csrf_token"), request.cookies.get(CSRF_COOKIE)):
            raise _Refused(403, [t("csrf")])
        if plate_token:
            try:
                plate = state.plates.point(plate_token[:64])
            except PlateRefused as exc:
                raise _Refused(400, [t(f"plate.refused.{exc.kind}")]) from exc
            if not state.per_plate.take(plate.id)[0]:
                wait = _wait_s(state.per_plate)
                raise _Refused(429, [t("throttled", seconds=wait)], wait)
        fields, source = open311_fields(
            [(k, v) for k, v in form.multi_items() if isinstance(v, str)], plate
        )
        try:
            report = parse_report(fields, state.hub.catalogue, state.hub.grid)
        except Open311Error as exc:
            raise _Refused(exc.status, [p.description for p in exc.problems]) from exc
        report = dataclasses.replace(report, location_source=source)
        photo = form.get("photo")
        sha = None
        if isinstance(photo, UploadFile) and photo.filename:
            sha = await _store_photo(state, photo, t)
        client = await state.data.client()
        if client.revoked_at is not None:
            raise _Refused(503, [t("form.closed")])
        idem = values.get("idem", "")[:64] or None
        try:
            done = await state.reports.submit(
                report, key=client, idempotency_key=idem, photo_sha256=sha
            )
        except Open311Error as exc:
            raise _Refused(exc.status, [p.description for p in exc.problems]) from exc
    except _Refused as refused:
        response = _form_page(
            request,
            lang,
            plate=plate,
            plate_token=plate_token,
            values=values,
            errors=refused.messages,
            status=refused.status,
        )
        if refused.retry_after is not None:
            response.headers["Retry-After"] = str(refused.retry_after)
        return response
    finally:
        await form.close()
    log.info("report page: report %s filed into case %s", done.id, done.case_id)
    return RedirectResponse(f"/report/s/{done.token}?lang={lang}", status_code=303)


async def _store_photo(state: PageState, photo: UploadFile, t: Words) -> str:
    """The photo re-encoded without metadata (GPS included) into the evidence store: its
    SHA-256. Never shown to other citizens (nothing public shows citizens' photos)."""
    data = await photo.read(state.limits.photo_bytes + 1)
    try:
        jpeg = await asyncio.to_thread(normalise_photo, data, limit=state.limits.photo_bytes)
    except UploadRefused as exc:
        raise _Refused(exc.status, [f"{t('form.photo')}: {exc}"]) from exc
    return await state.hub.evidence.put(jpeg)


@router.get("/report/s/{token}")
async def status_page(request: Request, token: str) -> HTMLResponse:
    """A report's status by its token: where its case stands and its history."""
    state, lang = _state(request), _lang(request)
    found = await state.data.status(token[:64]) if len(token) <= 64 else None
    if found is None:
        return _render(request, "refused.html", lang, 404, kind="no_report")
    view = found.view
    entry = state.hub.catalogue.get(view.code)
    return _render(
        request,
        "status.html",
        lang,
        view=view,
        entry=entry,
        now_note=status_notes(view, lang),
        notes=[(e.at, stage_note(e.stage, lang, view.cancel_reason)) for e in found.history],
        agency=agency(view.line, view.squad_id, lang),
        final=view.stage in FINAL_STAGES,
    )
