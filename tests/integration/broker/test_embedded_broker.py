"""The embedded MQTT broker against paho: auth, QoS 1, retained, will, sessions, $share, ACL."""

from __future__ import annotations

import asyncio
import queue
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from central_hub.services.provision import hash_password, render_acl
from simulators.broker import codec
from simulators.broker.access import parse_acl
from simulators.broker.server import Broker, BrokerSettings

pytestmark = pytest.mark.integration


class BrokerThread:
    """The embedded broker on its own event loop in a thread (paho clients block)."""

    def __init__(self, settings: BrokerSettings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.broker = Broker(settings)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> BrokerThread:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.broker.start(), self.loop).result(10)
        return self

    @property
    def port(self) -> int:
        return self.broker.port

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.broker.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def anon() -> Iterator[BrokerThread]:
    with BrokerThread(BrokerSettings(port=0)) as b:
        yield b


class Client:
    """A paho client that records what it receives and how its connects went."""

    def __init__(
        self,
        port: int,
        client_id: str,
        *,
        clean: bool = True,
        user: str | None = None,
        password: str | None = None,
        will: tuple[str, bytes] | None = None,
    ) -> None:
        self.messages: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
        self.connacks: queue.Queue[tuple[int, bool]] = queue.Queue()
        self.c = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean,
            protocol=paho.MQTTv311,
        )
        if user is not None:
            self.c.username_pw_set(user, password)
        if will is not None:
            self.c.will_set(will[0], will[1], qos=1, retain=True)
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda _c, _u, m: self.messages.put(
            (m.topic, bytes(m.payload), bool(m.retain))
        )
        self.c.connect("127.0.0.1", port, keepalive=10)
        self.c.loop_start()

    def _on_connect(self, _c: Any, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        self.connacks.put((reason.value, bool(flags.session_present)))

    def connack(self) -> tuple[int, bool]:
        return self.connacks.get(timeout=5)

    def sub(self, flt: str, qos: int = 1) -> None:
        result, _mid = self.c.subscribe(flt, qos)
        assert result == 0
        time.sleep(0.1)  # SUBACK: the broker handles packets in order, this only paces

    def pub(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self.c.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5)

    def take(self, n: int, timeout: float = 5.0) -> list[tuple[str, bytes, bool]]:
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            try:
                out.append(self.messages.get(timeout=max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                break
        return out

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def test_qos1_roundtrip_and_retained(anon: BrokerThread) -> None:
    a = Client(anon.port, "a")
    assert a.connack() == (0, False)
    a.sub("xh/v1/dev/+/event")
    b = Client(anon.port, "b")
    b.connack()
    for i in range(50):
        b.pub("xh/v1/dev/d1/event", f"e{i}".encode())
    got = a.take(50)
    assert [p for _, p, _ in got] == [f"e{i}".encode() for i in range(50)]
    b.pub("xh/v1/dev/d1/status", b"online", retain=True)
    late = Client(anon.port, "late")
    late.connack()
    late.sub("xh/v1/dev/#")
    assert late.take(1) == [("xh/v1/dev/d1/status", b"online", True)]
    b.pub("xh/v1/dev/d1/status", b"", retain=True)  # clears it
    later = Client(anon.port, "later")
    later.connack()
    later.sub("xh/v1/dev/#")
    assert later.take(1, timeout=0.5) == []
    for c in (a, b, late, later):
        c.close()


def test_last_will_on_abrupt_loss_but_not_on_disconnect(anon: BrokerThread) -> None:
    watcher = Client(anon.port, "watcher")
    watcher.connack()
    watcher.sub("xh/v1/dev/+/status")
    # A raw client with a will that vanishes without DISCONNECT.
    sock = socket.create_connection(("127.0.0.1", anon.port))
    topic = b"xh/v1/dev/dev1/status"
    body = (
        b"\x00\x04MQTT\x04"
        + bytes([0x02 | 0x04 | 0x08 | 0x20])  # clean, will, will QoS 1, will retain
        + b"\x00\x1e"  # keepalive 30 s
        + b"\x00\x04dev1"
        + len(topic).to_bytes(2, "big")
        + topic
        + b"\x00\x07offline"
    )
    sock.sendall(codec.packet(codec.CONNECT, 0, body))
    assert sock.recv(4) == b"\x20\x02\x00\x00"
    sock.close()
    assert watcher.take(1) == [("xh/v1/dev/dev1/status", b"offline", False)]
    polite = Client(anon.port, "polite", will=("xh/v1/dev/polite/status", b"offline"))
    polite.connack()
    polite.close()
    assert watcher.take(1, timeout=0.7) == []
    watcher.close()


def test_persistent_session_queues_qos1_while_away(anon: BrokerThread) -> None:
    hub = Client(anon.port, "hub-1", clean=False)
    assert hub.connack() == (0, False)
    hub.sub("xh/v1/dev/+/event")
    hub.close()
    dev = Client(anon.port, "dev")
    dev.connack()
    for i in range(20):
        dev.pub("xh/v1/dev/d/event", str(i).encode())
    back = Client(anon.port, "hub-1", clean=False)
    assert back.connack() == (0, True)
    got = back.take(20)
    assert [int(p) for _, p, _ in got] == list(range(20))
    back.close()
    dev.close()


def test_shared_subscription_splits_messages(anon: BrokerThread) -> None:
    workers = [Client(anon.port, f"w{i}") for i in range(2)]
    for w in workers:
        w.connack()
        w.sub("$share/hub/xh/v1/dev/+/event")
    dev = Client(anon.port, "dev")
    dev.connack()
    for i in range(40):
        dev.pub("xh/v1/dev/d/event", str(i).encode())
    time.sleep(0.3)
    got = [[int(p) for _, p, _ in w.take(40, timeout=1.0)] for w in workers]
    assert sorted(got[0] + got[1]) == list(range(40))  # each once, none twice
    assert got[0]
    assert got[1]
    for c in (*workers, dev):
        c.close()


def test_passwords_and_acl_from_provisioning(tmp_path: Path) -> None:
    passwords = {"hub": hash_password("hub-secret"), "pole-1": hash_password("p1")}
    passwords["pole-2"] = hash_password("p2")
    acl = parse_acl(render_acl(["pole-1", "pole-2"], ["hub"]))
    settings = BrokerSettings(port=0, passwords=passwords, acl=acl, allow_anonymous=False)
    with BrokerThread(settings) as b:
        bad = Client(b.port, "pole-1", user="pole-1", password="wrong")
        assert bad.connack()[0] == 134  # paho maps CONNACK 4 (bad user name or password)
        bad.close()
        anon = Client(b.port, "nobody")
        assert anon.connack()[0] == 135  # paho maps CONNACK 5 (not authorised)
        anon.close()
        hub = Client(b.port, "hub-1", user="hub", password="hub-secret")
        assert hub.connack()[0] == 0
        hub.sub("$share/hub/xh/v1/dev/+/event")
        p1 = Client(b.port, "pole-1", user="pole-1", password="p1")
        assert p1.connack()[0] == 0
        p1.sub("xh/v1/dev/+/cmd")  # it may only ever read its own
        p1.pub("xh/v1/dev/pole-1/event", b"mine")
        p1.pub("xh/v1/dev/pole-2/event", b"forged")  # denied: not its topic
        assert hub.take(2, timeout=1.0) == [("xh/v1/dev/pole-1/event", b"mine", False)]
        hub.pub("xh/v1/dev/pole-2/cmd", b"for pole 2")
        hub.pub("xh/v1/dev/pole-1/cmd", b"for pole 1")
        assert p1.take(2, timeout=1.0) == [("xh/v1/dev/pole-1/cmd", b"for pole 1", False)]
        for c in (hub, p1):
            c.close()


def _raw_connect(port: int, client_id: bytes, keepalive: int, will_topic: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    body = (
        b"\x00\x04MQTT\x04"
        + bytes([0x02 | 0x04 | 0x08])  # clean session, will at QoS 1
        + keepalive.to_bytes(2, "big")
        + len(client_id).to_bytes(2, "big")
        + client_id
        + len(will_topic).to_bytes(2, "big")
        + will_topic
        + b"\x00\x04gone"
    )
    sock.sendall(codec.packet(codec.CONNECT, 0, body))
    assert sock.recv(4) == b"\x20\x02\x00\x00"
    return sock


def test_silent_client_times_out_and_takeover_drops_the_old_connection(anon: BrokerThread) -> None:
    watcher = Client(anon.port, "watcher")
    watcher.connack()
    watcher.sub("w/#", qos=0)
    silent = _raw_connect(anon.port, b"quiet", 1, b"w/quiet")  # 1 s keepalive, never pings
    t0 = time.monotonic()
    assert watcher.take(1, timeout=5.0) == [("w/quiet", b"gone", False)]
    assert 1.0 <= time.monotonic() - t0 < 4.0  # after 1.5 keepalives, not at once
    silent.close()
    first = _raw_connect(anon.port, b"same-id", 30, b"w/first")
    second = Client(anon.port, "same-id")
    assert second.connack() == (0, False)
    first.settimeout(5.0)
    assert first.recv(10) == b""  # the broker closed the older connection
    assert watcher.take(1, timeout=0.5) == []  # taken over: no will
    second.pub("w/second", b"qos0", qos=0)
    assert watcher.take(1) == [("w/second", b"qos0", False)]
    first.close()
    for c in (watcher, second):
        c.close()
