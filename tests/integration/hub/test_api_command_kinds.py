"""What a unit runs changes only through the routes that keep its record (issue #17,
finding 4): the raw commands route refuses config.apply and model.install, and lets only
admins roll a model back."""

from __future__ import annotations

import httpx
import pytest

from central_hub.api import create_app
from central_hub.domain.workflow import Role
from central_hub.hub import Hub

pytestmark = pytest.mark.integration


async def test_config_and_models_go_through_their_own_routes(sqlite_hub: Hub) -> None:
    await sqlite_hub.devices.register("pole-1", "pole")
    _, operator = await sqlite_hub.users.add("op", Role.OPERATOR)
    _, admin = await sqlite_hub.users.add("boss", Role.ADMIN)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(sqlite_hub)), base_url="http://hub"
    ) as http:

        async def send(token: str, kind: str, params: dict[str, object]) -> httpx.Response:
            return await http.post(
                "/api/v1/devices/pole-1/commands",
                headers={"Authorization": f"Bearer {token}"},
                json={"kind": kind, "params": params},
            )

        for token in (operator, admin):
            r = await send(token, "config.apply", {"version": 9, "config": {"speaker": {}}})
            assert r.status_code == 422
            assert "PUT /api/v1/devices/{id}/config" in r.json()["detail"]
            r = await send(token, "model.install", {"slot": "street"})
            assert r.status_code == 422
            assert "rollouts" in r.json()["detail"]
        r = await send(operator, "model.rollback", {"slot": "street"})
        assert r.status_code == 403
        assert "needs admin" in r.json()["detail"]
        assert (await send(admin, "model.rollback", {"slot": "street"})).status_code == 202
        assert (await send(operator, "speaker.say", {"text": "请勿占道"})).status_code == 202
        # A command the broker would drop (finding 6: 2,000,000 characters were "sent").
        huge = await send(operator, "speaker.say", {"text": "请" * 2_000_000})
        assert huge.status_code == 422
        assert "at most 262144" in huge.json()["detail"]
        # Nor may a desired config the broker would drop be stored: the unit would never
        # converge and the retained message would never arrive.
        put = await http.put(
            "/api/v1/devices/pole-1/config",
            headers={"Authorization": f"Bearer {admin}"},
            json={"config": {"speaker": {"clips": {"x": "请" * 300_000}}}},
        )
        assert put.status_code == 422
        assert "at most 262144" in put.json()["detail"]
        assert (await sqlite_hub.devices.get("pole-1")).desired_version == 0
        r = await send(operator, "keys.trust", {})
        assert r.status_code == 422
        assert "keys rotate" in r.json()["detail"]
    kinds = [c.kind for c in await sqlite_hub.commands.list_for("pole-1")]
    assert sorted(kinds) == ["model.rollback", "speaker.say"]
