"""Acceptance: a small byte cap evicts the oldest rows, counts them, and the agent runs on."""

from __future__ import annotations

import asyncio

import pytest

from edge_agent.config import load_config
from edge_agent.runner import Agent
from simulators.polling import eventually

pytestmark = pytest.mark.integration

CAP = 24_000


async def test_small_cap_evicts_counts_and_keeps_running(mosquitto, agent_config, recorder_factory):
    config = agent_config(
        mosquitto,
        outbox={"max_bytes": CAP},
        selftest={"events": 200, "rate_per_s": 1000},
    )
    recorder = await asyncio.to_thread(recorder_factory, mosquitto, "xh/v1/#", True)
    await asyncio.to_thread(mosquitto.stop)
    agent = Agent(load_config(config), config_path=config)
    task = asyncio.create_task(agent.run())
    try:
        await eventually(
            lambda: agent._outbox is not None and agent.outbox.counter("selftest_sent") >= 200,
            20,
            every_s=0.05,
        )
        stats = agent.outbox.stats()
        assert stats.evicted > 0
        assert stats.bytes <= CAP
        assert agent.telemetry().evicted == stats.evicted
        await asyncio.to_thread(mosquitto.start)

        def seqs() -> set[int]:
            return {e["seq"] for e in recorder.on("event")}

        def drained() -> bool:
            beats = recorder.on("telemetry")
            return 200 in seqs() and bool(beats) and beats[-1]["outbox_depth"] == 0

        await eventually(drained, 20, every_s=0.05)
        beats = recorder.on("telemetry")
        assert beats, "no telemetry after the broker came back"
        assert beats[-1]["evicted"] == stats.evicted
        received = seqs()
        assert 200 in received, "the newest event must survive eviction"
        assert 1 not in received, "the oldest event should have been evicted"
        assert len(received) == 200 - stats.evicted
        assert not task.done(), "the agent stopped"
    finally:
        agent.request_stop()
        await asyncio.wait_for(task, 20)
