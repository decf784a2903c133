"""The industry taxonomy of the service-object registry: industries and their subcategories.

The taxonomy is data a city edits (CONVENTIONS.md 15): the packaged
``data/industries.yaml`` holds the source's 20 industries and 131 subcategories; a
deployment points ``XH_HUB_INDUSTRIES_PATH`` at its own copy. The file::

    version: 1
    industries:
      - code: "01"                 # 2 digits, unique
        name_zh: 教育培训
        name_en: education and training
        subcategories:
          - {code: "0101", name_zh: 幼儿园, name_en: kindergarten}   # 4 digits, 01xx

Every problem is reported at once, each naming the file, the line and the field
(``industries.yaml: line 14: industries[0] (01).subcategories[2].code: ...``), the way the
grid and plate files report theirs. Names are unique among industries and among
subcategories, so an import may name either by code, Chinese or English name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from central_hub.domain.errors import DomainError

__all__ = [
    "DEFAULT_INDUSTRIES_PATH",
    "Industry",
    "IndustryError",
    "Subcategory",
    "Taxonomy",
]

#: The packaged taxonomy: 20 industries, 131 subcategories.
DEFAULT_INDUSTRIES_PATH = Path(__file__).with_name("data") / "industries.yaml"

_INDUSTRY_CODE = re.compile(r"[0-9]{2}")
_SUB_CODE = re.compile(r"[0-9]{4}")
_NAME_MAX = 64
#: Problems shown in the exception's message (every one is in ``problems``).
_SHOWN = 5


class IndustryError(DomainError):
    """The industry taxonomy file is unreadable or invalid.

    ``problems`` lists every problem found, one ``line N: where: what`` each (the message
    shows the first few).
    """

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class Subcategory:
    """One subcategory: its 4-digit code (starting with its industry's), names, industry."""

    code: str
    name_zh: str
    name_en: str
    industry: str


@dataclass(frozen=True)
class Industry:
    """One industry: its 2-digit code, names and subcategories in file order."""

    code: str
    name_zh: str
    name_en: str
    subcategories: tuple[Subcategory, ...]


class Taxonomy:
    """The industries and subcategories, looked up by code or name.

    Build it with :meth:`load` (a YAML file) or :meth:`parse` (a parsed document).
    """

    def __init__(self, industries: tuple[Industry, ...], source: str = "<memory>") -> None:
        self._industries = {i.code: i for i in industries}
        self._subs = {s.code: s for i in industries for s in i.subcategories}
        self._industry_names: dict[str, str] = {}
        self._sub_names: dict[str, str] = {}
        for industry in industries:
            for key in (industry.code, industry.name_zh, industry.name_en.casefold()):
                self._industry_names[key] = industry.code
            for sub in industry.subcategories:
                for key in (sub.code, sub.name_zh, sub.name_en.casefold()):
                    self._sub_names[key] = sub.code
        self.source = source

    # ----------------------------------------------------------------- construction

    @classmethod
    def load(cls, path: Path | None = None) -> Taxonomy:
        """Read and check a taxonomy file (the packaged one when ``path`` is None).

        Raises :class:`IndustryError` naming the file and every problem with its line.
        """
        path = path or DEFAULT_INDUSTRIES_PATH
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise IndustryError(f"{path}: cannot read the industry taxonomy: {exc}") from exc
        try:
            raw = yaml.safe_load(text)
            lines = _item_lines(yaml.compose(text))
        except (yaml.YAMLError, ValueError) as exc:
            raise IndustryError(f"{path}: not valid YAML: {exc}") from exc
        try:
            return cls.parse(raw, source=str(path), lines=lines)
        except IndustryError as exc:
            raise IndustryError(f"{path}: {exc}", exc.problems) from exc

    @classmethod
    def parse(
        cls,
        raw: object,
        source: str = "<memory>",
        lines: dict[tuple[int, int | None], int] | None = None,
    ) -> Taxonomy:
        """Check a parsed taxonomy document; ``lines`` maps (industry index, subcategory
        index or None) to the line it starts on, for the messages."""
        lines = lines or {}
        if not isinstance(raw, dict):
            raise IndustryError("the taxonomy must be a mapping with 'version' and 'industries'")
        problems: list[str] = []
        extra = sorted(set(map(str, raw)) - {"version", "industries"})
        if extra:
            problems.append(f"{', '.join(extra)}: unknown keys (version, industries)")
        if raw.get("version") != 1:
            problems.append(f"version: {raw.get('version')!r} is not 1")
        items = raw.get("industries")
        if not isinstance(items, list) or not items:
            problems.append("industries: a non-empty list is needed")
            items = []
        industries: list[Industry] = []
        seen: dict[str, dict[str, str]] = {"industry": {}, "subcategory": {}}
        for n, item in enumerate(items):
            industry = _industry(item, n, lines, seen, problems)
            if industry is not None:
                industries.append(industry)
        if problems:
            raise IndustryError(_summary(problems), tuple(problems))
        return cls(tuple(industries), source)

    # ----------------------------------------------------------------- lookups

    def industries(self) -> list[Industry]:
        """Every industry, by code."""
        return [self._industries[c] for c in sorted(self._industries)]

    def __iter__(self) -> Iterator[Industry]:
        return iter(self.industries())

    def __len__(self) -> int:
        return len(self._industries)

    def subcategory_count(self) -> int:
        """How many subcategories there are in all."""
        return len(self._subs)

    def industry(self, code: str) -> Industry | None:
        """The industry with ``code``, or None."""
        return self._industries.get(code)

    def subcategory(self, code: str) -> Subcategory | None:
        """The subcategory with ``code``, or None."""
        return self._subs.get(code)

    def find_industry(self, text: str) -> Industry | None:
        """The industry ``text`` names: its code, Chinese name or English name (any case)."""
        code = self._industry_names.get(text) or self._industry_names.get(text.casefold())
        return self._industries[code] if code else None

    def find_subcategory(self, text: str) -> Subcategory | None:
        """The subcategory ``text`` names: its code, Chinese or English name (any case)."""
        code = self._sub_names.get(text) or self._sub_names.get(text.casefold())
        return self._subs[code] if code else None


def _industry(
    item: object,
    n: int,
    lines: dict[tuple[int, int | None], int],
    seen: dict[str, dict[str, str]],
    problems: list[str],
) -> Industry | None:
    """One industry entry checked, or None (its problems appended)."""
    line = lines.get((n, None))
    at = f"line {line}: " if line else ""
    where = f"industries[{n}]"
    if not isinstance(item, dict):
        problems.append(f"{at}{where}: a mapping with code, name_zh, name_en is needed")
        return None
    before = len(problems)
    code = _code(item, _INDUSTRY_CODE, "2 digits", f"{at}{where}", problems)
    if code is not None:
        where = f"{where} ({code})"
    names = _names(item, f"{at}{where}", "industry", seen, problems, code)
    _unknown_keys(item, {"code", "name_zh", "name_en", "subcategories"}, f"{at}{where}", problems)
    if code is not None and code in seen["industry"]:
        problems.append(f"{at}{where}.code: {code!r} is used twice")
    elif code is not None:
        seen["industry"][code] = where
    raw_subs = item.get("subcategories")
    if not isinstance(raw_subs, list) or not raw_subs:
        problems.append(f"{at}{where}.subcategories: a non-empty list is needed")
        raw_subs = []
    subs: list[Subcategory] = []
    for k, raw in enumerate(raw_subs):
        sub = _subcategory(raw, n, k, code, where, lines, seen, problems)
        if sub is not None:
            subs.append(sub)
    if len(problems) > before or code is None or names is None:
        return None
    return Industry(code, names[0], names[1], tuple(subs))


def _subcategory(
    raw: object,
    n: int,
    k: int,
    industry: str | None,
    parent: str,
    lines: dict[tuple[int, int | None], int],
    seen: dict[str, dict[str, str]],
    problems: list[str],
) -> Subcategory | None:
    line = lines.get((n, k)) or lines.get((n, None))
    where = f"{'line ' + str(line) + ': ' if line else ''}{parent}.subcategories[{k}]"
    if not isinstance(raw, dict):
        problems.append(f"{where}: a mapping with code, name_zh, name_en is needed")
        return None
    before = len(problems)
    code = _code(raw, _SUB_CODE, "4 digits", where, problems)
    if code is not None:
        where = f"{where} ({code})"
        if industry is not None and not code.startswith(industry):
            problems.append(f"{where}.code: does not start with its industry's code {industry}")
        if code in seen["subcategory"]:
            problems.append(f"{where}.code: {code!r} is used twice")
        seen["subcategory"][code] = where
    names = _names(raw, where, "subcategory", seen, problems, code)
    _unknown_keys(raw, {"code", "name_zh", "name_en"}, where, problems)
    if len(problems) > before or code is None or names is None or industry is None:
        return None
    return Subcategory(code, names[0], names[1], industry)


def _code(
    item: dict[Any, Any], pattern: re.Pattern[str], what: str, where: str, problems: list[str]
) -> str | None:
    code = item.get("code")
    if not isinstance(code, str) or not pattern.fullmatch(code):
        problems.append(f"{where}.code: {code!r} is not a quoted string of {what}")
        return None
    return code


def _names(
    item: dict[Any, Any],
    where: str,
    kind: str,
    seen: dict[str, dict[str, str]],
    problems: list[str],
    code: str | None,
) -> tuple[str, str] | None:
    found: list[str] = []
    for key in ("name_zh", "name_en"):
        value = item.get(key)
        if not isinstance(value, str) or not value.strip() or len(value) > _NAME_MAX:
            problems.append(f"{where}.{key}: 1-{_NAME_MAX} characters of text are needed")
            continue
        value = value.strip()
        folded = f"{kind}:{value.casefold()}"
        earlier = seen.setdefault("names", {}).get(folded)
        if earlier is not None and earlier != code:
            problems.append(f"{where}.{key}: {value!r} names another {kind} too ({earlier})")
        seen["names"][folded] = code or "?"
        found.append(value)
    return (found[0], found[1]) if len(found) == 2 else None


def _unknown_keys(item: dict[Any, Any], known: set[str], where: str, problems: list[str]) -> None:
    extra = sorted(str(k) for k in item if k not in known)
    if extra:
        problems.append(f"{where}: unknown keys {', '.join(extra)}")


def _item_lines(root: yaml.Node | None) -> dict[tuple[int, int | None], int]:
    """The 1-based line each industry and subcategory entry starts on."""
    found: dict[tuple[int, int | None], int] = {}
    if not isinstance(root, yaml.MappingNode):
        return found
    for key, value in root.value:
        if getattr(key, "value", None) != "industries" or not isinstance(value, yaml.SequenceNode):
            continue
        for n, item in enumerate(value.value):
            found[(n, None)] = item.start_mark.line + 1
            if not isinstance(item, yaml.MappingNode):
                continue
            for k2, v2 in item.value:
                if getattr(k2, "value", None) == "subcategories" and isinstance(
                    v2, yaml.SequenceNode
                ):
                    for k, sub in enumerate(v2.value):
                        found[(n, k)] = sub.start_mark.line + 1
    return found


def _summary(problems: list[str]) -> str:
    if len(problems) == 1:
        return problems[0]
    shown = "; ".join(problems[:_SHOWN])
    more = f"; and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
    return f"{len(problems)} problems: {shown}{more}"
