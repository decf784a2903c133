"""Open311's pure part: reading reports and queries, the spec's documents, masking."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from central_hub.domain.catalogue import Catalogue
from central_hub.domain.grid import Grid
from central_hub.domain.open311 import (
    Open311Error,
    Problem,
    RequestView,
    error_document,
    mask_email,
    mask_name,
    mask_phone,
    parse_query,
    parse_report,
    place_of_address,
    render,
    request_document,
    request_status,
    status_notes,
)
from central_hub.domain.workflow import Stage

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
CAT = Catalogue.load()
GRID = Grid.load_sample()


def fields(**values: str) -> list[tuple[str, str]]:
    base = {"service_code": "0404", "lat": "28.6472", "long": "121.2615"}
    return list({**base, **values}.items())


def test_a_report_is_read_with_its_attributes_and_contact() -> None:
    got = parse_report(
        [
            *fields(description="  污水\x07满溢 \n", email="a@b.cn", phone="+86 138-1234-5678"),
            ("attribute[ON_ROAD]", "yes"),
            ("jurisdiction_id", "city.gov"),
            ("api_key", "ignored here"),
        ],
        CAT,
        GRID,
    )
    assert (got.service_code, got.lat, got.lon, got.location_source) == (
        "0404", 28.6472, 121.2615, "gps",
    )  # fmt: skip
    assert got.description == "污水满溢"  # control characters XML cannot carry are dropped
    assert got.attributes == {"ON_ROAD": "yes"}
    assert (got.email, got.phone) == ("a@b.cn", "+86 138-1234-5678")


def test_every_problem_is_listed_and_the_status_says_which_kind() -> None:
    with pytest.raises(Open311Error) as caught:
        parse_report(fields(lat="north", email="x", **{"attribute[ON_ROAD]": "maybe"}), CAT, GRID)
    assert caught.value.status == 400
    texts = [p.description for p in caught.value.problems]
    assert any("lat" in t for t in texts)
    assert any("email" in t for t in texts)
    assert any("ON_ROAD" in t for t in texts)
    with pytest.raises(Open311Error) as caught:
        parse_report(fields(service_code="0102"), CAT, GRID)  # a camera's code
    assert caught.value.status == 404
    # Optional means an empty argument is one not sent.
    assert parse_report(fields(email="", **{"attribute[ANY]": ""}), CAT, GRID).email is None


def test_a_multivalue_and_the_other_datatypes() -> None:
    raw = {
        "version": 1,
        "categories": {"04": {"name_zh": "突发事件"}},
        "entries": [
            {
                "code": "0499",
                "name_zh": "测试",
                "name_en": "test",
                "line": "municipal",
                "limit": {"kind": "emergency_hours", "amount": 1},
                "sources": ["citizen"],
                "attributes": [
                    {"code": "KINDS", "datatype": "multivaluelist", "description_zh": "类",
                     "description_en": "kinds", "values": [
                         {"key": "a", "name_zh": "甲", "name_en": "A"},
                         {"key": "b", "name_zh": "乙", "name_en": "B"}]},
                    {"code": "DEPTH", "datatype": "number", "description_zh": "深",
                     "description_en": "depth"},
                    {"code": "SEEN", "datatype": "datetime", "description_zh": "时",
                     "description_en": "seen"},
                    {"code": "NOTE", "datatype": "string", "description_zh": "注",
                     "description_en": "note"},
                ],
            }
        ],
    }  # fmt: skip
    cat = Catalogue.parse(raw)
    ok = parse_report(
        [
            *fields(service_code="0499"),
            ("attribute[KINDS][]", "b"),
            ("attribute[KINDS][]", "a"),
            ("attribute[DEPTH]", "1.5"),
            ("attribute[SEEN]", "2026-11-23T08:00:00+08:00"),
        ],
        cat,
        GRID,
    )
    assert ok.attributes == {
        "KINDS": ["a", "b"], "DEPTH": "1.5", "SEEN": "2026-11-23T08:00:00+08:00",
    }  # fmt: skip
    bad = [
        ("attribute[KINDS][]", "c"),
        ("attribute[DEPTH]", "nan"),
        ("attribute[SEEN]", "2026-11-23T08:00:00"),
        ("attribute[NOTE]", "two\nlines"),
    ]
    with pytest.raises(Open311Error) as caught:
        parse_report([*fields(service_code="0499"), *bad], cat, GRID)
    assert len(caught.value.problems) == 4


def test_an_address_is_placed_only_when_it_names_the_grid() -> None:
    road = place_of_address("东西一路(示例) 12号", GRID)
    assert road is not None
    assert GRID.locate(*road) is not None
    cell = GRID.get("hy-st-11")
    assert place_of_address("城中二片 第11网格 菜场门口", GRID) == cell.centroid
    assert place_of_address("somewhere else", GRID) is None


def test_the_query_and_its_90_day_rule() -> None:
    q = parse_query({}, NOW)
    assert (q.start, q.end, q.ids, q.codes, q.statuses) == (
        NOW - timedelta(days=90), NOW, None, None, None,
    )  # fmt: skip
    start = datetime(2026, 1, 1, tzinfo=UTC)
    q = parse_query({"start_date": "2026-01-01T00:00:00Z"}, NOW)
    assert (q.start, q.end) == (start, start + timedelta(days=90))
    q = parse_query({"end_date": "2026-01-01T08:00:00+08:00"}, NOW)
    assert (q.start, q.end) == (start - timedelta(days=90), start)
    exactly = {"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-04-01T00:00:00Z"}
    assert parse_query(exactly, NOW).end - parse_query(exactly, NOW).start == timedelta(days=90)
    for bad in (
        {"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-04-01T00:00:01Z"},
        {"start_date": "2026-01-01"},
        {"end_date": "yesterday"},
        {"status": "open,done"},
        {"service_request_id": "1,-2"},
    ):
        with pytest.raises(Open311Error) as caught:
            parse_query(bad, NOW)
        assert caught.value.status == 400, bad
    q = parse_query({"service_request_id": "3, 1", "status": "open", "service_code": "0401"}, NOW)
    assert (q.ids, q.codes, q.statuses) == ((3, 1), ("0401",), frozenset({"open"}))


def view(stage: Stage, **over: object) -> RequestView:
    base: dict[str, object] = {
        "id": 7, "token": "t", "code": "0401", "lat": 28.6, "lon": 121.2, "address": None,
        "description": "<b>洞</b> & hole", "media_url": "https://m.example/1.jpg",
        "requested_at": NOW, "stage": stage, "line": "municipal", "squad_id": "sz-1",
        "deadline": NOW + timedelta(hours=4), "case_updated_at": NOW, "closed_at": None,
    }  # fmt: skip
    base.update(over)
    return RequestView(**base)  # type: ignore[arg-type]


def test_statuses_follow_the_workflow() -> None:
    open_stages = set(Stage) - {Stage.CLOSED, Stage.CANCELLED}
    assert {request_status(s) for s in open_stages} == {"open"}
    assert request_status(Stage.CLOSED) == request_status(Stage.CANCELLED) == "closed"
    cancelled = view(Stage.CANCELLED, cancel_reason="重复上报 duplicate")
    assert status_notes(cancelled, None) == "不予立案 not registered: 重复上报 duplicate"
    assert status_notes(cancelled, "en") == "not registered: 重复上报 duplicate"
    assert status_notes(view(Stage.DISPATCHED), "zh-CN") == "已派遣，处置中"


def test_documents_render_as_the_spec_writes_them() -> None:
    closed_at = NOW + timedelta(hours=3)
    docs = request_document(
        [view(Stage.REPORTED), view(Stage.CLOSED, closed_at=closed_at)], CAT, None
    )
    body = render("service_requests", docs, "xml", SH)
    assert body.startswith(b'<?xml version="1.0" encoding="utf-8"?>\n<service_requests>')
    root = ET.fromstring(body)
    first, second = list(root)
    assert first.findtext("description") == ""  # unverified: withheld
    assert first.findtext("media_url") == ""
    assert first.findtext("requested_datetime") == "2026-11-23T09:00:00+08:00"
    assert first.findtext("expected_datetime") == "2026-11-23T13:00:00+08:00"
    assert first.findtext("agency_responsible") == "市政 municipal / sz-1"
    assert second.findtext("description") == "<b>洞</b> & hole"  # escaped, read back
    assert second.findtext("updated_datetime") == "2026-11-23T12:00:00+08:00"
    assert second.findtext("expected_datetime") == ""
    data = json.loads(render("service_requests", docs, "json", SH))
    assert data[0]["description"] is None
    assert data[1]["media_url"] == "https://m.example/1.jpg"
    assert data[0]["lat"] == 28.6
    assert data[0]["service_request_id"] == 7
    errors = render(
        "errors", error_document([Problem(403, "no key"), Problem(400, "x")]), "xml", SH
    )
    assert errors.endswith(
        b"<errors><error><code>403</code><description>no key</description></error>"
        b"<error><code>400</code><description>x</description></error></errors>"
    )
    assert json.loads(render("errors", error_document([Problem(404, "none")]), "json", SH)) == [
        {"code": 404, "description": "none"}
    ]


def test_contact_is_masked() -> None:
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("+86 138 1234 5678") == "138****5678"
    assert mask_phone("110") == "*10"
    assert mask_email("zhang.san@example.com") == "z***@example.com"
    assert mask_name("张三") == "张*"
    assert mask_name("李") == "李*"
    assert mask_phone(None) is None
    assert mask_email("") == ""
