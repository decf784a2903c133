"""Notices: 50,000 texts through a served hub to an SMS gateway, the hub SIGKILLed midway.

    python bench/notices.py [--notices 50000] [--concurrency 8] [--kill-at 0.5]
                            [--db sqlite|postgresql]

Starts an anonymous Mosquitto, the stand-in gateway (``python -m simulators.sms_gateway``,
its own process: it checks every signature, drops repeats by ``Idempotency-Key`` and
counts) and ``central-hub serve`` with the gateway as its SMS webhook (no quiet hours,
rate limit out of the way, ``--concurrency`` sends in flight, a 5 s claim lease). An
admin makes a template and queues ``--notices`` move-your-car reminders, one contact
each, through ``POST /api/v1/notices/batch`` (1,000 a request). When the gateway has
accepted ``--kill-at`` of them (and half a worker batch more, so sends are in flight)
the hub is SIGKILLed, restarted at once, and the bench
waits until no delivery is queued or sending.

Figures (one JSON line): notices, delivered (deliveries the gateway accepted, counted at
the gateway after its dedupe; SMS receipts are not simulated, so the hub holds them as
``sent``), lost (queued but never accepted), duplicated (a key accepted twice, or one
notice accepted for one number under two keys), resent_raw (requests the gateway saw
again for a key it had accepted: sends the kill cut off before the hub recorded them),
failed (deliveries that ended failed), per_s (delivered per second of the hub's sending
time: from the first batch queued until the last delivery settled, less the time the
hub was down), wall_s, down_s, queue_s (queueing all notices through the API); the
baseline: a plain httpx client posting as many signed bodies to the same gateway at the
same concurrency (baseline_per_s), and ratio = per_s / baseline_per_s; goal_met (none
lost or duplicated, per_s >= 200).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from central_hub.adapters.notice_channels import SIGNATURE_HEADER, sign_body
from central_hub.testing import PG_ADMIN_URL, fresh_pg_database, hub_cli
from simulators.mosquitto import MosquittoBroker, free_port
from simulators.polling import eventually_sync

GOAL_PER_S = 200.0
SECRET = b"bench-shared-secret"
BATCH = 1000
TEMPLATE = {
    "name": "move-car",
    "subject": "挪车提醒",
    "body": "您的车辆 {plate} 停在 {place}，影响通行，请尽快挪走。",
    "variables": ["plate", "place"],
}


@contextlib.contextmanager
def _database(kind: str, data: Path, pg_admin: str) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{data / 'hub.db'}"
    else:
        with fresh_pg_database(pg_admin, "notices") as url:
            yield url


@contextlib.contextmanager
def _gateway(root: Path) -> Iterator[str]:
    port = free_port()
    secret = root / "gateway.secret"
    secret.write_bytes(SECRET)
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulators.sms_gateway", "--port", str(port),
         "--secret-file", str(secret)],
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        if not eventually_sync(lambda: _stats(base) is not None, 30, every_s=0.1):
            raise RuntimeError("the gateway did not start")
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


def _stats(base: str) -> dict[str, int] | None:
    try:
        stats: dict[str, int] = httpx.get(f"{base}/stats", timeout=5).json()
        return stats
    except httpx.HTTPError:
        return None


class _Hub:
    """``central-hub serve`` as a process that can be killed and started again."""

    def __init__(self, data: Path, env: dict[str, str], mqtt_port: int) -> None:
        self.data, self.env, self.mqtt_port = data, env, mqtt_port
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = (data.parent / "serve.log").open("ab")

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "central_hub.cli", "--data-dir", str(self.data), "serve",
                "--port", str(self.port), "--mqtt-port", str(self.mqtt_port),
                "--client-id", "hub-bench",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )  # fmt: skip

        def up() -> bool:
            try:
                return httpx.get(f"{self.base}/api/v1/docs", timeout=1).status_code < 500
            except httpx.TransportError:
                return False

        if not eventually_sync(up, 60, every_s=0.1):
            raise RuntimeError((self.data.parent / "serve.log").read_text()[-3000:])

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


async def _queue(base: str, token: str, n: int) -> float:
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=auth, timeout=120) as client:
        made = await client.post("/api/v1/notice-templates", json=TEMPLATE)
        made.raise_for_status()
        started = time.perf_counter()
        for first in range(0, n, BATCH):
            notices = [
                {
                    "template": "move-car",
                    "variables": {"plate": f"浙J{i:05d}", "place": "县前街"},
                    "audience": {
                        "kind": "contacts",
                        "contacts": [{"contact_id": f"owner-{i}", "phone": f"139{i:08d}"}],
                    },
                    "channel": "sms",
                }
                for i in range(first, min(n, first + BATCH))
            ]
            resp = await client.post("/api/v1/notices/batch", json={"notices": notices})
            resp.raise_for_status()
        return time.perf_counter() - started


async def _open_count(db_url: str) -> dict[str, int]:
    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.text("SELECT state, count(*) FROM notice_deliveries GROUP BY state")
                )
            ).all()
    finally:
        await engine.dispose()
    return {r[0]: int(r[1]) for r in rows}


async def _baseline(gateway: str, n: int, concurrency: int) -> float:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def one(i: int) -> None:
            body = json.dumps(
                {"id": f"base-{i}", "notice": f"base-{i}", "to": f"139{i:08d}", "text": "基线"},
                ensure_ascii=False,
                separators=(",", ":"),
            ).encode()
            headers = {
                "Content-Type": "application/json",
                "Idempotency-Key": f"base-{i}",
                SIGNATURE_HEADER: sign_body(SECRET, body),
            }
            async with gate:
                resp = await client.post(
                    f"{gateway}/sms?to=139{i:08d}", content=body, headers=headers
                )
                resp.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - started)


def _run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    data = root / "hub"
    with (
        MosquittoBroker(root / "broker") as broker,
        _database(args.db, data, args.pg_admin) as db_url,
        _gateway(root) as gateway,
    ):
        env = {
            **os.environ,
            "XH_HUB_DB_URL": db_url,
            "XH_HUB_NOTICE_SMS_URL": gateway + "/sms?to={phone}&ref={id}",
            "XH_HUB_NOTICE_SMS_SECRET_FILE": str(root / "gateway.secret"),
            "XH_HUB_NOTICE_SMS_PER_S": "100000",
            "XH_HUB_NOTICE_SMS_BURST": "100000",
            "XH_HUB_NOTICE_SMS_CONCURRENCY": str(args.concurrency),
            "XH_HUB_NOTICE_QUIET_HOURS": "",
            "XH_HUB_NOTICE_LEASE_S": "5",
            "XH_HUB_NOTICE_RETRY_INITIAL_S": "0.5",
            "XH_HUB_NOTICE_RETRY_CAP_S": "5",
        }
        token = hub_cli(
            data, "user", "add", "bench-admin", "--role", "admin", env=env
        ).splitlines()[-1]
        assert broker.port is not None
        hub = _Hub(data, env, broker.port)
        hub.start()
        try:
            started = time.perf_counter()
            queue_s = asyncio.run(_queue(hub.base, token, args.notices))
            # Half a worker batch (200) past the mark, so the kill lands while sends are in
            # flight and unrecorded, not between two batches.
            kill_after = int(args.notices * args.kill_at) + 100
            if not eventually_sync(
                lambda: (_stats(gateway) or {}).get("accepted", 0) >= kill_after, 600, every_s=0.05
            ):
                raise RuntimeError("the hub did not send half of the notices in 10 minutes")
            hub.kill()
            killed = time.perf_counter()
            at_kill = _stats(gateway) or {}
            hub.start()
            down_s = time.perf_counter() - killed

            def settled() -> bool:
                states = asyncio.run(_open_count(db_url))
                return states.get("queued", 0) + states.get("sending", 0) == 0

            if not eventually_sync(settled, 900, every_s=0.25):
                raise RuntimeError("deliveries still open after 15 minutes")
            wall = time.perf_counter() - started
            states = asyncio.run(_open_count(db_url))
            stats = _stats(gateway) or {}
        finally:
            hub.stop()
        baseline = asyncio.run(_baseline(gateway, args.notices, args.concurrency))
    delivered = int(stats.get("accepted", 0)) - 0
    sending_s = wall - down_s
    per_s = delivered / sending_s
    lost = args.notices - delivered
    return {
        "notices": args.notices,
        "delivered": delivered,
        "lost": lost,
        "duplicated": int(stats.get("duplicated", 0)),
        "resent_raw": int(stats.get("resent", 0)),
        "bad_signatures": int(stats.get("bad_signatures", 0)),
        "failed": states.get("failed", 0),
        "hub_states": states,
        "accepted_at_kill": int(at_kill.get("accepted", 0)),
        "per_s": round(per_s, 1),
        "wall_s": round(wall, 1),
        "down_s": round(down_s, 2),
        "queue_s": round(queue_s, 1),
        "baseline_per_s": round(baseline, 1),
        "ratio": round(per_s / baseline, 3),
        "goal_met": lost == 0 and int(stats.get("duplicated", 0)) == 0 and per_s >= GOAL_PER_S,
        "concurrency": args.concurrency,
        "db": args.db,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--notices", type=int, default=50_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--kill-at", type=float, default=0.5, help="share accepted, then SIGKILL")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg-admin", default=PG_ADMIN_URL)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xh-notices-") as tmp:
        try:
            figures = _run(args, Path(tmp))
        except Exception:
            log = Path(tmp) / "serve.log"
            if log.exists():  # what the hub said before it failed
                sys.stderr.write(log.read_text(errors="replace")[-4000:])
            raise
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
