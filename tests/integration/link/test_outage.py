"""Acceptance: an outage with a SIGKILL in the middle loses no event."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from simulators.polling import eventually_sync

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _depth(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(db, timeout=5)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'selftest_sent'").fetchone()
        return int(row[0]) if row else 0
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def test_outage_with_sigkill_delivers_all_events(
    mosquitto, agent_config, agent_process, recorder_factory, tmp_path
):
    config = agent_config(mosquitto, selftest={"events": 1000, "rate_per_s": 400})
    db = tmp_path / "state" / "outbox.db"
    # A persistent subscriber: the broker queues for it while it reconnects after the outage.
    recorder = recorder_factory(mosquitto, persistent=True)
    mosquitto.stop()
    agent = agent_process(config)
    # Kill it mid-outage, once part of the events is stored.
    eventually_sync(lambda: _depth(db) >= 300, 30, every_s=0.02)
    stored_before_kill = _depth(db)
    assert 0 < stored_before_kill < 1000, agent.log_text()
    agent.kill()
    agent = agent_process(config)
    eventually_sync(lambda: _depth(db) >= 1000, 30)
    assert _depth(db) == 1000, agent.log_text()
    mosquitto.start()

    def distinct() -> set[str]:
        return {e["event_id"] for e in recorder.on("event")}

    assert eventually_sync(lambda: len(distinct()) >= 1000, 60), (
        len(distinct()),
        agent.log_text()[-3000:],
    )
    events = recorder.on("event")
    assert len(distinct()) == 1000
    assert {e["seq"] for e in events} == set(range(1, 1001))
    assert agent.terminate() == 0
