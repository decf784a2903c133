"""Acceptance: SIGKILL during bursts of events; every committed event is delivered."""

from __future__ import annotations

import json
import random
import sqlite3
import time
from pathlib import Path

import pytest

from simulators.polling import eventually_sync

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KILLS = 20
EVENTS = 5000


def _inspect(db: Path) -> tuple[str, int, set[str]]:
    """integrity_check, events stored so far, and ids of events still in the outbox."""
    conn = sqlite3.connect(db, timeout=5)
    try:
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
        row = conn.execute("SELECT value FROM meta WHERE key = 'selftest_sent'").fetchone()
        ids = {
            json.loads(p)["event_id"]
            for (p,) in conn.execute("SELECT payload FROM outbox WHERE topic LIKE '%/event'")
        }
        return str(check), int(row[0]) if row else 0, ids
    finally:
        conn.close()


def _stored(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(db, timeout=5)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'selftest_sent'").fetchone()
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0
    return int(row[0]) if row else 0


def test_sigkill_twenty_times_loses_nothing_committed(
    mosquitto, agent_config, agent_process, recorder_factory, tmp_path
):
    rng = random.Random(5)
    config = agent_config(mosquitto, selftest={"events": EVENTS, "rate_per_s": 1000})
    db = tmp_path / "state" / "outbox.db"
    recorder = recorder_factory(mosquitto, topic="xh/v1/dev/+/event")
    committed: set[str] = set()
    last = 0
    for round_no in range(KILLS):
        agent = agent_process(config)
        eventually_sync(lambda last=last: _stored(db) > last, 20, every_s=0.01)
        time.sleep(rng.uniform(0.0, 0.15))  # somewhere inside the burst
        agent.kill()
        check, stored, waiting = _inspect(db)
        assert check == "ok", f"round {round_no}: {check}"
        assert stored >= last, "the event counter went backwards"
        last = stored
        committed |= waiting
    assert 0 < last < EVENTS, "the kills should land before the selftest ends"
    agent = agent_process(config)
    received = lambda: {e["event_id"] for e in recorder.on("event")}  # noqa: E731
    seqs = lambda: {e["seq"] for e in recorder.on("event")}  # noqa: E731
    assert eventually_sync(lambda: len(seqs()) >= EVENTS, 60), agent.log_text()[-2000:]
    assert seqs() == set(range(1, EVENTS + 1))
    missing = committed - received()
    assert not missing, f"{len(missing)} committed events never arrived"
    assert _inspect(db)[0] == "ok"
    assert agent.terminate() == 0
