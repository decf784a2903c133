"""Commands over a real broker: queued while offline, sent on presence, acked, expired."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from central_hub.app import run_hub
from central_hub.hub import Hub, build_hub
from central_hub.services.commands import CommandState
from central_hub.settings import HubSettings
from central_hub.testing import eventually, make_status
from edge_agent.protocol import (
    Channel,
    CommandAck,
    CommandRejected,
    MemoryReplayGuard,
    encode,
    load_public_key,
    public_key_b64,
    topic,
    verify_command,
)
from simulators.mosquitto import MosquittoBroker

pytestmark = pytest.mark.integration


class FakeAgent:
    """A device that verifies commands with the hub's public key and acks them."""

    def __init__(self, port: int, device_id: str, public_key: str) -> None:
        self.device_id = device_id
        self.key = load_public_key(public_key)
        self.guard = MemoryReplayGuard()
        self.commands: list[Any] = []
        self.rejected: list[str] = []
        self.desired: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"agent-{device_id}"
        )
        self.client.will_set(
            topic(device_id, Channel.STATUS),
            encode(make_status(device_id, "offline")),
            qos=1,
            retain=True,
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_connect(self, client: paho.Client, *_: Any) -> None:
        client.subscribe(
            [
                (topic(self.device_id, Channel.CMD), 1),
                (topic(self.device_id, Channel.CONFIG_DESIRED), 1),
            ]
        )

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        if msg.topic.endswith("config/desired"):
            self.desired.append(json.loads(msg.payload))
            return
        try:
            cmd = verify_command(
                msg.payload,
                public_key=self.key,
                device_id=self.device_id,
                now=datetime.now(UTC),
                replay=self.guard,
            )
        except CommandRejected as exc:
            self.rejected.append(str(exc))
            return
        self.commands.append(cmd)
        for state in ("received", "succeeded"):
            ack = CommandAck(
                cmd_id=cmd.cmd_id,
                device_id=self.device_id,
                state=state,
                detail="played" if state == "succeeded" else "",
                ts=datetime.now(UTC),
            )
            self.client.publish(topic(self.device_id, Channel.CMD_ACK), encode(ack), qos=1)

    def online(self) -> None:
        self.client.publish(
            topic(self.device_id, Channel.STATUS),
            encode(make_status(self.device_id, "online")),
            qos=1,
            retain=True,
        )

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
async def live_hub(tmp_path: Path, mosquitto: MosquittoBroker) -> AsyncIterator[Hub]:
    settings = HubSettings(
        data_dir=tmp_path / "hub",
        mqtt_port=mosquitto.port,
        mqtt_client_id="hub-cmd-test",
        command_tick_s=0.2,
    )
    hub = await build_hub(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(run_hub(hub, settings, api=False, stop=stop))
    assert hub.mqtt is not None
    async with asyncio.timeout(10):
        await hub.mqtt.wait_subscribed()
    yield hub
    stop.set()
    await asyncio.wait_for(task, 10)
    await hub.close()


async def test_command_waits_for_device_then_succeeds(
    live_hub: Hub, mosquitto: MosquittoBroker
) -> None:
    hub = live_hub
    await hub.devices.register("pole-1", "pole")
    queued = await hub.commands.enqueue(
        "pole-1", "speaker.say", {"text": "请勿占道经营"}, actor="op"
    )
    await asyncio.sleep(0.5)  # a few sender ticks: nothing goes to an offline device
    assert (await hub.commands.get(queued.cmd_id)).state is CommandState.QUEUED

    agent = FakeAgent(mosquitto.port, "pole-1", public_key_b64(hub.key))
    try:
        assert await asyncio.to_thread(agent.ready.wait, 5)
        agent.online()

        async def state() -> CommandState:
            return (await hub.commands.get(queued.cmd_id)).state

        states: list[CommandState] = []

        def done() -> bool:
            return bool(states) and states[-1] is CommandState.SUCCEEDED

        deadline = asyncio.get_running_loop().time() + 20
        while not done() and asyncio.get_running_loop().time() < deadline:
            states.append(await state())
            await asyncio.sleep(0.05)
        assert done(), (states[-5:], agent.rejected)
        assert [c.cmd_id for c in agent.commands] == [queued.cmd_id]
        assert agent.commands[0].params == {"text": "请勿占道经营"}
        view = await hub.commands.get(queued.cmd_id)
        assert view.detail == "played"
        assert view.sent_at is not None
        device = await hub.devices.get("pole-1")
        assert device.state == "online"

        version = await hub.devices.set_desired("pole-1", {"speaker": {"volume": 70}})
        assert await eventually(lambda: bool(agent.desired), 5)
        assert agent.desired[-1]["version"] == version
        assert agent.desired[-1]["config"] == {"speaker": {"volume": 70}}
    finally:
        agent.close()


async def test_command_for_offline_device_expires(live_hub: Hub) -> None:
    hub = live_hub
    await hub.devices.register("pole-9", "pole")
    cmd = await hub.commands.enqueue(
        "pole-9", "speaker.stop", {}, ttl=timedelta(seconds=1), actor="op"
    )
    for _ in range(100):
        if (await hub.commands.get(cmd.cmd_id)).state is CommandState.EXPIRED:
            break
        await asyncio.sleep(0.05)
    view = await hub.commands.get(cmd.cmd_id)
    assert view.state is CommandState.EXPIRED
    assert view.sent_at is None
