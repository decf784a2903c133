"""Every route of the OpenAPI document refuses missing, wrong and under-privileged tokens."""

from __future__ import annotations

import re

import httpx
import pytest

from central_hub.api import API_PREFIX, create_app
from central_hub.domain.workflow import Role
from central_hub.hub import Hub

pytestmark = pytest.mark.integration

METHODS = ("get", "post", "put", "patch", "delete")


async def test_every_route_checks_token_and_role(sqlite_hub: Hub) -> None:
    app = create_app(sqlite_hub)
    tokens = {}
    for role in Role:
        _, tokens[role] = await sqlite_hub.users.add(f"u-{role.value}", role)
    _, disabled = await sqlite_hub.users.add("gone", Role.ADMIN)
    await sqlite_hub.users.set_disabled("gone", True)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub"
    ) as client:
        doc = (await client.get(f"{API_PREFIX}/openapi.json")).json()
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
