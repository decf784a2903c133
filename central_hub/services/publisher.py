"""What services need to send messages: a small protocol the MQTT adapter satisfies."""

from __future__ import annotations

from typing import Protocol

__all__ = ["Publisher"]


class Publisher(Protocol):
    """Publishes a message and returns once the broker acknowledged it."""

    @property
    def connected(self) -> bool:
        """True while messages can be published."""
        ...

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Publish ``payload`` on ``topic``; raise ``errors.BrokerError`` on failure."""
        ...
