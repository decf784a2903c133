"""The console's notices page: an operator composes a notice from a template to a list of
contacts (CSRF like every form), sees its deliveries' states with the phone masked, and
records an opt-out; bad input is re-shown with each problem named; handlers are refused."""

from __future__ import annotations

import re
from typing import Any

import pytest

from central_hub.console.notice_routes import mask
from central_hub.hub import Hub

pytestmark = pytest.mark.integration

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def _template(hub: Hub) -> None:
    await hub.notices.create_template(
        "move-car", "挪车提醒", "您的车辆 {plate} 请尽快挪走。", ["plate"], actor="admin"
    )


async def test_an_operator_composes_and_follows_a_notice(as_role: Any, hub: Hub) -> None:
    await _template(hub)
    op = await as_role("operator")
    page = await op.get("/console/notices")
    assert page.status_code == 200
    assert 'data-nav="notices"' in page.text
    assert "move-car" in page.text
    csrf = _CSRF.search(page.text)
    assert csrf is not None
    form = {
        "template": "move-car",
        "channel": "sms",
        "kind": "contacts",
        "contacts": "owner-1,王先生,13800000001,\nowner-2,,13900000002,",
        "variables": "plate=浙J12345",
    }
    refused = await op.post("/console/notices", data=form)  # no CSRF token
    assert refused.status_code == 403
    sent = await op.post("/console/notices", data={**form, "csrf_token": csrf.group(1)})
    assert sent.status_code == 303
    notice = await op.get(sent.headers["location"])
    assert "您的车辆 浙J12345 请尽快挪走。" in notice.text
    assert notice.text.count('data-state="queued"') == 2
    assert "138****0001" in notice.text
    assert "13800000001" not in notice.text  # the phone is masked
    listing = await op.get("/console/notices")
    assert 'data-state="queued">排队中 2' in listing.text

    opt = await op.post(
        "/console/notices/opt-outs",
        data={"channel": "sms", "address": "13900000002", "csrf_token": csrf.group(1)},
    )
    assert opt.status_code == 303
    assert [o.address for o in await hub.notices.opt_outs()] == ["13900000002"]


async def test_bad_input_is_named_and_handlers_are_refused(as_role: Any, hub: Hub) -> None:
    await _template(hub)
    op = await as_role("operator")
    page = await op.get("/console/notices")
    csrf = _CSRF.search(page.text)
    assert csrf is not None
    bad = await op.post(
        "/console/notices",
        data={
            "template": "move-car",
            "channel": "sms",
            "kind": "contacts",
            "contacts": ",no id\nowner-1,,13800000001",
            "variables": "plate\nshop=x",
            "csrf_token": csrf.group(1),
        },
    )
    assert bad.status_code == 422
    assert "contacts line 1: id,name,phone,email" in bad.text
    assert "variables line 1: name=value" in bad.text
    worse = await op.post(
        "/console/notices",
        data={
            "template": "move-car",
            "channel": "sms",
            "kind": "contacts",
            "contacts": "owner-1,,13800000001",
            "variables": "shop=x",
            "csrf_token": csrf.group(1),
        },
    )
    assert worse.status_code == 422
    assert "missing variables of template move-car: plate" in worse.text
    assert "shop=x" in worse.text  # the form is kept
    assert await hub.notices.recent() == []
    handler = await as_role("handler")
    assert (await handler.get("/console/notices")).status_code == 403


def test_mask_hides_the_middle_of_phones_and_the_mailbox() -> None:
    assert mask("13800000001") == "138****0001"
    assert mask("wang@example.com") == "w***@example.com"
    assert mask("pole-1") == "pole-1"
