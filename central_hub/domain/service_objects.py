"""The service-object registry and the vehicle registry: what a row must hold (pure).

Service objects are the bureau's 25,935 shops, companies, communities, villages and key
municipal facilities (DOMAIN.md): who to notify, and what a case at a shop front concerns.
Every object has a kind, a name and an address; a business (street shop, company) needs an
industry, a subcategory of that industry and a legal representative too. Contacts,
location, notes are optional; a location must lie in the district (in a street cell of
the grid, which it is filed under, as a case is).

Imports (CSV, XLSX) and edits run through the same checks here: :func:`check_objects`
takes rows of text by column and gives the clean :class:`ObjectRecord` of each good row
and a :class:`Problem` (row, column, reason) for everything wrong with the others, so an
import can store the good rows and name every bad one. An object is the same object when
its name and address are (after trimming and Unicode NFKC folding of full-width
characters): a re-import updates it.

Vehicles (plates to the owner's contact, for move-your-car reminders) take the same road
through :func:`check_vehicles`; plates are written as the plate reader writes them
(``浙J·A12345``).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from central_hub.domain.grid import Grid
from central_hub.domain.industries import Taxonomy
from central_hub.domain.workflow import Role

__all__ = [
    "BUSINESS_KINDS",
    "CONTACT_READERS",
    "KIND_NAMES",
    "OBJECT_COLUMNS",
    "PLATE_PROVINCES",
    "VEHICLE_COLUMNS",
    "ContactRecord",
    "ObjectKind",
    "ObjectRecord",
    "Problem",
    "VehicleRecord",
    "check_header",
    "check_objects",
    "check_vehicles",
    "clean_text",
    "distance_m",
    "normalise_phone",
    "normalise_plate",
    "record_fields",
    "search_text",
]


class ObjectKind(StrEnum):
    """What a service object is."""

    STREET_SHOP = "street_shop"
    COMPANY = "company"
    COMMUNITY = "community"
    VILLAGE = "village"
    FACILITY = "facility"


#: Each kind's names (Chinese, English); an import may give either instead of the key.
KIND_NAMES: dict[ObjectKind, tuple[str, str]] = {
    ObjectKind.STREET_SHOP: ("沿街商户", "street shop"),
    ObjectKind.COMPANY: ("企事业单位", "company or institution"),
    ObjectKind.COMMUNITY: ("社区", "community"),
    ObjectKind.VILLAGE: ("行政村", "administrative village"),
    ObjectKind.FACILITY: ("重点市政设施", "key municipal facility"),
}
#: Kinds that must name an industry, a subcategory and a legal representative.
BUSINESS_KINDS = frozenset({ObjectKind.STREET_SHOP, ObjectKind.COMPANY})
#: Roles that see contacts' phones and e-mails in full (they send the notices); other
#: roles see them masked.
CONTACT_READERS = frozenset({Role.OPERATOR, Role.ADMIN})

#: The columns of an object import, in the order a template file lists them.
OBJECT_COLUMNS: tuple[str, ...] = (
    "kind",
    "name",
    "address",
    "industry",
    "subcategory",
    "legal_representative",
    "lat",
    "lon",
    "contact_name",
    "contact_role",
    "contact_phone",
    "contact_email",
    "notes",
)
#: The columns of a vehicle import.
VEHICLE_COLUMNS: tuple[str, ...] = ("plate", "owner_name", "phone", "notes")
_REQUIRED_OBJECT_COLUMNS = ("kind", "name", "address")
_REQUIRED_VEHICLE_COLUMNS = ("plate", "owner_name", "phone")
#: Chinese headers a city's spreadsheet may carry instead of the keys.
_HEADER_ALIASES: dict[str, str] = {
    "类型": "kind",
    "名称": "name",
    "地址": "address",
    "行业": "industry",
    "子类": "subcategory",
    "法定代表人": "legal_representative",
    "纬度": "lat",
    "经度": "lon",
    "联系人": "contact_name",
    "联系人职务": "contact_role",
    "联系电话": "contact_phone",
    "电子邮箱": "contact_email",
    "备注": "notes",
    "车牌": "plate",
    "车主": "owner_name",
    "电话": "phone",
}
#: Longest text per field, as the tables hold it.
MAX_LEN: dict[str, int] = {
    "name": 200,
    "address": 400,
    "legal_representative": 100,
    "contact_name": 100,
    "contact_role": 64,
    "contact_email": 254,
    "notes": 2000,
    "owner_name": 100,
}

#: The province characters that start a plate: the plate reader's
#: (``edge_agent.vision.plates.PROVINCES``; a unit test keeps the two the same).
PLATE_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤川琼青藏宁"
_PLATE = re.compile(
    rf"([{PLATE_PROVINCES}])([A-Z])([A-Z0-9]{{6}}|[A-Z0-9]{{5}}|[A-Z0-9]{{4}}[警学挂港澳])"
)
_MOBILE = re.compile(r"(?:\+?86)?(1[3-9][0-9]{9})")
_LANDLINE = re.compile(r"(0[1-9][0-9]{1,2})([2-9][0-9]{6,7})(?:[#x转]([0-9]{1,6}))?")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s.]+")
_SPACES = re.compile(r"\s+")
#: Control characters (NUL and the like) a cell may carry but no name or address holds.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True, order=True)
class Problem:
    """What is wrong with one row of an import: its row number (the spreadsheet's, the
    header being row 1), the column (or ``-`` for the whole row) and why."""

    row: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}, column {self.column}: {self.reason}"


@dataclass(frozen=True)
class ContactRecord:
    """A contact of an object: a name and a phone or an e-mail (notices go there)."""

    name: str
    role: str
    phone: str | None
    email: str | None


@dataclass(frozen=True)
class ObjectRecord:
    """One service object as stored, checked and normalised (``grid_cell_id``: the street
    cell its location lies in)."""

    kind: ObjectKind
    name: str
    address: str
    industry: str | None
    subcategory: str | None
    legal_representative: str | None
    lat: float | None
    lon: float | None
    grid_cell_id: str | None
    notes: str
    contact: ContactRecord | None = None

    @property
    def key(self) -> tuple[str, str]:
        """What makes it the same object: (name, address)."""
        return (self.name, self.address)


@dataclass(frozen=True)
class VehicleRecord:
    """One vehicle: its plate (``浙J·A12345``) and the owner's name and phone."""

    plate: str
    owner_name: str
    phone: str
    notes: str


# --------------------------------------------------------------------- text


def clean_text(value: object) -> str:
    """A cell's text trimmed, NFKC-folded (full-width digits and letters become plain),
    without control characters and with runs of white space as one space; "" for an
    empty cell."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else _number_text(value)
    text = _CONTROL.sub("", unicodedata.normalize("NFKC", text))
    return _SPACES.sub(" ", text).strip()


def _number_text(value: object) -> str:
    # A spreadsheet's numbers: 13812345678.0 is a phone number, not a float.
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def search_text(name: str, address: str) -> str:
    """What a name search looks in: name and address, case-folded."""
    return f"{name}\n{address}".casefold()


def normalise_phone(text: str) -> str | None:
    """A mobile (``13812345678``, a +86 prefix dropped) or a landline with its area code
    (``0576-88123456``, an extension after ``#``), else None."""
    compact = re.sub(r"[\s()\-]", "", clean_text(text))
    mobile = _MOBILE.fullmatch(compact)
    if mobile:
        return mobile.group(1)
    landline = _LANDLINE.fullmatch(compact)
    if landline:
        area, number, ext = landline.groups()
        return f"{area}-{number}" + (f"#{ext}" if ext else "")
    return None


def normalise_plate(text: str) -> str | None:
    """A Chinese plate typed any usual way (``浙JA12345``, ``浙J·A12345``, ``浙j a1234 5``)
    as the plate reader writes it (``浙J·A12345``), else None. As the reader does, a
    letter O is read as 0 (plates use no O)."""
    cleaned = re.sub(r"[^0-9A-Z\u4e00-\u9fff]", "", clean_text(text).upper().replace("O", "0"))
    match = _PLATE.fullmatch(cleaned)
    if match is None:
        return None
    province, letter, tail = match.groups()
    return f"{province}{letter}·{tail}"


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000.0 * math.asin(min(1.0, math.sqrt(h)))


# --------------------------------------------------------------------- headers


def check_header(
    header: Sequence[object], *, vehicles: bool = False
) -> tuple[dict[str, int], list[Problem]]:
    """The column each field is in, and the header's problems (row 1).

    A header names columns by key (``name``) or Chinese heading (``名称``), in any order
    and case. An unknown column, a column named twice or a required one missing is a
    problem: the file is then refused whole, since a misspelt heading would otherwise drop
    that column's data from every row unnoticed.
    """
    known = VEHICLE_COLUMNS if vehicles else OBJECT_COLUMNS
    required = _REQUIRED_VEHICLE_COLUMNS if vehicles else _REQUIRED_OBJECT_COLUMNS
    where: dict[str, int] = {}
    problems: list[Problem] = []
    for index, raw in enumerate(header):
        text = clean_text(raw)
        if not text:
            continue
        key = _HEADER_ALIASES.get(text, text.casefold().replace(" ", "_"))
        if key not in known:
            problems.append(Problem(1, text, f"unknown column; the columns are {', '.join(known)}"))
        elif key in where:
            problems.append(Problem(1, text, f"column {key} is named twice"))
        else:
            where[key] = index
    for key in required:
        if key not in where:
            problems.append(Problem(1, key, "required column missing"))
    return where, problems


def record_fields(record: ObjectRecord) -> dict[str, str]:
    """A record as the text fields an edit form or a template row holds."""
    contact = record.contact
    return {
        "kind": record.kind.value,
        "name": record.name,
        "address": record.address,
        "industry": record.industry or "",
        "subcategory": record.subcategory or "",
        "legal_representative": record.legal_representative or "",
        "lat": "" if record.lat is None else f"{record.lat:.7f}",
        "lon": "" if record.lon is None else f"{record.lon:.7f}",
        "contact_name": contact.name if contact else "",
        "contact_role": contact.role if contact else "",
        "contact_phone": (contact.phone or "") if contact else "",
        "contact_email": (contact.email or "") if contact else "",
        "notes": record.notes,
    }


# --------------------------------------------------------------------- objects


def _find_kind(text: str) -> ObjectKind | None:
    folded = text.casefold().replace(" ", "_")
    for kind, (zh, en) in KIND_NAMES.items():
        if folded in (kind.value, en.casefold().replace(" ", "_")) or text == zh:
            return kind
    return None


def _too_long(fields: Mapping[str, str], row: int, problems: list[Problem]) -> None:
    for column, limit in MAX_LEN.items():
        value = fields.get(column, "")
        if len(value) > limit:
            problems.append(Problem(row, column, f"{len(value)} characters, at most {limit}"))


def _coordinates(
    fields: Mapping[str, str], row: int, problems: list[Problem]
) -> tuple[float, float] | None:
    lat_text, lon_text = fields.get("lat", ""), fields.get("lon", "")
    if not lat_text and not lon_text:
        return None
    values: list[float] = []
    for column, text, bound in (("lat", lat_text, 90.0), ("lon", lon_text, 180.0)):
        if not text:
            other = "lon" if column == "lat" else "lat"
            problems.append(Problem(row, column, f"missing while {other} is given"))
            continue
        try:
            value = float(text)
        except ValueError:
            problems.append(Problem(row, column, f"{text[:40]!r} is not a number"))
            continue
        if not math.isfinite(value) or abs(value) > bound:
            problems.append(Problem(row, column, f"{text[:40]} is not degrees of {column}"))
            continue
        values.append(value)
    return (values[0], values[1]) if len(values) == 2 else None


def _contact(fields: Mapping[str, str], row: int, problems: list[Problem]) -> ContactRecord | None:
    name = fields.get("contact_name", "")
    role = fields.get("contact_role", "")
    phone_text = fields.get("contact_phone", "")
    email = fields.get("contact_email", "")
    if not (name or role or phone_text or email):
        return None
    before = len(problems)
    if not name:
        problems.append(Problem(row, "contact_name", "a contact needs a name"))
    phone = None
    if phone_text:
        phone = normalise_phone(phone_text)
        if phone is None:
            problems.append(
                Problem(
                    row,
                    "contact_phone",
                    f"{phone_text[:40]!r} is not a mobile (11 digits from 13) or a landline "
                    "with its area code",
                )
            )
    if email and not _EMAIL.fullmatch(email):
        problems.append(Problem(row, "contact_email", f"{email[:60]!r} is not an e-mail address"))
    if not phone_text and not email:
        problems.append(Problem(row, "contact_phone", "a contact needs a phone or an e-mail"))
    if len(problems) > before:
        return None
    return ContactRecord(name=name, role=role, phone=phone, email=email or None)


def _object(
    fields: Mapping[str, str], row: int, taxonomy: Taxonomy, problems: list[Problem]
) -> tuple[ObjectRecord | None, tuple[float, float] | None]:
    """One row checked, its location still to be placed on the grid."""
    before = len(problems)
    kind = None
    kind_text = fields.get("kind", "")
    if not kind_text:
        problems.append(Problem(row, "kind", "required"))
    else:
        kind = _find_kind(kind_text)
        if kind is None:
            kinds = ", ".join(k.value for k in ObjectKind)
            problems.append(Problem(row, "kind", f"{kind_text[:40]!r} is not one of {kinds}"))
    for column in ("name", "address"):
        if not fields.get(column):
            problems.append(Problem(row, column, "required"))
    business = kind in BUSINESS_KINDS
    industry = subcategory = None
    industry_text = fields.get("industry", "")
    sub_text = fields.get("subcategory", "")
    if industry_text:
        found = taxonomy.find_industry(industry_text)
        if found is None:
            problems.append(Problem(row, "industry", f"{industry_text[:40]!r}: no such industry"))
        else:
            industry = found.code
    elif business:
        problems.append(Problem(row, "industry", f"required for a {kind}"))
    if sub_text:
        sub = taxonomy.find_subcategory(sub_text)
        if sub is None:
            problems.append(Problem(row, "subcategory", f"{sub_text[:40]!r}: no such subcategory"))
        elif industry is not None and sub.industry != industry:
            owner = taxonomy.industry(sub.industry)
            problems.append(
                Problem(
                    row,
                    "subcategory",
                    f"{sub.code} {sub.name_zh} belongs to industry {sub.industry} "
                    f"{owner.name_zh if owner else ''}, not {industry}".rstrip(),
                )
            )
        elif industry is None and industry_text:
            pass  # the industry's own problem says it
        else:
            subcategory = sub.code
            industry = sub.industry
    elif business:
        problems.append(Problem(row, "subcategory", f"required for a {kind}"))
    legal = fields.get("legal_representative", "")
    if business and not legal:
        problems.append(Problem(row, "legal_representative", f"required for a {kind}"))
    _too_long(fields, row, problems)
    where = _coordinates(fields, row, problems)
    contact = _contact(fields, row, problems)
    if len(problems) > before or kind is None:
        return None, None
    record = ObjectRecord(
        kind=kind,
        name=fields["name"],
        address=fields["address"],
        industry=industry,
        subcategory=subcategory,
        legal_representative=legal or None,
        lat=where[0] if where else None,
        lon=where[1] if where else None,
        grid_cell_id=None,
        notes=fields.get("notes", ""),
        contact=contact,
    )
    return record, where


def check_objects(
    rows: Iterable[tuple[int, Mapping[str, object]]], taxonomy: Taxonomy, grid: Grid
) -> tuple[list[tuple[int, ObjectRecord]], list[Problem]]:
    """Check rows of an object import: ``(row number, {column: cell})`` each.

    Returns the good rows' records (with their grid cell) and every problem of the bad
    ones, several per row when several things are wrong. A row whose name and address an
    earlier row of the same input has already used is a problem too (which row should
    win is the city's call, not the importer's).
    """
    problems: list[Problem] = []
    pending: list[tuple[int, ObjectRecord, tuple[float, float] | None]] = []
    first_row: dict[tuple[str, str], int] = {}
    for row, raw in rows:
        fields = {k: clean_text(v) for k, v in raw.items()}
        if not any(fields.values()):
            continue  # a blank line in a spreadsheet is no row
        record, where = _object(fields, row, taxonomy, problems)
        if record is None:
            continue
        earlier = first_row.get(record.key)
        if earlier is not None:
            problems.append(Problem(row, "name", f"same name and address as row {earlier}"))
            continue
        first_row[record.key] = row
        pending.append((row, record, where))
    placed = [p for p in pending if p[2] is not None]
    cells = grid.locate_many([p[2] for p in placed if p[2] is not None])
    cell_of = {row: cell for (row, _, _), cell in zip(placed, cells, strict=True)}
    good: list[tuple[int, ObjectRecord]] = []
    for row, record, where in pending:
        if where is None:
            good.append((row, record))
            continue
        cell = cell_of[row]
        if cell is None:
            problems.append(
                Problem(
                    row,
                    "lat",
                    f"{where[0]:.6f}, {where[1]:.6f} lies outside the district "
                    "(in no street cell of the grid)",
                )
            )
            continue
        good.append((row, _with_cell(record, cell.id)))
    problems.sort()
    return good, problems


def _with_cell(record: ObjectRecord, cell_id: str) -> ObjectRecord:
    return replace(record, grid_cell_id=cell_id)


# --------------------------------------------------------------------- vehicles


def check_vehicles(
    rows: Iterable[tuple[int, Mapping[str, object]]],
) -> tuple[list[tuple[int, VehicleRecord]], list[Problem]]:
    """Check rows of a vehicle import as :func:`check_objects` does objects; a plate
    repeated in the input is a problem on the later row."""
    problems: list[Problem] = []
    good: list[tuple[int, VehicleRecord]] = []
    first_row: dict[str, int] = {}
    for row, raw in rows:
        fields = {k: clean_text(v) for k, v in raw.items()}
        if not any(fields.values()):
            continue
        before = len(problems)
        plate = None
        plate_text = fields.get("plate", "")
        if not plate_text:
            problems.append(Problem(row, "plate", "required"))
        else:
            plate = normalise_plate(plate_text)
            if plate is None:
                problems.append(
                    Problem(
                        row,
                        "plate",
                        f"{plate_text[:20]!r} is not a plate (province, letter, then 5 or 6 "
                        "letters and digits)",
                    )
                )
        owner = fields.get("owner_name", "")
        if not owner:
            problems.append(Problem(row, "owner_name", "required"))
        phone_text = fields.get("phone", "")
        phone = normalise_phone(phone_text) if phone_text else None
        if not phone_text:
            problems.append(Problem(row, "phone", "required"))
        elif phone is None:
            problems.append(
                Problem(
                    row,
                    "phone",
                    f"{phone_text[:40]!r} is not a mobile (11 digits from 13) or a landline "
                    "with its area code",
                )
            )
        _too_long(fields, row, problems)
        if len(problems) > before or plate is None or phone is None:
            continue
        earlier = first_row.get(plate)
        if earlier is not None:
            problems.append(Problem(row, "plate", f"{plate} is on row {earlier} already"))
            continue
        first_row[plate] = row
        good.append((row, VehicleRecord(plate, owner, phone, fields.get("notes", ""))))
    problems.sort()
    return good, problems
