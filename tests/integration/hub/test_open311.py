"""Open311 GeoReport v2 conformance (issue #15 items 1 and 2): every endpoint in XML and
JSON with the spec's examples, element names and order as the spec writes them, the
spec's error list for every refusal, and citizen reports in the case workflow (filed as
source citizen, merged at the same place, their status following the case).

Storage-bound tests run on SQLite and PostgreSQL (the ``hub`` fixture)."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import io
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from central_hub.api import API_PREFIX, create_app
from central_hub.api.open311 import Open311Limits, Open311State
from central_hub.db.schema import cases, citizen_reports
from central_hub.domain.open311 import Open311Error, ReportInput
from central_hub.domain.workflow import Action, Role, Stage
from central_hub.errors import StorageError
from central_hub.hub import Hub
from central_hub.services.citizen_reports import CitizenReports, Open311Keys, Submitted
from central_hub.services.throttle import RateBudget
from central_hub.services.users import User
from central_hub.testing import FakeClock

pytestmark = pytest.mark.integration

V2 = "/open311/v2"
#: Inside the sample district (street cell hy-st-11, the market street).
PLACE = (28.6472, 121.2615)
#: About 20 m north: the same road collapse (0401 merges within 50 m).
NEAR = (28.64738, 121.2615)
FAR = (28.6400, 121.2530)
SERVICE_FIELDS = [
    "service_code", "service_name", "description", "metadata", "type", "keywords", "group",
]  # fmt: skip
ATTRIBUTE_FIELDS = [
    "variable", "code", "datatype", "required", "datatype_description", "order",
    "description", "values",
]  # fmt: skip
REQUEST_FIELDS = [
    "service_request_id", "status", "status_notes", "service_name", "service_code",
    "description", "agency_responsible", "service_notice", "requested_datetime",
    "updated_datetime", "expected_datetime", "address", "address_id", "zipcode", "lat",
    "long", "media_url",
]  # fmt: skip
POST_FIELDS = ["service_request_id", "service_notice", "account_id"]
CITIZEN_CODES = ["0401", "0404", "0507", "0511", "2104"]
XML_DECLARATION = b'<?xml version="1.0" encoding="utf-8"?>'
#: The spec's POST example, with a code, place and attribute of this district.
SPEC_EXAMPLE_BODY = (
    "api_key={key}&jurisdiction_id=city.gov&service_code=0401&lat=28.6472&long=121.2615"
    "&address_string=1234+5th+street&email=smit333%40sfgov.edu&device_id=tt222111"
    "&account_id=123456&first_name=john&last_name=smith&phone=13812345678"
    "&description=A+large+sinkhole+is+destroying+the+street"
    "&media_url=http%3A%2F%2Ffarm3.static.flickr.com%2F2002%2F2212426634_5ed477a060.jpg"
    "&attribute[BLOCKING]=yes"
)
FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}


@pytest.fixture
async def api(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(hub)), base_url="http://hub"
    ) as client:
        yield client


@pytest.fixture
async def key(hub: Hub) -> str:
    _, secret = await Open311Keys(hub.engine, hub.clock).add("city-app")
    return secret


def xml(resp: httpx.Response) -> ET.Element:
    assert resp.headers["content-type"] == "text/xml; charset=utf-8"
    assert resp.content.startswith(XML_DECLARATION)
    return ET.fromstring(resp.content)


def tags(element: ET.Element) -> list[str]:
    return [child.tag for child in element]


def errors_xml(resp: httpx.Response, status: int) -> list[tuple[str, str]]:
    """The spec's error list: <errors><error><code/><description/></error>...</errors>."""
    assert resp.status_code == status, resp.text
    root = xml(resp)
    assert root.tag == "errors"
    out = []
    for error in root:
        assert error.tag == "error"
        assert tags(error) == ["code", "description"]
        out.append((error.findtext("code") or "", error.findtext("description") or ""))
    assert out
    return out


def errors_json(resp: httpx.Response, status: int) -> list[dict[str, Any]]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    body = resp.json()
    assert isinstance(body, list)
    assert body
    for error in body:
        assert list(error) == ["code", "description"]
        assert isinstance(error["code"], int)
    return body


def report(key: str, where: tuple[float, float] = PLACE, **extra: str) -> dict[str, str]:
    data = {
        "api_key": key,
        "service_code": "0401",
        "lat": str(where[0]),
        "long": str(where[1]),
        "attribute[BLOCKING]": "partly",
        "description": "路面塌陷 a hole in the road",
        "email": "zhang.san@example.com",
        "phone": "13812345678",
        "first_name": "三",
        "last_name": "张",
    }
    data.update(extra)
    return data


async def post(api: httpx.AsyncClient, data: dict[str, str], fmt: str = "json", **kw: Any) -> Any:
    resp = await api.post(f"{V2}/requests.{fmt}", data=data, **kw)
    assert resp.status_code == 200, resp.text
    return resp.json()[0]["service_request_id"] if fmt == "json" else xml(resp)


async def staff(hub: Hub) -> dict[Role, User]:
    users = {}
    for role in Role:
        user, _ = await hub.users.add(f"{role.value}-o", role)
        users[role] = user
    return users


async def case_of(hub: Hub, request_id: int) -> Any:
    async with hub.engine.connect() as conn:
        return (
            await conn.execute(
                sa.select(cases)
                .join(citizen_reports, citizen_reports.c.case_id == cases.c.id)
                .where(citizen_reports.c.id == request_id)
            )
        ).one()


async def one_request(api: httpx.AsyncClient, request_id: int) -> dict[str, Any]:
    resp = await api.get(f"{V2}/requests/{request_id}.json")
    assert resp.status_code == 200, resp.text
    [item] = resp.json()
    assert list(item) == REQUEST_FIELDS
    return dict(item)


# --- discovery, services, service definitions -------------------------------------------------


async def test_discovery_and_services_in_both_formats(sqlite_hub: Hub) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(sqlite_hub)), base_url="http://hub"
    ) as api:
        for path in ("/open311/discovery.xml", f"{V2}/discovery.xml"):
            root = xml(await api.get(path))
            assert root.tag == "discovery"
            assert tags(root) == ["changeset", "contact", "key_service", "endpoints"]
            [endpoint] = list(root.find("endpoints") or [])
            assert endpoint.tag == "endpoint"
            assert tags(endpoint) == ["specification", "url", "changeset", "type", "formats"]
            assert endpoint.findtext("specification") == "http://wiki.open311.org/GeoReport_v2"
            assert endpoint.findtext("url") == "http://hub/open311/v2"
            formats = endpoint.find("formats")
            assert formats is not None
            assert [(f.tag, f.text) for f in formats] == [
                ("format", "text/xml"), ("format", "application/json"),
            ]  # fmt: skip
            changeset = datetime.fromisoformat(root.findtext("changeset") or "")
            assert changeset.utcoffset() is not None
        disc = (await api.get("/open311/discovery.json")).json()
        assert list(disc) == ["changeset", "contact", "key_service", "endpoints"]
        assert disc["endpoints"][0]["formats"] == ["text/xml", "application/json"]

        root = xml(await api.get(f"{V2}/services.xml"))
        assert root.tag == "services"
        assert {s.tag for s in root} == {"service"}
        assert [s.findtext("service_code") for s in root] == CITIZEN_CODES
        for service in root:
            assert tags(service) == SERVICE_FIELDS
            assert service.findtext("type") == "realtime"
        by_code = {s.findtext("service_code"): s for s in root}
        # Names in zh-CN and English; metadata true where the code has attributes.
        assert by_code["0401"].findtext("service_name") == "路面塌陷 road collapse"
        assert by_code["0401"].findtext("metadata") == "true"
        assert by_code["0507"].findtext("metadata") == "false"
        listed = (await api.get(f"{V2}/services.json")).json()
        assert [list(s) for s in listed] == [SERVICE_FIELDS] * len(CITIZEN_CODES)
        assert listed[0]["metadata"] is True
        assert listed[0]["service_code"] == "0401"
        en = (await api.get(f"{V2}/services.json", params={"locale": "en"})).json()
        zh = (await api.get(f"{V2}/services.json", params={"locale": "zh-CN"})).json()
        assert (en[0]["service_name"], zh[0]["service_name"]) == ("road collapse", "路面塌陷")

        root = xml(await api.get(f"{V2}/services/0401.xml"))
        assert root.tag == "service_definition"
        assert tags(root) == ["service_code", "attributes"]
        [attr] = list(root.find("attributes") or [])
        assert attr.tag == "attribute"
        assert tags(attr) == ATTRIBUTE_FIELDS
        assert attr.findtext("code") == "BLOCKING"
        assert attr.findtext("datatype") == "singlevaluelist"
        assert (attr.findtext("variable"), attr.findtext("required")) == ("true", "true")
        assert attr.findtext("datatype_description") == ""
        assert attr.findtext("order") == "1"
        values = attr.find("values")
        assert values is not None
        assert [tags(v) for v in values] == [["key", "name"]] * 3
        assert [v.findtext("key") for v in values] == ["yes", "partly", "no"]
        definition = (await api.get(f"{V2}/services/0401.json")).json()
        assert list(definition) == ["service_code", "attributes"]
        assert list(definition["attributes"][0]) == ATTRIBUTE_FIELDS
        assert definition["attributes"][0]["datatype_description"] is None
        plain = (await api.get(f"{V2}/services/0507.json")).json()
        assert plain == {"service_code": "0507", "attributes": []}

        # Unknown codes, and codes citizens do not report (a camera's), are 404s.
        for code in ("9999", "0505"):
            [(status, text)] = errors_xml(await api.get(f"{V2}/services/{code}.xml"), 404)
            assert status == "404"
            assert code in text
        [error] = errors_json(await api.get(f"{V2}/services/0505.json"), 404)
        assert error["code"] == 404
        # A format the spec does not have, and paths it does not have.
        errors_xml(await api.get(f"{V2}/services.html"), 404)
        errors_json(await api.get(f"{V2}/nothing.json"), 404)
        # None of it is in the bearer-token API's OpenAPI document.
        assert not [p for p in create_app(sqlite_hub).openapi()["paths"] if "open311" in p]


# --- POST requests -------------------------------------------------------------------------------


async def test_posting_the_spec_example_in_xml_and_json(
    hub: Hub, api: httpx.AsyncClient, key: str
) -> None:
    resp = await api.post(
        f"{V2}/requests.xml", content=SPEC_EXAMPLE_BODY.format(key=key), headers=FORM
    )
    assert resp.status_code == 200, resp.text
    root = xml(resp)
    assert root.tag == "service_requests"
    [request] = list(root)
    assert request.tag == "request"
    assert tags(request) == POST_FIELDS  # realtime: the id, and no token
    first = int(request.findtext("service_request_id") or "0")
    assert request.findtext("account_id") == "123456"
    assert "4 emergency h" in (request.findtext("service_notice") or "")

    resp = await api.post(
        f"{V2}/requests.json", content=SPEC_EXAMPLE_BODY.format(key=key), headers=FORM
    )
    [answer] = resp.json()
    assert list(answer) == POST_FIELDS
    assert answer["service_request_id"] == first + 1
    # Stored as given, the contact included (it is never published).
    async with hub.engine.connect() as conn:
        row = (
            await conn.execute(citizen_reports.select().where(citizen_reports.c.id == first))
        ).one()
    assert (row.email, row.first_name, row.last_name, row.phone) == (
        "smit333@sfgov.edu", "john", "smith", "13812345678",
    )  # fmt: skip
    assert (row.device_id, row.account_id) == ("tt222111", "123456")
    assert row.attributes == {"BLOCKING": "yes"}
    assert row.media_url == "http://farm3.static.flickr.com/2002/2212426634_5ed477a060.jpg"
    assert row.address == "1234 5th street"
    assert row.location_source == "gps"


async def test_post_refusals_in_the_spec_error_format(
    hub: Hub, api: httpx.AsyncClient, key: str
) -> None:
    async def refused(data: dict[str, str], status: int, fmt: str = "xml") -> str:
        resp = await api.post(f"{V2}/requests.{fmt}", data=data)
        if fmt == "json":
            return " | ".join(e["description"] for e in errors_json(resp, status))
        return " | ".join(text for _, text in errors_xml(resp, status))

    no_key = {k: v for k, v in report(key).items() if k != "api_key"}
    assert "Missing api_key" in await refused(no_key, 403)
    assert "Invalid api_key" in await refused({**no_key, "api_key": "xh311_nope"}, 403, "json")
    assert "service_code was not provided" in await refused(
        {k: v for k, v in report(key).items() if k != "service_code"}, 400
    )
    assert "9999" in await refused(report(key, service_code="9999"), 404)
    assert "0505" in await refused(report(key, service_code="0505"), 404, "json")
    unplaced = {k: v for k, v in report(key).items() if k not in ("lat", "long")}
    assert "location was not provided" in await refused(unplaced, 400)
    assert "lat and long must both" in await refused({**unplaced, "lat": "28.6"}, 400)
    assert "latitude" in await refused(report(key, lat="91"), 400)
    assert "no street or road" in await refused({**unplaced, "address_string": "月球"}, 400)
    assert "address_id is not supported" in await refused({**unplaced, "address_id": "7"}, 400)
    needs = {k: v for k, v in report(key).items() if k != "attribute[BLOCKING]"}
    assert "attribute[BLOCKING] is required" in await refused(needs, 400)
    assert "not one of its keys" in await refused(report(key, **{"attribute[BLOCKING]": "x"}), 400)
    assert "not an attribute" in await refused(report(key, **{"attribute[COLOUR]": "red"}), 400)
    assert "media_url" in await refused(report(key, media_url="javascript:alert(1)"), 400)
    # Several problems at once are listed together.
    both = await refused(report(key, email="nope", phone="call me"), 400)
    assert "email" in both
    assert "phone" in both
    # A revoked key stops working at once.
    keys = Open311Keys(hub.engine, hub.clock)
    _, other = await keys.add("retired-app")
    await post(api, report(other))
    await keys.revoke("retired-app")
    assert "Invalid api_key" in await refused(report(other), 403)
    async with hub.engine.connect() as conn:
        count = await conn.execute(sa.select(sa.func.count()).select_from(citizen_reports))
        assert count.scalar_one() == 1  # only the one accepted


async def test_api_keys_asked_at_once_are_checked_together_and_each_answered(hub: Hub) -> None:
    keys = Open311Keys(hub.engine, hub.clock)
    live, good = await keys.add("city-app")
    _, retired = await keys.add("retired-app")
    await keys.revoke("retired-app")
    selects: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if "FROM open311_keys" in statement:
            selects.append(statement)

    sync = hub.engine.sync_engine
    sa.event.listen(sync, "before_cursor_execute", count)
    try:
        asked = [good, retired, "xh311_unknown", "", good] * 20
        answers = await asyncio.gather(*(keys.authenticate(k) for k in asked))
    finally:
        sa.event.remove(sync, "before_cursor_execute", count)
    assert [a.id if a else None for a in answers] == [live.id, None, None, None, live.id] * 20
    assert 1 <= len(selects) <= 2  # one query for the burst (two if it straddles a turn)
    # Asked again after a revocation: refused at once.
    await keys.revoke("city-app")
    assert await keys.authenticate(good) is None


async def test_reports_committed_together_each_get_their_own_answer(hub: Hub) -> None:
    """The group commit: one report filing refuses fails alone; the others are stored,
    and a repeat of an Idempotency-Key in the same batch gets the first's report."""
    keys = Open311Keys(hub.engine, hub.clock)
    key, _ = await keys.add("city-app")
    reports = CitizenReports(hub.engine, hub.filer, hub.clock)
    good = ReportInput("0507", 28.6472, 121.2615, "gps", description="bags on the kerb")
    bad = ReportInput("9999", 28.6472, 121.2615, "gps")  # no such problem in the catalogue
    answers = await asyncio.gather(
        reports.submit(good, key=key, idempotency_key="a"),
        reports.submit(bad, key=key, idempotency_key="b"),
        reports.submit(good, key=key, idempotency_key="a"),
        reports.submit(good, key=key),
        return_exceptions=True,
    )
    first, refused, repeat, other = answers
    assert isinstance(first, Submitted)
    assert first.created
    assert isinstance(refused, Open311Error)
    assert refused.status == 400
    assert repeat == dataclasses.replace(first, created=False)
    assert isinstance(other, Submitted)
    assert other.created
    assert other.id != first.id
    assert other.case_id == first.case_id  # the same problem at the same place: one case
    async with hub.engine.connect() as conn:
        stored = (await conn.execute(sa.select(citizen_reports.c.id))).scalars().all()
    assert sorted(stored) == sorted([first.id, other.id])


async def test_a_report_whose_client_hangs_up_is_still_stored_once(hub: Hub) -> None:
    keys = Open311Keys(hub.engine, hub.clock)
    key, _ = await keys.add("city-app")
    reports = CitizenReports(hub.engine, hub.filer, hub.clock)
    good = ReportInput("0507", 28.6472, 121.2615, "gps")
    bad = ReportInput("9999", 28.6472, 121.2615, "gps")
    sends = [
        asyncio.create_task(reports.submit(good, key=key, idempotency_key="gone")),
        asyncio.create_task(reports.submit(bad, key=key, idempotency_key="gone-bad")),
    ]
    await asyncio.sleep(0)  # both wait for the group commit
    for send in sends:
        send.cancel()  # the clients hang up
    retry = await reports.submit(good, key=key, idempotency_key="gone")
    assert not retry.created  # the first was stored all the same; the retry finds it
    async with hub.engine.connect() as conn:
        stored = (await conn.execute(sa.select(citizen_reports.c.idempotency_key))).scalars()
        assert list(stored) == ["gone"]
    gc.collect()  # the refusal nobody awaited is not logged as never retrieved


async def test_a_repeat_of_a_refused_key_is_its_own_report_and_a_stop_answers_everyone(
    hub: Hub,
) -> None:
    keys = Open311Keys(hub.engine, hub.clock)
    key, _ = await keys.add("city-app")
    reports = CitizenReports(hub.engine, hub.filer, hub.clock)
    good = ReportInput("0507", 28.6472, 121.2615, "gps")
    bad = ReportInput("9999", 28.6472, 121.2615, "gps")
    refused, fixed = await asyncio.gather(
        reports.submit(bad, key=key, idempotency_key="k"),
        reports.submit(good, key=key, idempotency_key="k"),  # the client corrected it
        return_exceptions=True,
    )
    assert isinstance(refused, Open311Error)
    assert isinstance(fixed, Submitted)
    assert fixed.created
    # The hub stopping while reports wait: every one is answered, none hangs.
    sends = [
        asyncio.create_task(reports.submit(good, key=key, idempotency_key=f"s{n}"))
        for n in range(300)
    ]
    await asyncio.sleep(0)
    assert reports._committer is not None
    reports._committer.cancel()
    done, pending = await asyncio.wait(sends, timeout=10)
    assert not pending
    answers = [t.exception() or t.result() for t in done]
    assert all(isinstance(a, Submitted | StorageError) for a in answers)
    assert any(isinstance(a, StorageError) for a in answers)
    # ... and stopping while a batch is being written.
    sends = [
        asyncio.create_task(reports.submit(good, key=key, idempotency_key=f"t{n}"))
        for n in range(300)
    ]
    while len(reports._waiting) != 300 - 256:  # noqa: ASYNC110 - the committer took a batch
        await asyncio.sleep(0)
    reports._committer.cancel()
    done, pending = await asyncio.wait(sends, timeout=10)
    assert not pending
    stopped = [t.exception() for t in done]
    assert all(isinstance(e, StorageError) for e in stopped)


async def test_an_address_naming_a_road_places_the_report(sqlite_hub: Hub, tmp_path: Path) -> None:
    _, key = await Open311Keys(sqlite_hub.engine, sqlite_hub.clock).add("app")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(sqlite_hub)), base_url="http://hub"
    ) as api:
        data = {k: v for k, v in report(key).items() if k not in ("lat", "long")}
        request_id = await post(api, {**data, "address_string": "东西一路(示例) 近12号"})
        item = await one_request(api, request_id)
    assert item["address"] == "东西一路(示例) 近12号"
    lat, lon = sqlite_hub.grid.bounds()[0], sqlite_hub.grid.bounds()[1]
    assert item["lat"] > lat
    assert item["long"] > lon
    case = await case_of(sqlite_hub, request_id)
    assert case.grid_cell_id is not None


# --- the workflow ------------------------------------------------------------------------------


async def test_a_report_is_a_case_merges_and_its_status_follows_the_workflow(
    hub: Hub, api: httpx.AsyncClient, key: str, clock: FakeClock
) -> None:
    users = await staff(hub)
    first = await post(api, report(key))
    case = await case_of(hub, first)
    assert (case.source, case.stage, case.verification_required) == ("citizen", "reported", True)
    assert case.code == "0401"
    assert case.line == "municipal"
    # The same problem reported again 20 m away joins the case; elsewhere opens another.
    clock.advance(minutes=5)
    second = await post(api, report(key, NEAR, description="又塌了"))
    assert (await case_of(hub, second)).id == case.id
    assert (await case_of(hub, second)).event_count == 2
    far = await post(api, report(key, FAR))
    assert (await case_of(hub, far)).id != case.id

    item = await one_request(api, first)
    assert item["status"] == "open"
    assert "reported, awaiting verification" in item["status_notes"]
    assert item["service_code"] == "0401"
    assert item["service_name"] == "路面塌陷 road collapse"
    assert item["description"] is None  # not shown before an operator verified it
    assert item["agency_responsible"].startswith("市政 municipal")
    expected = datetime.fromisoformat(item["expected_datetime"])
    assert expected == case.deadline
    assert item["expected_datetime"].endswith("+08:00")
    assert item["requested_datetime"] == "2026-11-23T09:00:00+08:00"
    assert (item["lat"], item["long"]) == PLACE
    assert item["media_url"] is None
    assert item["address_id"] is None
    assert item["zipcode"] is None

    op, disp, hand = users[Role.OPERATOR], users[Role.DISPATCHER], users[Role.HANDLER]
    await hub.cases.transition(case.id, Action.START_VERIFY, op)
    await hub.cases.transition(case.id, Action.VERIFY, op)
    item = await one_request(api, first)
    assert item["status"] == "open"
    assert "registered" in item["status_notes"]
    assert item["description"] == "路面塌陷 a hole in the road"  # verified: now public
    clock.advance(minutes=10)
    detail = await hub.cases.transition(case.id, Action.DISPATCH, disp)
    item = await one_request(api, second)
    assert "dispatched" in item["status_notes"]
    assert datetime.fromisoformat(item["expected_datetime"]) == detail.case.deadline
    if detail.case.squad_id:
        assert item["agency_responsible"].endswith(f"/ {detail.case.squad_id}")
    for action, user in ((Action.HANDLE, hand), (Action.CHECK, op), (Action.APPROVE, op)):
        clock.advance(minutes=30)
        await hub.cases.transition(case.id, action, user)
    root = xml(await api.get(f"{V2}/requests/{first}.xml"))
    [request] = list(root)
    assert tags(request) == REQUEST_FIELDS
    assert request.findtext("status") == "closed"
    assert "closed" in (request.findtext("status_notes") or "")
    assert request.findtext("expected_datetime") == ""  # nothing more is expected
    closed_at = datetime.fromisoformat(request.findtext("updated_datetime") or "")
    assert closed_at == clock.now

    # A report not registered is closed with the reason in its notes.
    far_case = (await case_of(hub, far)).id
    await hub.cases.transition(far_case, Action.START_VERIFY, op)
    await hub.cases.transition(far_case, Action.CANCEL, op, reason="现场无塌陷 no collapse found")
    item = await one_request(api, far)
    assert item["status"] == "closed"
    assert item["status_notes"].endswith("not registered: 现场无塌陷 no collapse found")
    assert item["description"] is None  # never verified: never public

    # Metrics: the cases from citizens and their registered share.
    m = await hub.metrics.metrics(clock.now - timedelta(days=1), clock.now + timedelta(days=1))
    assert (m.from_citizens, m.citizen_registered) == (2, 1)
    assert m.citizen_registration_share == pytest.approx(0.5)


async def test_get_requests_filters_and_the_90_day_rule(
    hub: Hub, api: httpx.AsyncClient, key: str, clock: FakeClock
) -> None:
    users = await staff(hub)
    start = clock.now
    road = await post(api, report(key))
    clock.advance(minutes=1)
    sewer = await post(api, report(key, FAR, service_code="0404", **{"attribute[BLOCKING]": ""}))
    clock.advance(minutes=1)
    piled = await post(api, report(key, service_code="0507", **{"attribute[BLOCKING]": ""}))
    piled_case = (await case_of(hub, piled)).id
    await hub.cases.transition(piled_case, Action.START_VERIFY, users[Role.OPERATOR])
    await hub.cases.transition(piled_case, Action.CANCEL, users[Role.OPERATOR], reason="重复")

    async def ids(**params: str) -> list[int]:
        resp = await api.get(f"{V2}/requests.json", params=params)
        assert resp.status_code == 200, resp.text
        return [r["service_request_id"] for r in resp.json()]

    assert await ids() == [piled, sewer, road]  # newest first, the last 90 days
    assert await ids(status="open") == [sewer, road]
    assert await ids(status="closed") == [piled]
    assert await ids(status="open,closed") == [piled, sewer, road]
    assert await ids(service_code="0401,0404") == [sewer, road]
    assert await ids(service_code="0404", status="closed") == []
    w3c = {"start_date": (start - timedelta(days=1)).isoformat(), "end_date": start.isoformat()}
    assert await ids(**w3c) == [road]
    assert await ids(start_date="2026-11-23T01:00:30Z") == [piled, sewer]
    # service_request_id overrides every other argument.
    assert await ids(service_request_id=f"{road},{piled},999", status="open") == [piled, road]

    root = xml(await api.get(f"{V2}/requests.xml", params={"status": "open"}))
    assert root.tag == "service_requests"
    assert [tags(r) for r in root] == [REQUEST_FIELDS, REQUEST_FIELDS]
    assert [r.findtext("service_request_id") for r in root] == [str(sewer), str(road)]

    too_long = {"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-04-02T00:00:00Z"}
    [(code, text)] = errors_xml(await api.get(f"{V2}/requests.xml", params=too_long), 400)
    assert code == "400"
    assert "90 days" in text
    just = {"start_date": "2026-01-01T00:00:00+08:00", "end_date": "2026-03-31T23:00:00+08:00"}
    assert (await api.get(f"{V2}/requests.xml", params=just)).status_code == 200
    backwards = {"start_date": "2026-02-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"}
    errors_json(await api.get(f"{V2}/requests.json", params=backwards), 400)
    naive = await api.get(f"{V2}/requests.json", params={"start_date": "2026-01-01T00:00:00"})
    assert "zone" in errors_json(naive, 400)[0]["description"]
    errors_xml(await api.get(f"{V2}/requests.xml", params={"status": "pending"}), 400)
    errors_xml(await api.get(f"{V2}/requests.xml", params={"service_request_id": "x"}), 400)

    # One request, unknown ids and tokens.
    for missing in ("999", "abc", "0"):
        [(code, _)] = errors_xml(await api.get(f"{V2}/requests/{missing}.xml"), 404)
        assert code == "404"
    async with hub.engine.connect() as conn:
        token = (
            await conn.execute(
                sa.select(citizen_reports.c.report_id).where(citizen_reports.c.id == road)
            )
        ).scalar_one()
    root = xml(await api.get(f"{V2}/tokens/{token}.xml"))
    assert root.tag == "service_requests"
    [request] = list(root)
    assert tags(request) == ["service_request_id", "token"]
    assert (request.findtext("service_request_id"), request.findtext("token")) == (
        str(road), token,
    )  # fmt: skip
    assert (await api.get(f"{V2}/tokens/{token}.json")).json() == [
        {"service_request_id": road, "token": token}
    ]
    errors_json(await api.get(f"{V2}/tokens/no-such-token.json"), 404)


async def test_no_contact_in_public_output_and_masked_for_staff(
    hub: Hub, api: httpx.AsyncClient, key: str
) -> None:
    request_id = await post(api, report(key, device_id="imei-861234", account_id="acct-99"))
    case_id = (await case_of(hub, request_id)).id
    op = await hub.cases.transition(case_id, Action.START_VERIFY, (await staff(hub))[Role.OPERATOR])
    assert op.case.stage is Stage.VERIFYING
    public = [
        await api.get(f"{V2}/requests.xml"),
        await api.get(f"{V2}/requests.json"),
        await api.get(f"{V2}/requests/{request_id}.xml"),
        await api.get(f"{V2}/requests/{request_id}.json"),
    ]
    for resp in public:
        assert resp.status_code == 200
        for secret in ("zhang.san", "example.com", "13812345678", "5678", "张", "imei", "acct"):
            assert secret not in resp.text, (secret, resp.text[:300])

    _, admin_token = await hub.users.add("root", Role.ADMIN)
    _, op_token = await hub.users.add("seat-1", Role.OPERATOR)
    path = f"{API_PREFIX}/cases/{case_id}/citizen-reports"
    [masked] = (await api.get(path, headers={"Authorization": f"Bearer {op_token}"})).json()
    assert masked["contact"] == {
        "masked": True, "email": "z***@example.com", "first_name": "三*",
        "last_name": "张*", "phone": "138****5678", "device_id": "im***",
        "account_id": "ac***", "cleared_at": None,
    }  # fmt: skip
    assert masked["service_request_id"] == request_id
    assert masked["description"] == "路面塌陷 a hole in the road"
    [full] = (await api.get(path, headers={"Authorization": f"Bearer {admin_token}"})).json()
    assert full["contact"]["phone"] == "13812345678"
    assert full["contact"]["email"] == "zhang.san@example.com"
    assert full["contact"]["masked"] is False
    assert (await api.get(path)).status_code == 401
    missing = f"{API_PREFIX}/cases/999999/citizen-reports"
    assert (
        await api.get(missing, headers={"Authorization": f"Bearer {op_token}"})
    ).status_code == 404
    # The route is documented in the API's OpenAPI document with its schema.
    doc = (
        await api.get(f"{API_PREFIX}/openapi.json", headers={"Authorization": f"Bearer {op_token}"})
    ).json()
    assert "/api/v1/cases/{case_id}/citizen-reports" in doc["paths"]


def _phone_photo() -> bytes:
    from PIL import Image

    exif = Image.Exif()
    exif[0x010E] = "taken at 28.6472N 121.2615E"
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 120, 60)).save(out, format="JPEG", exif=exif)
    assert b"28.6472N" in out.getvalue()
    return out.getvalue()


async def test_an_uploaded_photo_is_kept_without_exif_and_never_published(
    hub: Hub, api: httpx.AsyncClient, key: str
) -> None:
    users = await staff(hub)
    resp = await api.post(
        f"{V2}/requests.json",
        data=report(key, media_url="https://photos.example.cn/p/1.jpg"),
        files={"media": ("photo.jpg", _phone_photo(), "image/jpeg")},
    )
    assert resp.status_code == 200, resp.text
    request_id = resp.json()[0]["service_request_id"]
    async with hub.engine.connect() as conn:
        sha = (
            await conn.execute(
                sa.select(citizen_reports.c.photo_sha256).where(citizen_reports.c.id == request_id)
            )
        ).scalar_one()
    stored = await hub.evidence.get(sha)
    assert stored.startswith(b"\xff\xd8")
    assert b"28.6472N" not in stored
    assert (await one_request(api, request_id))["media_url"] is None
    case_id = (await case_of(hub, request_id)).id
    await hub.cases.transition(case_id, Action.START_VERIFY, users[Role.OPERATOR])
    await hub.cases.transition(case_id, Action.VERIFY, users[Role.OPERATOR])
    # After verification the client's own media_url is shown, the uploaded photo never.
    assert (await one_request(api, request_id))["media_url"] == "https://photos.example.cn/p/1.jpg"
    assert sha not in (await api.get(f"{V2}/requests/{request_id}.xml")).text

    not_photo = await api.post(
        f"{V2}/requests.xml",
        data=report(key),
        files={"media": ("photo.jpg", b"%PDF-1.4 not a photo", "image/jpeg")},
    )
    [(code, text)] = errors_xml(not_photo, 400)
    assert code == "415"
    assert "media" in text


# --- duplicates, concurrency, throttling ----------------------------------------------------------


async def test_idempotent_and_concurrent_submissions(
    hub: Hub, api: httpx.AsyncClient, key: str
) -> None:
    retry = {"Idempotency-Key": "app-7f3a-0001"}
    first = await post(api, report(key), headers=retry)
    again = await post(api, report(key), headers=retry)
    assert again == first
    # Ten at once, four of them retries of one submission: seven reports, one case.
    sends = [
        api.post(
            f"{V2}/requests.json",
            data=report(key),
            headers={"Idempotency-Key": "app-7f3a-0002"} if n < 4 else {},
        )
        for n in range(10)
    ]
    answers = await asyncio.gather(*sends)
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    got = [r.json()[0]["service_request_id"] for r in answers]
    assert len(set(got[:4])) == 1
    assert len(set(got)) == 7
    async with hub.engine.connect() as conn:
        rows = (await conn.execute(sa.select(citizen_reports.c.case_id))).scalars().all()
        case_rows = (await conn.execute(sa.select(cases.c.id, cases.c.event_count))).all()
    assert len(rows) == 8
    assert len(set(rows)) == 1
    assert [tuple(r) for r in case_rows] == [(rows[0], 8)]


async def test_posts_are_throttled_per_address_and_per_key(
    hub: Hub, api: httpx.AsyncClient, key: str
) -> None:
    state: Open311State = api._transport.app.state.open311  # type: ignore[attr-defined]
    frozen = lambda: 0.0  # noqa: E731
    state.per_address = RateBudget(per_minute=2, burst=2, clock=frozen)
    await post(api, report(key))
    await post(api, report(key))
    refused = await api.post(f"{V2}/requests.xml", data=report(key))
    [(code, text)] = errors_xml(refused, 429)
    assert code == "429"
    assert "address" in text
    assert refused.headers["retry-after"] == "30"
    # Unknown keys are refused by the same address budget before being looked at.
    assert (await api.post(f"{V2}/requests.xml", data=report("xh311_guess"))).status_code == 429
    state.per_address = RateBudget(per_minute=600, burst=100, clock=frozen)
    state.per_key = RateBudget(per_minute=1, burst=1, clock=frozen)
    await post(api, report(key))
    [error] = errors_json(await api.post(f"{V2}/requests.json", data=report(key)), 429)
    assert "api_key" in error["description"]
    _, other = await Open311Keys(hub.engine, hub.clock).add("kiosk")
    await post(api, report(other))  # another client has its own budget
    # GETs are not throttled.
    assert (await api.get(f"{V2}/requests.json")).status_code == 200


async def test_the_budgets_are_the_apps(hub: Hub, key: str) -> None:
    limits = Open311Limits(per_address_per_min=1, per_address_burst=1)
    app = create_app(hub, open311_limits=limits)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub"
    ) as client:
        await post(client, report(key))
        errors_xml(await client.post(f"{V2}/requests.xml", data=report(key)), 429)


# --- keys from the CLI --------------------------------------------------------------------------


def test_keys_from_the_cli(tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "central_hub.cli", "--data-dir", str(tmp_path / "hub"),
             "open311", "key", *args],
            capture_output=True, text=True, timeout=60, check=False, env=dict(os.environ),
        )  # fmt: skip

    added = cli("add", "city-app")
    assert added.returncode == 0, added.stderr
    secret = added.stdout.strip()
    assert secret.startswith("xh311_")
    assert len(secret) > 40
    assert "shown once" in added.stderr
    listed = cli("list")
    assert listed.stdout.startswith("city-app\t")
    assert "active" in listed.stdout
    assert secret not in listed.stdout
    assert cli("add", "city-app").returncode == 1  # names are unique
    assert cli("revoke", "city-app").returncode == 0
    assert "revoked" in cli("list").stdout
    assert cli("revoke", "city-app").returncode == 1
    db = (tmp_path / "hub" / "hub.db").read_bytes()
    assert secret.encode() not in db  # stored hashed
