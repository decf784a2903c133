"""Citizens' reports on the console's case page (issue #15, item 4's console part): what
each role sees of a report and its reporter, the admins' reads recorded, and operators
hiding, redacting and merging reports with a reason through the page's forms."""

from __future__ import annotations

import html
import io
import re
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from console_http import Client
from PIL import Image

from central_hub.db.schema import citizen_reports, contact_reads
from central_hub.hub import Hub
from central_hub.services.citizen_reports import Open311Keys

pytestmark = pytest.mark.integration

PLACE = (28.6472, 121.2615)
FAR = (28.6400, 121.2530)
TEXT = "路面塌陷，井盖旁边 a hole by the manhole"


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (20, 120, 200)).save(out, format="JPEG")
    return out.getvalue()


async def file_report(http: httpx.AsyncClient, hub: Hub, where: tuple[float, float]) -> Any:
    """File a report through Open311 as the city's app; its stored row."""
    _, key = await Open311Keys(hub.engine, hub.clock).add(f"app-{where[0]}")
    resp = await http.post(
        "/open311/v2/requests.json",
        data={
            "api_key": key,
            "service_code": "0401",
            "lat": str(where[0]),
            "long": str(where[1]),
            "attribute[BLOCKING]": "partly",
            "description": TEXT,
            "email": "zhang.san@example.com",
            "phone": "13812345678",
            "last_name": "张",
            "first_name": "三",
        },
        files={"media": ("p.jpg", _jpeg(), "image/jpeg")},
    )
    assert resp.status_code == 200, resp.text
    request_id = resp.json()[0]["service_request_id"]
    async with hub.engine.connect() as conn:
        return (
            await conn.execute(citizen_reports.select().where(citizen_reports.c.id == request_id))
        ).one()


def section(page: str) -> str:
    """The page's citizen reports section."""
    m = re.search(r'<section class="card" id="citizen-reports">(.*?)</section>', page, re.S)
    assert m is not None, page[:500]
    return m.group(1)


async def reads(hub: Hub) -> list[tuple[int, str]]:
    async with hub.engine.connect() as conn:
        got = await conn.execute(sa.select(contact_reads.c.report_id, contact_reads.c.user_name))
        return [(int(r), str(u)) for r, u in got]


async def test_the_case_page_shows_the_reports_and_masks_the_contact_by_role(
    as_role: Any, hub: Hub
) -> None:
    op: Client = await as_role("operator")
    report = await file_report(op.http, hub, PLACE)
    page = await op.get(f"/console/cases/{report.case_id}")
    assert page.status_code == 200
    part = html.unescape(section(page.text))
    assert f'data-report-id="{report.id}"' in part
    assert TEXT in part
    assert "0401" in part
    assert "手机定位" in part  # location source gps
    assert "BLOCKING" in part
    assert "partly" in part
    # The photo through the console's evidence route, which serves it to staff.
    assert f"/console/evidence/{report.photo_sha256}" in part
    photo = await op.get(f"/console/evidence/{report.photo_sha256}")
    assert photo.status_code == 200
    assert photo.headers["content-type"] == "image/jpeg"
    # Masked as the API masks it; the operator may moderate.
    assert "138****5678" in part
    assert "z***@example.com" in part
    assert "张*" in part
    assert "13812345678" not in page.text
    assert "zhang.san" not in page.text
    assert 'data-masked="yes"' in part
    assert 'class="moderate"' in part

    disp: Client = await as_role("dispatcher")
    part = section((await disp.get(f"/console/cases/{report.case_id}")).text)
    assert "138****5678" in part
    assert 'class="moderate"' not in part  # a dispatcher does not moderate
    assert await reads(hub) == []

    admin: Client = await as_role("admin")
    page = await admin.get(f"/console/cases/{report.case_id}")
    part = section(page.text)
    assert "13812345678" in part
    assert "zhang.san@example.com" in part
    assert 'data-masked="no"' in part
    assert await reads(hub) == [(report.id, "admin")]  # recorded before the page was sent
    await admin.get(f"/console/cases/{report.case_id}")
    assert len(await reads(hub)) == 2  # each read


async def test_operators_hide_and_redact_with_a_reason_and_dispatchers_may_not(
    as_role: Any, hub: Hub
) -> None:
    op: Client = await as_role("operator")
    report = await file_report(op.http, hub, PLACE)
    url = f"/console/cases/{report.case_id}/citizen-reports"
    await op.get(f"/console/cases/{report.case_id}")

    disp: Client = await as_role("dispatcher")
    await disp.get(f"/console/cases/{report.case_id}")
    form = {"report": str(report.id), "action": "hide", "reason": "spam"}
    r = await disp.post(url, data={**form, "csrf_token": disp.csrf})
    assert r.status_code == 403

    for reason, says in (("", "reason: say why"), ("x" * 201, "reason: at most 200")):
        r = await op.post(url, data={**form, "reason": reason, "csrf_token": op.csrf})
        assert r.status_code == 422
        assert says in html.unescape(r.text)
    r = await op.post(url, data={**form, "action": "delete", "csrf_token": op.csrf})
    assert r.status_code == 422
    assert "action: 'delete' is not one of hide, unhide, redact, merge" in html.unescape(r.text)
    r = await op.post(url, data={**form, "report": "x1", "csrf_token": op.csrf})
    assert r.status_code == 422
    assert "report: 'x1' is not a number" in html.unescape(r.text)
    async with hub.engine.connect() as conn:
        hidden = (
            await conn.execute(
                sa.select(citizen_reports.c.hidden_at).where(citizen_reports.c.id == report.id)
            )
        ).scalar_one()
    assert hidden is None  # nothing changed so far

    r = await op.post(url, data={**form, "csrf_token": op.csrf})
    assert r.status_code == 303
    assert r.headers["location"] == f"/console/cases/{report.case_id}?done=citizen_hide"
    page = await op.get(r.headers["location"])
    part = section(page.text)
    assert 'data-hidden="yes"' in part
    assert "已隐藏，不对外公开（operator" in part
    assert 'value="unhide"' in part
    assert "隐藏市民上报" in page.text  # the audit trail's entry, in words
    assert f"“report {report.id}: spam”" in html.unescape(page.text)
    gone = await op.http.get(f"/open311/v2/requests/{report.id}.json")
    assert gone.status_code == 404

    r = await op.post(
        url, data={**form, "action": "redact", "reason": "个人信息", "csrf_token": op.csrf}
    )
    assert r.status_code == 303
    page = await op.get(f"/console/cases/{report.case_id}")
    part = section(page.text)
    assert TEXT not in html.unescape(page.text)
    assert "描述和照片已删除（operator" in part
    assert "/console/evidence/" not in part
    assert 'value="redact"' not in part


async def test_operators_merge_a_report_into_another_open_case(as_role: Any, hub: Hub) -> None:
    op: Client = await as_role("operator")
    moved = await file_report(op.http, hub, FAR)
    stays = await file_report(op.http, hub, PLACE)
    url = f"/console/cases/{moved.case_id}/citizen-reports"
    await op.get(f"/console/cases/{moved.case_id}")
    form = {"report": str(moved.id), "action": "merge", "reason": "同一处塌陷"}

    for target, says, code in (
        ("", "case_id: '' is not a number", 422),
        ("abc", "case_id: 'abc' is not a number", 422),
        (str(moved.case_id), f"is in case {moved.case_id} already", 409),
        ("999999", "no case 999999", 404),
    ):
        r = await op.post(url, data={**form, "case_id": target, "csrf_token": op.csrf})
        assert r.status_code == code, (target, r.text[:300])
        assert says in html.unescape(r.text)
    # The page's report id and case must agree: a report shown under another case is refused.
    other = f"/console/cases/{stays.case_id}/citizen-reports"
    r = await op.post(other, data={**form, "case_id": str(stays.case_id), "csrf_token": op.csrf})
    assert r.status_code == 409
    assert f"is in case {moved.case_id} now, not {stays.case_id}" in html.unescape(r.text)

    r = await op.post(url, data={**form, "case_id": str(stays.case_id), "csrf_token": op.csrf})
    assert r.status_code == 303
    assert r.headers["location"] == f"/console/cases/{stays.case_id}?done=citizen_merge_in"
    page = await op.get(r.headers["location"])
    assert f'data-report-id="{moved.id}"' in section(page.text)
    assert "市民上报移入" in page.text
    left = await op.get(f"/console/cases/{moved.case_id}")
    assert 'id="no-citizen-reports"' in left.text
    assert 'data-stage="cancelled"' in left.text  # emptied: cancelled as a duplicate
    assert "重复上报" in left.text  # the cancel's verdict, duplicate
