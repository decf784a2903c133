"""The read and device endpoints: dead letters, grid, devices, commands, desired config."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

from central_hub.adapters.evidence import EvidenceStore
from central_hub.adapters.mqtt import Inbound
from central_hub.api import API_PREFIX, create_app
from central_hub.domain.workflow import Role
from central_hub.hub import Hub
from central_hub.testing import FakeClock, ListSource, RecordingPublisher, inbound, make_status
from central_hub.workers.ingest import IngestWorker
from edge_agent.protocol import Channel, MemoryReplayGuard, load_public_key, topic, verify_command

pytestmark = pytest.mark.integration


async def test_resources(sqlite_hub: Hub, clock: FakeClock, tmp_path: Path) -> None:
    hub = sqlite_hub
    _, admin = await hub.users.add("root", Role.ADMIN)
    _, oper = await hub.users.add("op", Role.OPERATOR)
    a, o = {"Authorization": f"Bearer {admin}"}, {"Authorization": f"Bearer {oper}"}
    worker = IngestWorker(hub.engine, ListSource(), EvidenceStore(tmp_path), hub.filer, clock)
    junk = Inbound(
        topic("pole-1", Channel.EVENT), b'{"schema": "xh.event/1", "seq": "x"}', 1, False, 1
    )
    await worker.process([junk, inbound(make_status("pole-1", "online", clock.now))])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(hub)), base_url="http://hub"
    ) as api:
        page = (await api.get(f"{API_PREFIX}/dead-letters", headers=a)).json()
        assert page["total"] == 1
        assert base64.b64decode(page["items"][0]["raw_b64"]) == junk.payload
        assert "missing required field" in page["items"][0]["reason"]

        cell = (
            await api.get(
                f"{API_PREFIX}/grid/locate", params={"lat": 28.6472, "lon": 121.2615}, headers=o
            )
        ).json()
        assert cell["id"] == "hy-st-11"
        assert cell["level"] == "street"
        assert cell["path"][0] == "hy-area"
        assert cell["owners"]["enforcement"] == "zf-market-patrol"
        outside = await api.get(f"{API_PREFIX}/grid/locate", params={"lat": 0, "lon": 0}, headers=o)
        assert outside.status_code == 404
        geo = (await api.get(f"{API_PREFIX}/grid", headers=o)).json()
        assert geo["type"] == "FeatureCollection"
        assert len(geo["features"]) >= 21

        devices = (await api.get(f"{API_PREFIX}/devices", headers=o)).json()
        assert [(d["device_id"], d["state"]) for d in devices] == [("pole-1", "online")]

        bad = await api.post(
            f"{API_PREFIX}/devices/pole-1/commands", json={"kind": "self.destruct"}, headers=o
        )
        assert bad.status_code == 422
        assert "unknown command kind" in bad.json()["detail"]
        sent = await api.post(
            f"{API_PREFIX}/devices/pole-1/commands",
            json={"kind": "speaker.play", "params": {"clip": "no-vending"}, "ttl_s": 60},
            headers=o,
        )
        assert sent.status_code == 202
        cmd_id = sent.json()["cmd_id"]
        assert sent.json()["state"] == "queued"
        assert await hub.commands.flush() == 1
        publisher = hub.commands.publisher
        assert isinstance(publisher, RecordingPublisher)
        cmd_topic, payload, qos, retain = publisher.sent[-1]
        assert (cmd_topic, qos, retain) == (topic("pole-1", Channel.CMD), 1, False)
        verified = verify_command(
            payload,
            public_key=load_public_key(base64.b64encode(hub.key.public_key().public_bytes_raw())),
            device_id="pole-1",
            now=clock.now,
            replay=MemoryReplayGuard(),
        )
        assert verified.cmd_id == cmd_id
        listed = (await api.get(f"{API_PREFIX}/devices/pole-1/commands", headers=o)).json()
        assert [(c["cmd_id"], c["state"]) for c in listed] == [(cmd_id, "sent")]

        # Only admins change configs; the new version is published retained.
        body = {"config": {"speaker": {"volume": 40}}}
        assert (
            await api.put(f"{API_PREFIX}/devices/pole-1/config", json=body, headers=o)
        ).status_code == 403
        put = await api.put(f"{API_PREFIX}/devices/pole-1/config", json=body, headers=a)
        assert put.json() == {"device_id": "pole-1", "version": 1}
        assert publisher.sent[-1][0] == topic("pole-1", Channel.CONFIG_DESIRED)
        assert publisher.sent[-1][3] is True
        device = (await api.get(f"{API_PREFIX}/devices/pole-1", headers=o)).json()
        assert (device["desired_version"], device["config_in_sync"]) == (1, False)
