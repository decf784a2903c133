"""The city's event catalogue: codes, names, category, dispatch line, time limit.

The catalogue is data a city edits (DOMAIN.md: "the catalogue is data ... never constants
in code"). The packaged ``data/catalogue.yaml`` holds every code of DOMAIN.md's table; a
deployment points :meth:`Catalogue.load` at its own copy. The file has three sections::

    version: 1
    categories:            # major (2 digits) -> names
      "01": {name_zh: 市容环境, name_en: city appearance and environment}
    defaults:              # optional, filled into entries that leave a field out
      verification_required: true
      merge_radius_m: 30
      merge_window_h: 24
    entries:
      - code: "0102"
        name_zh: 暴露垃圾
        name_en: exposed garbage
        line: sanitation
        limit: {kind: working_hours, amount: 4}
        sources: [camera]
        attributes:        # optional: questions a citizen answers (Open311 service definition)
          - code: BLOCKING
            datatype: singlevaluelist   # string|number|datetime|text|singlevaluelist|multivaluelist
            required: true
            description_zh: 是否影响通行？
            description_en: Is traffic blocked?
            values:
              - {key: "yes", name_zh: 是, name_en: "yes"}
              - {key: "no", name_zh: 否, name_en: "no"}

An entry's ``major`` is the first two digits of its code and must be a listed category.
Every validation error names the file and the field (``entries[3] (0102).limit.kind``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.dataclasses import dataclass

from central_hub.domain.datafile import describe_validation, read_yaml
from central_hub.domain.errors import CatalogueError, UnknownCode

__all__ = [
    "DEFAULT_CATALOGUE_PATH",
    "LINES",
    "AttributeType",
    "AttributeValue",
    "Catalogue",
    "CatalogueEntry",
    "LimitKind",
    "Line",
    "ServiceAttribute",
    "Source",
    "TimeLimit",
]

#: The packaged catalogue, seeded from DOMAIN.md.
DEFAULT_CATALOGUE_PATH = Path(__file__).with_name("data") / "catalogue.yaml"

LimitKind = Literal["emergency_hours", "working_hours", "working_days"]
Line = Literal["enforcement", "sanitation", "landscaping", "municipal"]
#: The lines (线条) that share the grid, in display order.
LINES: tuple[Line, ...] = ("enforcement", "sanitation", "landscaping", "municipal")
#: Where reports of a code typically come from (informative; filing does not depend on it).
Source = Literal["camera", "truck", "citizen", "inspector", "referral"]

_STRICT = ConfigDict(extra="forbid")

Code = Annotated[str, Field(pattern=r"^[0-9]{4,8}$")]
Major = Annotated[str, Field(pattern=r"^[0-9]{2}$")]
Name = Annotated[str, Field(min_length=1, max_length=128)]
Radius = Annotated[float, Field(gt=0, le=5_000)]
Window = Annotated[float, Field(gt=0, le=24 * 366)]


@dataclass(frozen=True, config=_STRICT)
class TimeLimit:
    """How long a case of a category may take, and how that time is counted.

    ``emergency_hours`` run round the clock; ``working_hours`` run only inside the
    calendar's working periods on working days; ``working_days`` are counted as that many
    full working days of working hours (see :mod:`central_hub.domain.calendar`).
    """

    kind: LimitKind
    amount: Annotated[float, Field(gt=0, le=10_000)]

    def __str__(self) -> str:
        unit = {"emergency_hours": "emergency h", "working_hours": "working h"}.get(
            self.kind, "working days"
        )
        return f"{self.amount:g} {unit}"


#: How a citizen answers an attribute (Open311 GeoReport v2's datatypes).
AttributeType = Literal["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"]
_LISTS = ("singlevaluelist", "multivaluelist")


@dataclass(frozen=True, config=_STRICT)
class AttributeValue:
    """One choice of a list attribute: the ``key`` a client sends and its names."""

    key: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
    name_zh: Name
    name_en: Name


@dataclass(frozen=True, config=_STRICT)
class ServiceAttribute:
    """A question a citizen answers when reporting a code (an Open311 attribute).

    ``variable`` false means the attribute only informs (no answer is taken); list
    datatypes need ``values``, the others must have none.
    """

    code: Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,32}$")]
    datatype: AttributeType
    description_zh: Name
    description_en: Name
    required: bool = False
    variable: bool = True
    datatype_description: Annotated[str, Field(max_length=200)] = ""
    values: tuple[AttributeValue, ...] = ()

    @model_validator(mode="after")
    def _values_fit(self) -> ServiceAttribute:
        if self.datatype in _LISTS and not self.values:
            raise ValueError(f"attribute {self.code}: a {self.datatype} needs values")
        if self.datatype not in _LISTS and self.values:
            raise ValueError(f"attribute {self.code}: a {self.datatype} takes no values")
        keys = [v.key for v in self.values]
        if len(set(keys)) != len(keys):
            raise ValueError(f"attribute {self.code}: value keys repeat")
        if self.required and not self.variable:
            raise ValueError(f"attribute {self.code}: a required attribute must be variable")
        return self


@dataclass(frozen=True, config=_STRICT)
class CatalogueEntry:
    """One event code of the catalogue with everything filing and dispatch need.

    ``major`` is the 2-digit category code (the first two digits of ``code``),
    ``category_name`` its Chinese name; ``line`` is the line that handles the problem;
    ``merge_radius_m`` and ``merge_window_h`` say when a new report of the same code is the
    same problem as an open case (see :mod:`central_hub.domain.filing`).
    """

    code: Code
    name_zh: Name
    name_en: Name
    major: Major
    category_name: Name
    line: Line
    limit: TimeLimit
    verification_required: bool = True
    merge_radius_m: Radius = 30.0
    merge_window_h: Window = 24.0
    sources: tuple[Source, ...] = field(default_factory=tuple)
    category_name_en: str = ""
    #: What a citizen answers when reporting this code (Open311 service definition), in
    #: the order asked.
    attributes: tuple[ServiceAttribute, ...] = ()

    @model_validator(mode="after")
    def _code_in_major(self) -> CatalogueEntry:
        if not self.code.startswith(self.major):
            raise ValueError(f"code {self.code} does not start with its major {self.major}")
        codes = [a.code for a in self.attributes]
        if len(set(codes)) != len(codes):
            raise ValueError(f"code {self.code}: attribute codes repeat")
        return self

    @property
    def citizen_facing(self) -> bool:
        """Whether citizens report this code (``citizen`` among its sources): the codes
        Open311 offers as services."""
        return "citizen" in self.sources


@dataclass(frozen=True, config=_STRICT)
class _CategoryNames:
    name_zh: Name
    name_en: str = ""


@dataclass(frozen=True, config=_STRICT)
class _Defaults:
    verification_required: bool = True
    merge_radius_m: Radius = 30.0
    merge_window_h: Window = 24.0


@dataclass(frozen=True, config=_STRICT)
class _CatalogueFile:
    version: Literal[1]
    categories: dict[str, _CategoryNames]
    entries: Annotated[list[dict[str, Any]], Field(min_length=1)]
    defaults: _Defaults = field(default_factory=_Defaults)


_FILE = TypeAdapter(_CatalogueFile)
_ENTRY = TypeAdapter(CatalogueEntry)


class Catalogue:
    """The event catalogue: look codes up, list entries.

    Build it with :meth:`load` (from a YAML file) or :meth:`from_entries`.
    """

    def __init__(self, entries: Mapping[str, CatalogueEntry], source: str = "<memory>") -> None:
        self._entries = dict(entries)
        self.source = source

    @classmethod
    def from_entries(cls, entries: list[CatalogueEntry], source: str = "<memory>") -> Catalogue:
        """A catalogue from entries built in code; refuses duplicate codes."""
        by_code: dict[str, CatalogueEntry] = {}
        for entry in entries:
            if entry.code in by_code:
                raise CatalogueError(f"{source}: duplicate code {entry.code}")
            by_code[entry.code] = entry
        return cls(by_code, source)

    @classmethod
    def load(cls, path: Path | None = None) -> Catalogue:
        """Load and validate a catalogue file (the packaged one when ``path`` is None).

        Raises :class:`CatalogueError` naming the file and the field at fault.
        """
        path = path or DEFAULT_CATALOGUE_PATH
        return cls.parse(read_yaml(path, "catalogue", CatalogueError), source=str(path))

    @classmethod
    def parse(cls, raw: object, source: str = "<memory>") -> Catalogue:
        """Validate an already-parsed catalogue document (a mapping as in the file)."""
        if not isinstance(raw, dict):
            raise CatalogueError(f"{source}: the catalogue must be a mapping with 'entries'")
        try:
            doc = _FILE.validate_python(raw)
        except ValidationError as exc:
            raise CatalogueError(f"{source}: {describe_validation(exc, '')}") from exc
        for major in doc.categories:
            if len(major) != 2 or not major.isdigit():
                raise CatalogueError(f"{source}: categories.{major}: a major code is 2 digits")
        entries: list[CatalogueEntry] = []
        for index, item in enumerate(doc.entries):
            code = item.get("code")
            where = f"entries[{index}]" + (f" ({code})" if isinstance(code, str) else "")
            if not isinstance(code, str):
                raise CatalogueError(f"{source}: {where}.code: a quoted string of 4-8 digits")
            major = code[:2]
            names = doc.categories.get(major)
            if names is None:
                raise CatalogueError(
                    f"{source}: {where}.code: category {major!r} is not under 'categories'"
                )
            data: dict[str, Any] = {
                "verification_required": doc.defaults.verification_required,
                "merge_radius_m": doc.defaults.merge_radius_m,
                "merge_window_h": doc.defaults.merge_window_h,
                "major": major,
                "category_name": names.name_zh,
                "category_name_en": names.name_en,
            }
            data.update(item)
            try:
                entries.append(_ENTRY.validate_python(data))
            except ValidationError as exc:
                raise CatalogueError(f"{source}: {describe_validation(exc, where)}") from exc
        return cls.from_entries(entries, source)

    def get(self, code: str) -> CatalogueEntry:
        """The entry for ``code``; raises :class:`UnknownCode` when there is none."""
        try:
            return self._entries[code]
        except KeyError:
            raise UnknownCode(code) from None

    def __contains__(self, code: object) -> bool:
        return code in self._entries

    def __iter__(self) -> Iterator[CatalogueEntry]:
        return iter(self.entries())

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> list[CatalogueEntry]:
        """Every entry, ordered by code."""
        return [self._entries[code] for code in sorted(self._entries)]

    def by_line(self, line: Line) -> list[CatalogueEntry]:
        """The entries handled by ``line``, ordered by code."""
        return [entry for entry in self.entries() if entry.line == line]
