"""The hub's MQTT adapter: the only module that imports paho.

One paho client per process carries both directions (DESIGN.md: two clients in one
process collapse to a few hundred messages per second). It runs paho's network thread,
hands received messages to the event loop in batches, and acknowledges QoS 1 messages
only when the caller says so (``manual_ack``), i.e. after they are committed, so a hub
killed mid-batch gets them again from the broker. The session is persistent
(``clean_session=False``) with a stable client id, so messages published while the hub
is down wait in the broker. With a CA (and a client certificate) it speaks TLS, as a
provisioned broker asks on its public listener.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from central_hub.errors import BrokerError
from edge_agent.protocol import TOPIC_ROOT

__all__ = ["BrokerError", "HubMqtt", "Inbound", "drop_session"]

log = logging.getLogger(__name__)

#: Seconds between reconnect attempts (paho backs off from min to max).
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 5
#: Seconds to wait for the broker's PUBACK when publishing.
PUBLISH_TIMEOUT_S = 10.0


def _use_tls(client: paho.Client, ca: Path | None, cert: Path | None, key: Path | None) -> None:
    """Make ``client`` speak TLS, trusting ``ca`` and showing ``cert``/``key``; the broker's
    certificate must name the host connected to. BrokerError names the settings."""
    if ca is None:
        return
    try:
        client.tls_set(
            ca_certs=str(ca),
            certfile=str(cert) if cert else None,
            keyfile=str(key) if key else None,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise BrokerError(
            f"cannot load the MQTT TLS files (mqtt_tls_ca {ca}, mqtt_tls_cert {cert}, "
            f"mqtt_tls_key {key}): {exc}"
        ) from exc


@dataclass(frozen=True, slots=True)
class Inbound:
    """A received message, free of paho types. ``mid`` is what :meth:`HubMqtt.ack` takes."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int


class HubMqtt:
    """One persistent MQTT 3.1.1 session: subscribe, receive in batches, ack, publish."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: str,
        subscriptions: list[str],
        username: str | None = None,
        password: str | None = None,
        clean_session: bool = False,
        keepalive: int = 30,
        tls_ca: Path | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self.subscriptions = list(subscriptions)
        self._taps: dict[str, Callable[[Inbound], None]] = {}
        self._client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=paho.MQTTv311,
            manual_ack=True,
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        _use_tls(self._client, tls_ca, tls_cert, tls_key)
        self._client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        self._client.max_inflight_messages_set(1000)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._keepalive = keepalive
        self._pending: collections.deque[Inbound] = collections.deque()
        self._lock = threading.Lock()
        self._wake_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = asyncio.Event()
        self._connected = threading.Event()
        self._subscribed = asyncio.Event()
        self.connects = 0
        # The delivery probe: a topic of this session alone, subscribed the way the others
        # are (shared when they are), which the hub publishes to itself after subscribing.
        self.probe_topic = f"{TOPIC_ROOT}/hub/probe/{client_id}"
        shared = [t for t in self.subscriptions if t.startswith("$share/")]
        group = shared[0].split("/", 2)[1] if shared else None
        self._probe_filter = f"$share/{group}/{self.probe_topic}" if group else self.probe_topic
        self._probed = threading.Event()

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Start the network thread; connection and reconnection happen in the background."""
        self._loop = asyncio.get_running_loop()
        self._client.connect_async(self.host, self.port, keepalive=self._keepalive)
        self._client.loop_start()

    async def stop(self) -> None:
        """Disconnect (the broker keeps the session) and stop the network thread."""
        await asyncio.to_thread(self._client.disconnect)
        await asyncio.to_thread(self._client.loop_stop)

    @property
    def connected(self) -> bool:
        """True while the session with the broker is up."""
        return self._connected.is_set()

    async def wait_subscribed(self) -> None:
        """Wait until the first connection's subscriptions were acknowledged."""
        await self._subscribed.wait()

    # ---------------------------------------------------------------- paho thread

    def _on_connect(
        self, client: paho.Client, _userdata: Any, flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            log.error("broker %s:%s refused the hub: %s", self.host, self.port, reason)
            return
        self.connects += 1
        self._connected.set()
        log.info(
            "connected to %s:%s as %s (session present: %s)",
            self.host,
            self.port,
            self.client_id,
            flags.session_present,
        )
        if self.subscriptions:
            client.on_subscribe = self._on_subscribe
            client.subscribe([(t, 1) for t in [*self.subscriptions, self._probe_filter]])

    def _on_subscribe(
        self, _client: paho.Client, _userdata: Any, _mid: int, codes: Any, _props: Any
    ) -> None:
        failed = [c for c in codes if c.is_failure]
        if failed:
            log.error("subscription refused by broker: %s", failed)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._subscribed.set)

    def _on_disconnect(
        self, _client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self._connected.clear()
        log.warning("disconnected from %s:%s: %s", self.host, self.port, reason)

    def tap(self, suffix: str, handler: Callable[[Inbound], None]) -> None:
        """Hand messages whose topic ends with ``suffix`` to ``handler`` on the event loop,
        instead of queueing them for :meth:`receive` (live frames: never stored). One
        session serves both, so the hub never holds two sessions under one broker user
        (a broker that names clients after their user would play them off each other)."""
        self._taps[suffix] = handler

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        if msg.topic == self.probe_topic:  # the hub's own probe: not a device's message
            self._probed.set()
            if msg.qos > 0:
                self._client.ack(msg.mid, msg.qos)
            return
        item = Inbound(
            topic=msg.topic, payload=bytes(msg.payload), qos=msg.qos, retain=msg.retain, mid=msg.mid
        )
        for suffix, handler in self._taps.items():
            if msg.topic.endswith(suffix):
                if msg.qos > 0:
                    self._client.ack(msg.mid, msg.qos)
                if self._loop is not None:
                    self._loop.call_soon_threadsafe(handler, item)
                return
        with self._lock:
            self._pending.append(item)
            if self._wake_scheduled or self._loop is None:
                return
            self._wake_scheduled = True
        self._loop.call_soon_threadsafe(self._wake)

    # ---------------------------------------------------------------- event loop side

    def _wake(self) -> None:
        with self._lock:
            self._wake_scheduled = False
        self._ready.set()

    async def receive(self, max_items: int) -> list[Inbound]:
        """Wait for at least one message; return up to ``max_items`` in arrival order."""
        while True:
            with self._lock:
                if self._pending:
                    n = min(max_items, len(self._pending))
                    return [self._pending.popleft() for _ in range(n)]
                self._ready.clear()
            await self._ready.wait()

    def ack(self, messages: list[Inbound]) -> None:
        """Acknowledge QoS 1 messages to the broker (after they are safely stored)."""
        for m in messages:
            if m.qos > 0:
                self._client.ack(m.mid, m.qos)

    async def check_delivery(self, within_s: float = 10.0) -> bool:
        """Publish a probe to this session's own probe topic; True once it comes back.

        A broker may grant a subscription it will never deliver to: the NATS server grants
        ``$share`` filters as plain topics, and an ACL may allow subscribing but not
        reading. Then devices' messages are acknowledged by the broker and never reach
        the hub. The probe, subscribed like the device topics, finds that out at start.
        """
        self._probed.clear()
        await self.publish(self.probe_topic, b"probe", qos=1)
        return await asyncio.to_thread(self._probed.wait, within_s)

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Publish and wait for the broker's acknowledgement; raise BrokerError otherwise."""
        if not self.connected:
            raise BrokerError(f"not connected to {self.host}:{self.port}")
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise BrokerError(f"publish to {topic} failed: {paho.error_string(info.rc)}")
        if qos == 0:
            return
        try:
            await asyncio.to_thread(info.wait_for_publish, PUBLISH_TIMEOUT_S)
        except (RuntimeError, ValueError) as exc:
            raise BrokerError(f"publish to {topic} failed: {exc}") from exc
        if not info.is_published():
            raise BrokerError(f"broker did not acknowledge {topic} within {PUBLISH_TIMEOUT_S} s")


def drop_session(
    *,
    host: str,
    port: int,
    client_id: str,
    username: str | None = None,
    password: str | None = None,
    timeout_s: float = 10.0,
    tls_ca: Path | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> None:
    """Discard a retired worker's persistent session at the broker (blocking).

    A stopped hub worker's session stays a member of the ``$share`` group and keeps
    receiving its share of messages until the worker returns; connecting once with
    ``clean_session=True`` under its client id makes the broker drop the session and
    what was queued for it (the devices' outboxes do not resend those, so only retire
    a worker whose queue is empty or whose messages were redelivered elsewhere).
    """
    done = threading.Event()
    refused: list[str] = []
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=True,
        protocol=paho.MQTTv311,
    )
    if username is not None:
        client.username_pw_set(username, password)
    _use_tls(client, tls_ca, tls_cert, tls_key)

    def on_connect(_c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            refused.append(str(reason))
        done.set()

    client.on_connect = on_connect
    try:
        client.connect(host, port)
    except OSError as exc:  # ssl.SSLError (a refused handshake) is one too
        raise BrokerError(f"cannot reach {host}:{port}: {exc}") from exc
    client.loop_start()
    try:
        if not done.wait(timeout_s):
            raise BrokerError(f"no answer from {host}:{port} within {timeout_s} s")
        if refused:
            raise BrokerError(f"broker refused {client_id}: {refused[0]}")
    finally:
        client.disconnect()
        client.loop_stop()
