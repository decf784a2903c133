"""The MQTT adapter: the only module that imports paho.

One paho client per process carries both directions (DESIGN.md measured two clients in
one process collapsing under load). A dedicated thread owns the paho network loop and
the (re)connection with capped jittered backoff; everything it learns (connected,
disconnected, a message, PUBACKs) is handed to the asyncio loop with
``call_soon_threadsafe``. PUBACKs are coalesced: the thread queues message ids and wakes
the loop once per batch, not once per message.

MQTT 3.1.1, clean session (the hub's command queue, not the broker, keeps commands for
an offline device), TLS with a CA and an optional client certificate, username and
password, a retained birth message on every connect and a retained last will.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from edge_agent.backoff import Backoff
from edge_agent.link.errors import LinkConfigError

log = logging.getLogger(__name__)

__all__ = ["BrokerLink", "LinkListener", "LinkSettings", "TlsFiles"]

#: How long one paho loop iteration may block in select(); bounds stop latency.
LOOP_TIMEOUT_S = 0.2
#: How long a stop waits for the DISCONNECT packet to be written.
STOP_FLUSH_S = 1.0


@dataclass(frozen=True)
class TlsFiles:
    """TLS material: the CA that signed the broker, and an optional client certificate."""

    ca: Path
    cert: Path | None = None
    key: Path | None = None


@dataclass(frozen=True)
class LinkSettings:
    """Where and how to connect; built from the agent config's ``mqtt`` section."""

    host: str
    port: int
    client_id: str
    username: str | None = None
    password: str | None = None
    tls: TlsFiles | None = None
    keepalive: int = 30
    backoff_initial_s: float = 0.5
    backoff_cap_s: float = 60.0
    max_inflight: int = 1000


class LinkListener(Protocol):
    """What the link tells the asyncio side; every call arrives on the event loop."""

    def link_up(self) -> None:
        """The broker accepted the connection (birth sent, subscriptions made)."""

    def link_down(self, reason: str) -> None:
        """The connection was lost or refused."""

    def message(self, topic: str, payload: bytes) -> None:
        """A message arrived on a subscribed topic."""

    def published(self, mids: list[int]) -> None:
        """The broker acknowledged these QoS1 message ids (PUBACK)."""


Factory = Callable[[], tuple[str, bytes]]


def _network_thread_writes(client: paho.Client, userdata: Any, sock: Any) -> None:
    """Socket-write hook: nothing to do, the network thread's select() sees the data."""


class BrokerLink:
    """One paho client with its own network thread; see the module docstring.

    ``birth`` and ``will`` build ``(topic, payload)`` at each connection attempt, so the
    timestamps in them are fresh; both are published QoS1 and retained.
    """

    def __init__(
        self,
        settings: LinkSettings,
        *,
        subscriptions: Sequence[str] = (),
        birth: Factory | None = None,
        will: Factory | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.settings = settings
        self._subscriptions = tuple(subscriptions)
        self._birth = birth
        self._will = will
        self._backoff = backoff or Backoff(settings.backoff_initial_s, settings.backoff_cap_s)
        self._client = self._make_client(settings)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: LinkListener | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._stop_deadline = 0.0
        self._connected = False
        self._acked: list[int] = []
        self._acked_lock = threading.Lock()
        #: The last reason a connection failed, for telemetry and tests; None when up.
        self.last_error: str | None = None
        #: Connection attempts made so far (each TCP connect counts).
        self.attempts = 0

    @staticmethod
    def _make_client(settings: LinkSettings) -> paho.Client:
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            clean_session=True,
            protocol=paho.MQTTv311,
        )
        if settings.username is not None:
            client.username_pw_set(settings.username, settings.password)
        if settings.tls is not None:
            tls = settings.tls
            for name, path in (("ca", tls.ca), ("cert", tls.cert), ("key", tls.key)):
                if path is not None and not path.is_file():
                    raise LinkConfigError(f"mqtt.tls.{name}: no such file {path}")
            if (tls.cert is None) != (tls.key is None):
                raise LinkConfigError("mqtt.tls: give both cert and key, or neither")
            try:
                client.tls_set(
                    ca_certs=str(tls.ca),
                    certfile=str(tls.cert) if tls.cert else None,
                    keyfile=str(tls.key) if tls.key else None,
                    tls_version=ssl.PROTOCOL_TLS_CLIENT,
                )
            except (ssl.SSLError, OSError, ValueError) as exc:
                raise LinkConfigError(f"mqtt.tls: cannot load TLS files: {exc}") from exc
        client.max_inflight_messages_set(settings.max_inflight)
        client.max_queued_messages_set(0)
        # Only the network thread may write to the socket: without a paho-started thread,
        # publish() would write from the caller's thread too, and two threads writing
        # partial packets could interleave their bytes. With a socket-write hook set,
        # publish() only queues the packet and wakes the network thread's select().
        client.on_socket_register_write = _network_thread_writes
        return client

    # ------------------------------------------------------------------ lifecycle

    def start(self, listener: LinkListener) -> None:
        """Start the network thread; events go to ``listener`` on the running loop."""
        if self._thread is not None:
            raise RuntimeError("link already started")
        self._loop = asyncio.get_running_loop()
        self._listener = listener
        client = self._client
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        self._thread = threading.Thread(target=self._run, name="mqtt-link", daemon=True)
        self._thread.start()

    async def stop(self, final: tuple[str, bytes] | None = None, grace_s: float = 2.0) -> None:
        """Publish ``final`` (retained QoS1, e.g. status offline) if connected, then disconnect."""
        if self._thread is None:
            return
        if final is not None and self._connected:
            info = self._client.publish(final[0], final[1], qos=1, retain=True)
            await asyncio.to_thread(info.wait_for_publish, grace_s)
        # The network thread keeps looping until the DISCONNECT is written (a clean
        # goodbye: the broker then drops the will), but at most STOP_FLUSH_S.
        self._stop_deadline = time.monotonic() + STOP_FLUSH_S
        self._stop.set()
        self._client.disconnect()
        await asyncio.to_thread(self._thread.join, grace_s + STOP_FLUSH_S + LOOP_TIMEOUT_S * 5)
        self._thread = None

    @property
    def connected(self) -> bool:
        """True while the broker has accepted the connection."""
        return self._connected

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> int | None:
        """Hand a message to paho; return its message id, or None if it was not taken.

        A QoS1 message taken while the connection is dropping stays in paho's in-flight
        set and is resent on reconnect, so its id is still returned; the caller keeps the
        durable copy until the PUBACK.
        """
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            return int(info.mid)
        if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and qos > 0:
            return int(info.mid)
        return None

    # ------------------------------------------------------------------ network thread

    def _run(self) -> None:
        s = self.settings
        client = self._client
        while not self._stop.is_set():
            if self._will is not None:
                topic, payload = self._will()
                client.will_set(topic, payload, qos=1, retain=True)
            self.attempts += 1
            try:
                client.connect(s.host, s.port, keepalive=s.keepalive)
            except (OSError, ssl.SSLError, ValueError) as exc:
                self._failed(f"cannot reach MQTT broker {s.host}:{s.port}: {exc}")
                continue
            while True:
                rc = client.loop(timeout=LOOP_TIMEOUT_S)
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
                if self._stop.is_set() and time.monotonic() > self._stop_deadline:
                    break
            if not self._stop.is_set():
                self._failed(self.last_error or f"connection to {s.host}:{s.port} lost")

    def _failed(self, reason: str) -> None:
        delay = self._backoff.next()
        self.last_error = reason
        log.warning("%s; retrying in %.1f s", reason, delay)
        self._stop.wait(delay)

    def _call(self, func: Callable[..., Any], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(func, *args)
        except RuntimeError:  # the loop closed between the check and the call
            log.debug("event loop closed; dropped %s", getattr(func, "__name__", func))

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: Any,
        reason_code: Any,
        properties: Any,
    ) -> None:
        s = self.settings
        if reason_code.is_failure:
            self.last_error = (
                f"MQTT broker {s.host}:{s.port} refused the connection: {reason_code}"
                " (check mqtt.username and mqtt.password)"
            )
            log.error("%s", self.last_error)
            return
        self._backoff.reset()
        self.last_error = None
        self._connected = True
        for topic in self._subscriptions:
            client.subscribe(topic, qos=1)
        if self._birth is not None:
            topic, payload = self._birth()
            client.publish(topic, payload, qos=1, retain=True)
        log.info("connected to MQTT broker %s:%d as %s", s.host, s.port, s.client_id)
        if self._listener is not None:
            self._call(self._listener.link_up)

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: Any,
        reason_code: Any,
        properties: Any,
    ) -> None:
        was_up = self._connected
        self._connected = False
        if was_up and not self._stop.is_set():
            self.last_error = f"lost connection to MQTT broker: {reason_code}"
            log.warning("%s", self.last_error)
        if self._listener is not None:
            self._call(self._listener.link_down, str(reason_code))

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if self._listener is not None:
            self._call(self._listener.message, message.topic, bytes(message.payload))

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason_code: Any, properties: Any
    ) -> None:
        with self._acked_lock:
            first = not self._acked
            self._acked.append(mid)
        if first:
            self._call(self._deliver_acks)

    def _deliver_acks(self) -> None:
        with self._acked_lock:
            mids, self._acked = self._acked, []
        if mids and self._listener is not None:
            self._listener.published(mids)
