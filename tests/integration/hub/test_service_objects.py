"""The service-object and vehicle registries on SQLite and PostgreSQL: imports that report
every bad row and update on re-import, search, the notice audiences, 0504 case links."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from openpyxl import Workbook

from central_hub.cli import main
from central_hub.db.schema import audits, cases, service_object_contacts, service_objects
from central_hub.domain.service_objects import ObjectKind, distance_m
from central_hub.domain.workflow import Role
from central_hub.errors import ConflictError, InvalidInputError, NotFoundError
from central_hub.hub import Hub
from central_hub.services.service_objects import InvalidObject, ObjectQuery, ServiceObjects
from central_hub.services.users import User
from central_hub.services.vehicles import VehicleRegistry

SHOP = (28.6472, 121.2615)  # on the sample district's market street
HEADER = (
    "kind,name,address,industry,subcategory,legal_representative,lat,lon,"
    "contact_name,contact_role,contact_phone,contact_email,notes\n"
)
OPERATOR = User(id=1, name="ops", role=Role.OPERATOR)


def north(metres: float) -> float:
    """SHOP's latitude moved ``metres`` north."""
    return SHOP[0] + metres / 111_195.0


FILE = HEADER + "\n".join(
    [
        f"street_shop,老王修鞋,县前街 12 号,02,0205,王大成,{SHOP[0]},{SHOP[1]},"
        "王大成,店主,13812345678,,",
        f"street_shop,Golden Scissors,县前街 14 号,03,0301,李美,{north(30)},{SHOP[1]},"
        "李美,店长,0576-88123456,meili@example.com,",
        "company,,县前街 16 号,04,0401,赵六,,,,,,,",  # row 4: no name
        "street_shop,小李维修,横街路 3 号,02,0301,李四,,,,,,,",  # row 5: 0301 is beauty
        "street_shop,远方小店,上海路 1 号,07,0701,钱七,31.2304,121.4737,,,,,",  # row 6: outside
        "community,城东社区,东门路 1 号,,,,,,周主任,主任,13900001111,,",
        "street_shop,无照小店,横街路 9 号,07,0701,,,,,,12345,,",  # row 8: no rep, bad phone
    ]
)


@pytest.fixture
def registry(hub: Hub) -> ServiceObjects:
    return ServiceObjects.of_hub(hub)


async def _import_stores_the_good_rows_and_reports_every_bad_one(
    registry: ServiceObjects,
) -> None:
    report = await registry.import_file(FILE.encode(), "shops.csv", "cli")
    assert (report.rows, report.created, report.bad_rows) == (7, 3, 4)
    found = {(p.row, p.column) for p in report.problems}
    assert found == {
        (4, "name"),
        (5, "subcategory"),
        (6, "lat"),
        (8, "legal_representative"),
        (8, "contact_name"),
        (8, "contact_phone"),
    }
    assert "belongs to industry 03" in next(p.reason for p in report.problems if p.row == 5)
    names = [o.name for o in await registry.search(ObjectQuery())]
    assert names == sorted(["老王修鞋", "Golden Scissors", "城东社区"])
    shop = (await registry.search(ObjectQuery(text="修鞋")))[0]
    assert shop.grid_cell_id == registry.grid.locate(*SHOP).id  # type: ignore[union-attr]
    assert shop.subcategory_name == "修鞋配钥匙"
    detail = await registry.get(shop.id)
    assert [(c.name, c.phone) for c in detail.contacts] == [("王大成", "13812345678")]
    assert detail.audits[0].action == "create"
    assert detail.audits[0].changes["_source"] == ["import shops.csv", 2]


async def _re_import_updates_rather_than_duplicates(registry: ServiceObjects) -> None:
    await registry.import_file(FILE.encode(), "shops.csv", "cli")
    changed = FILE.replace("王大成,店主,13812345678", "王大成,店主,13812345679").replace(
        "李美,店长", "李美,老板"
    )
    changed = changed.replace("县前街 14 号,03,0301,李美", "县前街 14 号,03,0302,李美")
    report = await registry.import_file(changed.encode(), "shops-v2.csv", "cli")
    assert (report.created, report.updated, report.unchanged, report.bad_rows) == (0, 2, 1, 4)
    async with registry.engine.connect() as conn:
        objects = await conn.execute(sa.select(sa.func.count()).select_from(service_objects))
        contacts = await conn.execute(
            sa.select(sa.func.count()).select_from(service_object_contacts)
        )
        assert (objects.scalar_one(), contacts.scalar_one()) == (3, 3)
    golden = (await registry.search(ObjectQuery(text="golden")))[0]
    assert golden.subcategory == "0302"
    trail = (await registry.get(golden.id)).audits
    assert trail[-1].action == "update"
    assert trail[-1].changes["subcategory"] == ["0301", "0302"]
    assert trail[-1].changes["contact 李美"][1][0] == "老板"
    assert trail[-1].changes["_source"] == ["import shops-v2.csv", 3]


async def _an_xlsx_import_reports_rows_as_the_spreadsheet_numbers_them(
    registry: ServiceObjects,
) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["类型", "名称", "地址", "行业", "子类", "法定代表人", "联系人", "联系电话"])
    sheet.append(["沿街商户", "老王修鞋", "县前街 12 号", "维修服务", "修鞋配钥匙", "王大成",
                  "王大成", 13812345678])  # fmt: skip
    sheet.append([None] * 8)  # a blank row between
    sheet.append(["沿街商户", "新店", "县前街 20 号", "维修服务", "理发店", "张三", None, None])
    out = io.BytesIO()
    book.save(out)
    report = await registry.import_file(out.getvalue(), "shops.xlsx", "cli")
    assert report.created == 1
    assert [(p.row, p.column) for p in report.problems] == [(4, "subcategory")]
    detail = await registry.get((await registry.search(ObjectQuery(text="老王")))[0].id)
    assert detail.contacts[0].phone == "13812345678"  # a number cell, read as the phone


async def _a_file_with_an_unknown_column_is_refused_whole(registry: ServiceObjects) -> None:
    data = "kind,name,address,legal_rep\nstreet_shop,店,路,张三\n".encode()
    report = await registry.import_file(data, "typo.csv", "cli")
    assert report.created == 0
    assert [(p.row, p.column) for p in report.problems] == [(1, "legal_rep")]
    assert await registry.count(ObjectQuery()) == 0


async def _search_filters_by_kind_industry_subcategory_and_grid_area(
    registry: ServiceObjects,
) -> None:
    await registry.import_file(FILE.encode(), "shops.csv", "cli")
    assert [o.name for o in await registry.search(ObjectQuery(text="SCISSORS"))] == [
        "Golden Scissors"
    ]
    assert [o.name for o in await registry.search(ObjectQuery(text="县前街 12"))] == ["老王修鞋"]
    assert await registry.search(ObjectQuery(text="100%")) == []  # % is a character here
    kinds = await registry.search(ObjectQuery(kind=ObjectKind.COMMUNITY))
    assert [o.name for o in kinds] == ["城东社区"]
    assert [o.name for o in await registry.search(ObjectQuery(industry="03"))] == [
        "Golden Scissors"
    ]
    assert [o.name for o in await registry.search(ObjectQuery(subcategory="0205"))] == ["老王修鞋"]
    cell = registry.grid.locate(*SHOP)
    assert cell is not None
    area = registry.grid.path(cell.id)[1].id  # the squadron's jurisdiction above the street
    placed = await registry.search(ObjectQuery(cells=frozenset(registry.grid.subtree(area))))
    assert "老王修鞋" in [o.name for o in placed]
    assert "城东社区" not in [o.name for o in placed]  # no location, in no area


async def _the_four_notice_audiences(registry: ServiceObjects) -> None:
    await registry.import_file(FILE.encode(), "shops.csv", "cli")
    shop = (await registry.search(ObjectQuery(text="老王")))[0]
    one = await registry.contacts_of_object(shop.id)
    assert [(c.name, c.phone, c.object_name) for c in one] == [
        ("王大成", "13812345678", "老王修鞋")
    ]
    assert [c.email for c in await registry.contacts_of_industry("03")] == ["meili@example.com"]
    assert [c.name for c in await registry.contacts_of_subcategory("0205")] == ["王大成"]
    cell = registry.grid.locate(*SHOP)
    assert cell is not None
    in_area = await registry.contacts_in_area(registry.grid.path(cell.id)[0].id)
    assert sorted(c.name for c in in_area) == ["李美", "王大成"]
    with pytest.raises(NotFoundError):
        await registry.contacts_of_object(9999)
    with pytest.raises(InvalidInputError):
        await registry.contacts_of_industry("99")


async def _an_edit_is_checked_and_audited(registry: ServiceObjects) -> None:
    await registry.import_file(FILE.encode(), "shops.csv", "cli")
    shop = (await registry.search(ObjectQuery(text="老王")))[0]
    fields = {
        "kind": "street_shop",
        "name": "老王修鞋配钥匙",
        "address": shop.address,
        "industry": "02",
        "subcategory": "0205",
        "legal_representative": "王大成",
        "lat": str(shop.lat),
        "lon": str(shop.lon),
    }
    detail = await registry.update(shop.id, fields, OPERATOR)
    assert detail.object.name == "老王修鞋配钥匙"
    last = detail.audits[-1]
    assert (last.actor, last.action) == ("ops", "update")
    assert last.changes == {"name": ["老王修鞋", "老王修鞋配钥匙"]}
    with pytest.raises(InvalidObject) as bad:
        await registry.update(shop.id, {**fields, "legal_representative": ""}, OPERATOR)
    assert bad.value.problems[0].column == "legal_representative"
    golden = (await registry.search(ObjectQuery(text="golden")))[0]
    clash = {**fields, "name": golden.name, "address": golden.address}
    with pytest.raises(ConflictError):
        await registry.update(shop.id, clash, OPERATOR)
    with pytest.raises(ConflictError):
        await registry.create(clash, OPERATOR)


async def test_an_import_reports_every_bad_row_and_a_re_import_updates(
    registry: ServiceObjects,
) -> None:
    await _import_stores_the_good_rows_and_reports_every_bad_one(registry)
    await _re_import_updates_rather_than_duplicates(registry)


async def test_search_the_notice_audiences_and_an_audited_edit(registry: ServiceObjects) -> None:
    await registry.import_file(FILE.encode(), "shops.csv", "cli")
    await _search_filters_by_kind_industry_subcategory_and_grid_area(registry)
    await _the_four_notice_audiences(registry)
    await _an_edit_is_checked_and_audited(registry)


async def test_xlsx_rows_and_a_refused_header(sqlite_hub: Hub) -> None:
    """Reading files does not depend on the database: SQLite alone."""
    registry = ServiceObjects.of_hub(sqlite_hub)
    await _a_file_with_an_unknown_column_is_refused_whole(registry)
    await _an_xlsx_import_reports_rows_as_the_spreadsheet_numbers_them(registry)


async def _case(hub: Hub, code: str, lat: float, lon: float) -> int:
    at = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    async with hub.engine.begin() as conn:
        result = await conn.execute(
            cases.insert()
            .values(
                source="ai", code=code, major=code[:2], category="test", title=f"test {code}",
                line="enforcement", stage="reported", lat=lat, lon=lon, reported_at=at,
                limit_kind="working_hours", limit_amount=4.0, verification_required=True,
                event_count=1, last_event_at=at, updated_at=at,
            )
            .returning(cases.c.id)
        )  # fmt: skip
        return int(result.scalar_one())


async def test_a_0504_case_is_linked_once_to_the_nearest_street_shop(
    hub: Hub, registry: ServiceObjects
) -> None:
    await registry.import_file(FILE.encode(), "shops.csv", "cli")
    near = await _case(hub, "0504", north(8), SHOP[1])  # 8 m from 老王修鞋, 22 m from Golden
    far = await _case(hub, "0504", north(60), SHOP[1])  # 30 m from Golden: beyond 15 m
    other = await _case(hub, "0102", SHOP[0], SHOP[1])  # not a shop-front code
    link = await registry.auto_link(near)
    assert link is not None
    assert (link.object.name, link.how) == ("老王修鞋", "auto")
    assert distance_m(north(8), SHOP[1], *SHOP) < registry.link_radius_m
    assert await registry.auto_link(near) is None  # once
    assert await registry.auto_link(far) is None
    assert await registry.auto_link(other) is None
    assert [x.object.name for x in await registry.links_of_case(near)] == ["老王修鞋"]
    # An operator takes it off: the automatic link is not made again behind their back.
    await registry.unlink(near, link.object.id, OPERATOR, "the stall is the neighbour's")
    assert await registry.auto_link(near) is None
    assert await registry.links_of_case(near) == []
    golden = (await registry.search(ObjectQuery(text="golden")))[0]
    await registry.link(near, golden.id, OPERATOR)
    with pytest.raises(ConflictError):
        await registry.link(near, golden.id, OPERATOR)
    assert [(x.object.name, x.how) for x in await registry.links_of_case(near)] == [
        ("Golden Scissors", "manual")
    ]
    assert (await registry.get(golden.id)).case_ids == [near]
    async with hub.engine.connect() as conn:
        trail = (
            await conn.execute(
                sa.select(audits.c.action, audits.c.actor, audits.c.reason)
                .where(audits.c.case_id == near)
                .order_by(audits.c.id)
            )
        ).all()
    assert [(a, who) for a, who, _ in trail] == [
        ("object_link", "hub"),
        ("object_unlink", "ops"),
        ("object_link", "ops"),
    ]
    assert "the stall is the neighbour's" in trail[1][2]


async def test_vehicles_import_and_lookup_by_plate(hub: Hub) -> None:
    registry = VehicleRegistry(hub.engine, hub.clock)
    data = "车牌,车主,电话,备注\n浙JA12345,李四,13912345678,\n" + (
        "浙J·A12345,张三,139,\nAB1,王五,13912345670,\n"
    )
    report = await registry.import_file(data.encode(), "cars.csv", "cli")
    assert (report.created, report.bad_rows) == (1, 2)
    assert [(p.row, p.column) for p in report.problems] == [(3, "phone"), (4, "plate")]
    found = await registry.lookup("浙ja 12345")
    assert found is not None
    assert (found.plate, found.owner_name, found.phone) == ("浙J·A12345", "李四", "13912345678")
    again = await registry.import_file(
        "plate,owner_name,phone\n浙JA12345,李四,13912345679\n".encode(), "cars2.csv", "cli"
    )
    assert (again.created, again.updated) == (0, 1)
    assert await registry.count() == 1
    assert await registry.lookup("浙J·B00000") is None
    with pytest.raises(InvalidInputError):
        await registry.lookup("not a plate")


def test_the_cli_prints_every_bad_row_and_a_bad_taxonomy_stops_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shops = tmp_path / "shops.csv"
    shops.write_text(FILE, encoding="utf-8")
    data_dir = str(tmp_path / "hub")
    assert main(["--data-dir", data_dir, "objects", "import", str(shops)]) == 1
    out, err = capsys.readouterr()
    assert "shops.csv: 7 rows: 3 created, 0 updated, 0 unchanged, 4 bad" in out
    assert f"{shops}: row 4, column name: required" in err.splitlines()
    assert len(err.splitlines()) == 6  # every problem of the four bad rows
    good = tmp_path / "good.csv"
    good.write_text(HEADER + "community,城东社区,东门路 1 号,,,,,,,,,,\n", encoding="utf-8")
    assert main(["--data-dir", data_dir, "objects", "import", str(good)]) == 0
    assert "0 created, 0 updated, 1 unchanged, 0 bad" in capsys.readouterr().out
    broken = tmp_path / "industries.yaml"
    broken.write_text('version: 1\nindustries:\n  - {code: "1", name_zh: 教育}\n', "utf-8")
    monkeypatch.setenv("XH_HUB_INDUSTRIES_PATH", str(broken))
    assert main(["--data-dir", data_dir, "objects", "import", str(good)]) == 1
    err = capsys.readouterr().err
    assert f"{broken}: " in err
    assert "line 3: industries[0].code: '1' is not a quoted string of 2 digits" in err
