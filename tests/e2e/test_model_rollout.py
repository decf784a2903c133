"""Learning from the field, end to end, with the demo's real units on a real Mosquitto:

1. operators judge AI reports (one registered, one cancelled as a wrong object);
2. ``models/train/retrain.py`` exports them, fine-tunes the street model on the CPU for a
   short while and packages the candidate with both models' figures; an admin signs and
   publishes it;
3. a campaign with a false-alarm limit: the canary installs it, an operator cancels the
   canary's next report as a wrong object, the campaign aborts and the canary is rolled
   back to the model it had;
4. a campaign with a canary and then everyone: every unit reports the new version and its
   events carry it;
5. a package that is not signed by the hub's model key (put on the hub past ``model
   publish``): the canary refuses it with the reason, the campaign stops there, and every
   unit keeps the model it runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulators.demo.orchestrator import Demo, DemoOptions
from simulators.polling import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(420)]

SPEED = 20.0
REPO = Path(__file__).resolve().parents[2]
UNITS = ("pole-market-01", "pole-parking-01", "truck-07")


def hub_cli(demo: Demo, *args: str) -> str:
    """``central-hub`` against the demo hub's data folder, as its admin would run it."""
    env = {**os.environ, "XH_HUB_DATA_DIR": str(demo.run_dir / "hub")}
    done = subprocess.run(
        [sys.executable, "-m", "central_hub.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, (args, done.stderr)
    return done.stdout


async def test_verdicts_to_a_retrained_model_on_every_unit(tmp_path: Path) -> None:
    # The parking pole's reports are judged here by operators, not by the parking loop.
    demo = Demo(
        DemoOptions(
            speed=SPEED, runs_dir=tmp_path, broker="mosquitto", sound="wav", parking_loop=False
        )
    )
    try:
        await demo.start()
        assert {d.device_id for d in demo.devices} == set(UNITS)
        hdr = {role: {"Authorization": f"Bearer {tok}"} for role, tok in demo.tokens.items()}
        async with httpx.AsyncClient(base_url=f"{demo.api_url}/api/v1", timeout=15.0) as api:

            async def get(path: str, **params: Any) -> Any:
                response = await api.get(path, headers=hdr["admin"], params=params)
                assert response.status_code == 200, (path, response.text)
                return response.json()

            async def act(case_id: int, action: str, **extra: Any) -> None:
                response = await api.post(
                    f"/cases/{case_id}/transitions",
                    headers=hdr["operator"],
                    json={"action": action, "reason": f"e2e {action}", **extra},
                )
                assert response.status_code == 200, (action, response.text)

            async def models() -> dict[str, str]:
                return {d["device_id"]: d["model"] or "" for d in await get("/devices")}

            # 1. Verdicts on reports of the parking pole and the truck (the market pole's
            # stay open: its reports judge the canary in step 3).
            async def two_reports() -> list[dict[str, Any]] | None:
                found: dict[int, dict[str, Any]] = {}
                for device_id in UNITS[1:]:
                    for event in await get("/events", device_id=device_id, limit=200):
                        if event["case_id"] is None or event["case_id"] in found:
                            continue
                        case = (await get(f"/cases/{event['case_id']}"))["case"]
                        if case["source"] == "ai" and case["stage"] == "reported":
                            found[case["id"]] = case
                market = {e["case_id"] for e in await get("/events", device_id=UNITS[0], limit=500)}
                mine = [c for c in found.values() if c["id"] not in market]
                return mine if len(mine) >= 2 else None

            reports = await eventually(two_reports, 120.0, every_s=1.0)
            assert reports, await get("/cases", limit=50)
            await act(reports[0]["id"], "start_verify")
            await act(reports[0]["id"], "verify")
            await act(reports[1]["id"], "cancel", verdict="not_a_violation")
            start = datetime.now(UTC)
            before = await models()
            assert all("street-detector@1.0.0" in before[u] for u in UNITS), before

            # 2. Retrain on them (briefly: the CPU of a test), sign, publish.
            out = tmp_path / "retrain"
            done = await asyncio.to_thread(
                subprocess.run,
                [
                    sys.executable,
                    str(REPO / "models" / "train" / "retrain.py"),
                    "--hub-data-dir",
                    str(demo.run_dir / "hub"),
                    "--since",
                    (start - timedelta(hours=1)).isoformat(),
                    "--until",
                    (start + timedelta(hours=1)).isoformat(),
                    "--by",
                    "demo-admin",
                    "--current",
                    str(demo.run_dir / "models" / "street-detector"),
                    "--version",
                    "1.0.1",
                    "--out",
                    str(out),
                    "--synthetic-train",
                    "8",
                    "--synthetic-val",
                    "4",
                    "--epochs",
                    "1",
                    "--batch",
                    "4",
                    "--lr",
                    "0.0001",
                    "--device",
                    "cpu",
                ],
                capture_output=True,
                text=True,
                cwd=REPO,
                check=False,
            )
            assert done.returncode == 0, done.stderr[-3000:]
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            assert figures["candidate"]["images"] == figures["current"]["images"] > 0
            assert "field images" in figures["field"]
            package = Path(figures["package"])
            assert "| candidate |" in (package / "MODEL_CARD.md").read_text(encoding="utf-8")
            await asyncio.to_thread(hub_cli, demo, "model", "sign", str(package))
            said = await asyncio.to_thread(
                hub_cli, demo, "model", "publish", str(package), "--by", "demo-admin"
            )
            sha = said.split(": ")[1].split()[0]
            assert len(sha) == 64

            async def campaign(**policy: Any) -> dict[str, Any]:
                response = await api.post(
                    "/rollouts",
                    headers=hdr["admin"],
                    json={
                        "package_sha256": policy.pop("sha", sha),
                        "slot": "street",
                        "target": {"kinds": ["pole", "truck"]},
                        "policy": policy,
                    },
                )
                assert response.status_code == 201, response.text
                return response.json()

            async def phase(rollout_id: int, *wanted: str) -> dict[str, Any] | None:
                view = await get(f"/rollouts/{rollout_id}")
                return view if view["phase"] in wanted else None

            def unit(view: dict[str, Any], device_id: str) -> dict[str, Any]:
                return next(u for u in view["units"] if u["device_id"] == device_id)

            # 3. The canary's false alarms stop the campaign and roll the canary back.
            first = await campaign(canary=1, max_false_alarm_rate=0.3, min_verdicts=1, soak_s=600)
            canary = [u["device_id"] for u in first["units"] if u["canary"]]
            assert canary == ["pole-market-01"]

            async def canary_on_new() -> bool:
                return "street-detector@1.0.1" in (await models())["pole-market-01"]

            assert await eventually(canary_on_new, 90.0, every_s=1.0), await get(
                f"/rollouts/{first['id']}"
            )

            async def new_report() -> dict[str, Any] | None:
                for event in await get("/events", device_id="pole-market-01", limit=200):
                    if event["model_version"] == "1.0.1" and event["case_id"] is not None:
                        case = (await get(f"/cases/{event['case_id']}"))["case"]
                        if case["stage"] in ("reported", "verifying"):
                            return case
                return None

            case = await eventually(new_report, 90.0, every_s=1.0)
            assert case, "the canary raised no report with the new model"
            await act(case["id"], "cancel", verdict="wrong_object")
            view = await eventually(lambda: phase(first["id"], "aborted"), 60.0, every_s=1.0)
            assert view, await get(f"/rollouts/{first['id']}")
            assert "false alarms" in view["reason"]
            assert "canary rolled back" in view["reason"]

            async def rolled_back() -> bool:
                current = await get(f"/rollouts/{first['id']}")
                return unit(current, "pole-market-01")["state"] == "rolled_back"

            assert await eventually(rolled_back, 60.0, every_s=1.0)
            assert all(unit(view, u)["state"] == "queued" for u in UNITS[1:])
            after = await models()
            assert "street-detector@1.0.0" in after["pole-market-01"], after

            # 4. Canary, then everyone.
            second = await campaign(canary=1, rate_per_min=60)
            view = await eventually(lambda: phase(second["id"], "completed", "aborted"), 150.0)
            assert view, await get(f"/rollouts/{second['id']}")
            assert view["phase"] == "completed", view
            assert all(u["state"] == "succeeded" for u in view["units"]), view["units"]
            assert all(u["bytes_served"] >= 9_000_000 for u in view["units"]), view["units"]
            everyone = await models()
            assert all("street-detector@1.0.1" in everyone[u] for u in UNITS), everyone
            since = max(datetime.fromisoformat(u["finished_at"]) for u in view["units"])

            async def events_on_new() -> set[str]:
                found = set()
                for device_id in UNITS:
                    for event in await get("/events", device_id=device_id, limit=50):
                        detected = datetime.fromisoformat(event["detected_at"])
                        if event["model_version"] == "1.0.1" and detected >= since:
                            found.add(device_id)
                return found if found == set(UNITS) else set()

            assert await eventually(events_on_new, 120.0, every_s=2.0), "not every unit's events"

            # 5. A package past the hub's check: the canary refuses it, nobody else gets it.
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

            from central_hub.hub import build_hub
            from central_hub.settings import HubSettings
            from edge_agent.vision.package import sign_package

            forged = tmp_path / "forged"
            shutil.copytree(package, forged)
            manifest = forged / "manifest.yaml"
            manifest.write_text(manifest.read_text().replace("1.0.1", "1.0.2"))
            other = Ed25519PrivateKey.generate()
            sign_package(forged, other)
            hub = await build_hub(HubSettings(data_dir=demo.run_dir / "hub"), mqtt=False)
            try:
                bad = (await hub.packages.publish(forged, other.public_key(), by="intruder")).sha256
            finally:
                await hub.close()
            third = await campaign(sha=bad, canary=1, max_failed_share=0.0)
            view = await eventually(lambda: phase(third["id"], "aborted"), 90.0, every_s=1.0)
            assert view, await get(f"/rollouts/{third['id']}")
            refused = unit(view, "pole-market-01")
            assert refused["state"] == "rejected"
            assert "does not verify with the hub's model key" in refused["detail"]
            assert all(unit(view, u)["state"] == "queued" for u in UNITS[1:])
            kept = await models()
            assert all("street-detector@1.0.1" in kept[u] for u in UNITS), kept
    finally:
        await demo.stop()
