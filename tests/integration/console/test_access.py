"""Refusals: no session, no CSRF token, another origin, the wrong role, logout, disabled users."""

from __future__ import annotations

from typing import Any

import pytest
from console_http import Client, seed_case
from fastapi import FastAPI

from central_hub.console.app import console_routes
from central_hub.db.schema import auth_failures
from central_hub.hub import Hub

pytestmark = pytest.mark.integration


def concrete(path: str) -> str:
    return (
        path.replace("{case_id}", "1")
        .replace("{device_id}", "pole-1")
        .replace("{cmd_id}", "x")
        .replace("{sha256}", "0" * 64)
        .replace("{rollout_id}", "1")
        .replace("{event_id}", "x")
    )


async def test_every_console_page_and_data_route_refuses_anonymous_requests(
    app: FastAPI, client: Client, hub: Hub
) -> None:
    await seed_case(hub)
    routes = console_routes()
    assert len(routes) >= 14
    checked = 0
    for method, path in routes:
        if path == "/console/login":
            continue
        r = await client.http.request(method, concrete(path))
        if method == "GET" and not path.startswith(("/console/data", "/console/live")):
            assert r.status_code == 303, (method, path)
            assert r.headers["location"].startswith("/console/login?next=")
        else:
            assert r.status_code in (401, 403), (method, path, r.status_code)
        assert "test 0504" not in r.text
        checked += 1
    assert checked == len(routes) - 2
    assert (await client.http.get("/console/static/console.css")).status_code == 200


async def test_login_with_a_wrong_token_or_another_users_token_is_refused(
    client: Client, tokens: dict[str, str]
) -> None:
    assert (await client.login("operator", "xh_wrong")).status_code == 401
    assert (await client.login("operator", tokens["handler"])).status_code == 401
    r = await client.login("operator", tokens["operator"])
    assert r.status_code == 303
    assert r.headers["location"] == "/console/"
    page = await client.get("/console/")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert (await client.get("/console/cases")).status_code == 200


async def test_login_needs_the_form_token_and_next_stays_on_the_console(
    client: Client, tokens: dict[str, str]
) -> None:
    await client.http.get("/console/login")
    secure = await client.http.get("https://hub/console/login")
    assert "secure" in secure.headers["set-cookie"].lower()
    r = await client.http.post(
        "/console/login", data={"name": "operator", "token": tokens["operator"]}
    )
    assert r.status_code == 403
    page = await client.http.get("/console/login?next=https://evil.example/")
    assert 'name="next" value="/console/"' in page.text
    page = await client.http.get("/console/login?next=/console/stats")
    assert 'name="next" value="/console/stats"' in page.text


async def test_state_changes_without_the_csrf_token_are_refused(as_role: Any, hub: Hub) -> None:
    case_id = await seed_case(hub)
    op: Client = await as_role("operator")
    url = f"/console/cases/{case_id}/actions"
    r = await op.post(url, data={"action": "start_verify"})
    assert r.status_code == 403
    assert "CSRF" in r.text
    r = await op.post(url, data={"action": "start_verify", "csrf_token": "forged"})
    assert r.status_code == 403
    r = await op.post(
        url,
        data={"action": "start_verify", "csrf_token": op.csrf},
        headers={"Origin": "https://evil.example"},
    )
    assert r.status_code == 403
    assert (await hub.cases.get(case_id)).case.stage == "reported"  # nothing happened
    r = await op.post(
        url,
        data={"action": "start_verify", "csrf_token": op.csrf},
        headers={"Origin": "http://hub"},
    )
    assert r.status_code == 303
    assert (await hub.cases.get(case_id)).case.stage == "verifying"
    r = await op.post("/console/logout")
    assert r.status_code == 403  # even logging out needs the token


async def test_logout_ends_the_session_on_the_server(as_role: Any) -> None:
    op: Client = await as_role("operator")
    cookie = op.http.cookies.get("xh_session")
    r = await op.post("/console/logout", data={"csrf_token": op.csrf})
    assert r.status_code == 303
    op.http.cookies.set("xh_session", cookie or "")  # a copied cookie is worthless now
    assert (await op.get("/console/")).status_code == 303


async def test_a_disabled_user_or_rotated_token_ends_the_session(as_role: Any, hub: Hub) -> None:
    op: Client = await as_role("operator")
    disp: Client = await as_role("dispatcher")
    await hub.users.set_disabled("operator", True)
    assert (await op.get("/console/")).status_code == 303
    await hub.users.rotate("dispatcher")
    assert (await disp.get("/console/data/map")).status_code == 401


async def test_roles_see_only_their_pages_and_actions(as_role: Any, hub: Hub) -> None:
    case_id = await seed_case(hub, stage="registered")
    hand: Client = await as_role("handler")
    assert (await hand.get("/console/devices")).status_code == 403
    assert (await hand.get("/console/stats")).status_code == 403
    page = await hand.get(f"/console/cases/{case_id}")
    assert page.status_code == 200
    assert 'data-action="dispatch"' not in page.text
    assert 'id="no-actions"' in page.text
    assert 'data-nav="devices"' not in page.text
    r = await hand.post(
        f"/console/cases/{case_id}/actions", data={"action": "dispatch", "csrf_token": hand.csrf}
    )
    assert r.status_code == 403
    assert "dispatch" in r.text
    assert (await hub.cases.get(case_id)).case.stage == "registered"
    data = (await hand.get("/console/data/map")).json()
    assert data["devices"] == []
    assert [c["id"] for c in data["cases"]] == [case_id]

    disp: Client = await as_role("dispatcher")
    page = await disp.get(f"/console/cases/{case_id}")
    assert 'data-action="dispatch"' in page.text
    assert 'data-action="cancel"' not in page.text
    assert 'name="squad_id"' in page.text
    r = await disp.post(
        f"/console/cases/{case_id}/actions",
        data={"action": "dispatch", "squad_id": "zf-e", "csrf_token": disp.csrf},
    )
    assert r.status_code == 303
    detail = await hub.cases.get(case_id)
    assert detail.case.stage == "dispatched"
    assert detail.case.squad_id == "zf-e"
    assert "zf-e" in detail.audits[-1].reason
    r = await disp.post(
        "/console/devices/pole-1/speak", json={"clip": "chime"}, headers={"X-CSRF-Token": disp.csrf}
    )
    assert r.status_code == 403


async def test_a_console_session_is_not_an_api_token(as_role: Any) -> None:
    op: Client = await as_role("operator")
    r = await op.http.get("/api/v1/cases")
    assert r.status_code == 401
    r = await op.http.get("/api/v1/devices", headers={"X-CSRF-Token": op.csrf})
    assert r.status_code == 401


async def test_repeated_failed_logins_are_throttled_and_audited(
    client: Client, tokens: dict[str, str], hub: Hub
) -> None:
    for _ in range(10):
        assert (await client.login("operator", "xh_guess")).status_code == 401
    blocked = await client.login("operator", tokens["operator"])  # even the right token
    assert blocked.status_code == 429
    assert "登录失败次数过多" in blocked.text
    async with hub.engine.connect() as conn:
        reasons = [r.reason for r in (await conn.execute(auth_failures.select())).all()]
    assert reasons.count("blocked") == 1
    assert sum(r.startswith("console: unknown token") for r in reasons) == 10
