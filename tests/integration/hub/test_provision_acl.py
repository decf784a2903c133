"""Provisioning output used by a real Mosquitto: passwords work, the ACL isolates devices."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from central_hub.adapters.mqtt import HubMqtt, Inbound
from central_hub.services.provision import hash_password, provision_device, verify_password
from edge_agent.protocol import (
    Channel,
    generate_signing_key,
    hub_subscriptions,
    public_key_b64,
    topic,
)
from simulators.polling import eventually

pytestmark = pytest.mark.integration


def test_hash_roundtrip() -> None:
    hashed = hash_password("s3cret")
    assert hashed.startswith("$7$101$")
    assert verify_password("s3cret", hashed)
    assert not verify_password("other", hashed)


class _Device:
    """A bare paho client standing in for an edge agent."""

    def __init__(self, port: int, user: str, password: str, client_id: str) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.connected = threading.Event()
        self.rc: Any = None
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id
        )
        self.client.username_pw_set(user, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, m: self.got.append((m.topic, bytes(m.payload)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_connect(self, *args: Any) -> None:
        self.rc = args[3]
        if not self.rc.is_failure:
            self.connected.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def test_acl_isolates_devices(tmp_path: Path, broker_factory: Any) -> None:
    key = public_key_b64(generate_signing_key())
    common = {
        "kind": "pole",
        "broker_dir": tmp_path / "broker",
        "out_dir": tmp_path / "devices",
        "public_key": key,
        "mqtt_host": "127.0.0.1",
        "mqtt_port": 1,
    }
    a = provision_device("pole-a", **common)
    b = provision_device("pole-b", **common)
    broker = broker_factory(password_file=a.password_file, acl_file=a.acl_file)

    hub = HubMqtt(
        host="127.0.0.1",
        port=broker.port,
        client_id="hub-acl",
        subscriptions=hub_subscriptions(),
        username="hub",
        password=a.hub_password_path.read_text().strip(),
    )
    await hub.start()
    async with asyncio.timeout(10):
        await hub.wait_subscribed()

    dev_a = _Device(broker.port, "pole-a", a.password_path.read_text().strip(), "a")
    dev_b = _Device(broker.port, "pole-b", b.password_path.read_text().strip(), "b")
    intruder = _Device(broker.port, "pole-a", "wrong-password", "x")
    assert dev_a.connected.wait(5)
    assert dev_b.connected.wait(5)
    await asyncio.sleep(0.3)
    assert not intruder.connected.is_set()  # a wrong password is refused

    # A tries to read B's commands (wildcard and exact) and to write into B's topics.
    dev_a.client.subscribe(topic("pole-b", Channel.CMD), 1)
    dev_a.client.subscribe("xh/v1/dev/+/cmd", 1)
    dev_b.client.subscribe(topic("pole-b", Channel.CMD), 1)
    await asyncio.sleep(0.3)
    # Mosquitto 2.0.x answers a denied QoS 1 publish and then drops a v3.1.1 client, so
    # each forbidden publish comes from a fresh connection of pole-a.
    pw_a = a.password_path.read_text().strip()
    for n, (where, payload) in enumerate(
        [(topic("pole-b", Channel.EVENT), b"forged-by-a"), (topic("pole-a", Channel.CMD), b"a-cmd")]
    ):
        forger = _Device(broker.port, "pole-a", pw_a, f"forger-{n}")
        assert forger.connected.wait(5)
        forger.client.publish(where, payload, qos=1)
        await asyncio.sleep(0.2)
        forger.close()
    dev_a.client.publish(topic("pole-a", Channel.EVENT), b"legit-from-a", qos=1).wait_for_publish(5)
    await hub.publish(topic("pole-b", Channel.CMD), b"for-b-only", qos=1)

    got: list[Inbound] = []
    async with asyncio.timeout(10):
        while not any(m.payload == b"legit-from-a" for m in got):
            got += await hub.receive(100)
    assert await eventually(lambda: bool(dev_b.got), 5)
    await asyncio.sleep(0.3)  # give anything that should not arrive a chance to
    with_payloads = {m.payload for m in got}
    assert b"forged-by-a" not in with_payloads
    assert b"a-cmd" not in with_payloads
    assert dev_b.got == [(topic("pole-b", Channel.CMD), b"for-b-only")]
    assert dev_a.got == []
    hub.ack(got)
    for d in (dev_a, dev_b, intruder):
        d.close()
    await hub.stop()
