"""One virtual device on its own MQTT connection: presence, heartbeat, commands, config.

Tests that talk to a real hub through a real broker need a unit that behaves like an edge
agent on the wire without cameras or a speaker. :class:`SimDevice` is that unit. It
answers commands with the fleet simulator's pure :func:`simulators.fleet.answer_command`
(verify signature, target, expiry and replay, then ack ``received`` and ``succeeded``, or
``rejected``/``expired`` with the reason), keeps what the hub sent it, and has its own
last will, so stopping it uncleanly reads as a dropped unit.

Unlike :class:`simulators.fleet.Fleet` (hundreds of devices on one connection, for load)
it is one device per connection, with a device's own credentials where a broker has them.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

from edge_agent import protocol
from simulators.fleet import answer_command

__all__ = ["SimDevice", "SimDeviceError"]


class SimDeviceError(RuntimeError):
    """The virtual device could not connect or subscribe."""


class SimDevice:
    """A virtual pole unit (see the module docstring); a context manager.

    ``commands`` holds the commands that verified, ``refused`` the acks of those that did
    not, ``desired`` the desired-config documents the hub published.
    """

    def __init__(
        self,
        device_id: str,
        *,
        port: int,
        host: str = "127.0.0.1",
        hub_public_key: str | None = None,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
    ) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.device_id = device_id
        self.commands: list[protocol.Command] = []
        self.refused: list[protocol.CommandAck] = []
        self.desired: list[dict[str, Any]] = []
        self._host, self._port = host, port
        self._key = protocol.load_public_key(hub_public_key) if hub_public_key else None
        self._guard = protocol.MemoryReplayGuard()
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._refused_connection: str | None = None
        #: Every status of this connection, the will included, carries its start (as an
        #: agent's do), so the hub takes the will over the birth.
        self._since = datetime.now(UTC)
        self._client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"sim-{device_id}",
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        self._client.will_set(
            protocol.topic(device_id, protocol.Channel.STATUS),
            protocol.encode(self._status("offline")),
            qos=1,
            retain=True,
        )
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_message

    # ------------------------------------------------------------------ paho thread

    def _on_connect(self, client: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._refused_connection = str(reason)
            return
        client.subscribe(
            [
                (protocol.topic(self.device_id, protocol.Channel.CMD), 1),
                (protocol.topic(self.device_id, protocol.Channel.CONFIG_DESIRED), 1),
            ]
        )

    def _on_message(self, _c: Any, _u: Any, message: Any) -> None:
        payload = bytes(message.payload)
        if message.topic.endswith("/config/desired"):
            with self._lock:
                self.desired.append(json.loads(payload))
            return
        answer = answer_command(
            self.device_id,
            payload,
            now=datetime.now(UTC),
            public_key=self._key,
            replay=self._guard,
        )
        with self._lock:
            if answer.command is not None:
                self.commands.append(answer.command)
            else:
                self.refused.extend(answer.acks)
        ack_topic = protocol.topic(self.device_id, protocol.Channel.CMD_ACK)
        for ack in answer.acks:
            self._client.publish(ack_topic, protocol.encode(ack), qos=1)

    # ------------------------------------------------------------------ caller side

    def _status(self, state: str) -> protocol.Status:
        return protocol.Status(
            device_id=self.device_id,
            state=state,
            boot_id="sim",
            fw="sim-device",
            model="street-detector",
            config_version=0,
            ts=self._since,
        )

    def start(self, wait_s: float = 10.0) -> SimDevice:
        """Connect and subscribe to the device's command and desired-config topics."""
        try:
            self._client.connect(self._host, self._port)
        except OSError as exc:
            raise SimDeviceError(
                f"cannot reach the broker {self._host}:{self._port}: {exc}"
            ) from exc
        self._client.loop_start()
        if not self._subscribed.wait(wait_s):
            self.close()
            why = self._refused_connection or "no SUBACK"
            raise SimDeviceError(f"{self.device_id} could not subscribe ({why})")
        return self

    def online(self, telemetry: protocol.Telemetry | None = None, wait_s: float = 10.0) -> None:
        """Announce the unit online (retained), then send one heartbeat if given."""
        status = protocol.encode(self._status("online"))
        self._publish(protocol.Channel.STATUS, status, retain=True, wait_s=wait_s)
        if telemetry is not None:
            self._publish(protocol.Channel.TELEMETRY, protocol.encode(telemetry), wait_s=wait_s)

    def _publish(
        self, channel: protocol.Channel, payload: bytes, retain: bool = False, wait_s: float = 10.0
    ) -> None:
        info = self._client.publish(
            protocol.topic(self.device_id, channel), payload, qos=1, retain=retain
        )
        info.wait_for_publish(wait_s)

    def close(self) -> None:
        """Disconnect cleanly (no last will: a retained ``online`` stays where it was)."""
        self._client.disconnect()
        self._client.loop_stop()

    def drop(self) -> None:
        """Lose the connection without a DISCONNECT, as a unit losing power: the broker
        publishes the last will (retained ``offline``)."""
        sock = self._client.socket()
        self._client.loop_stop()
        if sock is not None:
            sock.close()

    def __enter__(self) -> SimDevice:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()
