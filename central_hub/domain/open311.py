"""Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2) as pure functions.

What citizens' clients send is read here (:func:`parse_report`, :func:`parse_query`) and
what they get back is built here as plain documents (:func:`services_document`,
:func:`request_document`, ...) that :func:`render` writes as the spec's XML or JSON. The
routes (:mod:`central_hub.api.open311`) only move bytes and call the service.

How a case's workflow shows through GeoReport's two statuses (:func:`request_status`):
``open`` while the case is open, ``closed`` once it is closed or cancelled; the stage is
told in ``status_notes`` (with the reason when the report was not registered), the
deadline in ``expected_datetime`` and the line and squad in ``agency_responsible``.

Nothing personal leaves through here: a report's contact fields are not in any public
document, and the description and media of a report are shown only once an operator has
verified its case (:func:`verified`): before that they may hold what nobody checked.
Uploaded photos are never published (faces and plates are not blurred hub-side yet).
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any, Literal

from shapely.geometry import shape

from central_hub.domain.catalogue import Catalogue, CatalogueEntry, ServiceAttribute
from central_hub.domain.errors import DomainError
from central_hub.domain.grid import Grid
from central_hub.domain.workflow import FINAL_STAGES, Stage

__all__ = [
    "CONTENT_TYPES",
    "MAX_DESCRIPTION",
    "MAX_RANGE",
    "MAX_RESULTS",
    "SPECIFICATION",
    "Format",
    "Open311Error",
    "Problem",
    "ReportInput",
    "RequestQuery",
    "RequestView",
    "discovery_document",
    "error_document",
    "mask_email",
    "mask_name",
    "mask_phone",
    "parse_query",
    "parse_report",
    "place_of_address",
    "render",
    "request_document",
    "request_status",
    "service_definition_document",
    "services_document",
    "stage_note",
    "status_notes",
    "submitted_document",
    "token_document",
    "verified",
]

Format = Literal["xml", "json"]
#: The spec's content types per format.
CONTENT_TYPES: dict[str, str] = {
    "xml": "text/xml; charset=utf-8",
    "json": "application/json; charset=utf-8",
}
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
#: ``GET requests`` may not span more than this; without dates, the most recent 90 days.
MAX_RANGE = timedelta(days=90)
#: ``GET requests`` answers at most this many (the spec's default volume).
MAX_RESULTS = 1000
#: The spec's limit on a description.
MAX_DESCRIPTION = 4000
#: Most service_request_ids one ``GET requests`` may name.
MAX_IDS = 200
_MAX_ID = 2**63 - 1

#: A list element's children, by the list's name (GeoReport's XML; JSON keeps lists).
_ITEM_OF = {
    "services": "service",
    "service_requests": "request",
    "attributes": "attribute",
    "values": "value",
    "errors": "error",
    "endpoints": "endpoint",
    "formats": "format",
}

_LINE_NAMES = {
    "enforcement": ("执法", "enforcement"),
    "sanitation": ("环卫", "sanitation"),
    "landscaping": ("园林", "landscaping"),
    "municipal": ("市政", "municipal"),
}

#: What each stage means to the reporter: (zh-CN, English).
_STAGE_NOTES: dict[Stage, tuple[str, str]] = {
    Stage.REPORTED: ("已上报，待核实", "reported, awaiting verification"),
    Stage.VERIFYING: ("核实中", "being verified"),
    Stage.REGISTERED: ("已立案，待派遣", "registered, awaiting dispatch"),
    Stage.DISPATCHED: ("已派遣，处置中", "dispatched to the responsible unit"),
    Stage.HANDLED: ("已处置，待核查", "handled, awaiting the field check"),
    Stage.CHECKING: ("核查中", "field check under way"),
    Stage.RETURNED: ("返工中", "returned for rework"),
    Stage.REMINDED: ("已提醒车主挪车，待复查", "owner reminded to move the car, recheck pending"),
    Stage.CLOSED: ("已结案", "closed: handled and checked"),
    Stage.CANCELLED: ("不予立案", "not registered"),
}


@dataclass(frozen=True)
class Problem:
    """One entry of GeoReport's error list: a code (usually the HTTP status) and a text."""

    code: int
    description: str


class Open311Error(DomainError):
    """A request GeoReport answers with its error list.

    ``status`` is the HTTP status (the spec: 404 for what does not exist, 403 for a
    missing or wrong api_key, 400 for the rest; 429 when throttled); ``problems`` the
    list's entries, whose codes may be more specific (413 for a photo too large);
    ``retry_after_s`` goes with a 429.
    """

    def __init__(
        self, status: int, *problems: Problem | str, retry_after_s: int | None = None
    ) -> None:
        items = tuple(p if isinstance(p, Problem) else Problem(status, p) for p in problems)
        super().__init__("; ".join(p.description for p in items))
        self.status = status
        self.problems = items
        self.retry_after_s = retry_after_s


# --- rendering -------------------------------------------------------------------------


def _text(value: Any, zone: tzinfo) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return w3c(value, zone)
    return str(value)


def w3c(value: datetime, zone: tzinfo) -> str:
    """A time as the spec writes it: W3C/ISO 8601 to the second with the zone's offset."""
    return value.astimezone(zone).isoformat(timespec="seconds")


def _xml_into(parent: ET.Element, name: str, value: Any, zone: tzinfo) -> None:
    element = ET.SubElement(parent, name)
    if isinstance(value, list):
        item = _ITEM_OF[name]
        for child in value:
            _xml_into(element, item, child, zone)
    elif isinstance(value, dict):
        for key, child in value.items():
            _xml_into(element, key, child, zone)
    else:
        element.text = _text(value, zone)


def _jsonable(value: Any, zone: tzinfo) -> Any:
    if isinstance(value, list):
        return [_jsonable(v, zone) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v, zone) for k, v in value.items()}
    if isinstance(value, datetime):
        return w3c(value, zone)
    return value


def render(root: str, document: Any, fmt: Format, zone: tzinfo) -> bytes:
    """A document as GeoReport's XML (root element ``root``; lists hold their items'
    elements, e.g. ``services`` > ``service``) or JSON (the Spark convention: a list root
    is the JSON array itself). None is an empty element in XML and null in JSON; times
    are W3C with the zone's offset."""
    if fmt == "json":
        return json.dumps(_jsonable(document, zone), ensure_ascii=False).encode("utf-8")
    holder = ET.Element("holder")
    _xml_into(holder, root, document, zone)
    body = ET.tostring(holder[0], encoding="unicode", short_empty_elements=False)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + body.encode("utf-8")


def error_document(problems: Iterable[Problem]) -> list[dict[str, Any]]:
    """GeoReport's error list (root ``errors``)."""
    return [{"code": p.code, "description": p.description} for p in problems]


# --- names -------------------------------------------------------------------------------


def _pick(zh: str, en: str, locale: str | None) -> str:
    """A name in the asked locale: ``zh``/``zh-CN``, ``en``, or (default) both."""
    lang = (locale or "").lower().replace("_", "-")
    if lang.startswith("zh"):
        return zh
    if lang.startswith("en"):
        return en or zh
    return f"{zh} {en}" if en else zh


def _service_name(entry: CatalogueEntry, locale: str | None) -> str:
    return _pick(entry.name_zh, entry.name_en, locale)


def _time_limit(entry: CatalogueEntry) -> str:
    return str(entry.limit)


def _service_notice(entry: CatalogueEntry, locale: str | None) -> str:
    limit = _time_limit(entry)
    return _pick(
        f"人工核实后立案；处置时限 {limit}。",
        f"An operator verifies the report before it is registered; time limit {limit}.",
        locale,
    )


# --- services ----------------------------------------------------------------------------


def citizen_services(catalogue: Catalogue) -> list[CatalogueEntry]:
    """The catalogue's entries citizens report (``citizen`` among their sources)."""
    return [e for e in catalogue.entries() if e.citizen_facing]


def citizen_service(catalogue: Catalogue, code: str) -> CatalogueEntry:
    """The citizen-facing entry of ``code``; Open311Error 404 when there is none."""
    entry = catalogue.get(code) if code in catalogue else None
    if entry is None or not entry.citizen_facing:
        raise Open311Error(404, f"service_code {code!r} was not found")
    return entry


def services_document(catalogue: Catalogue, locale: str | None) -> list[dict[str, Any]]:
    """``GET services``: one entry per citizen-facing code (root ``services``)."""
    out = []
    for entry in citizen_services(catalogue):
        line_zh, line_en = _LINE_NAMES.get(entry.line, (entry.line, entry.line))
        out.append(
            {
                "service_code": entry.code,
                "service_name": _service_name(entry, locale),
                "description": _pick(
                    f"{entry.name_zh}（{entry.category_name}），由{line_zh}处置",
                    f"{entry.name_en} ({entry.category_name_en or entry.category_name}), "
                    f"handled by the {line_en} line",
                    locale,
                ),
                "metadata": bool(entry.attributes),
                "type": "realtime",
                "keywords": ", ".join(
                    k for k in (entry.name_zh, entry.name_en, entry.category_name) if k
                ),
                "group": _pick(entry.category_name, entry.category_name_en, locale),
            }
        )
    return out


def _attribute(attr: ServiceAttribute, order: int, locale: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "variable": attr.variable,
        "code": attr.code,
        "datatype": attr.datatype,
        "required": attr.required,
        "datatype_description": attr.datatype_description or None,
        "order": order,
        "description": _pick(attr.description_zh, attr.description_en, locale),
    }
    if attr.values:
        item["values"] = [
            {"key": v.key, "name": _pick(v.name_zh, v.name_en, locale)} for v in attr.values
        ]
    return item


def service_definition_document(entry: CatalogueEntry, locale: str | None) -> dict[str, Any]:
    """``GET services/{code}`` (root ``service_definition``)."""
    return {
        "service_code": entry.code,
        "attributes": [_attribute(a, n, locale) for n, a in enumerate(entry.attributes, start=1)],
    }


def discovery_document(
    url: str, changeset: datetime, contact: str, key_service: str
) -> dict[str, Any]:
    """The Service Discovery document (root ``discovery``) for the one endpoint at ``url``."""
    return {
        "changeset": changeset,
        "contact": contact,
        "key_service": key_service,
        "endpoints": [
            {
                "specification": SPECIFICATION,
                "url": url,
                "changeset": changeset,
                "type": "production",
                "formats": ["text/xml", "application/json"],
            }
        ],
    }


# --- reading a report --------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ATTRIBUTE_KEY = re.compile(r"^attribute\[([^\[\]]{1,64})\](\[\])?$")
_URL = re.compile(r"^https?://[^\s<>\"]{1,1990}$")
_PHONE = re.compile(r"^\+?[0-9 ()-]{3,39}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}$")


def _clean(text: str) -> str:
    """Text without the control characters XML 1.0 cannot carry, trimmed."""
    return _CONTROL.sub("", text).strip()


@dataclass(frozen=True)
class ReportInput:
    """A validated ``POST requests`` (what is stored; the contact is personal data)."""

    service_code: str
    lat: float
    lon: float
    #: gps: lat/long as sent; address: placed from address_string on the grid; plate and
    #: pin: the report page's QR plate or a point typed in (see domain.citizen_page).
    location_source: Literal["gps", "address", "plate", "pin"]
    address: str | None = None
    description: str = ""
    attributes: dict[str, str | list[str]] = field(default_factory=dict)
    media_url: str | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    device_id: str | None = None
    account_id: str | None = None


def place_of_address(address: str, grid: Grid) -> tuple[float, float] | None:
    """Where a human-entered address lies, when it names one of the grid's street cells
    (by name or id) or roads: the cell's representative point or the road's middle; the
    longest name found wins. None when it names none (the hub has no geocoder)."""
    best: tuple[int, tuple[float, float]] | None = None
    for cell in grid.cells():
        if cell.level != "street" or cell.centroid is None:
            continue
        for name in (cell.name, cell.id):
            if name and name in address and (best is None or len(name) > best[0]):
                best = (len(name), cell.centroid)
    for road in grid.roads():
        name = str((road.get("properties") or {}).get("name") or "")
        if not name or name not in address or (best is not None and len(name) <= best[0]):
            continue
        try:
            middle = shape(road["geometry"]).interpolate(0.5, normalized=True)
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        best = (len(name), (round(middle.y, 7), round(middle.x, 7)))
    return best[1] if best is not None else None


def _one(values: Mapping[str, Sequence[str]], name: str) -> str | None:
    given = [v for v in values.get(name, ()) if v.strip()]
    return _clean(given[-1]) if given else None


def _coordinate(text: str, name: str, bound: float, problems: list[Problem]) -> float | None:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not -bound <= value <= bound:
        problems.append(Problem(400, f"{name}: {text[:40]!r} is not a WGS84 {name}itude"[:200]))
        return None
    return value


def _check_attributes(
    entry: CatalogueEntry, given: dict[str, list[str]], problems: list[Problem]
) -> dict[str, str | list[str]]:
    known = {a.code: a for a in entry.attributes}
    answers: dict[str, str | list[str]] = {}
    for code, values in given.items():
        if not any(v.strip() for v in values):
            continue  # the spec: an empty argument is one not sent
        if code not in known or not known[code].variable:
            problems.append(
                Problem(400, f"attribute[{code}] is not an attribute of service {entry.code}")
            )
    for attr in entry.attributes:
        values = [_clean(v) for v in given.get(attr.code, []) if v.strip()]
        if not values:
            if attr.required:
                problems.append(
                    Problem(400, f"attribute[{attr.code}] is required for service {entry.code}")
                )
            continue
        keys = {v.key for v in attr.values}
        where = f"attribute[{attr.code}]"
        if attr.datatype == "multivaluelist":
            wrong = [v for v in values if v not in keys]
            if wrong:
                problems.append(Problem(400, f"{where}: {wrong[0][:40]!r} is not one of its keys"))
            else:
                answers[attr.code] = sorted(set(values))
            continue
        if len(values) > 1:
            problems.append(Problem(400, f"{where}: takes one value"))
            continue
        value = values[0]
        if attr.datatype == "singlevaluelist" and value not in keys:
            problems.append(Problem(400, f"{where}: {value[:40]!r} is not one of its keys"))
        elif attr.datatype == "number":
            try:
                ok = math.isfinite(float(value))
            except ValueError:
                ok = False
            if not ok:
                problems.append(Problem(400, f"{where}: {value[:40]!r} is not a number"))
        elif attr.datatype == "datetime" and _w3c_time(value) is None:
            problems.append(Problem(400, f"{where}: a W3C date and time with a zone is needed"))
        elif attr.datatype == "string" and ("\n" in value or len(value) > 200):
            problems.append(Problem(400, f"{where}: one line of at most 200 characters"))
        elif attr.datatype == "text" and len(value) > MAX_DESCRIPTION:
            problems.append(Problem(400, f"{where}: at most {MAX_DESCRIPTION} characters"))
        answers[attr.code] = value
    return answers


def parse_report(
    fields: Iterable[tuple[str, str]], catalogue: Catalogue, grid: Grid
) -> ReportInput:
    """A ``POST requests``' form fields (files aside) as a :class:`ReportInput`.

    Raises :class:`Open311Error` listing every problem: 400 for a missing or malformed
    field, 404 for a service_code that is no citizen-facing catalogue code. Fields the
    spec has and this hub ignores: ``jurisdiction_id`` (one jurisdiction), ``api_key``
    (checked by the route).
    """
    values: dict[str, list[str]] = {}
    attributes: dict[str, list[str]] = {}
    for key, value in fields:
        match = _ATTRIBUTE_KEY.match(key)
        if match:
            attributes.setdefault(match.group(1), []).append(value)
        else:
            values.setdefault(key, []).append(value)
    code = _one(values, "service_code")
    if code is None:
        raise Open311Error(400, "service_code was not provided")
    entry = citizen_service(catalogue, code)
    problems: list[Problem] = []
    lat_text, lon_text = _one(values, "lat"), _one(values, "long")
    address = _one(values, "address_string")
    if address is not None and len(address) > 400:
        problems.append(Problem(400, "address_string: at most 400 characters"))
        address = None
    lat = lon = None
    source: Literal["gps", "address"] = "gps"
    if lat_text is not None and lon_text is not None:
        lat = _coordinate(lat_text, "lat", 90.0, problems)
        lon = _coordinate(lon_text, "long", 180.0, problems)
    elif lat_text is not None or lon_text is not None:
        problems.append(Problem(400, "lat and long must both be sent"))
    elif address is not None:
        place = place_of_address(address, grid)
        if place is None:
            problems.append(
                Problem(
                    400,
                    "address_string names no street or road of the district's grid "
                    "(this hub has no geocoder): send lat and long",
                )
            )
        else:
            lat, lon = place
            source = "address"
    elif _one(values, "address_id") is not None:
        problems.append(
            Problem(400, "address_id is not supported here: send lat and long or address_string")
        )
    else:
        problems.append(
            Problem(400, "a location was not provided: send lat and long, or address_string")
        )
    description = _one(values, "description") or ""
    if len(description) > MAX_DESCRIPTION:
        problems.append(Problem(400, f"description: at most {MAX_DESCRIPTION} characters"))
    media_url = _one(values, "media_url")
    if media_url is not None and not _URL.match(media_url):
        problems.append(Problem(400, "media_url: an http or https URL is needed"))
    email = _one(values, "email")
    if email is not None and (len(email) > 254 or not _EMAIL.match(email)):
        problems.append(Problem(400, "email: not an email address"))
    phone = _one(values, "phone")
    if phone is not None and not _PHONE.match(phone):
        problems.append(Problem(400, "phone: digits, spaces, +, - and brackets only"))
    short: dict[str, str | None] = {}
    for name, limit in (("first_name", 100), ("last_name", 100), ("device_id", 128),
                        ("account_id", 128)):  # fmt: skip
        text = _one(values, name)
        if text is not None and len(text) > limit:
            problems.append(Problem(400, f"{name}: at most {limit} characters"))
        short[name] = text
    answers = _check_attributes(entry, attributes, problems)
    if problems or lat is None or lon is None:
        raise Open311Error(400, *problems)
    return ReportInput(
        service_code=entry.code,
        lat=lat,
        lon=lon,
        location_source=source,
        address=address,
        description=description,
        attributes=answers,
        media_url=media_url,
        email=email,
        first_name=short["first_name"],
        last_name=short["last_name"],
        phone=phone,
        device_id=short["device_id"],
        account_id=short["account_id"],
    )


# --- querying requests ---------------------------------------------------------------------


@dataclass(frozen=True)
class RequestQuery:
    """A ``GET requests``: ``ids`` overrides the rest (the spec says so)."""

    ids: tuple[int, ...] | None
    codes: tuple[str, ...] | None
    statuses: frozenset[str] | None
    start: datetime
    end: datetime


def _w3c_time(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        return None
    return value


def _csv(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def parse_query(params: Mapping[str, str], now: datetime) -> RequestQuery:
    """A ``GET requests``' parameters; Open311Error 400 naming what is wrong.

    Dates are W3C with a zone; the range may not span more than :data:`MAX_RANGE`. With
    one date the range is the 90 days from (or up to) it, with none the 90 days up to
    ``now``.
    """
    problems: list[Problem] = []
    ids: tuple[int, ...] | None = None
    id_texts = _csv(params.get("service_request_id"))
    if id_texts:
        if len(id_texts) > MAX_IDS:
            problems.append(Problem(400, f"service_request_id: at most {MAX_IDS} ids"))
        parsed = []
        for text in id_texts[:MAX_IDS]:
            if not text.isdigit() or not 1 <= int(text) <= _MAX_ID:
                problems.append(Problem(400, f"service_request_id: {text[:40]!r} is not an id"))
            else:
                parsed.append(int(text))
        ids = tuple(parsed)
    codes = tuple(_csv(params.get("service_code"))) or None
    statuses = frozenset(_csv(params.get("status"))) or None
    if statuses is not None and not statuses <= {"open", "closed"}:
        problems.append(Problem(400, "status: open, closed or both, comma delimited"))
    times: dict[str, datetime | None] = {}
    for name in ("start_date", "end_date"):
        text = (params.get(name) or "").strip()
        times[name] = None
        if text:
            times[name] = _w3c_time(text)
            if times[name] is None:
                problems.append(
                    Problem(
                        400, f"{name}: a W3C date and time with a zone, eg 2010-01-01T00:00:00Z"
                    )
                )
    start, end = times["start_date"], times["end_date"]
    if start is None and end is None:
        start, end = now - MAX_RANGE, now
    elif start is None:
        assert end is not None
        start = end - MAX_RANGE
    elif end is None:
        end = start + MAX_RANGE
    if end < start:
        problems.append(Problem(400, "end_date is before start_date"))
    elif end - start > MAX_RANGE:
        problems.append(Problem(400, "start_date and end_date may not span more than 90 days"))
    if problems:
        raise Open311Error(400, *problems)
    return RequestQuery(ids=ids, codes=codes, statuses=statuses, start=start, end=end)


# --- a request as the public sees it -----------------------------------------------------------


@dataclass(frozen=True)
class RequestView:
    """A citizen report and where its case stands: everything public output may use
    (no contact: it is never published)."""

    id: int
    token: str
    code: str
    lat: float
    lon: float
    address: str | None
    description: str
    media_url: str | None
    requested_at: datetime
    stage: Stage
    line: str
    squad_id: str | None
    deadline: datetime | None
    case_updated_at: datetime
    closed_at: datetime | None
    cancel_reason: str | None = None


def request_status(stage: Stage) -> Literal["open", "closed"]:
    """GeoReport's status of a report whose case is in ``stage``."""
    return "closed" if stage in FINAL_STAGES else "open"


def verified(stage: Stage) -> bool:
    """Whether an operator has verified (registered) the case: only then are the
    description and a client's media_url shown to the public."""
    return stage not in (Stage.REPORTED, Stage.VERIFYING, Stage.REMINDED, Stage.CANCELLED)


def status_notes(view: RequestView, locale: str | None) -> str:
    """The workflow stage in words; a report not registered says why."""
    return stage_note(view.stage, locale, view.cancel_reason)


def stage_note(stage: Stage, locale: str | None, cancel_reason: str | None = None) -> str:
    """What ``stage`` means to the reporter, in their language; a cancelled case says
    why (``cancel_reason``, when there is one)."""
    zh, en = _STAGE_NOTES[stage]
    if stage is Stage.CANCELLED:
        reason = (cancel_reason or "").strip()
        if reason:
            return f"{_pick(zh, en, locale)}: {reason[:500]}"
    return _pick(zh, en, locale)


def agency(line: str, squad_id: str | None, locale: str | None) -> str:
    """The line (and the squad, when the grid names one) responsible."""
    zh, en = _LINE_NAMES.get(line, (line, line))
    name = _pick(zh, en, locale)
    return f"{name} / {squad_id}" if squad_id else name


def request_document(
    views: Iterable[RequestView], catalogue: Catalogue, locale: str | None
) -> list[dict[str, Any]]:
    """``GET requests`` and ``GET requests/{id}`` (root ``service_requests``).

    The report's own photo is never given as media_url: faces and plates in it are not
    blurred hub-side yet. A client's media_url and the description appear once the case
    is verified (:func:`verified`).
    """
    out = []
    for view in views:
        entry = catalogue.get(view.code) if view.code in catalogue else None
        shown = verified(view.stage)
        closed = view.stage in FINAL_STAGES and view.closed_at is not None
        updated = view.closed_at if closed else max(view.requested_at, view.case_updated_at)
        out.append(
            {
                "service_request_id": view.id,
                "status": request_status(view.stage),
                "status_notes": status_notes(view, locale),
                "service_name": _service_name(entry, locale) if entry else view.code,
                "service_code": view.code,
                "description": (view.description or None) if shown else None,
                "agency_responsible": agency(view.line, view.squad_id, locale),
                "service_notice": _service_notice(entry, locale) if entry else None,
                "requested_datetime": view.requested_at,
                "updated_datetime": updated,
                "expected_datetime": None if view.stage in FINAL_STAGES else view.deadline,
                "address": view.address,
                "address_id": None,
                "zipcode": None,
                "lat": view.lat,
                "long": view.lon,
                "media_url": view.media_url if shown else None,
            }
        )
    return out


def submitted_document(
    request_id: int, entry: CatalogueEntry, account_id: str | None, locale: str | None
) -> list[dict[str, Any]]:
    """``POST requests``' answer (root ``service_requests``): realtime, so the id and no
    token."""
    return [
        {
            "service_request_id": request_id,
            "service_notice": _service_notice(entry, locale),
            "account_id": account_id,
        }
    ]


def token_document(request_id: int, token: str) -> list[dict[str, Any]]:
    """``GET tokens/{token}`` (root ``service_requests``)."""
    return [{"service_request_id": request_id, "token": token}]


# --- contact, masked for staff ---------------------------------------------------------------


def mask_phone(phone: str | None) -> str | None:
    """``13812345678`` (or ``+86 138 1234 5678``) as ``138****5678``: the first 3 and
    last 4 digits of 11 or more, the last 2 of shorter numbers."""
    if not phone:
        return phone
    digits = re.sub(r"\D", "", phone)
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]  # China's country code before a mobile number
    if len(digits) >= 11:
        return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]
    return "*" * max(len(digits) - 2, 1) + digits[-2:]


def mask_email(email: str | None) -> str | None:
    """``zhang.san@example.com`` as ``z***@example.com``."""
    if not email:
        return email
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def mask_name(name: str | None) -> str | None:
    """A name's first character, the rest starred (``张三`` as ``张*``)."""
    if not name:
        return name
    return name[:1] + "*" * max(len(name) - 1, 1)
