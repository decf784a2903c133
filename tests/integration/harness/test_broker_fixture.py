"""The broker fixture talks to a real Mosquitto, and survives a stop/start on one port."""

from __future__ import annotations

import queue
import threading
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent import protocol as p
from simulators.mosquitto import MosquittoBroker, write_password_file

pytestmark = pytest.mark.integration


def _event() -> p.Event:
    now = datetime.now(UTC)
    return p.Event(
        event_id=p.uuid7(),
        device_id="pole-01",
        camera_id="cam-1",
        seq=1,
        kind="vendor",
        code="0501",
        started_at=now,
        detected_at=now,
        dwell_s=301.0,
        confidence=0.9,
        objects=(p.DetectedObject(label="stall", score=0.9, box=(0.1, 0.5, 0.3, 0.8), track_id=4),),
        zone="pavement",
        location=p.Location(lat=28.6472, lon=121.2615, source="fixed"),
        model=p.ModelRef(name="street-detector", version="1.0"),
    )


class Subscriber:
    """A paho client that collects messages into a queue."""

    def __init__(self, broker: MosquittoBroker, topic: str, **auth: str) -> None:
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sub-test")
        if auth:
            self.client.username_pw_set(auth["username"], auth["password"])
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = lambda _c, _u, m: self.messages.put((m.topic, m.payload))
        assert broker.port is not None
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self.subscribed.wait(5), "subscription was not acknowledged"

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _publish(
    broker: MosquittoBroker, topic: str, payload: bytes, **auth: str
) -> mqtt.MQTTMessageInfo:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="pub-test")
    if auth:
        client.username_pw_set(auth["username"], auth["password"])
    assert broker.port is not None
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        info = client.publish(topic, payload, qos=1)
        info.wait_for_publish(5)
        return info
    finally:
        client.loop_stop()
        client.disconnect()


def test_event_round_trips_through_a_real_broker(mosquitto: MosquittoBroker) -> None:
    sub = Subscriber(mosquitto, "xh/v1/dev/+/event")
    try:
        event = _event()
        _publish(mosquitto, p.topic("pole-01", p.Channel.EVENT), p.encode(event))
        topic, payload = sub.messages.get(timeout=5)
        device_id, channel, message = p.decode_from_topic(topic, payload)
        assert (device_id, channel) == ("pole-01", p.Channel.EVENT)
        assert message == event
    finally:
        sub.close()


def test_broker_stops_and_restarts_on_the_same_port(mosquitto: MosquittoBroker) -> None:
    port = mosquitto.port
    mosquitto.stop()
    assert not mosquitto.running
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    assert port is not None
    with pytest.raises(ConnectionRefusedError):
        client.connect(mosquitto.host, port)
    mosquitto.start()
    assert mosquitto.port == port
    sub = Subscriber(mosquitto, "xh/v1/dev/+/status")
    try:
        _publish(mosquitto, "xh/v1/dev/pole-02/status", b"{}")
        assert sub.messages.get(timeout=5)[0] == "xh/v1/dev/pole-02/status"
    finally:
        sub.close()


def test_persistent_session_receives_what_was_published_while_away(
    mosquitto: MosquittoBroker,
) -> None:
    """clean_session=False: a subscriber that was offline gets its QoS1 backlog, also
    after the broker itself restarted in between."""
    got: queue.Queue[bytes] = queue.Queue()
    ready = threading.Event()

    def make() -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hub-1", clean_session=False)
        c.on_connect = lambda cl, *_: cl.subscribe("xh/v1/dev/+/event", qos=1)
        c.on_subscribe = lambda *_: ready.set()
        c.on_message = lambda _c, _u, m: got.put(m.payload)
        return c

    assert mosquitto.port is not None
    hub = make()
    hub.connect(mosquitto.host, mosquitto.port)
    hub.loop_start()
    assert ready.wait(5)
    hub.disconnect()
    hub.loop_stop()
    for i in range(3):
        _publish(mosquitto, "xh/v1/dev/pole-01/event", f"{i}".encode())
    mosquitto.restart()
    hub = make()
    hub.connect(mosquitto.host, mosquitto.port)
    hub.loop_start()
    try:
        received = sorted(got.get(timeout=5) for _ in range(3))
        assert received == [b"0", b"1", b"2"]
    finally:
        hub.loop_stop()
        hub.disconnect()


def test_password_and_acl_files_are_enforced(broker_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    passwords = write_password_file(tmp_path / "passwd", {"pole-01": "s3cret", "hub": "hubpw"})
    acl = tmp_path / "acl"
    acl.write_text("user hub\ntopic readwrite xh/v1/#\n\npattern write xh/v1/dev/%u/event\n")
    broker = broker_factory(password_file=passwords, acl_file=acl)
    sub = Subscriber(broker, "xh/v1/dev/+/event", username="hub", password="hubpw")
    try:
        _publish(broker, "xh/v1/dev/pole-02/event", b"spoof", username="pole-01", password="s3cret")
        _publish(broker, "xh/v1/dev/pole-01/event", b"mine", username="pole-01", password="s3cret")
        topic, payload = sub.messages.get(timeout=5)
        assert (topic, payload) == ("xh/v1/dev/pole-01/event", b"mine")
        assert sub.messages.empty()
    finally:
        sub.close()
    bad = mqtt.Client(CallbackAPIVersion.VERSION2)
    bad.username_pw_set("pole-01", "wrong")
    assert broker.port is not None
    bad.connect(broker.host, broker.port)
    rc = bad.loop(timeout=2)
    # The broker answers CONNACK "not authorised" and closes the connection.
    assert rc != mqtt.MQTT_ERR_SUCCESS or not bad.is_connected()
