"""Notices through the REST API of a hub built from its settings: templates, sending to a
list of contacts, the worker sending to a real HTTP gateway, the gateway's signed receipt,
opt-outs, roles, and 422s that name what is wrong."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from central_hub.adapters.notice_channels import SIGNATURE_HEADER, sign_body
from central_hub.api import API_PREFIX, create_app
from central_hub.domain.notices import NoticeChannel
from central_hub.domain.workflow import Role
from central_hub.hub import Hub, build_hub
from central_hub.settings import HubSettings
from central_hub.testing import FakeClock, RecordingPublisher
from simulators.sms_gateway import SmsGateway

pytestmark = pytest.mark.integration

SECRET = b"gateway-secret"
MOVE_CAR = {
    "name": "move-car",
    "subject": "挪车提醒",
    "body": "您的车辆 {plate} 停在 {place}，请尽快挪走。",
    "variables": ["plate", "place"],
}


@pytest.fixture
async def served(tmp_path: Path, clock: FakeClock) -> AsyncIterator[tuple[Hub, SmsGateway]]:
    gateway = SmsGateway(SECRET)
    port = await gateway.start()
    secret_file = tmp_path / "sms.secret"
    secret_file.write_bytes(SECRET + b"\n")
    settings = HubSettings(
        data_dir=tmp_path / "hub",
        notice_sms_url=f"http://127.0.0.1:{port}/sms?to={{phone}}",
        notice_sms_secret_file=secret_file,
        notice_quiet_hours="",
    )
    hub = await build_hub(settings, clock=clock, mqtt=False, publisher=RecordingPublisher())
    yield hub, gateway
    for sender in hub.notice_worker.senders.values():
        await sender.aclose()
    await hub.close()
    await gateway.stop()


async def _clients(hub: Hub) -> tuple[httpx.AsyncClient, dict[Role, dict[str, str]]]:
    auth = {}
    for role in Role:
        _, token = await hub.users.add(f"u-{role.value}", role)
        auth[role] = {"Authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=create_app(hub), raise_app_exceptions=True)
    return httpx.AsyncClient(transport=transport, base_url="http://hub"), auth


def _notice(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "template": "move-car",
        "variables": {"plate": "浙J12345", "place": "县前街"},
        "audience": {
            "kind": "contacts",
            "contacts": [{"contact_id": "owner-1", "name": "王", "phone": "13800000001"}],
        },
        "channel": "sms",
    }
    body.update(over)
    return body


async def test_send_follow_and_receipt_through_the_api(served: tuple[Hub, SmsGateway]) -> None:
    hub, gateway = served
    client, auth = await _clients(hub)
    async with client:
        made = await client.post(
            f"{API_PREFIX}/notice-templates", json=MOVE_CAR, headers=auth[Role.ADMIN]
        )
        assert made.status_code == 201, made.text
        again = await client.post(
            f"{API_PREFIX}/notice-templates", json=MOVE_CAR, headers=auth[Role.ADMIN]
        )
        assert again.status_code == 409
        sent = await client.post(
            f"{API_PREFIX}/notices", json=_notice(), headers=auth[Role.OPERATOR]
        )
        assert sent.status_code == 201, sent.text
        notice = sent.json()
        assert notice["deliveries"] == {"queued": 1}
        assert notice["body"] == "您的车辆 浙J12345 停在 县前街，请尽快挪走。"

        assert await hub.notice_worker.run_once(NoticeChannel.SMS) == 1
        (request,) = gateway.requests
        assert request.path == "/sms?to=13800000001"

        listed = await client.get(f"{API_PREFIX}/notices", headers=auth[Role.DISPATCHER])
        assert [n["deliveries"] for n in listed.json()] == [{"sent": 1}]
        deliveries = (
            await client.get(
                f"{API_PREFIX}/notices/{notice['id']}/deliveries", headers=auth[Role.OPERATOR]
            )
        ).json()
        assert deliveries[0]["provider_message_id"] == "gw-1"

        # The gateway's receipt: signed with the shared secret, else refused.
        receipt = json.dumps({"message_id": "gw-1", "status": "delivered"}).encode()
        url = f"{API_PREFIX}/notices/receipts"
        forged = await client.post(url, content=receipt, headers={SIGNATURE_HEADER: "sha256=00"})
        assert forged.status_code == 401
        good = await client.post(
            url, content=receipt, headers={SIGNATURE_HEADER: sign_body(SECRET, receipt)}
        )
        assert good.json() == {"changed": True}
        unknown = json.dumps({"message_id": "gw-99", "status": "delivered"}).encode()
        missing = await client.post(
            url, content=unknown, headers={SIGNATURE_HEADER: sign_body(SECRET, unknown)}
        )
        assert missing.status_code == 404
        got = await client.get(f"{API_PREFIX}/notices/{notice['id']}", headers=auth[Role.ADMIN])
        assert got.json()["deliveries"] == {"delivered": 1}


async def test_opt_outs_roles_and_named_errors(served: tuple[Hub, SmsGateway]) -> None:
    hub, gateway = served
    client, auth = await _clients(hub)
    async with client:
        bad = await client.post(
            f"{API_PREFIX}/notice-templates",
            json={**MOVE_CAR, "body": "{plate} at {shop}"},
            headers=auth[Role.ADMIN],
        )
        assert bad.status_code == 422
        assert "shop" in bad.json()["detail"]
        assert "place" in bad.json()["detail"]
        by_operator = await client.post(
            f"{API_PREFIX}/notice-templates", json=MOVE_CAR, headers=auth[Role.OPERATOR]
        )
        assert by_operator.status_code == 403
        await client.post(f"{API_PREFIX}/notice-templates", json=MOVE_CAR, headers=auth[Role.ADMIN])
        handler = await client.get(f"{API_PREFIX}/notices", headers=auth[Role.HANDLER])
        assert handler.status_code == 403

        out = await client.post(
            f"{API_PREFIX}/notice-opt-outs",
            json={"channel": "sms", "address": "13800000001", "reason": "called the hotline"},
            headers=auth[Role.OPERATOR],
        )
        assert out.status_code == 201
        await client.post(f"{API_PREFIX}/notices", json=_notice(), headers=auth[Role.OPERATOR])
        await hub.notice_worker.run_once(NoticeChannel.SMS)
        assert gateway.requests == []
        (notice,) = (await client.get(f"{API_PREFIX}/notices", headers=auth[Role.ADMIN])).json()
        assert notice["deliveries"] == {"failed": 1}

        missing = await client.post(
            f"{API_PREFIX}/notices",
            json=_notice(variables={"plate": "x"}, case_id=999),
            headers=auth[Role.OPERATOR],
        )
        assert missing.status_code == 422
        assert "missing variables of template move-car: place" in missing.json()["detail"]
        assert "no case 999" in missing.json()["detail"]
        batch = await client.post(
            f"{API_PREFIX}/notices/batch",
            json={"notices": [_notice(), _notice(template="nope")]},
            headers=auth[Role.OPERATOR],
        )
        assert batch.status_code == 422
        assert batch.json()["detail"] == "notices[1]: no notice template 'nope'"
        assert (
            len((await client.get(f"{API_PREFIX}/notices", headers=auth[Role.ADMIN])).json()) == 1
        )
        removed = await client.post(
            f"{API_PREFIX}/notice-opt-outs/remove",
            json={"channel": "sms", "address": "13800000001"},
            headers=auth[Role.ADMIN],
        )
        assert removed.json() == {"removed": True}
