"""Fleet load run: N virtual devices against a real hub; one JSON line of figures at the end.

    python bench/fleet.py [--devices 500] [--duration 60] [--event-interval 10]
                          [--telemetry-interval 30] [--commands-per-s 2] [--workers 1]
                          [--db URL | --pg postgresql://postgres@127.0.0.1:5432/postgres]

Starts an anonymous Mosquitto on a free port and ``central-hub serve`` (SQLite in a
temp folder unless ``--db`` names another database; ``--pg ADMIN_URL`` creates a fresh
PostgreSQL database for the run and drops it after); with ``--workers N``, N hub
processes sharing the ingest through one ``$share`` group, the first with the API, each
running its command dispatcher (so commands are sent once however many race for them).
Then:

1. **baseline** (raw MQTT, no hub): the same fleet publishes its events for
   ``--baseline-s`` seconds to a plain paho subscriber; p95 publish → receive;
2. **hub run**: the fleet publishes for ``--duration`` seconds while the bench sends
   ``speaker.say`` commands through the API to random devices; the fleet verifies each
   (the hub's real key) and acks.

Figures: ``p95_event_to_case_ms`` is from the fleet's publish to the hub's
``received_at`` stamp of the event, taken in the transaction that files it into a case
(every event counted has a case); ``p95_event_visible_ms`` is an upper bound, from publish
to the event first showing up with its case in the API (polled every 250 ms);
``p95_cmd_roundtrip_ms`` is from the API call to the hub recording the ``succeeded`` ack;
``lost`` counts events the broker acknowledged that the hub never stored. ``ratio`` is
p95 event → case over the raw MQTT p95.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from central_hub.testing import PG_ADMIN_URL, fresh_pg_database
from simulators.fleet import Fleet, FleetPlan
from simulators.mosquitto import MosquittoBroker, free_port


def p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1)


async def baseline(args: argparse.Namespace, port: int) -> float | None:
    """p95 publish → receive (ms) of the fleet's events through the broker alone."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    received: dict[str, float] = {}
    lock = threading.Lock()
    ready = threading.Event()

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        at = time.time()
        event_id = json.loads(msg.payload)["event_id"]
        with lock:
            received[event_id] = at

    sub = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="bench-raw",
        protocol=paho.MQTTv311,
    )
    sub.on_message = on_message
    sub.on_subscribe = lambda *_a: ready.set()
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    sub.subscribe("xh/v1/dev/+/event", qos=1)
    ready.wait(10)
    fleet = Fleet(
        FleetPlan(
            devices=args.devices,
            event_interval_s=args.event_interval,
            telemetry_interval_s=args.telemetry_interval,
            id_prefix="raw",
        ),
        host="127.0.0.1",
        port=port,
    )
    await fleet.connect()
    report = await fleet.run(args.baseline_s)
    await fleet.wait_acked()
    await asyncio.sleep(1.0)
    await fleet.close()
    sub.disconnect()
    sub.loop_stop()
    with lock:
        lat = [(received[e] - t) * 1000 for e, t in report.event_sent_at.items() if e in received]
    return p95(lat)


async def prepare_hub(
    data_dir: Path, db_url: str | None, port: int, api_port: int
) -> dict[str, str]:
    from central_hub.domain.workflow import Role
    from central_hub.hub import build_hub
    from central_hub.settings import HubSettings

    settings = HubSettings(data_dir=data_dir, db_url=db_url, mqtt_port=port, api_port=api_port)
    hub = await build_hub(settings, mqtt=False)
    try:
        _, token = await hub.users.add("bench-operator", Role.OPERATOR)
    finally:
        await hub.close()
    return {"Authorization": f"Bearer {token}"}


async def hub_run(
    args: argparse.Namespace, port: int, api: httpx.AsyncClient, auth: dict[str, str], key: Any
) -> dict[str, Any]:
    fleet = Fleet(
        FleetPlan(
            devices=args.devices,
            event_interval_s=args.event_interval,
            telemetry_interval_s=args.telemetry_interval,
            id_prefix="sim",
            seed=1,
        ),
        host="127.0.0.1",
        port=port,
        public_key=key,
    )
    await fleet.connect()
    # Every device must be known (online) before commands can go to it.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        devices = (await api.get("/devices", headers=auth)).json()
        if sum(d["state"] == "online" for d in devices) >= args.devices:
            break
        await asyncio.sleep(0.5)
    posted: dict[str, float] = {}
    post_ms: list[float] = []
    visible: dict[str, float] = {}
    stop = asyncio.Event()

    async def commands() -> None:
        rng = random.Random(7)
        while not stop.is_set():
            device_id = rng.choice(fleet.ids)
            t0 = time.time()
            r = await api.post(
                f"/devices/{device_id}/commands",
                headers=auth,
                json={"kind": "speaker.say", "params": {"text": "请勿占道经营"}},
            )
            post_ms.append((time.time() - t0) * 1000)
            if r.status_code == 202:
                posted[r.json()["cmd_id"]] = t0
            await asyncio.sleep(1.0 / args.commands_per_s)

    async def watch() -> None:
        while not stop.is_set():
            r = await api.get("/events", headers=auth, params={"limit": 200})
            now = time.time()
            if r.status_code == 200:
                for e in r.json():
                    if e["case_id"] is not None:
                        visible.setdefault(e["event_id"], now)
            await asyncio.sleep(0.25)

    tasks = [asyncio.create_task(commands()), asyncio.create_task(watch())]
    t_start = time.time()
    report = await fleet.run(args.duration)
    await fleet.wait_acked()
    await asyncio.sleep(3.0)  # the last events and acks reach the hub
    stop.set()
    await asyncio.gather(*tasks)
    wall = time.time() - t_start

    stored: dict[str, dict[str, Any]] = {}
    offset = 0
    while True:
        page = (
            await api.get("/events", headers=auth, params={"limit": 1000, "offset": offset})
        ).json()
        stored.update({e["event_id"]: e for e in page if e["device_id"].startswith("sim-")})
        if len(page) < 1000:
            break
        offset += 1000
    to_case, to_visible = [], []
    for event_id, sent in report.event_sent_at.items():
        row = stored.get(event_id)
        if row is not None and row["case_id"] is not None:
            to_case.append((datetime.fromisoformat(row["received_at"]).timestamp() - sent) * 1000)
        if event_id in visible:
            to_visible.append((visible[event_id] - sent) * 1000)
    roundtrips, queued, on_wire, unfinished = [], [], [], 0
    for cmd_id, t0 in posted.items():
        cmd = (await api.get(f"/commands/{cmd_id}", headers=auth)).json()
        if cmd["state"] == "succeeded":
            done = datetime.fromisoformat(cmd["updated_at"]).timestamp()
            roundtrips.append((done - t0) * 1000)
            if cmd["sent_at"]:
                sent = datetime.fromisoformat(cmd["sent_at"]).timestamp()
                queued.append((sent - t0) * 1000)
                on_wire.append((done - sent) * 1000)
        else:
            unfinished += 1
    await fleet.close()
    lost = len([e for e in report.event_sent_at if e not in stored])
    return {
        "events": report.events,
        "events_per_s": round(report.events / wall, 1),
        "telemetry_per_s": round(report.telemetry / wall, 1),
        "p95_event_to_case_ms": p95(to_case),
        "p95_event_visible_ms": p95(to_visible),
        "commands": len(posted),
        "commands_unfinished": unfinished,
        "p95_cmd_roundtrip_ms": p95(roundtrips),
        "p95_cmd_post_ms": p95(post_ms),
        "p95_cmd_api_to_sent_ms": p95(queued),
        "p95_cmd_sent_to_ack_ms": p95(on_wire),
        "lost": lost,
        "without_case": len([e for e in stored.values() if e["case_id"] is None]),
    }


def start_hub(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="xh-bench-fleet-"))
    broker = MosquittoBroker(work / "broker")
    broker.start()
    hub_procs: list[subprocess.Popen[bytes]] = []
    try:
        raw_p95 = await baseline(args, broker.port or 0)
        api_port = free_port()
        auth = await prepare_hub(work / "hub", args.db, broker.port or 0, api_port)
        from central_hub.hub import load_or_create_key

        key = load_or_create_key(work / "hub" / "hub_key.pem").public_key()
        env = {**os.environ, "XH_HUB_COMMAND_TICK_S": "0.5"}
        argv = [sys.executable, "-m", "central_hub.cli", "--data-dir", str(work / "hub")]
        if args.db:
            argv += ["--db", args.db]
        argv += ["serve", "--mqtt-port", str(broker.port)]
        for n in range(1, args.workers + 1):
            own = ["--client-id", f"hub-{n}"]
            own += ["--port", str(api_port)] if n == 1 else ["--no-api"]
            proc = await asyncio.to_thread(start_hub, argv + own, env, work / f"hub-{n}.log")
            hub_procs.append(proc)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}/api/v1", timeout=30.0
        ) as api:
            for _ in range(300):
                try:
                    if (await api.get("/me", headers=auth)).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
            figures = await hub_run(args, broker.port or 0, api, auth, key)
    finally:
        for proc in hub_procs:
            proc.terminate()
        for proc in hub_procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        broker.stop()
    ratio = None
    if raw_p95 and figures["p95_event_to_case_ms"] is not None:
        ratio = round(figures["p95_event_to_case_ms"] / raw_p95, 2)
    return {
        "bench": "fleet",
        "devices": args.devices,
        "workers": args.workers,
        "event_interval_s": args.event_interval,
        "telemetry_interval_s": args.telemetry_interval,
        "duration_s": args.duration,
        "db": "postgresql" if args.db and args.db.startswith("postgresql") else "sqlite",
        **figures,
        "raw_mqtt_p95_ms": raw_p95,
        "ratio": ratio,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--baseline-s", type=float, default=20.0)
    parser.add_argument("--event-interval", type=float, default=10.0)
    parser.add_argument("--telemetry-interval", type=float, default=30.0)
    parser.add_argument("--commands-per-s", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=1, help="hub processes (first has the API)")
    parser.add_argument(
        "--db",
        help="SQLAlchemy URL of the hub's database (default SQLite); 'postgresql' for a fresh"
        " database made with --pg's role, 'sqlite' for the default",
    )
    parser.add_argument(
        "--pg",
        help="libpq URL of a PostgreSQL role that may create databases (default with --db"
        " postgresql: $XH_TEST_PG_DSN or postgresql://postgres@127.0.0.1:5432/postgres)",
    )
    args = parser.parse_args()
    if args.db == "sqlite":
        args.db = None
    elif args.db == "postgresql":
        args.db = None
        args.pg = args.pg or os.environ.get("XH_TEST_PG_DSN", PG_ADMIN_URL)
    if not args.pg:
        print(json.dumps(asyncio.run(main_async(args))))
        return 0
    with fresh_pg_database(args.pg, "bench_fleet") as url:
        args.db = url
        print(json.dumps(asyncio.run(main_async(args))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
