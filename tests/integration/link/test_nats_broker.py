"""The hub and a real unit over the second broker: NATS server's MQTT gateway (JetStream).

The same loop the Mosquitto tests check, on NATS: a unit's events reach the hub's
database, its presence is kept, a signed ``speaker.say`` is played and acked, and an
outage of the broker loses nothing (the unit's outbox and JetStream's sessions carry the
events across). Also what a city must know: NATS 2.9 grants a ``$share`` subscription
but delivers nothing to it, so the hub runs without a share group there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion

from central_hub.db.schema import events
from central_hub.errors import NotFoundError
from central_hub.hub import Hub
from central_hub.services.commands import CommandState
from central_hub.settings import HubSettings
from central_hub.testing import running_hub
from edge_agent.config import load_config
from edge_agent.runner import Agent
from simulators.nats import NatsBroker
from simulators.polling import eventually, eventually_sync

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 40


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsBroker]:
    with NatsBroker(tmp_path / "nats") as broker:
        yield broker


@pytest.fixture
async def nats_hub(tmp_path: Path, nats: NatsBroker) -> AsyncIterator[Hub]:
    settings = HubSettings(
        data_dir=tmp_path / "hub",
        mqtt_port=nats.port,
        mqtt_client_id="hub-nats",
        share_group="",  # NATS has no $share groups: one worker, a plain subscription
        command_tick_s=0.2,
    )
    async with running_hub(settings) as hub:
        yield hub


async def _stored_seqs(hub: Hub, device_id: str) -> set[int]:
    async with hub.engine.connect() as conn:
        rows = await conn.execute(sa.select(events.c.seq).where(events.c.device_id == device_id))
        return {int(r.seq) for r in rows}


async def test_hub_and_unit_over_nats_with_an_outage(
    nats: NatsBroker, nats_hub: Hub, agent_config: Any, tmp_path: Path
) -> None:
    hub = nats_hub
    config = agent_config(
        nats,
        "pole-nats-01",
        hub={"public_key": hub_public_key(hub)},
        selftest={"events": EVENTS, "rate_per_s": 4},  # 10 s of events: the outage falls in it
    )
    agent = Agent(load_config(config), config_path=config)
    task = asyncio.create_task(agent.run())
    try:
        assert await eventually(lambda: _seen_some(hub), 20, every_s=0.1), (
            "no unit event reached the hub over NATS"
        )
        nats.stop()
        await asyncio.sleep(3)  # events keep coming into the unit's outbox
        nats.start()
        want = set(range(1, EVENTS + 1))
        got = await eventually(lambda: _complete(hub, want), 60, every_s=0.25)
        assert got == want, f"missing after the outage: {sorted(want - (got or set()))[:10]}"
        device = await hub.devices.get("pole-nats-01")
        assert device.state in ("online", "degraded")

        cmd = await hub.commands.enqueue(
            "pole-nats-01", "speaker.say", {"text": "请勿占道经营"}, actor="op"
        )

        async def played() -> bool:
            return (await hub.commands.get(cmd.cmd_id)).state is CommandState.SUCCEEDED

        assert await eventually(played, 30, every_s=0.1), "speaker.say not acked over NATS"
        assert list((config.parent / "spoken").glob("*.wav")), "the unit played nothing"
    finally:
        agent.request_stop()
        await asyncio.wait_for(task, 20)


async def _seen_some(hub: Hub) -> bool:
    return len(await _stored_seqs(hub, "pole-nats-01")) >= 3


async def _complete(hub: Hub, want: set[int]) -> set[int] | None:
    got = await _stored_seqs(hub, "pole-nats-01")
    return got if got >= want else None


def hub_public_key(hub: Hub) -> str:
    from edge_agent.protocol import public_key_b64

    return public_key_b64(hub.key)


def test_nats_grants_share_groups_but_delivers_nothing_to_them(nats: NatsBroker) -> None:
    """Why ``share_group`` must be empty on NATS: the hub would subscribe and hear nothing."""
    got: dict[str, list[str]] = {"share": [], "plain": []}
    granted = threading.Event()

    def client(name: str, pattern: str) -> paho.Client:
        c = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=name)
        c.on_message = lambda _c, _u, m: got[name].append(m.topic)
        c.on_subscribe = lambda *_: granted.set()
        c.connect("127.0.0.1", nats.port)
        c.loop_start()
        granted.clear()
        c.subscribe(pattern, 1)
        assert granted.wait(10), f"{name}: no SUBACK"
        return c

    share = client("share", "$share/hub/xh/v1/dev/+/event")
    plain = client("plain", "xh/v1/dev/+/event")
    pub = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="pub")
    pub.connect("127.0.0.1", nats.port)
    pub.loop_start()
    pub.publish("xh/v1/dev/pole-1/event", json.dumps({}).encode(), qos=1).wait_for_publish(10)
    assert eventually_sync(lambda: got["plain"], 10), "the plain subscription got nothing"
    assert got["share"] == []
    for c in (share, plain, pub):
        c.disconnect()
        c.loop_stop()


async def test_the_hub_says_when_the_broker_delivers_nothing_to_its_group(
    nats: NatsBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = HubSettings(
        data_dir=tmp_path / "hub", mqtt_port=nats.port, mqtt_client_id="hub-nats-share"
    )  # the default share group, which NATS grants and never serves
    with caplog.at_level(logging.INFO, logger="central_hub.app"):
        async with running_hub(settings) as hub:
            assert hub.mqtt is not None
            assert await eventually(lambda: "did not deliver its probe" in caplog.text, 20)
    assert "XH_HUB_SHARE_GROUP= (empty)" in caplog.text

    plain = HubSettings(
        data_dir=tmp_path / "hub2", mqtt_port=nats.port, mqtt_client_id="hub-nats-plain",
        share_group="",
    )  # fmt: skip
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="central_hub.app"):
        async with running_hub(plain):
            assert await eventually(lambda: "probe came back" in caplog.text, 20)


def test_a_device_on_nats_can_use_only_its_own_topics(tmp_path: Path) -> None:
    """With the users the demo gives NATS (provisioning's grants), pole-1's credentials
    read its own commands and publish its own events, and nothing of pole-2's: the
    subscription is refused and a forged event never reaches the hub's subscription."""
    from central_hub.services.provision import HUB_TOPICS, device_topics
    from simulators.nats import NatsUser

    users = [NatsUser("hub", "hub-secret", (HUB_TOPICS,), (HUB_TOPICS,))]
    for dev in ("pole-1", "pole-2"):
        write, read = device_topics(dev)
        users.append(NatsUser(dev, f"{dev}-secret", tuple(write), tuple(read)))
    got: dict[str, list[tuple[str, bytes]]] = {"hub": [], "pole-1": []}
    acks: dict[str, list[list[bool]]] = {"hub": [], "pole-1": []}
    with NatsBroker(tmp_path / "nats", users=tuple(users)) as broker:

        def client(name: str, password: str) -> paho.Client:
            c = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=name)
            c.username_pw_set(name, password)
            c.on_message = lambda _c, _u, m: got[name].append((m.topic, m.payload))
            c.on_subscribe = lambda _c, _u, _m, codes, _p: acks[name].append(
                [not code.is_failure for code in codes]
            )
            c.connect("127.0.0.1", broker.port)
            c.loop_start()
            return c

        hub = client("hub", "hub-secret")
        hub.subscribe("xh/v1/dev/+/event", 1)
        pole = client("pole-1", "pole-1-secret")
        pole.subscribe("xh/v1/dev/pole-1/cmd", 1)
        pole.subscribe("xh/v1/dev/pole-2/cmd", 1)
        pole.subscribe("$MQTT/sub/#", 0)  # the gateway's delivery subjects: not nameable
        assert eventually_sync(lambda: len(acks["pole-1"]) == 3 and acks["hub"], 10)
        assert acks["hub"] == [[True]]
        assert acks["pole-1"] == [[True], [False], [False]]
        pole.publish("xh/v1/dev/pole-2/event", b"forged", qos=1).wait_for_publish(10)
        pole.publish("xh/v1/dev/pole-1/event", b"own", qos=1).wait_for_publish(10)
        hub.publish("xh/v1/dev/pole-2/cmd", b"for pole-2", qos=1).wait_for_publish(10)
        hub.publish("xh/v1/dev/pole-1/cmd", b"for pole-1", qos=1).wait_for_publish(10)
        assert eventually_sync(lambda: got["hub"] and got["pole-1"], 10)
        for c in (hub, pole):
            c.disconnect()
            c.loop_stop()
        assert "Publish Violation" in broker.log_text()
    assert got["hub"] == [("xh/v1/dev/pole-1/event", b"own")]
    assert got["pole-1"] == [("xh/v1/dev/pole-1/cmd", b"for pole-1")]


async def test_a_unit_that_drops_off_nats_is_marked_offline_by_its_will(
    nats: NatsBroker, nats_hub: Hub
) -> None:
    """NATS' gateway publishes a dropped unit's last will (retained offline) to the hub."""
    from simulators.device import SimDevice

    device = SimDevice("pole-will-1", port=nats.port or 0)
    device.start()
    device.online()

    async def state() -> str:
        try:
            return (await nats_hub.devices.get("pole-will-1")).state
        except NotFoundError:
            return "unknown"

    assert await eventually(lambda: _is(state, "online"), 15, every_s=0.1)
    device.drop()
    assert await eventually(lambda: _is(state, "offline"), 15, every_s=0.1), (
        "the will of a dropped unit did not reach the hub over NATS"
    )


async def _is(read: Any, want: str) -> bool:
    return bool(await read() == want)
