"""The mobile "snap and report" page's pure part: its form read as an Open311 request,
open reports near a point, and a report's history as the reporter sees it.

The page (:mod:`central_hub.citizen_page`) files through the same path as Open311
clients: :func:`open311_fields` turns its form into ``POST requests`` fields, which
:func:`central_hub.domain.open311.parse_report` checks with the same rules and messages.
A plate's location replaces whatever the form says about where (the plate's point is
signed; the form is not).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from central_hub.domain.filing import EARTH_RADIUS_M, haversine_m
from central_hub.domain.qr_plates import PlatePoint
from central_hub.domain.workflow import Stage

__all__ = [
    "NEARBY_RADIUS_M",
    "FormLocation",
    "Nearby",
    "StatusEntry",
    "bounding_box",
    "closest",
    "open311_fields",
    "plate_address",
    "timeline",
]

#: "Is it one of these?": open reports within this distance are shown before submitting.
NEARBY_RADIUS_M = 50.0
#: Contact fields the page offers, named as Open311 names them.
_CONTACT = ("first_name", "last_name", "phone", "email")

FormLocation = Literal["plate", "gps", "pin"]


def plate_address(point: PlatePoint) -> str:
    """How a plate's place is written on its reports: the street, the plate's name, its id."""
    name = point.name or point.street
    return f"{name} ({point.id})" if point.street in name else f"{point.street} {name} ({point.id})"


def open311_fields(
    form: Iterable[tuple[str, str]], plate: PlatePoint | None
) -> tuple[list[tuple[str, str]], FormLocation]:
    """The page's form fields as Open311 ``POST requests`` fields, and where the location
    came from.

    ``form`` has ``code``, ``description``, ``lat``/``lon`` with ``located`` (``gps`` for
    the phone's position, ``pin`` for a point set by hand), ``attr.<code>`` answers (one
    field per ticked value for a multi-value list) and the optional contact fields; a
    single-valued field repeated counts once (the first). With a ``plate``, its point is
    the location and the form's coordinates are ignored. Empty fields are left out, so a
    missing location or code reaches :func:`parse_report`, which names it.
    """
    items = list(form)
    first: dict[str, str] = {}
    for key, value in items:
        first.setdefault(key, value.strip())
    fields: list[tuple[str, str]] = []
    if first.get("code"):
        fields.append(("service_code", first["code"]))
    source: FormLocation
    if plate is not None:
        fields += [("lat", repr(plate.lat)), ("long", repr(plate.lon))]
        fields.append(("address_string", plate_address(plate)))
        source = "plate"
    else:
        lat, lon = first.get("lat", ""), first.get("lon", "")
        if lat or lon:
            fields += [("lat", lat), ("long", lon)]
        source = "pin" if first.get("located") == "pin" else "gps"
    if first.get("description"):
        fields.append(("description", first["description"]))
    for key, value in items:
        if key.startswith("attr.") and value.strip():
            fields.append((f"attribute[{key[5:]}]", value.strip()))
    for name in _CONTACT:
        if first.get(name):
            fields.append((name, first[name]))
    return fields, source


def bounding_box(lat: float, lon: float, radius_m: float) -> tuple[float, float, float, float]:
    """(lat_min, lat_max, lon_min, lon_max) holding every point within ``radius_m`` of
    (``lat``, ``lon``): a cheap index-friendly filter before the exact distance."""
    dlat = math.degrees(radius_m / EARTH_RADIUS_M)
    cos = max(math.cos(math.radians(lat)), 1e-6)
    dlon = math.degrees(radius_m / (EARTH_RADIUS_M * cos))
    return lat - dlat, lat + dlat, lon - dlon, lon + dlon


@dataclass(frozen=True)
class Nearby:
    """An open report near the citizen: what it is, where its case stands, how far."""

    token: str
    code: str
    lat: float
    lon: float
    requested_at: datetime
    stage: Stage
    distance_m: float = 0.0


def closest(
    candidates: Iterable[Nearby], lat: float, lon: float, radius_m: float, limit: int
) -> list[Nearby]:
    """The candidates within ``radius_m`` of (``lat``, ``lon``), nearest first (ties:
    newest first), at most ``limit``, each with its distance."""
    within: list[Nearby] = []
    for c in candidates:
        d = haversine_m(lat, lon, c.lat, c.lon)
        if d <= radius_m:
            within.append(Nearby(c.token, c.code, c.lat, c.lon, c.requested_at, c.stage, d))
    within.sort(key=lambda n: (round(n.distance_m, 1), -n.requested_at.timestamp()))
    return within[:limit]


@dataclass(frozen=True)
class StatusEntry:
    """One step of a report's history: when its case reached ``stage``."""

    at: datetime
    stage: Stage


def timeline(requested_at: datetime, moves: Sequence[tuple[datetime, Stage]]) -> list[StatusEntry]:
    """What the reporter's status page lists, oldest first.

    ``moves`` are the case's stage changes (its audit trail, oldest first). The history
    starts when the citizen reported, in the stage the case was in then (a report joining
    an older case does not show that case's past); each later change follows, and a change
    to the stage already shown is left out.
    """
    at_report = Stage.REPORTED
    for at, stage in moves:
        if at <= requested_at:
            at_report = stage
    entries = [StatusEntry(requested_at, at_report)]
    for at, stage in moves:
        if at > requested_at and stage is not entries[-1].stage:
            entries.append(StatusEntry(at, stage))
    return entries
