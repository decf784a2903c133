"""A paho client in its own thread, subscribed before it is handed over: what tests and
benchmarks use to watch a broker (a unit's live frames and acks, its events) or to stand
in for a unit.

``Subscriber(port, [filters], on_message, client_id=...)`` connects, subscribes to every
filter at QoS 1, waits for the broker's SUBACK (``RuntimeError`` after 10 s) and then
calls ``on_message(topic, payload)`` from paho's thread for each message; ``publish``
sends on the same session; ``close`` disconnects and stops the thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

__all__ = ["Subscriber"]


class Subscriber:
    """See the module doc."""

    def __init__(
        self,
        port: int,
        filters: Sequence[str],
        on_message: Callable[[str, bytes], None],
        *,
        client_id: str,
        host: str = "127.0.0.1",
        timeout_s: float = 10.0,
    ) -> None:
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id
        )
        subscribed = threading.Event()
        self.client.on_connect = lambda c, *_: c.subscribe([(f, 1) for f in filters])
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = lambda _c, _u, msg: on_message(msg.topic, bytes(msg.payload))
        self.client.connect(host, port)
        self.client.loop_start()
        if not subscribed.wait(timeout_s):
            self.close()
            raise RuntimeError(f"{client_id} could not subscribe to {list(filters)}")

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> Any:
        """Publish on this client's session; paho's message info."""
        return self.client.publish(topic, payload, qos=qos)

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()
