"""The closed loop end to end: the demo at high speed, camera to case to loudspeaker.

One test drives the real demo (a broker with per-device credentials and permissions, the
hub on SQLite, three edge agents running the shipped detector over scripted scenes)
through the hub's API, the way an operator would, on each broker xiuhua supports:
Mosquitto, and NATS server's MQTT gateway (JetStream; one hub worker, no ``$share``),
each over TLS with the certificates provisioning issued:

1. cases appear for 0501 (vendor), 0504 (shop front), 0505 (parking, with the plate read)
   and 2101 (truck spillage, located on the truck's GPS route), and the poles shouted
   their warnings locally;
2. ``speaker.say`` to the market pole through the API: the command is acked
   ``succeeded`` and the pole's speaker wrote the WAV file;
3. one case is walked to ``closed`` through the API and the metrics count it;
4. the broker is stopped for 30 s while the scenes keep running (events pile up in the
   agents' outboxes), then restarted: every event reaches the hub, none is lost (each
   device's event ``seq`` runs 1..N without a gap, and every event that waited in an
   outbox during the outage is stored).

Finally every child process is gone.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

from simulators.demo.orchestrator import Demo, DemoOptions
from simulators.mosquitto import ChildBroker
from simulators.polling import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(290)]

SPEED = 20.0
OUTAGE_S = 30.0


def metres_to_segment(
    p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]
) -> float:
    """Distance in metres from point ``p`` to segment ``a``-``b`` (lat, lon; local plane)."""
    ky, kx = 111_000.0, 111_000.0 * math.cos(math.radians(a[0]))
    px, py = (p[1] - a[1]) * kx, (p[0] - a[0]) * ky
    bx, by = (b[1] - a[1]) * kx, (b[0] - a[0]) * ky
    t = max(0.0, min(1.0, (px * bx + py * by) / (bx * bx + by * by)))
    return math.hypot(px - t * bx, py - t * by)


def outbox_event_seqs(db: Path) -> set[int]:
    """Sequence numbers of the events waiting in an agent's outbox (read-only)."""
    import json

    if not db.exists():
        return set()
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5.0)
    try:
        rows = conn.execute("SELECT payload FROM outbox WHERE topic LIKE '%/event'").fetchall()
    except sqlite3.OperationalError:
        return set()
    finally:
        conn.close()
    return {int(json.loads(bytes(r[0]))["seq"]) for r in rows}


@pytest.mark.parametrize("broker_kind", ["mosquitto", "nats"])
async def test_demo_closed_loop_camera_to_case_to_loudspeaker(
    tmp_path: Path, broker_kind: Literal["mosquitto", "nats"]
) -> None:
    demo = Demo(DemoOptions(speed=SPEED, runs_dir=tmp_path, broker=broker_kind, sound="wav"))
    started = time.monotonic()
    try:
        await demo.start()
        hdr = {role: {"Authorization": f"Bearer {tok}"} for role, tok in demo.tokens.items()}
        async with httpx.AsyncClient(base_url=f"{demo.api_url}/api/v1", timeout=15.0) as api:

            async def get(path: str, role: str = "admin", **params: Any) -> Any:
                response = await api.get(path, headers=hdr[role], params=params)
                assert response.status_code == 200, (path, response.text)
                return response.json()

            # 1. The four cases, from cameras through the real pipeline to the grid.
            wanted = {"0501", "0504", "0505", "2101"}

            async def four_cases() -> dict[str, dict[str, Any]] | None:
                found = {c["code"]: c for c in await get("/cases", limit=1000)}
                return found if wanted <= set(found) else None

            cases = await eventually(four_cases, 120.0, every_s=1.0)
            assert cases, "timed out after 120 s waiting for cases " + ", ".join(sorted(wanted))
            for code in wanted:
                assert cases[code]["source"] == "ai"
                assert cases[code]["grid_cell_id"], f"case {code} is outside the grid"
            parking = await get("/events", code="0505", limit=50)
            plates = [e["plate_text"] for e in parking if e["plate_text"]]
            assert plates, "the parking event carries no plate"
            assert all(len(p) >= 6 for p in plates)
            spill = await get("/events", code="2101", limit=50)
            assert spill[0]["location_source"] == "gps"
            from simulators.scenarios.library import ROUTE_END, ROUTE_START

            for event in spill:
                off = metres_to_segment((event["lat"], event["lon"]), ROUTE_START, ROUTE_END)
                assert off < 25.0, f"spillage at {event['lat']},{event['lon']} is off the route"
            truck_case = cases["2101"]
            assert (
                metres_to_segment((truck_case["lat"], truck_case["lon"]), ROUTE_START, ROUTE_END)
                < 25.0
            )

            # The poles warned on the spot when their rules fired (local auto-shout).
            for pole in ("pole-market-01", "pole-parking-01"):
                shouts = list((demo.device_dir(pole) / "speaker").glob("*shout*.wav"))
                assert shouts, f"{pole} never shouted"

            # 2. An operator speaks through the market pole's loudspeaker.
            wav_dir = demo.device_dir("pole-market-01") / "speaker"
            before = set(wav_dir.glob("*.wav")) if wav_dir.exists() else set()
            response = await api.post(
                "/devices/pole-market-01/commands",
                headers=hdr["operator"],
                json={"kind": "speaker.say", "params": {"text": "请将摊位移入店内。"}},
            )
            assert response.status_code == 202, response.text
            cmd_id = response.json()["cmd_id"]

            async def acked() -> dict[str, Any] | None:
                cmd = await get(f"/commands/{cmd_id}")
                return (
                    cmd if cmd["state"] in ("succeeded", "failed", "rejected", "expired") else None
                )

            cmd = await eventually(acked, 45.0, every_s=0.5)
            assert cmd, "timed out after 45 s waiting for the speaker.say ack"
            assert cmd["state"] == "succeeded", cmd
            new_wavs = set(wav_dir.glob("*.wav")) - before
            assert new_wavs, f"no new WAV file in {wav_dir}"
            assert all(p.stat().st_size > 1000 for p in new_wavs)

            # 3. The shop-front case through the whole workflow, then the metrics.
            case_id = cases["0504"]["id"]
            steps = [
                ("start_verify", "operator"),
                ("verify", "operator"),
                ("dispatch", "dispatcher"),
                ("handle", "handler"),
                ("check", "operator"),
                ("approve", "operator"),
            ]
            for action, role in steps:
                response = await api.post(
                    f"/cases/{case_id}/transitions",
                    headers=hdr[role],
                    json={"action": action, "reason": f"e2e {action}"},
                )
                assert response.status_code == 200, (action, response.text)
            detail = await get(f"/cases/{case_id}")
            assert detail["case"]["stage"] == "closed"
            metrics = await get(
                "/metrics", start="2000-01-01T00:00:00Z", end="2100-01-01T00:00:00Z"
            )
            assert metrics["closed"] >= 1
            assert metrics["from_ai"] >= 4
            assert metrics["reported"] >= 4

            # 4. The move-your-car loop on the parking pole: car A left after its owner's
            # text (closed, rectified after the reminder), car B stayed (registered).
            async def parking_outcomes() -> dict[str, dict[str, Any]] | None:
                outcomes: dict[str, dict[str, Any]] = {}
                for case in await get("/cases", code="0505", limit=100):
                    trail = [a["action"] for a in (await get(f"/cases/{case['id']}"))["audits"]]
                    for action in ("moved", "stayed"):
                        if action in trail:
                            outcomes[action] = case
                return outcomes if len(outcomes) == 2 else None

            outcomes = await eventually(parking_outcomes, 60.0, every_s=1.0)
            assert outcomes, "timed out after 60 s waiting for one car moved and one stayed"
            assert outcomes["moved"]["stage"] == "closed"
            assert outcomes["stayed"]["stage"] == "registered"
            assert demo.sms is not None
            texted = {r.body.get("to") for r in demo.sms.requests}
            assert {"13800000001", "13800000002"} <= texted, texted
            months = await get(
                "/metrics/parking", start="2000-01-01T00:00:00Z", end="2100-01-01T00:00:00Z"
            )
            assert sum(m["moved"] for m in months) >= 1
            assert sum(m["stayed"] for m in months) >= 1
            assert sum(m["reminded"] for m in months) >= 2

            # 5. A broker outage while the scenes keep running.
            broker = demo.broker
            assert isinstance(broker, ChildBroker)
            assert demo.broker_kind == broker_kind
            assert demo.tls, "the broker, hub and units of the demo speak TLS"
            outboxes = {
                d.device_id: demo.device_dir(d.device_id) / "outbox.db" for d in demo.devices
            }
            await asyncio.to_thread(broker.stop)
            waited: dict[str, set[int]] = {d: set() for d in outboxes}
            t_down = time.monotonic()
            while time.monotonic() - t_down < OUTAGE_S:
                for device_id, db in outboxes.items():
                    waited[device_id] |= await asyncio.to_thread(outbox_event_seqs, db)
                await asyncio.sleep(1.0)
            await asyncio.to_thread(broker.start)
            assert sum(len(s) for s in waited.values()) >= 2, (
                f"too few events were raised during the outage to prove anything: {waited}"
            )

            hub_seqs: dict[str, list[int]] = {}

            async def all_delivered() -> bool | None:
                # An outbox row goes at the broker's PUBACK, a moment before the hub
                # stores the event: wait for both.
                for device_id, db in outboxes.items():
                    if await asyncio.to_thread(outbox_event_seqs, db):
                        return None
                    events = await get("/events", device_id=device_id, limit=1000)
                    hub_seqs[device_id] = sorted(e["seq"] for e in events)
                    if not waited[device_id] <= set(hub_seqs[device_id]):
                        return None
                return True

            await eventually(all_delivered, 60.0, every_s=1.0)  # a minute for outboxes to drain
            for device_id, got in hub_seqs.items():
                assert got, f"{device_id} sent no event at all"
                missing = waited[device_id] - set(got)
                assert not missing, f"{device_id}: events {sorted(missing)} never reached the hub"
                assert got == list(range(1, got[-1] + 1)), f"{device_id}: gaps in {got}"

            async def all_reachable() -> dict[str, str] | None:
                # A unit whose connection a loaded machine drops (keepalive) is offline by
                # its last will until it reconnects by itself: wait for that, not one read.
                devices = {d["device_id"]: d["state"] for d in await get("/devices")}
                states = {d: devices.get(d) for d in outboxes}
                return None if set(states.values()) - {"online", "degraded"} else states

            assert await eventually(all_reachable, 30.0, every_s=1.0), "a unit stayed offline"
    finally:
        await demo.stop()
    children = [*demo.agents.values(), *([demo.hub] if demo.hub else [])]
    assert all(not c.running for c in children)
    assert time.monotonic() - started < 180.0, "the e2e run took over 3 minutes"
