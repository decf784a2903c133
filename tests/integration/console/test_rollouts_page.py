"""The console's rollout pages: admins start a campaign from the form (a bad form comes
back with its problems and its values kept), watch its units and abort it; other roles
are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from central_hub.console.live import ChangeFeed
from central_hub.db.schema import devices
from central_hub.hub import Hub
from edge_agent.vision.package import sign_package

pytestmark = pytest.mark.integration


async def published(hub: Hub, tmp_path: Path) -> str:
    key = Ed25519PrivateKey.generate()
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "model.onnx").write_bytes(b"\x00" * 4096)
    (pkg / "manifest.yaml").write_text(
        "name: street-detector\nversion: '1.2.0'\n", encoding="utf-8"
    )
    sign_package(pkg, key)
    return (await hub.packages.publish(pkg, key.public_key(), by="admin")).sha256


async def online(hub: Hub, *ids: str) -> None:
    async with hub.engine.begin() as conn:
        await conn.execute(
            devices.update().where(devices.c.device_id.in_(ids)).values(state="online")
        )


async def test_an_admin_starts_watches_and_aborts_a_rollout(
    hub: Hub, as_role: Any, tmp_path: Path
) -> None:
    sha = await published(hub, tmp_path)
    for device_id in ("pole-1", "pole-2"):
        await hub.devices.register(device_id, "pole")
    admin = await as_role("admin")
    page = await admin.get("/console/rollouts")
    assert page.status_code == 200
    assert f'value="{sha}"' in page.text
    assert "street-detector 1.2.0" in page.text
    assert 'href="/console/rollouts"' in page.text  # the admin's navigation has it
    bad = await admin.post(
        "/console/rollouts",
        data={
            "csrf_token": admin.csrf,
            "what": "model",
            "package": sha,
            "slot": "",
            "devices": "pole-1",
            "canary": "-1",
        },
    )
    assert bad.status_code == 422
    assert "slot: the units&#39; detector name" in bad.text
    assert "canary" in bad.text
    assert 'value="pole-1"' in bad.text
    unknown = await admin.post(
        "/console/rollouts",
        data={
            "csrf_token": admin.csrf,
            "what": "model",
            "package": sha,
            "slot": "street",
            "devices": "pole-9",
        },
    )
    assert unknown.status_code == 422
    assert "no device(s) pole-9" in unknown.text
    made = await admin.post(
        "/console/rollouts",
        data={
            "csrf_token": admin.csrf,
            "what": "model",
            "package": sha,
            "slot": "street",
            "kinds": "pole",
            "canary": "1",
            "rate_per_min": "30",
            "max_failed_share": "0.25",
        },
    )
    assert made.status_code == 303
    where = made.headers["location"]
    view = (await hub.rollouts.all())[0]
    assert where == f"/console/rollouts/{view.id}"
    assert view.policy.rate_per_min == 30
    assert view.policy.max_failed_share == 0.25
    feed = ChangeFeed(hub.engine)
    before = await feed.topic_fingerprint("rollouts")
    await online(hub, "pole-1", "pole-2")
    await hub.rollouts.tick()  # the canary starts: open pages are told to refresh
    assert await feed.topic_fingerprint("rollouts") != before
    rows = await admin.get("/console/rollouts?partial=1")
    assert rows.status_code == 200
    assert "<html" not in rows.text
    assert f'data-rollout-id="{view.id}"' in rows.text
    body = await admin.get(f"{where}?partial=1")
    assert 'data-state="in_progress"' in body.text
    assert "<html" not in body.text
    detail = await admin.get(where)
    assert 'data-device-id="pole-1"' in detail.text
    assert 'data-device-id="pole-2"' in detail.text
    assert 'data-phase="canary"' in detail.text
    stopped = await admin.post(f"{where}/abort", data={"csrf_token": admin.csrf, "rollback": "1"})
    assert stopped.status_code == 303
    assert 'data-phase="aborted"' in (await admin.get(where)).text
    assert "aborted by admin" in (await hub.rollouts.get(view.id)).reason
    config = await admin.post(
        "/console/rollouts",
        data={
            "csrf_token": admin.csrf,
            "what": "config",
            "config": "telemetry: [",
            "devices": "pole-1",
        },
    )
    assert config.status_code == 422
    assert "config: not YAML" in config.text
    assert (await admin.get("/console/rollouts/999")).status_code == 404
    shadow = await admin.post(
        "/console/rollouts",
        data={
            "csrf_token": admin.csrf,
            "what": "model",
            "package": sha,
            "slot": "street",
            "devices": "pole-2",
            "shadow": "1",
            "shadow_cameras": "mast",
        },
    )
    assert shadow.status_code == 303
    newest = (await hub.rollouts.all())[0]
    assert newest.shadow == {"cameras": ["mast"]}
    listing = (await admin.get("/console/rollouts")).text
    assert f"{sha[:12]} → street (影子)" in listing  # the console speaks Chinese by default
    report = await admin.get("/console/shadow?days=3")
    assert report.status_code == 200
    assert 'id="shadow"' in report.text


async def test_other_roles_may_not_see_or_start_rollouts(as_role: Any) -> None:
    for role in ("operator", "dispatcher", "handler"):
        client = await as_role(role)
        page = await client.get("/console/rollouts")
        assert page.status_code == 403, role
        assert (await client.get("/console/shadow")).status_code == 403
        assert 'href="/console/rollouts"' not in (await client.get("/console/")).text
        refused = await client.post(
            "/console/rollouts", data={"csrf_token": client.csrf, "kinds": "pole"}
        )
        assert refused.status_code == 403
