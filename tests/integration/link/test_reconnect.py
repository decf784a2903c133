"""The uplink across a broker restart in the middle of a drain (one process, real broker)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from edge_agent.link.mqtt import BrokerLink, LinkSettings
from edge_agent.link.outbox import Outbox
from edge_agent.link.uplink import Uplink
from simulators.polling import eventually

pytestmark = pytest.mark.integration

N = 3000


class Wire:
    def __init__(self, uplink: Uplink) -> None:
        self.uplink = uplink
        self.ups = 0

    def link_up(self) -> None:
        self.ups += 1
        self.uplink.wake()

    def link_down(self, reason: str) -> None:
        pass

    def message(self, topic: str, payload: bytes) -> None:
        pass

    def published(self, mids: list[int]) -> None:
        self.uplink.published(mids)


async def test_drain_survives_a_broker_restart(mosquitto, recorder_factory, tmp_path: Path):
    recorder = await asyncio.to_thread(recorder_factory, mosquitto, "xh/v1/dev/+/event", True)
    box = await Outbox.open(tmp_path / "o.db")
    topic = "xh/v1/dev/pole-test-01/event"
    await asyncio.gather(*(box.append(topic, json.dumps({"n": i}).encode()) for i in range(N)))
    settings = LinkSettings(
        host=mosquitto.host,
        port=mosquitto.port,
        client_id="pole-test-01",
        backoff_initial_s=0.1,
        backoff_cap_s=0.5,
        max_inflight=200,
    )
    link = BrokerLink(settings)
    uplink = Uplink(box, link, window=200)
    wire = Wire(uplink)
    link.start(wire)
    task = asyncio.create_task(uplink.run())
    try:
        await eventually(lambda: uplink.delivered >= 300, 4.0, every_s=0.01)
        assert 0 < box.stats().depth < N
        await asyncio.to_thread(mosquitto.restart)
        assert await eventually(lambda: box.stats().depth == 0, 30.0), (
            f"{box.stats().depth} rows never acknowledged"
        )
        assert wire.ups >= 2, "the link did not reconnect"

        def numbers() -> set[int]:
            return {e["n"] for e in recorder.on("event")}

        assert await eventually(lambda: len(numbers()) == N, 30, every_s=0.05), (
            f"the recorder got {len(numbers())} of {N} events"
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await link.stop()
        await box.close()
