"""Every route of the OpenAPI document refuses missing, wrong and under-privileged tokens."""

from __future__ import annotations

import re

import httpx
import pytest

from central_hub.api import API_PREFIX, create_app
from central_hub.db.schema import auth_failures
from central_hub.domain.workflow import Role
from central_hub.hub import Hub
from central_hub.services.throttle import FailureThrottle

pytestmark = pytest.mark.integration

METHODS = ("get", "post", "put", "patch", "delete")


async def test_every_route_checks_token_and_role(sqlite_hub: Hub) -> None:
    app = create_app(sqlite_hub)
    # This walk sends hundreds of wrong tokens from one address on purpose; the throttle
    # that would answer 429 after ten of them has its own test below.
    sqlite_hub.auth_throttle = FailureThrottle(limit=1_000_000)
    tokens = {}
    for role in Role:
        _, tokens[role] = await sqlite_hub.users.add(f"u-{role.value}", role)
    _, disabled = await sqlite_hub.users.add("gone", Role.ADMIN)
    await sqlite_hub.users.set_disabled("gone", True)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub"
    ) as client:
        # The document is for signed-in users only; its docs page lives in the console.
        assert (await client.get(f"{API_PREFIX}/openapi.json")).status_code == 401
        docs = await client.get(f"{API_PREFIX}/docs")
        assert docs.status_code == 307
        assert docs.headers["location"] == "/console/api-docs"
        doc = (
            await client.get(
                f"{API_PREFIX}/openapi.json",
                headers={"Authorization": f"Bearer {tokens[Role.HANDLER]}"},
            )
        ).json()
        operations = [
            (method, path, op)
            for path, item in doc["paths"].items()
            for method, op in item.items()
            if method in METHODS
        ]
        assert len(operations) >= 15
        under_privileged = 0
        for method, path, op in operations:
            assert path.startswith(API_PREFIX), path
            roles = set(op.get("x-roles", []))
            assert roles, f"{method} {path} documents no roles"
            assert op.get("security"), f"{method} {path} has no security requirement"
            url = re.sub(r"\{[^}]+\}", "1", path)
            for headers in (
                {},
                {"Authorization": "Bearer xh_wrong"},
                {"Authorization": "Basic dXNlcjpwdw=="},
                {"Authorization": f"Bearer {disabled}"},
            ):
                resp = await client.request(method, url, headers=headers)
                assert resp.status_code == 401, (method, path, headers, resp.text)
            for role in Role:
                if role.value in roles:
                    continue
                under_privileged += 1
                resp = await client.request(
                    method, url, headers={"Authorization": f"Bearer {tokens[role]}"}
                )
                assert resp.status_code == 403, (method, path, role, resp.text)
                assert "may not" in resp.json()["detail"]
        assert under_privileged > 10
        # An allowed role gets past the guard (here: a 200, or a 404 for the dummy id).
        resp = await client.get(
            f"{API_PREFIX}/me", headers={"Authorization": f"Bearer {tokens[Role.HANDLER]}"}
        )
        assert resp.status_code == 200
        assert resp.json()["name"] == "u-handler"
        resp = await client.get(
            f"{API_PREFIX}/devices/none", headers={"Authorization": f"Bearer {tokens[Role.ADMIN]}"}
        )
        assert resp.status_code == 404


async def test_refused_tokens_from_one_address_are_throttled_and_audited(sqlite_hub: Hub) -> None:
    now = [0.0]
    sqlite_hub.auth_throttle = FailureThrottle(
        limit=10, window_s=60, block_s=300, clock=lambda: now[0]
    )
    _, good = await sqlite_hub.users.add("ops", Role.OPERATOR)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(sqlite_hub)), base_url="http://hub"
    ) as client:

        async def me(token: str) -> httpx.Response:
            return await client.get(
                f"{API_PREFIX}/me", headers={"Authorization": f"Bearer {token}"}
            )

        for n in range(10):
            assert (await me(f"xh_guess_{n}")).status_code == 401
        blocked = await me(good)  # the address is refused, whatever it sends now
        assert blocked.status_code == 429
        assert blocked.headers["retry-after"] == "300"
        assert "too many failed attempts" in blocked.json()["detail"]
        now[0] += 301
        assert (await me(good)).status_code == 200
        _, boss = await sqlite_hub.users.add("boss", Role.ADMIN)
        audit = await client.get(
            f"{API_PREFIX}/auth-failures", headers={"Authorization": f"Bearer {boss}"}
        )
        assert audit.status_code == 200
        assert audit.json()[0]["reason"] == "blocked"
    async with sqlite_hub.engine.connect() as conn:
        rows = (await conn.execute(auth_failures.select().order_by(auth_failures.c.id))).all()
    assert [r.reason for r in rows].count("blocked") == 1
    assert sum(r.reason.startswith("api: unknown token") for r in rows) == 10
