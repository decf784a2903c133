"""The service-object and vehicle registries' rules: rows in, records or problems out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from central_hub.domain.grid import Grid
from central_hub.domain.industries import DEFAULT_INDUSTRIES_PATH, IndustryError, Taxonomy
from central_hub.domain.service_objects import (
    PLATE_PROVINCES,
    ObjectKind,
    Problem,
    check_header,
    check_objects,
    check_vehicles,
    distance_m,
    normalise_phone,
    normalise_plate,
    record_fields,
)

INSIDE = (28.6472, 121.2615)  # the sample district's market street


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return Taxonomy.load()


@pytest.fixture(scope="module")
def grid() -> Grid:
    return Grid.load_sample()


def shop(**change: Any) -> dict[str, object]:
    row: dict[str, object] = {
        "kind": "street_shop",
        "name": "老王修鞋",
        "address": "县前街 12 号",
        "industry": "02",
        "subcategory": "0205",
        "legal_representative": "王大成",
        "lat": str(INSIDE[0]),
        "lon": str(INSIDE[1]),
        "contact_name": "王大成",
        "contact_role": "店主",
        "contact_phone": "138 1234 5678",
        "contact_email": "",
        "notes": "",
    }
    row.update(change)
    return row


# ------------------------------------------------------------------ the taxonomy


def test_the_packaged_taxonomy_has_20_industries_and_131_subcategories(
    taxonomy: Taxonomy,
) -> None:
    assert len(taxonomy) == 20
    assert taxonomy.subcategory_count() == 131
    names = {i.name_en for i in taxonomy}
    assert {"education and training", "repair", "beauty", "finance", "agency"} <= names
    assert taxonomy.find_subcategory("Hair Salon") == taxonomy.subcategory("0301")
    assert taxonomy.find_industry("维修服务") == taxonomy.industry("02")


def test_a_bad_taxonomy_names_every_problem_with_its_line(tmp_path: Path) -> None:
    text = DEFAULT_INDUSTRIES_PATH.read_text(encoding="utf-8")
    bad = text.replace('code: "0203"', 'code: "0303"').replace("name_zh: 美容美发", "name_zh: ''")
    path = tmp_path / "industries.yaml"
    path.write_text(bad, encoding="utf-8")
    with pytest.raises(IndustryError) as caught:
        Taxonomy.load(path)
    problems = caught.value.problems
    assert str(path) in str(caught.value)
    line_0203 = next(n for n, s in enumerate(bad.splitlines(), 1) if '"0303", name_zh: 家电' in s)
    assert any(
        p.startswith(f"line {line_0203}: industries[1] (02).subcategories[2] (0303).code")
        and "industry's code 02" in p
        for p in problems
    ), problems
    assert any("(0303).code: '0303' is used twice" in p for p in problems), problems
    assert any("industries[2] (03).name_zh" in p for p in problems), problems


def test_a_taxonomy_with_a_name_used_twice_or_unknown_keys_is_refused() -> None:
    raw = yaml.safe_load(DEFAULT_INDUSTRIES_PATH.read_text(encoding="utf-8"))
    raw["industries"][1]["name_en"] = "Education and Training"
    raw["industries"][0]["colour"] = "red"
    with pytest.raises(IndustryError) as caught:
        Taxonomy.parse(raw)
    assert any("names another industry too" in p for p in caught.value.problems)
    assert any("unknown keys colour" in p for p in caught.value.problems)


# ------------------------------------------------------------------ objects


def test_a_good_shop_is_normalised_and_placed_in_its_street_cell(
    taxonomy: Taxonomy, grid: Grid
) -> None:
    good, problems = check_objects(
        [(2, shop(name="  老王  修鞋 ", lat="２８.6472"))], taxonomy, grid
    )
    assert problems == []
    [(row, record)] = good
    assert row == 2
    assert record.kind is ObjectKind.STREET_SHOP
    assert record.name == "老王 修鞋"  # trimmed, spaces folded, full-width digits plain
    assert record.grid_cell_id == grid.locate(*INSIDE).id  # type: ignore[union-attr]
    assert record.contact is not None
    assert record.contact.phone == "13812345678"
    assert record_fields(record)["subcategory"] == "0205"


@pytest.mark.parametrize(
    ("change", "column", "words"),
    [
        ({"name": ""}, "name", "required"),
        ({"address": " "}, "address", "required"),
        ({"kind": "shopfront"}, "kind", "is not one of"),
        ({"industry": ""}, "industry", "required for a street_shop"),
        ({"subcategory": "9999"}, "subcategory", "no such subcategory"),
        ({"subcategory": "0301"}, "subcategory", "belongs to industry 03"),
        ({"industry": "99"}, "industry", "no such industry"),
        ({"legal_representative": ""}, "legal_representative", "required for a street_shop"),
        ({"contact_phone": "12345"}, "contact_phone", "is not a mobile"),
        ({"contact_email": "nobody", "contact_phone": ""}, "contact_email", "not an e-mail"),
        ({"contact_name": ""}, "contact_name", "needs a name"),
        ({"lat": "31.2", "lon": "121.47"}, "lat", "outside the district"),
        ({"lat": "north"}, "lat", "is not a number"),
        ({"lon": ""}, "lon", "missing while lat is given"),
        ({"name": "店" * 201}, "name", "at most 200"),
    ],
)
def test_a_bad_row_is_reported_with_its_row_and_column(
    taxonomy: Taxonomy, grid: Grid, change: dict[str, object], column: str, words: str
) -> None:
    good, problems = check_objects(
        [(2, shop()), (3, shop(**{"name": "另一家", **change}))], taxonomy, grid
    )
    assert [r for r, _ in good] == [2]
    bad = [p for p in problems if p.row == 3]
    assert any(p.column == column and words in p.reason for p in bad), problems
    assert all(p.row == 3 for p in problems)


def test_every_problem_of_a_row_is_reported(taxonomy: Taxonomy, grid: Grid) -> None:
    _, problems = check_objects(
        [(7, shop(name="", industry="", legal_representative="", contact_phone="x"))],
        taxonomy,
        grid,
    )
    assert {p.column for p in problems} == {
        "name",
        "industry",
        "legal_representative",
        "contact_phone",
    }
    assert str(problems[0]).startswith("row 7, column ")


def test_communities_and_facilities_need_no_industry(taxonomy: Taxonomy, grid: Grid) -> None:
    rows = [
        (2, {"kind": "社区", "name": "城东社区", "address": "东门路 1 号"}),
        (3, {"kind": "key municipal facility", "name": "东门公厕", "address": "东门路 9 号"}),
    ]
    good, problems = check_objects(rows, taxonomy, grid)
    assert problems == []
    assert [r.kind for _, r in good] == [ObjectKind.COMMUNITY, ObjectKind.FACILITY]
    assert good[0][1].contact is None
    assert good[0][1].lat is None


def test_a_repeated_name_and_address_is_a_problem_on_the_later_row(
    taxonomy: Taxonomy, grid: Grid
) -> None:
    good, problems = check_objects(
        [(2, shop()), (3, shop(address="县前街  12 号"))], taxonomy, grid
    )
    assert [r for r, _ in good] == [2]
    assert problems == [Problem(3, "name", "same name and address as row 2")]


def test_blank_rows_are_skipped(taxonomy: Taxonomy, grid: Grid) -> None:
    good, problems = check_objects([(2, {"name": " ", "kind": None}), (3, shop())], taxonomy, grid)
    assert problems == []
    assert len(good) == 1


# ------------------------------------------------------------------ header


def test_the_header_takes_keys_or_chinese_headings_and_refuses_unknown_columns() -> None:
    where, problems = check_header(["类型", "Name", "地址", "phone number"])
    assert where == {"kind": 0, "name": 1, "address": 2}
    assert problems == [
        Problem(1, "phone number", problems[0].reason),
    ]
    assert "unknown column" in problems[0].reason
    _, missing = check_header(["name", "name"])
    assert Problem(1, "name", "column name is named twice") in missing
    assert {p.column for p in missing if p.reason == "required column missing"} == {
        "kind",
        "address",
    }


# ------------------------------------------------------------------ phones, plates


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("13812345678", "13812345678"),
        ("+86 138-1234-5678", "13812345678"),
        ("0576-88123456", "0576-88123456"),
        ("(0576) 8812 3456转12", "0576-88123456#12"),
        ("010 61234567", "010-61234567"),
        ("12812345678", None),
        ("88123456", None),
        ("phone", None),
    ],
)
def test_phones(text: str, expected: str | None) -> None:
    assert normalise_phone(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("浙JA12345", "浙J·A12345"),
        ("浙j·a1234o", "浙J·A12340"),
        (" 浙J D12345 ", "浙J·D12345"),
        ("浙J1234学", "浙J·1234学"),
        ("XJA12345", None),
        ("浙JA123", None),
    ],
)
def test_plates_are_written_as_the_reader_writes_them(text: str, expected: str | None) -> None:
    assert normalise_plate(text) == expected


def test_the_provinces_are_the_plate_readers() -> None:
    plates = pytest.importorskip("edge_agent.vision.plates")
    assert PLATE_PROVINCES == plates.PROVINCES
    assert normalise_plate("浙JA12345") == plates.normalise_plate("浙JA12345")


def test_vehicles_are_checked_like_objects() -> None:
    good, problems = check_vehicles(
        [
            (2, {"plate": "浙JA12345", "owner_name": "李四", "phone": "13912345678"}),
            (3, {"plate": "浙J·A12345", "owner_name": "张三", "phone": "13912345679"}),
            (4, {"plate": "ABC", "owner_name": "", "phone": "123"}),
        ]
    )
    assert [(r, v.plate) for r, v in good] == [(2, "浙J·A12345")]
    assert {(p.row, p.column) for p in problems} == {
        (3, "plate"),
        (4, "plate"),
        (4, "owner_name"),
        (4, "phone"),
    }


def test_distance() -> None:
    assert distance_m(28.6472, 121.2615, 28.6472, 121.2615) == 0
    assert 110 < distance_m(28.6472, 121.2615, 28.6482, 121.2615) < 112
