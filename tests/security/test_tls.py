"""MQTT over TLS on Mosquitto exactly as ``central-hub provision`` configures it (its
``conf.d/listeners.conf``, certificates, password and ACL files), from outside:

* a unit with its provisioned files (certificate, key, CA, password) connects over TLS
  through the edge agent's own link, and its event reaches a hub that connects over TLS;
* plain MQTT to the TLS port, TLS without a client certificate, and a certificate from
  another CA are all refused, even with a right password; a right certificate with a
  wrong password is refused too;
* the plain listener is bound to 127.0.0.1 only (config and the kernel's socket table),
  and still wants a password there.

What Mosquitto 2.0 does not enforce, shown here so a change is noticed: a certificate is
not bound to its user. One unit's certificate with another unit's password logs in as the
other unit (``require_certificate`` checks the signer; ``use_identity_as_username`` would
bind them but then ignores the password). So the certificate says "one of the city's
units" and the password says which.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion

from central_hub.db.schema import events
from central_hub.services import pki
from central_hub.services.provision import ProvisionResult, provision_device
from central_hub.settings import HubSettings
from central_hub.testing import make_event, running_hub
from edge_agent.config import load_config
from edge_agent.link.mqtt import BrokerLink, LinkSettings, TlsFiles
from edge_agent.protocol import Channel, encode, generate_signing_key, public_key_b64, topic
from simulators.mosquitto import MosquittoBroker, free_port
from simulators.polling import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@dataclass
class City:
    broker: MosquittoBroker
    devices: dict[str, ProvisionResult]
    broker_dir: Path

    def password(self, device: str) -> str:
        return self.devices[device].password_path.read_text(encoding="utf-8").strip()

    def files(self, device: str) -> tuple[Path, Path, Path]:
        folder = self.devices[device].config_path.parent
        return folder / "ca.crt", folder / "client.crt", folder / "client.key"


@pytest.fixture
def city(tmp_path: Path) -> Iterator[City]:
    tls_port, plain_port = free_port(), free_port()
    key = public_key_b64(generate_signing_key())
    devices = {
        device: provision_device(
            device,
            kind="pole",
            broker_dir=tmp_path / "broker",
            out_dir=tmp_path / "devices",
            public_key=key,
            mqtt_host="localhost",
            mqtt_port=tls_port,
            plain_port=plain_port,
        )
        for device in ("pole-a", "pole-b")
    }
    broker = MosquittoBroker(tmp_path / "mosquitto", listeners_file=devices["pole-b"].broker_config)
    assert (broker.port, broker.tls_port) == (plain_port, tls_port)
    with broker:
        yield City(broker, devices, tmp_path / "broker")


def connect(
    port: int,
    user: str | None,
    password: str | None,
    *,
    ca: Path | None = None,
    cert: Path | None = None,
    key: Path | None = None,
    within_s: float = 5.0,
) -> str:
    """Connect once; what happened: 'accepted', the broker's refusal, or the error."""
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"probe-{user}",
        protocol=paho.MQTTv311,
    )
    if user is not None:
        client.username_pw_set(user, password)
    if ca is not None:
        client.tls_set(
            ca_certs=str(ca),
            certfile=str(cert) if cert else None,
            keyfile=str(key) if key else None,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    done = threading.Event()
    said: list[str] = []

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        said.append("accepted" if not reason.is_failure else f"refused: {reason}")
        done.set()

    def on_disconnect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        said.append(f"dropped: {reason}")
        done.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    try:
        client.connect("localhost", port, keepalive=10)
    except (OSError, ssl.SSLError) as exc:
        return f"error: {exc}"
    client.loop_start()
    try:
        done.wait(within_s)
    finally:
        client.disconnect()
        client.loop_stop()
    return said[0] if said else "no answer"


class _Listener:
    """The edge agent link's listener, recording what the link says."""

    def __init__(self) -> None:
        self.up = asyncio.Event()
        self.acked: list[int] = []

    def link_up(self) -> None:
        self.up.set()

    def link_down(self, reason: str) -> None:
        self.up.clear()

    def message(self, topic: str, payload: bytes) -> None:
        pass

    def published(self, mids: list[int]) -> None:
        self.acked.extend(mids)


async def test_a_unit_over_tls_reaches_a_hub_over_tls(city: City, tmp_path: Path) -> None:
    config = load_config(city.devices["pole-a"].config_path)
    assert config.mqtt.tls is not None
    assert config.mqtt.port == city.broker.tls_port
    tls = city.devices["pole-a"].broker_tls
    assert tls is not None
    settings = HubSettings(
        data_dir=tmp_path / "hub",
        mqtt_host="localhost",
        mqtt_port=city.broker.tls_port or 0,
        mqtt_username="hub",
        mqtt_password_file=city.devices["pole-a"].hub_password_path,
        mqtt_tls_ca=tls.ca,
        mqtt_tls_cert=tls.hub.cert,
        mqtt_tls_key=tls.hub.key,
    )
    async with running_hub(settings) as hub:
        assert hub.mqtt is not None
        assert hub.mqtt.connected
        link = BrokerLink(
            LinkSettings(
                host=config.mqtt.host,
                port=config.mqtt.port,
                client_id="pole-a",
                username=config.mqtt.username,
                password=config.mqtt.secret(),
                tls=TlsFiles(config.mqtt.tls.ca, config.mqtt.tls.cert, config.mqtt.tls.key),
            )
        )
        listener = _Listener()
        link.start(listener)
        try:
            async with asyncio.timeout(10):
                await listener.up.wait()
            event = make_event("pole-a", at=datetime.now(UTC))
            mid = link.publish(topic("pole-a", Channel.EVENT), encode(event), qos=1)
            assert mid is not None

            async def stored() -> bool:
                async with hub.engine.connect() as conn:
                    query = sa.select(events.c.event_id).where(events.c.event_id == event.event_id)
                    return (await conn.execute(query)).first() is not None

            assert await eventually(stored, 10.0, every_s=0.1)
            assert mid in listener.acked
        finally:
            await link.stop()
    # Both logged in on the TLS listener.
    ports = login_ports(city.broker.log_text())
    assert {ports[c] for c in ports if c.startswith(("pole-a", "hub"))} == {city.broker.tls_port}
    assert len(ports) >= 2, ports


def login_ports(log: str) -> dict[str, int]:
    """``{client id: listener port}`` of each login in a Mosquitto log."""
    port_of: dict[str, int] = {}
    logins: dict[str, int] = {}
    for line in log.splitlines():
        if m := re.search(r"New connection from (\S+) on port (\d+)\.", line):
            port_of[m.group(1)] = int(m.group(2))
        elif m := re.search(r"New client connected from (\S+) as (\S+) ", line):
            logins[m.group(2)] = port_of[m.group(1)]
    return logins


def test_plaintext_to_the_tls_port_is_refused(city: City) -> None:
    said = connect(city.broker.tls_port or 0, "pole-a", city.password("pole-a"))
    assert said != "accepted", said


def test_tls_without_a_client_certificate_is_refused(city: City) -> None:
    ca, _, _ = city.files("pole-a")
    said = connect(city.broker.tls_port or 0, "pole-a", city.password("pole-a"), ca=ca)
    assert said != "accepted", said
    assert "peer did not return a certificate" in city.broker.log_text()


def test_a_certificate_from_another_ca_is_refused(city: City, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    rogue_key = pki.new_key()
    rogue = pki.Authority(pki.make_ca(rogue_key, "xiuhua city CA", now), rogue_key, Path("x"))
    key = pki.new_key()
    cert = pki.make_client_cert(rogue, key, "pole-a", now)
    (tmp_path / "rogue.crt").write_bytes(pki._cert_pem(cert))
    (tmp_path / "rogue.key").write_bytes(pki._key_pem(key))
    ca, _, _ = city.files("pole-a")
    said = connect(
        city.broker.tls_port or 0,
        "pole-a",
        city.password("pole-a"),
        ca=ca,
        cert=tmp_path / "rogue.crt",
        key=tmp_path / "rogue.key",
    )
    assert said != "accepted", said
    # The same unit with its own certificate is let in: the refusal was the certificate's.
    _, own_cert, own_key = city.files("pole-a")
    said = connect(
        city.broker.tls_port or 0,
        "pole-a",
        city.password("pole-a"),
        ca=ca,
        cert=own_cert,
        key=own_key,
    )
    assert said == "accepted", said


def test_a_right_certificate_with_a_wrong_password_is_refused(city: City) -> None:
    ca, cert, key = city.files("pole-a")
    port = city.broker.tls_port or 0
    assert connect(port, "pole-a", city.password("pole-a"), ca=ca, cert=cert, key=key) == (
        "accepted"
    )
    assert connect(port, "pole-a", "guessed", ca=ca, cert=cert, key=key).startswith("refused")
    assert connect(port, None, None, ca=ca, cert=cert, key=key).startswith("refused")


def test_a_certificate_is_not_bound_to_its_user_on_mosquitto(city: City) -> None:
    """The limit the module docstring describes: pole-a's certificate, pole-b's password."""
    ca, cert, key = city.files("pole-a")
    said = connect(
        city.broker.tls_port or 0, "pole-b", city.password("pole-b"), ca=ca, cert=cert, key=key
    )
    assert said == "accepted", "Mosquitto now binds certificates to users: update docs/brokers.md"


def test_the_plain_listener_is_on_loopback_only_and_wants_a_password(city: City) -> None:
    text = city.devices["pole-a"].broker_config.read_text(encoding="utf-8")
    listeners = [line.split()[1:] for line in text.splitlines() if line.startswith("listener ")]
    assert listeners == [[str(city.broker.port), "127.0.0.1"], [str(city.broker.tls_port)]]
    bound = listening_sockets()
    assert bound[city.broker.port or 0] == {"127.0.0.1"}
    assert "0.0.0.0" in bound[city.broker.tls_port or 0]
    # Reachable from the host itself, with a password only.
    plain = city.broker.port or 0
    assert connect(plain, "pole-a", city.password("pole-a")) == "accepted"
    assert connect(plain, None, None).startswith("refused")
    assert connect(plain, "pole-a", "guessed").startswith("refused")
    # Not from another address of this host, where it has one.
    other = own_address()
    if other is not None:
        with socket.socket() as sock:
            sock.settimeout(1.0)
            assert sock.connect_ex((other, plain)) != 0


def listening_sockets() -> dict[int, set[str]]:
    """``{port: {address}}`` of the IPv4 TCP sockets listening on this host."""
    found: dict[int, set[str]] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state = fields[1], fields[3]
        if state != "0A":  # LISTEN
            continue
        addr_hex, port_hex = local.split(":")
        addr = socket.inet_ntoa(bytes.fromhex(addr_hex)[::-1])
        found.setdefault(int(port_hex, 16), set()).add(addr)
    return found


def own_address() -> str | None:
    """An address of this host other than loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
        except OSError:
            return None
        addr: str = sock.getsockname()[0]
    return None if addr.startswith("127.") else addr
