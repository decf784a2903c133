"""Commands over a real broker: queued while offline, sent on presence, acked, expired."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from central_hub.hub import Hub
from central_hub.services.commands import CommandState
from central_hub.settings import HubSettings
from central_hub.testing import running_hub
from edge_agent.protocol import public_key_b64
from simulators.device import SimDevice
from simulators.mosquitto import MosquittoBroker
from simulators.polling import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def live_hub(tmp_path: Path, mosquitto: MosquittoBroker) -> AsyncIterator[Hub]:
    settings = HubSettings(
        data_dir=tmp_path / "hub",
        mqtt_port=mosquitto.port,
        mqtt_client_id="hub-cmd-test",
        command_tick_s=0.2,
    )
    async with running_hub(settings) as hub:
        yield hub


async def test_command_waits_for_device_then_succeeds(
    live_hub: Hub, mosquitto: MosquittoBroker
) -> None:
    hub = live_hub
    assert hub.mqtt is not None
    assert await hub.mqtt.check_delivery(5), "Mosquitto did not deliver the shared probe"
    await hub.devices.register("pole-1", "pole")
    queued = await hub.commands.enqueue(
        "pole-1", "speaker.say", {"text": "请勿占道经营"}, actor="op"
    )
    await asyncio.sleep(0.5)  # a few sender ticks: nothing goes to an offline device
    assert (await hub.commands.get(queued.cmd_id)).state is CommandState.QUEUED

    unit = SimDevice("pole-1", port=mosquitto.port, hub_public_key=public_key_b64(hub.key))
    await asyncio.to_thread(unit.start)
    try:
        await asyncio.to_thread(unit.online)

        async def succeeded() -> bool:
            view = await hub.commands.get(queued.cmd_id)
            return view.state is CommandState.SUCCEEDED

        assert await eventually(succeeded, 20), unit.refused
        assert [c.cmd_id for c in unit.commands] == [queued.cmd_id]
        assert unit.commands[0].params == {"text": "请勿占道经营"}
        view = await hub.commands.get(queued.cmd_id)
        assert view.detail == "speaker.say done (simulated)"
        assert view.sent_at is not None
        device = await hub.devices.get("pole-1")
        assert device.state == "online"

        version = await hub.devices.set_desired("pole-1", {"speaker": {"volume": 70}})
        assert await eventually(lambda: bool(unit.desired), 5)
        assert unit.desired[-1]["version"] == version
        assert unit.desired[-1]["config"] == {"speaker": {"volume": 70}}
    finally:
        unit.close()


async def test_command_for_offline_device_expires(live_hub: Hub) -> None:
    hub = live_hub
    await hub.devices.register("pole-9", "pole")
    cmd = await hub.commands.enqueue(
        "pole-9", "speaker.stop", {}, ttl=timedelta(seconds=1), actor="op"
    )

    async def expired() -> bool:
        return (await hub.commands.get(cmd.cmd_id)).state is CommandState.EXPIRED

    assert await eventually(expired, 5)
    view = await hub.commands.get(cmd.cmd_id)
    assert view.state is CommandState.EXPIRED
    assert view.sent_at is None
