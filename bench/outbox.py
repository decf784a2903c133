"""Outbox benchmark: durable appends and draining a backlog into a real Mosquitto.

Figures, all measured in this one process run:

* ``append_per_s``: events committed durably (WAL, synchronous=FULL) by 64 concurrent
  producers through :class:`edge_agent.link.outbox.Outbox` (group commit);
* ``append_one_producer_per_s``: the same with one producer awaiting each append (no
  batching possible: bounded by the fsync rate);
* ``sqlite_fsync_per_s``: the raw baseline, one ``sqlite3`` INSERT + COMMIT per row with
  the same pragmas;
* ``drain_per_s``: a 20,000-event backlog drained by Outbox + Uplink + BrokerLink into
  Mosquitto, counted until every row's PUBACK has deleted it;
* ``raw_publish_per_s``: the raw baseline, one paho client publishing the same payloads
  at QoS1 with ``loop_start`` until every PUBACK arrived;
* ``drain_ratio``: drain_per_s / raw_publish_per_s (goal >= 0.5).

Usage: ``.venv/bin/python bench/outbox.py [--events 20000] [--dir FOLDER]``; prints one
JSON line. Run it with ``--dir`` on the unit's own storage to size a deployment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent import protocol
from edge_agent.link.mqtt import BrokerLink, LinkListener, LinkSettings
from edge_agent.link.outbox import Outbox
from edge_agent.link.uplink import Uplink
from simulators.mosquitto import MosquittoBroker

DEVICE = "bench-dev-1"


def _event(seq: int) -> bytes:
    now = datetime.now(UTC)
    event = protocol.Event(
        event_id=protocol.uuid7(),
        device_id=DEVICE,
        camera_id="cam1",
        seq=seq,
        kind="shop_front_overflow",
        code="0504",
        started_at=now,
        detected_at=now,
        dwell_s=12.5,
        confidence=0.81,
        objects=(
            protocol.DetectedObject(label="goods", score=0.8, box=(0.1, 0.2, 0.3, 0.4), track_id=7),
        ),
        zone="door-line",
        location=protocol.Location(lat=30.27, lon=120.15, source="fixed"),
        model=protocol.ModelRef(name="xh-street", version="1.0"),
    )
    return protocol.encode(event)


def raw_sqlite(path: Path, payloads: list[bytes], n: int) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT, payload BLOB)")
    start = time.perf_counter()
    for i in range(n):
        db.execute("BEGIN")
        db.execute(
            "INSERT INTO t (topic, payload) VALUES (?, ?)", ("x", payloads[i % len(payloads)])
        )
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return n / elapsed


async def outbox_append(path: Path, payloads: list[bytes], n: int, producers: int = 64) -> float:
    box = await Outbox.open(path, max_bytes=1 << 30)
    topic = protocol.topic(DEVICE, protocol.Channel.EVENT)
    per = n // producers

    async def produce(k: int) -> None:
        for i in range(per):
            await box.append(
                topic, payloads[(k * per + i) % len(payloads)], counters={"seq": k * per + i}
            )

    start = time.perf_counter()
    await asyncio.gather(*(produce(k) for k in range(producers)))
    elapsed = time.perf_counter() - start
    await box.close()
    return per * producers / elapsed


def raw_publish(port: int, payloads: list[bytes], n: int) -> float:
    done = threading.Event()
    acked = 0

    def on_publish(
        client: paho.Client, userdata: object, mid: int, rc: object, props: object
    ) -> None:
        nonlocal acked
        acked += 1
        if acked >= n:
            done.set()

    connected = threading.Event()
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="raw-bench")
    client.on_publish = on_publish
    client.on_connect = lambda *a: connected.set()
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    connected.wait(10)
    topic = protocol.topic(DEVICE, protocol.Channel.EVENT)
    start = time.perf_counter()
    for i in range(n):
        client.publish(topic, payloads[i % len(payloads)], qos=1)
    done.wait(120)
    elapsed = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()
    return acked / elapsed


class _Listener(LinkListener):
    def __init__(self, uplink: Uplink, up: asyncio.Event) -> None:
        self.uplink = uplink
        self.up = up

    def link_up(self) -> None:
        self.up.set()
        self.uplink.wake()

    def link_down(self, reason: str) -> None:
        self.up.clear()

    def message(self, topic: str, payload: bytes) -> None:
        pass

    def published(self, mids: list[int]) -> None:
        self.uplink.published(mids)


async def drain(path: Path, port: int, payloads: list[bytes], n: int) -> float:
    box = await Outbox.open(path, max_bytes=1 << 30)
    topic = protocol.topic(DEVICE, protocol.Channel.EVENT)
    await asyncio.gather(*(box.append(topic, payloads[i % len(payloads)]) for i in range(n)))
    assert box.stats().depth == n
    link = BrokerLink(LinkSettings(host="127.0.0.1", port=port, client_id="drain-bench"))
    uplink = Uplink(box, link, window=1000)
    up = asyncio.Event()
    link.start(_Listener(uplink, up))
    await asyncio.wait_for(up.wait(), 10)
    start = time.perf_counter()
    task = asyncio.create_task(uplink.run(), name="uplink")
    while box.stats().depth > 0:  # noqa: ASYNC110 - polling the counter is the measurement
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - start
    task.cancel()
    await link.stop()
    await box.close()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the databases go (e.g. the SD card)"
    )
    args = parser.parse_args()
    n = args.events
    payloads = [_event(i) for i in range(200)]
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        fsync = raw_sqlite(work / "raw.db", payloads, 2000)
        append = asyncio.run(outbox_append(work / "append.db", payloads, n))
        single = asyncio.run(outbox_append(work / "single.db", payloads, 2000, producers=1))
        with MosquittoBroker(work / "broker") as broker:
            raw = raw_publish(broker.port, payloads, n)
            drained = asyncio.run(drain(work / "drain.db", broker.port, payloads, n))
    print(
        json.dumps(
            {
                "bench": "outbox",
                "events": n,
                "payload_bytes": len(payloads[0]),
                "append_per_s": round(append),
                "sqlite_fsync_per_s": round(fsync),
                "append_ratio": round(append / fsync, 2),
                "append_one_producer_per_s": round(single),
                "drain_per_s": round(drained),
                "raw_publish_per_s": round(raw),
                "drain_ratio": round(drained / raw, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
