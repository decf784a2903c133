"""Moderating citizens' reports through ``/api/v1/citizen-reports/{id}/...`` (issue #15,
item 4's console part): hide and unhide against Open311's public output, redaction for
good, merging into another case with the emptied case cancelled as a duplicate, the roles
that may, reasons, and the admins' contact reads recorded.

Runs on SQLite and PostgreSQL (the ``hub`` fixture); reports are filed through Open311
with an api_key, as the city's app files them."""

from __future__ import annotations

import io
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from central_hub.api import API_PREFIX, create_app
from central_hub.db.schema import audits, cases, citizen_reports, contact_reads
from central_hub.domain.retention import RetentionPolicy
from central_hub.domain.workflow import Action, Role, Stage
from central_hub.hub import Hub
from central_hub.services.citizen_reports import Open311Keys
from central_hub.services.retention import apply_retention
from central_hub.testing import FakeClock

pytestmark = pytest.mark.integration

V2 = "/open311/v2"
API = f"{API_PREFIX}/citizen-reports"
PLACE = (28.6472, 121.2615)  # the market street, inside the sample district
NEAR = (28.64738, 121.2615)  # 20 m north: the same road collapse (0401 merges within 50 m)
FAR = (28.6400, 121.2530)
TEXT = "路面塌陷 a hole in the road, 张三 13812345678 saw it"


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


@pytest.fixture
async def auth(hub: Hub) -> dict[Role, dict[str, str]]:
    """A bearer header per role."""
    out = {}
    for role in Role:
        _, token = await hub.users.add(f"{role.value}-1", role)
        out[role] = {"Authorization": f"Bearer {token}"}
    return out


def _photo() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 120, 60)).save(out, format="JPEG")
    return out.getvalue()


async def file_report(
    api: httpx.AsyncClient,
    key: str,
    where: tuple[float, float] = PLACE,
    *,
    contact: bool = True,
    photo: bool = False,
) -> int:
    data = {
        "api_key": key,
        "service_code": "0401",
        "lat": str(where[0]),
        "long": str(where[1]),
        "attribute[BLOCKING]": "partly",
        "description": TEXT,
    }
    if contact:
        data |= {"email": "zhang.san@example.com", "phone": "13812345678", "last_name": "张"}
    files = {"media": ("p.jpg", _photo(), "image/jpeg")} if photo else None
    if photo:
        data["media_url"] = "https://photos.example.cn/p/1.jpg"
    resp = await api.post(f"{V2}/requests.json", data=data, files=files)
    assert resp.status_code == 200, resp.text
    return int(resp.json()[0]["service_request_id"])


async def row(hub: Hub, request_id: int) -> Any:
    async with hub.engine.connect() as conn:
        return (
            await conn.execute(citizen_reports.select().where(citizen_reports.c.id == request_id))
        ).one()


async def case_row(hub: Hub, case_id: int) -> Any:
    async with hub.engine.connect() as conn:
        return (await conn.execute(cases.select().where(cases.c.id == case_id))).one()


async def trail(hub: Hub, case_id: int) -> list[Any]:
    async with hub.engine.connect() as conn:
        return list(
            (
                await conn.execute(
                    audits.select().where(audits.c.case_id == case_id).order_by(audits.c.id)
                )
            ).all()
        )


async def public_ids(api: httpx.AsyncClient, **params: str) -> list[int]:
    resp = await api.get(f"{V2}/requests.json", params=params)
    assert resp.status_code == 200, resp.text
    return [r["service_request_id"] for r in resp.json()]


async def moderate(
    api: httpx.AsyncClient,
    headers: dict[str, str],
    request_id: int,
    action: str,
    status: int = 200,
    **body: Any,
) -> Any:
    resp = await api.post(f"{API}/{request_id}/{action}", json=body, headers=headers)
    assert resp.status_code == status, resp.text
    return resp.json()


async def test_a_hidden_report_leaves_open311_but_its_token_still_answers(
    hub: Hub, api: httpx.AsyncClient, key: str, auth: dict[Role, dict[str, str]]
) -> None:
    op = auth[Role.OPERATOR]
    shown = await file_report(api, key, FAR)
    hidden = await file_report(api, key)
    token = (await row(hub, hidden)).report_id
    case_id = (await row(hub, hidden)).case_id
    assert await public_ids(api) == [hidden, shown]

    done = await moderate(api, op, hidden, "hide", reason="  spam from a bot  ")
    assert done["hidden"] is True
    assert done["by"] == "operator-1"
    assert done["case_id"] == case_id
    assert await public_ids(api) == [shown]
    assert await public_ids(api, service_request_id=f"{hidden},{shown}") == [shown]
    for fmt in ("json", "xml"):
        assert (await api.get(f"{V2}/requests/{hidden}.{fmt}")).status_code == 404
        assert (await api.get(f"{V2}/requests/{shown}.{fmt}")).status_code == 200
    # The reporter's token still finds it: their status page keeps working.
    assert (await api.get(f"{V2}/tokens/{token}.json")).json() == [
        {"service_request_id": hidden, "token": token}
    ]
    stored = await row(hub, hidden)
    assert (stored.hidden_by, stored.hidden_at) == ("operator-1", hub.clock())
    entry = (await trail(hub, case_id))[-1]
    assert (entry.action, entry.actor, entry.role) == ("citizen_hide", "operator-1", "operator")
    assert entry.reason == f"report {hidden}: spam from a bot"
    assert entry.from_stage == entry.to_stage == "reported"  # the case did not move
    # Staff still see it, marked.
    resp = await api.get(f"{API_PREFIX}/cases/{case_id}/citizen-reports", headers=op)
    [view] = resp.json()
    assert view["hidden_by"] == "operator-1"

    again = await moderate(api, op, hidden, "hide", 409, reason="again")
    assert "hidden already" in again["detail"]
    await moderate(api, auth[Role.ADMIN], hidden, "unhide", reason="not spam after all")
    assert await public_ids(api) == [hidden, shown]
    assert (await api.get(f"{V2}/requests/{hidden}.json")).status_code == 200
    assert (await row(hub, hidden)).hidden_at is None
    assert (await trail(hub, case_id))[-1].action == "citizen_unhide"
    nope = await moderate(api, op, hidden, "unhide", 409, reason="again")
    assert "not hidden" in nope["detail"]
    assert (await api.post(f"{API}/999999/hide", json={"reason": "x"}, headers=op)).json() == {
        "detail": "no citizen report 999999"
    }


async def test_redaction_clears_the_text_and_photo_for_good_and_is_audited(
    hub: Hub, api: httpx.AsyncClient, key: str, auth: dict[Role, dict[str, str]], clock: FakeClock
) -> None:
    request_id = await file_report(api, key, photo=True)
    before = await row(hub, request_id)
    sha = before.photo_sha256
    assert sha is not None
    # Verified: the description and the client's media_url are public now.
    users = {u.name: u for u in await hub.users.all()}
    operator = users["operator-1"]
    await hub.cases.transition(before.case_id, Action.START_VERIFY, operator)
    await hub.cases.transition(before.case_id, Action.VERIFY, operator)
    item = (await api.get(f"{V2}/requests/{request_id}.json")).json()[0]
    assert item["description"] == TEXT
    assert item["media_url"] == "https://photos.example.cn/p/1.jpg"

    clock.advance(minutes=3)
    done = await moderate(
        api, auth[Role.ADMIN], request_id, "redact", reason="names a bystander 个人信息"
    )
    assert done["redacted"] is True
    after = await row(hub, request_id)
    assert (after.description, after.media_url, after.photo_sha256) == ("", None, None)
    assert (after.redacted_by, after.redacted_at) == ("admin-1", clock.now)
    item = (await api.get(f"{V2}/requests/{request_id}.json")).json()[0]
    assert (item["description"], item["media_url"]) == (None, None)
    entry = (await trail(hub, after.case_id))[-1]
    assert (entry.action, entry.actor) == ("citizen_redact", "admin-1")
    assert entry.reason == f"report {request_id}: names a bystander 个人信息"
    assert entry.attachments == []  # nothing that keeps the photo alive
    # The text is nowhere any more, not in the trail either.
    async with hub.engine.connect() as conn:
        reasons = (await conn.execute(sa.select(audits.c.reason))).scalars().all()
        texts = (await conn.execute(sa.select(citizen_reports.c.description))).scalars().all()
    assert not any("13812345678" in t for t in [*reasons, *texts])
    again = await moderate(api, auth[Role.OPERATOR], request_id, "redact", 409, reason="x")
    assert "redacted already" in again["detail"]

    # The photo's file leaves the evidence store at the next retention pass.
    path = hub.evidence.path_of(sha)
    assert path.exists()
    old = time.time() - 3 * 86400
    os.utime(path, (old, old))
    await apply_retention(hub.engine, hub.evidence, hub.frames, RetentionPolicy(), clock.now)
    assert not path.exists()


async def test_merging_moves_the_report_and_cancels_the_emptied_case_as_a_duplicate(
    hub: Hub, api: httpx.AsyncClient, key: str, auth: dict[Role, dict[str, str]], clock: FakeClock
) -> None:
    op = auth[Role.OPERATOR]
    first = await file_report(api, key)  # opens case X
    clock.advance(minutes=5)
    joined = await file_report(api, key, NEAR)  # joins X
    clock.advance(minutes=5)
    elsewhere = await file_report(api, key, FAR)  # opens case Y
    x, y = (await row(hub, first)).case_id, (await row(hub, elsewhere)).case_id
    assert (await row(hub, joined)).case_id == x
    assert x != y

    # The report that joined X moves to Y: X still has the report that opened it.
    clock.advance(minutes=1)
    done = await moderate(api, op, joined, "merge", case_id=y, reason="wrong street corner")
    assert (done["case_id"], done["from_case_id"], done["source_case_cancelled"]) == (
        y, x, False,
    )  # fmt: skip
    assert (await row(hub, joined)).case_id == y
    source, target = await case_row(hub, x), await case_row(hub, y)
    assert (source.stage, source.event_count) == ("reported", 1)
    assert target.event_count == 2
    out, into = (await trail(hub, x))[-1], (await trail(hub, y))[-1]
    assert (out.action, into.action) == ("citizen_merge_out", "citizen_merge_in")
    assert out.reason == f"report {joined} moved to case {y}: wrong street corner"
    assert into.reason == f"report {joined} moved here from case {x}: wrong street corner"
    # Its public status follows the case it joined.
    users = {u.name: u for u in await hub.users.all()}
    await hub.cases.transition(y, Action.START_VERIFY, users["operator-1"])
    item = (await api.get(f"{V2}/requests/{joined}.json")).json()[0]
    assert "verif" in item["status_notes"]

    # The report that opened X moves too: X is empty and cancelled as a duplicate of Y.
    done = await moderate(api, auth[Role.ADMIN], first, "merge", case_id=y, reason="same hole")
    assert done["source_case_cancelled"] is True
    source = await case_row(hub, x)
    assert (source.stage, source.event_count, source.closed_at) == ("cancelled", 0, clock.now)
    cancel = (await trail(hub, x))[-1]
    assert (cancel.action, cancel.verdict, cancel.actor) == ("cancel", "duplicate", "admin-1")
    assert cancel.reason == f"duplicate of case {y}: same hole"
    assert (await case_row(hub, y)).event_count == 3
    staff = await api.get(f"{API_PREFIX}/cases/{y}/citizen-reports", headers=op)
    assert [r["service_request_id"] for r in staff.json()] == [first, joined, elsewhere]

    # Refused: its own case, a cancelled case, an unknown case, no case given.
    same = await moderate(api, op, first, "merge", 409, case_id=y, reason="r")
    assert f"is in case {y} already" in same["detail"]
    closed = await moderate(api, op, first, "merge", 409, case_id=x, reason="r")
    assert closed["detail"] == f"case {x} is cancelled: a report can only join an open case"
    unknown = await moderate(api, op, first, "merge", 404, case_id=999999, reason="r")
    assert unknown["detail"] == "no case 999999"
    missing = await moderate(api, op, first, "merge", 422, reason="r")
    assert "case_id" in str(missing["detail"])
    huge = await moderate(api, op, first, "merge", 422, case_id=2**63, reason="r")
    assert "case_id" in str(huge["detail"])
    assert (await row(hub, first)).case_id == y  # nothing moved


async def test_a_dispatched_case_is_not_cancelled_behind_the_units_back(
    hub: Hub, api: httpx.AsyncClient, key: str, auth: dict[Role, dict[str, str]]
) -> None:
    moved = await file_report(api, key, FAR)
    stays = await file_report(api, key)
    source, target = (await row(hub, moved)).case_id, (await row(hub, stays)).case_id
    users = {u.name: u for u in await hub.users.all()}
    for action, name in (
        (Action.START_VERIFY, "operator-1"),
        (Action.VERIFY, "operator-1"),
        (Action.DISPATCH, "dispatcher-1"),
    ):
        await hub.cases.transition(source, action, users[name])
    done = await moderate(api, auth[Role.OPERATOR], moved, "merge", case_id=target, reason="r")
    assert done["source_case_cancelled"] is False
    assert (await case_row(hub, source)).stage == Stage.DISPATCHED.value


async def test_only_operators_and_admins_moderate_with_a_reason_of_1_to_200_characters(
    hub: Hub, api: httpx.AsyncClient, key: str, auth: dict[Role, dict[str, str]]
) -> None:
    request_id = await file_report(api, key)
    for role in (Role.DISPATCHER, Role.HANDLER):
        for action, body in (
            ("hide", {"reason": "r"}),
            ("unhide", {"reason": "r"}),
            ("redact", {"reason": "r"}),
            ("merge", {"reason": "r", "case_id": 1}),
        ):
            refused = await moderate(api, auth[role], request_id, action, 403, **body)
            assert f"role {role.value} may not" in refused["detail"]
    assert (await row(hub, request_id)).hidden_at is None

    op = auth[Role.OPERATOR]
    for reason in ("", "x" * 201):
        bad = await moderate(api, op, request_id, "hide", 422, reason=reason)
        [error] = bad["detail"]
        assert error["loc"] == ["body", "reason"]
    blank = await moderate(api, op, request_id, "redact", 422, reason="   ")
    assert blank["detail"].startswith("reason: say why")
    await moderate(api, op, request_id, "hide", reason="x" * 200)
    trail_reason = (await trail(hub, (await row(hub, request_id)).case_id))[-1].reason
    assert trail_reason.endswith("x" * 200)
    # The routes are in the OpenAPI document, for operators and admins.
    doc = (await api.get(f"{API_PREFIX}/openapi.json", headers=op)).json()
    for action in ("hide", "unhide", "redact", "merge"):
        operation = doc["paths"][f"/api/v1/citizen-reports/{{report_id}}/{action}"]["post"]
        assert operation["x-roles"] == ["admin", "operator"]
        assert {"403", "404", "409", "422"} <= set(operation["responses"])


async def test_admins_reads_of_a_contact_are_recorded_and_others_see_it_masked(
    hub: Hub, api: httpx.AsyncClient, key: str, auth: dict[Role, dict[str, str]]
) -> None:
    named = await file_report(api, key)
    anonymous = await file_report(api, key, NEAR, contact=False)
    case_id = (await row(hub, named)).case_id
    path = f"{API_PREFIX}/cases/{case_id}/citizen-reports"

    async def reads() -> list[tuple[int, str]]:
        async with hub.engine.connect() as conn:
            got = await conn.execute(
                sa.select(contact_reads.c.report_id, contact_reads.c.user_name).order_by(
                    contact_reads.c.id
                )
            )
            return [(int(r), str(u)) for r, u in got]

    for role in (Role.OPERATOR, Role.DISPATCHER, Role.HANDLER):
        views = (await api.get(path, headers=auth[role])).json()
        assert [v["contact"]["phone"] for v in views] == ["138****5678", None]
        assert views[0]["contact"]["masked"] is True
    assert await reads() == []
    views = (await api.get(path, headers=auth[Role.ADMIN])).json()
    assert [v["contact"]["phone"] for v in views] == ["13812345678", None]
    assert await reads() == [(named, "admin-1")]  # the anonymous report had none to read
    assert anonymous == views[1]["service_request_id"]
