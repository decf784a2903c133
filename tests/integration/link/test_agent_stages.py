"""The agent's stages without a broker: GPS-located events, tracks, crash restarts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from edge_agent import protocol
from edge_agent.config import load_config
from edge_agent.link.outbox import Priority
from edge_agent.runner import Agent
from simulators.mosquitto import free_port
from simulators.polling import eventually

pytestmark = pytest.mark.integration


class Nowhere:
    host = "127.0.0.1"

    def __init__(self) -> None:
        self.port = free_port()


async def test_truck_events_take_the_gps_fix_and_tracks_are_batched(
    agent_config, tmp_path: Path
) -> None:
    route = tmp_path / "route.csv"
    route.write_text("30.2901,120.1601,20\n30.2902,120.1602,21\n30.2903,120.1603,22\n")
    config = agent_config(
        Nowhere(),
        "truck-test-07",
        device={"id": "truck-test-07", "kind": "truck", "location": None},
        gps={
            "source": "route",
            "route_file": "route.csv",
            "route_interval_s": 0.02,
            "track_batch": 5,
        },
        selftest={"events": 3, "rate_per_s": 5},
    )
    agent = Agent(load_config(config), config_path=config)
    task = asyncio.create_task(agent.run())
    try:
        assert await eventually(
            lambda: agent._outbox is not None and agent.outbox.counter("selftest_sent") >= 3
        ), "the selftest did not store its 3 events"
        assert await eventually(
            lambda: agent._stages is not None and agent._stages.gps.batches_sent >= 2  # type: ignore[union-attr]
        ), "the GPS stage did not send 2 track batches"
        beat = agent.telemetry()
        assert beat.gps is not None
        assert beat.outbox_depth >= 5
        rows = await agent.outbox.next_batch(100)
        events = [json.loads(r.payload) for r in rows if r.priority == Priority.EVENT]
        tracks = [json.loads(r.payload) for r in rows if r.priority == Priority.TRACK]
        assert len(events) == 3
        # The first event may come before the first fix; the later ones carry it.
        assert [e["location"]["source"] for e in events[1:]] == ["gps", "gps"]
        assert all(30.29 < e["location"]["lat"] < 30.291 for e in events[1:])
        assert all(len(protocol.decode(protocol.Track, t).points) == 5 for t in tracks)
        assert rows.index(next(r for r in rows if r.priority == Priority.TRACK)) > max(
            i for i, r in enumerate(rows) if r.priority == Priority.EVENT
        ), "events go out before tracks"
    finally:
        agent.request_stop()
        await asyncio.wait_for(task, 10)


@pytest.mark.logs_exceptions("edge_agent.agent.supervisor")
async def test_a_crashing_stage_is_restarted_and_reported(agent_config, tmp_path: Path) -> None:
    (tmp_path / "bad-route.csv").write_text("north,east\n")
    config = agent_config(Nowhere(), gps={"source": "route", "route_file": "bad-route.csv"})
    agent = Agent(load_config(config), config_path=config)
    agent.supervisor.backoff_initial_s = 0.05
    agent.supervisor.backoff_cap_s = 0.1
    task = asyncio.create_task(agent.run())
    try:
        assert await eventually(lambda: agent.supervisor.restarts.get("gps", 0) >= 2), (
            f"the GPS stage was restarted {agent.supervisor.restarts.get('gps', 0)} times, not 2"
        )
        assert agent.telemetry().restarts["gps"] >= 2
        assert "uplink" in agent.supervisor.running()
        assert not task.done()
    finally:
        agent.request_stop()
        await asyncio.wait_for(task, 10)


async def test_a_broken_speaker_leaves_the_uplink_running_degraded(
    agent_config, tmp_path: Path
) -> None:
    config = agent_config(
        Nowhere(),
        speaker={"clips": {"siren": "missing.wav"}},
        selftest={"events": 2, "rate_per_s": 50},
    )
    agent = Agent(load_config(config), config_path=config)
    task = asyncio.create_task(agent.run())
    try:
        assert await eventually(
            lambda: agent._outbox is not None and agent.outbox.counter("selftest_sent") >= 2
        ), "the selftest did not store its 2 events"
        assert agent.problems
        assert agent.problems[0].startswith("speaker: ")
        assert "missing.wav" in agent.problems[0]
        _, payload = agent._status("online")
        assert json.loads(payload)["state"] == "degraded"
        assert not task.done()
    finally:
        agent.request_stop()
        await asyncio.wait_for(task, 10)
