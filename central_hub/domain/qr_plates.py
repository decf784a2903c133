"""QR plates: the points citizens scan, and the signed short links printed on them.

A city lists its plates in a GeoJSON FeatureCollection of Point features (coordinates
``[lon, lat]``), each with these properties::

    {"id": "XQJ-001", "street": "县前街", "name": "县前街 1号牌"}

``id`` is 1–32 letters, digits or hyphens and unique (also ignoring case: two plates
whose ids differ only in case cannot be told apart on a sign); ``street`` is required,
``name`` optional. :func:`points_from_geojson` reports every problem at once, each naming
the feature (index and id) and what is wrong, as the grid's checks do.

A plate carries the link ``<public base URL>/r/<point id>.<signature>``, where the
signature is the first 10 bytes of HMAC-SHA256(secret, point id) in lowercase base32
without padding (16 characters). :func:`verify_plate` takes the part after ``/r/`` back
to the point id, refusing a malformed token, a forged signature or a point the city no
longer lists. The secret is a plate secret of its own, not the hub's signing key, so a
key rotation never voids printed plates.

The packaged sample (:data:`SAMPLE_POINTS_PATH`) has the source's 200 plates: 100 along
县前街 and 100 along 横街路, inside the sample district; its coordinates are invented.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from central_hub.domain.errors import PlateError, PlateRefused
from central_hub.domain.grid import Grid

__all__ = [
    "PLATE_PATH_PREFIX",
    "SAMPLE_POINTS_PATH",
    "PlatePoint",
    "check_base_url",
    "load_points",
    "plate_path",
    "plate_signature",
    "plate_url",
    "points_from_geojson",
    "points_outside",
    "verify_plate",
]

#: The packaged sample: 200 plates along 县前街 and 横街路 in the sample district.
SAMPLE_POINTS_PATH = Path(__file__).with_name("data") / "plate_points.geojson"
#: What a plate's link path starts with; the token follows it.
PLATE_PATH_PREFIX = "/r/"
#: Bytes of the HMAC kept in a link: 80 bits, 16 base32 characters.
SIGNATURE_BYTES = 10

_ID = re.compile(r"[A-Za-z0-9-]{1,32}")
_SIGNATURE_CHARS = math.ceil(SIGNATURE_BYTES * 8 / 5)
_TOKEN = re.compile(rf"([A-Za-z0-9-]{{1,32}})\.([a-z2-7]{{{_SIGNATURE_CHARS}}})")
#: Problems shown in the exception's message (every one is in ``PlateError.problems``).
_SHOWN = 5


@dataclass(frozen=True)
class PlatePoint:
    """One plate: its id, street, optional name and where it stands (WGS-84 degrees)."""

    id: str
    street: str
    lat: float
    lon: float
    name: str | None = None


# --------------------------------------------------------------------- the points file


def load_points(path: Path) -> tuple[PlatePoint, ...]:
    """Read and check a points GeoJSON file; errors name the file and every feature."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlateError(f"{path}: cannot read the plate points: {exc}") from exc
    except ValueError as exc:
        raise PlateError(f"{path}: not valid JSON: {exc}") from exc
    try:
        return points_from_geojson(obj)
    except PlateError as exc:
        raise PlateError(f"{path}: {exc}", exc.problems) from exc


def points_from_geojson(obj: object) -> tuple[PlatePoint, ...]:
    """The plates of a GeoJSON FeatureCollection, in file order (see the module doc).

    Raises :class:`PlateError` listing every problem, each ``features[i] (id): field:
    what is wrong``: not a Feature, no properties, a missing or malformed id, an id used
    twice (or twice but for case), a missing street, a name that is not text, a geometry
    that is not a Point of finite ``[lon, lat]`` degrees.
    """
    if not isinstance(obj, dict) or obj.get("type") != "FeatureCollection":
        raise PlateError("the plate points must be a GeoJSON FeatureCollection")
    features = obj.get("features")
    if not isinstance(features, list) or not features:
        raise PlateError("features: a non-empty list is needed")
    points: list[PlatePoint] = []
    problems: list[str] = []
    first_at: dict[str, str] = {}
    for index, feature in enumerate(features):
        point_id, point, found = _parse_point(feature, f"features[{index}]")
        problems += found
        if point_id is None:
            continue
        # an id is taken even by a feature with other problems: its duplicate is one more
        where = f"features[{index}] ({point_id})"
        earlier = first_at.get(point_id.casefold())
        if earlier is not None:
            problems.append(f"{where}: properties.id: {point_id!r} is used twice (also {earlier})")
            continue
        first_at[point_id.casefold()] = where
        if point is not None:
            points.append(point)
    if problems:
        raise PlateError(_summary(problems), tuple(problems))
    return tuple(points)


def points_outside(points: Sequence[PlatePoint], grid: Grid) -> list[str]:
    """A problem line for each plate that lies in none of the grid's street cells.

    A report from such a plate would be filed with no street, so no squad would get it.
    """
    cells = grid.locate_many([(p.lat, p.lon) for p in points])
    return [
        f"{p.id}: lat {p.lat:.6f}, lon {p.lon:.6f} lies in no street cell of the grid"
        for p, cell in zip(points, cells, strict=True)
        if cell is None
    ]


def _parse_point(feature: object, where: str) -> tuple[str | None, PlatePoint | None, list[str]]:
    """One feature's well-formed id (or None), its plate (None if any problem), and every
    problem found in it."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        return None, None, [f"{where}: not a GeoJSON Feature"]
    props = feature.get("properties")
    if not isinstance(props, dict):
        return None, None, [f"{where}: properties: an object is needed"]
    problems: list[str] = []
    point_id = props.get("id")
    if not isinstance(point_id, str) or not _ID.fullmatch(point_id):
        problems.append(
            f"{where}: properties.id: {point_id!r} is not 1-32 letters, digits or hyphens"
        )
        point_id = None
    else:
        where = f"{where} ({point_id})"
    street = props.get("street")
    if not isinstance(street, str) or not street.strip():
        problems.append(f"{where}: properties.street: a non-empty string is needed")
    name = props.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        problems.append(f"{where}: properties.name: a non-empty string or null is needed")
    lat_lon, problem = _coordinates(feature.get("geometry"))
    if problem is not None:
        problems.append(f"{where}: geometry: {problem}")
    if problems or point_id is None or lat_lon is None or not isinstance(street, str):
        return point_id, None, problems
    return (
        point_id,
        PlatePoint(
            id=point_id,
            street=street.strip(),
            lat=lat_lon[0],
            lon=lat_lon[1],
            name=name.strip() if isinstance(name, str) else None,
        ),
        [],
    )


def _coordinates(geometry: Any) -> tuple[tuple[float, float] | None, str | None]:
    """(lat, lon) of a GeoJSON Point, or the reason it is not one."""
    if not isinstance(geometry, dict) or geometry.get("type") != "Point":
        return None, "a Point is needed"
    coords = geometry.get("coordinates")
    if (
        not isinstance(coords, list)
        or len(coords) not in (2, 3)
        or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in coords)
    ):
        return None, "coordinates: [lon, lat] numbers are needed"
    lon, lat = float(coords[0]), float(coords[1])
    if not (math.isfinite(lon) and math.isfinite(lat)):
        return None, "coordinates: not finite numbers"
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        return None, f"coordinates: [{lon}, {lat}] is not [lon, lat] in degrees"
    return (lat, lon), None


def _summary(problems: list[str]) -> str:
    if len(problems) == 1:
        return problems[0]
    shown = "; ".join(problems[:_SHOWN])
    more = f"; and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
    return f"{len(problems)} problems: {shown}{more}"


# --------------------------------------------------------------------- the links


def plate_signature(point_id: str, secret: bytes) -> str:
    """The link's signature of ``point_id``: 10 bytes of HMAC-SHA256, lowercase base32."""
    if not _ID.fullmatch(point_id):
        raise PlateError(f"{point_id!r} is not a plate id (1-32 letters, digits or hyphens)")
    digest = hmac.new(secret, point_id.encode("ascii"), hashlib.sha256).digest()
    return base64.b32encode(digest[:SIGNATURE_BYTES]).decode("ascii").rstrip("=").lower()


def plate_path(point_id: str, secret: bytes) -> str:
    """The path printed on a plate: ``/r/<point id>.<signature>``."""
    return f"{PLATE_PATH_PREFIX}{point_id}.{plate_signature(point_id, secret)}"


def check_base_url(base_url: str) -> str:
    """The hub's public ``http(s)://host[:port][/prefix]`` without a trailing slash.

    Raises :class:`PlateError` for a base that is not an absolute http(s) URL, or that has
    a query or fragment (the plate's path would land inside it).
    """
    try:
        parts = urlsplit(base_url)
        parts.port  # noqa: B018  (reading it checks the port)
    except ValueError as exc:
        raise PlateError(f"base URL {base_url!r}: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PlateError(f"base URL {base_url!r}: an absolute http:// or https:// URL is needed")
    if parts.query or parts.fragment:
        raise PlateError(f"base URL {base_url!r}: no query or fragment may follow the path")
    return base_url.rstrip("/")


def plate_url(base_url: str, point_id: str, secret: bytes) -> str:
    """The whole link on a plate: the checked base URL followed by :func:`plate_path`."""
    return check_base_url(base_url) + plate_path(point_id, secret)


def verify_plate(token: str, secret: bytes, known_ids: Collection[str]) -> str:
    """The point id of a scanned token (the part of the path after ``/r/``).

    Raises :class:`PlateRefused` with ``kind`` ``malformed`` (not ``<id>.<signature>``),
    ``forged`` (the signature does not match: compared in constant time) or ``unknown``
    (a genuine plate whose point the city no longer lists).
    """
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise PlateRefused(
            "not a plate link: expected <point id>.<16-character signature>", kind="malformed"
        )
    point_id, signature = match.groups()
    expected = plate_signature(point_id, secret)
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii")):
        raise PlateRefused(
            f"plate {point_id!r}: the signature is not the hub's (a forged plate)", kind="forged"
        )
    if point_id not in known_ids:
        raise PlateRefused(f"plate {point_id!r}: no such point in the city's list", kind="unknown")
    return point_id
