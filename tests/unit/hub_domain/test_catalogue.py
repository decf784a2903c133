"""The event catalogue: the packaged file, lookups, and errors that name file and field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from central_hub.domain.catalogue import LINES, Catalogue, CatalogueEntry, TimeLimit
from central_hub.domain.errors import CatalogueError, UnknownCode

#: Every code of DOMAIN.md's sample table.
DOMAIN_CODES = [
    "0101",
    "0102",
    "0103",
    "0104",
    "0201",
    "0202",
    "0302",
    "0401",
    "0404",
    "0501",
    "0504",
    "0505",
    "0506",
    "0507",
    "0510",
    "0511",
    "2101",
    "2102",
    "2103",
]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalogue.yaml"
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL = """
version: 1
categories:
  "01": {name_zh: 市容环境, name_en: city appearance}
entries:
  - code: "0102"
    name_zh: 暴露垃圾
    name_en: exposed garbage
    line: sanitation
    limit: {kind: working_hours, amount: 4}
"""


def test_packaged_catalogue_holds_every_domain_code() -> None:
    cat = Catalogue.load()
    for code in DOMAIN_CODES:
        entry = cat.get(code)
        assert entry.code == code
        assert entry.major == code[:2]
        assert entry.category_name
        assert entry.line in LINES
        assert entry.limit.amount > 0
    assert [e.code for e in cat.entries()] == sorted(e.code for e in cat.entries())


def test_packaged_limits_match_domain_examples() -> None:
    cat = Catalogue.load()
    # DOMAIN.md: exposed garbage 4 working hours, road cleaning 2, illegal structure 15 days
    assert cat.get("0102").limit == TimeLimit("working_hours", 4)
    assert cat.get("0104").limit == TimeLimit("working_hours", 2)
    assert cat.get("0101").limit == TimeLimit("working_days", 15)
    assert cat.get("0102").line == "sanitation"
    assert cat.get("0505").line == "enforcement"
    assert cat.get("0401").line == "municipal"
    assert cat.get("0401").limit.kind == "emergency_hours"
    assert cat.get("0102").category_name == "市容环境"


def test_unknown_code_raises_with_the_code() -> None:
    cat = Catalogue.load()
    with pytest.raises(UnknownCode, match="9999") as info:
        cat.get("9999")
    assert info.value.code == "9999"
    assert isinstance(info.value, KeyError)
    assert "9999" not in cat
    assert "0102" in cat


def test_defaults_are_filled_and_overridable(tmp_path: Path) -> None:
    text = MINIMAL.replace("version: 1", "version: 1\ndefaults: {merge_radius_m: 42}")
    cat = Catalogue.load(_write(tmp_path, text))
    entry = cat.get("0102")
    assert entry.merge_radius_m == 42
    assert entry.merge_window_h == 24
    assert entry.verification_required is True
    assert entry.category_name_en == "city appearance"
    assert len(cat) == 1
    assert cat.by_line("sanitation") == [entry]
    assert cat.by_line("municipal") == []


@pytest.mark.parametrize(
    ("replace", "by", "field"),
    [
        ("kind: working_hours", "kind: working_hour", "entries[0] (0102).limit.kind"),
        ("amount: 4", "amount: -1", "entries[0] (0102).limit.amount"),
        ("line: sanitation", "line: police", "entries[0] (0102).line"),
        ('code: "0102"', 'code: "02x1"', "entries[0] (02x1).code"),
        ('code: "0102"', "code: 102", "entries[0].code"),
        ('code: "0102"', 'code: "0302"', "entries[0] (0302).code"),
        ("    name_en: exposed garbage\n", "", "entries[0] (0102).name_en"),
        (
            "    line: sanitation\n",
            "    line: sanitation\n    colour: red\n",
            "entries[0] (0102).colour",
        ),
        ("version: 1", "version: 2", "version"),
    ],
)
def test_errors_name_file_and_field(tmp_path: Path, replace: str, by: str, field: str) -> None:
    assert replace in MINIMAL
    path = _write(tmp_path, MINIMAL.replace(replace, by))
    with pytest.raises(CatalogueError) as info:
        Catalogue.load(path)
    message = str(info.value)
    assert str(path) in message
    assert field in message


def test_duplicate_code_is_refused(tmp_path: Path) -> None:
    entry = MINIMAL.split("entries:\n", 1)[1]
    path = _write(tmp_path, MINIMAL + entry)
    with pytest.raises(CatalogueError, match="duplicate code 0102"):
        Catalogue.load(path)


def test_unreadable_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="cannot read"):
        Catalogue.load(tmp_path / "missing.yaml")
    with pytest.raises(CatalogueError, match="not valid YAML"):
        Catalogue.load(_write(tmp_path, "entries: [\n"))
    with pytest.raises(CatalogueError, match="must be a mapping"):
        Catalogue.load(_write(tmp_path, "- 1\n"))


def test_entries_are_frozen_and_validated_in_code() -> None:
    entry = Catalogue.load().get("0102")
    with pytest.raises(AttributeError):
        entry.line = "municipal"  # type: ignore[misc]
    with pytest.raises(ValueError, match="major"):
        CatalogueEntry(
            code="0102",
            name_zh="x",
            name_en="x",
            major="05",
            category_name="x",
            line="sanitation",
            limit=TimeLimit("working_hours", 1),
        )
    assert re.fullmatch(r"4 working h", str(TimeLimit("working_hours", 4)))


def test_every_code_the_edge_raises_is_catalogued() -> None:
    # the edge's built-in rule kinds name catalogue codes; a code the hub does not know
    # could not be filed
    from edge_agent.vision.config import KIND_DEFAULTS

    cat = Catalogue.load()
    for kind, defaults in KIND_DEFAULTS.items():
        assert defaults.code in cat, (kind, defaults.code)


def test_attributes_are_checked_and_offered_to_citizens(tmp_path: Path) -> None:
    cat = Catalogue.load()
    assert [e.code for e in cat if e.citizen_facing] == ["0401", "0404", "0507", "0511", "2104"]
    [blocking] = cat.get("0401").attributes
    assert (blocking.code, blocking.datatype, blocking.required) == (
        "BLOCKING", "singlevaluelist", True,
    )  # fmt: skip
    assert [v.key for v in blocking.values] == ["yes", "partly", "no"]
    bad = MINIMAL + (
        "    sources: [citizen]\n"
        "    attributes:\n"
        "      - {code: KIND, datatype: singlevaluelist,\n"
        "         description_zh: 类, description_en: kind}\n"
    )
    with pytest.raises(CatalogueError, match=r"entries\[0\] \(0102\).*needs values"):
        Catalogue.load(_write(tmp_path, bad))
    twice = MINIMAL + (
        "    attributes:\n"
        "      - {code: N, datatype: number, description_zh: 数, description_en: n}\n"
        "      - {code: N, datatype: text, description_zh: 文, description_en: t}\n"
    )
    with pytest.raises(CatalogueError, match="attribute codes repeat"):
        Catalogue.load(_write(tmp_path, twice))
