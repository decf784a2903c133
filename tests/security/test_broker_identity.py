"""A device's real credentials against the hub's ingest, on Mosquitto as provisioning
sets it up (its passwd and ACL, the listener settings of ``BROKER_SETTINGS``), with a real
hub: connecting under the hub's client id, under another device's, and joining the hub's
shared subscription group. Each attack is first shown to lose events on the old defaults
(a guessable group, no binding of client ids to users), then to do no harm."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion

from central_hub.db.schema import events
from central_hub.hub import Hub, hub_client_id
from central_hub.services.provision import (
    BROKER_SETTINGS,
    ensure_hub_user,
    provision_device,
    render_listeners,
)
from central_hub.settings import HubSettings
from central_hub.testing import make_event, running_hub
from edge_agent.protocol import Channel, encode, public_key_b64, topic
from simulators.mosquitto import MosquittoBroker
from simulators.polling import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

EVENTS = 40
GUESSES = ("hub", "hub-1", "hub-2", "xiuhua", "ingest")


class Client:
    """A paho client with a device's credentials; counts what it receives."""

    def __init__(self, port: int, user: str, password: str, client_id: str) -> None:
        self.got = 0
        self.connects = 0
        self.drops = 0
        self.c = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv311,
        )
        self.c.username_pw_set(user, password)
        self.c.reconnect_delay_set(0.1, 0.5)
        self.c.on_message = lambda *_a: setattr(self, "got", self.got + 1)
        self.c.on_connect = lambda *_a: setattr(self, "connects", self.connects + 1)
        self.c.on_disconnect = lambda *_a: setattr(self, "drops", self.drops + 1)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


async def run_attack(tmp_path: Path, *, protected: bool) -> dict[str, Any]:
    """Provision, start the broker and the hub, attack while a unit sends events."""
    broker_dir = tmp_path / "broker"
    hub_password = ensure_hub_user(broker_dir, "hub")
    creds = {}
    key_b64 = public_key_b64(
        __import__("edge_agent.protocol", fromlist=["x"]).generate_signing_key()
    )
    for device_id in ("pole-evil", "pole-good"):
        result = provision_device(
            device_id,
            kind="pole",
            broker_dir=broker_dir,
            out_dir=tmp_path / "devices",
            public_key=key_b64,
            mqtt_host="127.0.0.1",
            mqtt_port=1,
        )
        creds[device_id] = result.password_path.read_text(encoding="utf-8").strip()
    broker = MosquittoBroker(
        tmp_path / "mosquitto",
        password_file=broker_dir / "passwd",
        acl_file=broker_dir / "acl",
        allow_anonymous=False,
        extra_config="\n".join(BROKER_SETTINGS) if protected else "",
    )
    broker.start()
    settings = HubSettings(
        data_dir=tmp_path / "hub",
        mqtt_port=broker.port or 0,
        mqtt_username="hub",
        mqtt_password_file=hub_password,
        **({} if protected else {"share_group": "hub"}),
    )
    attackers: list[Client] = []
    try:
        async with running_hub(settings) as hub:
            assert hub.mqtt is not None
            good = Client(broker.port or 0, "pole-good", creds["pole-good"], "pole-good")
            evil = creds["pole-evil"]
            # Knock the hub off: its default worker name, and its real client id as if leaked.
            for client_id in ("hub-1", hub_client_id("hub-1", hub.key)):
                attackers.append(Client(broker.port or 0, "pole-evil", evil, client_id))
            # Knock the good unit off.
            attackers.append(Client(broker.port or 0, "pole-evil", evil, "pole-good"))
            # Join the hub's share group under every name one might guess.
            joiner = Client(broker.port or 0, "pole-evil", evil, "pole-evil-2")
            attackers.append(joiner)
            for group in GUESSES:
                joiner.c.subscribe(f"$share/{group}/xh/v1/dev/+/event", qos=1)
            await asyncio.sleep(1.0)
            sent = []  # events the broker acknowledged to the unit: it drops them from its outbox
            for seq in range(1, EVENTS + 1):
                event = make_event("pole-good", seq=seq)
                if await asyncio.to_thread(publish_acked, good, event):
                    sent.append(event.event_id)
                await asyncio.sleep(0.02)
            assert len(sent) >= EVENTS // 2, f"only {len(sent)} events got through at all"

            async def stored() -> int:
                return await count(hub, sent)

            await eventually(lambda: stored_all(hub, sent), 10.0, every_s=0.2)
            figures = {
                "acked": len(sent),
                "stored": await stored(),
                "good_drops": good.drops,
                "hub_connected": hub.mqtt.connected,
                "joiner_got": joiner.got,
            }
            good.close()
            return figures
    finally:
        for a in attackers:
            a.close()
        broker.stop()


def publish_acked(client: Client, event: Any, within_s: float = 10.0) -> bool:
    """Publish until the broker acknowledges it (a unit's outbox retries the same way)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        info = client.c.publish(topic("pole-good", Channel.EVENT), encode(event), qos=1)
        try:
            info.wait_for_publish(2)
        except (RuntimeError, ValueError):
            time.sleep(0.1)
            continue
        if info.is_published():
            return True
    return False


async def count(hub: Hub, ids: list[str]) -> int:
    async with hub.engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    sa.select(sa.func.count()).select_from(events).where(events.c.event_id.in_(ids))
                )
            ).scalar_one()
        )


async def stored_all(hub: Hub, ids: list[str]) -> bool:
    return await count(hub, ids) == len(ids)


async def test_on_the_old_defaults_one_device_makes_the_hub_lose_events(tmp_path: Path) -> None:
    figures = await run_attack(tmp_path, protected=False)
    # The attacks work there: acknowledged events never reach the hub.
    assert figures["stored"] < figures["acked"], figures
    assert figures["good_drops"] > 0, figures


async def test_bound_client_ids_and_a_secret_group_lose_nothing(tmp_path: Path) -> None:
    started = time.monotonic()
    figures = await run_attack(tmp_path, protected=True)
    assert figures["acked"] == EVENTS, figures
    assert figures["stored"] == EVENTS, figures
    assert figures["good_drops"] == 0, figures
    assert figures["hub_connected"], figures
    assert figures["joiner_got"] == 0, figures
    assert time.monotonic() - started < 60


def test_the_shipped_broker_config_binds_client_ids(tmp_path: Path) -> None:
    """The template takes its listeners from what provision writes, and every listener
    provision writes binds client ids to users."""
    template = Path(__file__).resolve().parents[2] / "firmware_config" / "broker" / "mosquitto.conf"
    lines = [line.strip() for line in template.read_text(encoding="utf-8").splitlines()]
    assert "include_dir /etc/mosquitto/xiuhua/conf.d" in lines
    assert not [line for line in lines if line.startswith(("listener", "password_file"))]
    for tls in (True, False):
        text = render_listeners(tmp_path, port=8883, tls=tls)
        blocks = text.split("\nlistener ")[1:]
        assert blocks
        for block in blocks:
            assert set(BROKER_SETTINGS) <= set(block.splitlines())
    assert HubSettings().share_group == "auto"
