"""Exactly-once filing across a hub SIGKILL while devices keep publishing (real processes)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from central_hub.testing import make_event, make_status
from edge_agent.protocol import Channel, encode, topic
from simulators.mosquitto import MosquittoBroker
from simulators.polling import eventually_sync

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow]

COPIES = 3  # every event is published this many times


def _count(db: Path, sql: str) -> int:
    if not db.exists():
        return -1
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        try:
            return int(conn.execute(sql).fetchone()[0])
        except sqlite3.OperationalError:  # not migrated yet
            return -1


class Hub:
    """``central-hub serve --no-api`` as a child process."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.args = [
            sys.executable, "-m", "central_hub.cli", "--data-dir", str(data_dir),
            "serve", "--no-api", "--mqtt-port", str(port), "--client-id", "hub-e2e",
        ]  # fmt: skip
        self.log = data_dir.parent / "hub.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def publisher(mosquitto: MosquittoBroker) -> Iterator[paho.Client]:
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="fleet")
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    yield client
    client.disconnect()
    client.loop_stop()


def _events(first: int, n: int) -> list[bytes]:
    out = []
    for i in range(first, first + n):
        lat = 28.6400 + (i // 20) * 0.0004
        lon = 121.2520 + (i % 20) * 0.0004
        ev = make_event(f"pole-{i % 4}", seq=i, at=datetime.now(UTC), lat=lat, lon=lon)
        out.append(encode(ev))
    return out


def _publish(client: paho.Client, payloads: list[bytes], rate_per_s: float) -> None:
    for p in payloads:
        device = p.split(b'"device_id":"')[1].split(b'"')[0].decode()
        for _ in range(COPIES):
            info = client.publish(topic(device, Channel.EVENT), p, qos=1)
        info.wait_for_publish(10)
        time.sleep(1 / rate_per_s)


def test_same_events_three_times_across_sigkill(
    tmp_path: Path, mosquitto: MosquittoBroker, publisher: paho.Client
) -> None:
    data = tmp_path / "hub"
    db = data / "hub.db"
    hub = Hub(data, mosquitto.port)
    hub.start()
    try:
        # Wait until the hub's persistent shared subscription exists: a sentinel status
        # repeated until the hub has recorded it.
        def sentinel_seen() -> bool:
            publisher.publish(
                topic("sentinel", Channel.STATUS), encode(make_status("sentinel")), qos=1
            )
            return _count(db, "select count(*) from devices where device_id='sentinel'") == 1

        assert eventually_sync(sentinel_seen, 30, every_s=0.1), "the hub did not subscribe"

        before = _events(0, 60)
        during = _events(60, 120)
        while_down = _events(180, 60)
        _publish(publisher, before, 500)
        assert eventually_sync(lambda: _count(db, "select count(*) from events") == 60, 30), (
            "the first batch was not filed"
        )

        # Kill the hub while a fleet keeps publishing.
        fleet = threading.Thread(target=_publish, args=(publisher, during, 150))
        fleet.start()
        time.sleep(0.3)
        hub.kill()
        fleet.join(30)
        _publish(publisher, while_down, 500)
        assert _count(db, "select count(*) from events") < 240

        hub.start()
        assert eventually_sync(lambda: _count(db, "select count(*) from events") == 240, 60), (
            "not all events were filed"
        )
        time.sleep(1.0)  # any late duplicate would show up now
        assert _count(db, "select count(*) from events") == 240
        assert _count(db, "select count(*) from cases") == 240
        assert _count(db, "select count(*) from events where case_id is null") == 0
        assert _count(db, "select count(*) from audits") == 240
        assert _count(db, "select count(*) from dead_letters") == 0
    finally:
        hub.stop()
    assert os.path.getsize(hub.log) > 0
