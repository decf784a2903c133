"""Backoff arithmetic and the stage supervisor."""

from __future__ import annotations

import asyncio

import pytest

from edge_agent.agent.supervisor import Supervisor
from edge_agent.backoff import Backoff


def test_backoff_doubles_to_the_cap_with_jitter_below() -> None:
    highest = Backoff(0.5, 8.0, uniform=lambda lo, hi: hi)
    assert [highest.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    lowest = Backoff(0.5, 8.0, uniform=lambda lo, hi: lo)
    assert [lowest.next() for _ in range(6)] == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0]


def test_backoff_reset_and_real_jitter_stays_in_bounds() -> None:
    backoff = Backoff(1.0, 4.0)
    delays = [backoff.next() for _ in range(50)]
    assert all(0.5 <= d <= 4.0 for d in delays)
    assert len(set(delays)) > 10, "jitter should spread the delays"
    backoff.reset()
    assert backoff.next() <= 1.0


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="initial"):
        Backoff(0.0, 1.0)
    with pytest.raises(ValueError, match="initial"):
        Backoff(5.0, 1.0)


@pytest.mark.logs_exceptions("edge_agent.agent.supervisor")
async def test_supervisor_restarts_a_crashed_stage_and_counts_it() -> None:
    runs = 0
    done = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError("boom")
        done.set()

    sup = Supervisor(backoff_initial_s=0.01, backoff_cap_s=0.02)
    sup.start("flaky", flaky)
    await asyncio.wait_for(done.wait(), 5)
    assert sup.restarts == {"flaky": 2}
    await asyncio.sleep(0)
    assert sup.running() == []


async def test_supervisor_stop_cancels_named_stages_only() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    sup = Supervisor()
    sup.start("a", forever)
    sup.start("b", forever)
    with pytest.raises(RuntimeError, match="already running"):
        sup.start("a", forever)
    await sup.stop(["a"])
    assert sup.running() == ["b"]
    await sup.stop()
    assert sup.running() == []
