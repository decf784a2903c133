"""Model rollout: a signed package to N simulated units at a set rate; one JSON line.

    python bench/rollout.py [--units 200] [--rate 600] [--canary 1] [--cut-share 0.1]
                            [--corrupt-share 0.05]

Starts an anonymous Mosquitto on a free port and ``central-hub serve`` (SQLite in a temp
folder), signs the shipped street model as a package (9.5 MB, the real model and card)
and publishes it. A fleet of N virtual units (:class:`simulators.fleet.Fleet`, one MQTT
connection) answers ``model.install`` as a unit does: it downloads the archive from the
hub with its one-time token (:func:`edge_agent.update.download.fetch_archive`), checks
its sha256, unpacks it and checks the package's signature against the hub's model key
(:func:`edge_agent.vision.package.verify_package`), and only then reports the new model
in its status. ``--cut-share`` of the units lose power half way through their first
download and resume it with ``Range``; ``--corrupt-share`` of the units see the package
altered on disk before the check (a bad flash, a tampered cache) and must refuse it.

Baseline, in the same run: the same N downloads, started at the same rate, from a plain
``http.server`` serving the same file (no hub, no tokens, no MQTT); ``ratio`` is the
campaign's ``complete_s`` over the baseline's.

Figures: ``complete_s`` (campaign created -> every unit done), ``bytes_served`` (what the
hub counted, resumed parts once), ``hub_cpu_s`` (user + system time of the hub process
during the campaign), ``broken_units`` (units reporting a model that failed its check:
must be 0), ``succeeded``, ``rejected``, ``resumed``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import http.server
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from central_hub.testing import hub_cli
from edge_agent import protocol
from edge_agent.update.download import fetch_archive, part_path
from edge_agent.vision.package import PackageError, verify_package
from simulators.fleet import Fleet, FleetPlan
from simulators.mosquitto import MosquittoBroker, free_port
from simulators.polling import eventually

ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


async def wait_for_half(task: asyncio.Task[Path], part: Path, size: int) -> None:
    """Return once ``part`` holds half of ``size`` bytes (or the download ended)."""

    def written() -> int:
        return part.stat().st_size if part.exists() else 0

    while not task.done() and written() < size // 2:  # noqa: ASYNC110  (polls a file)
        await asyncio.sleep(0.005)


class Units:
    """What the virtual units do with ``model.install`` (see the module docstring)."""

    def __init__(self, work: Path, model_key: Any, cut: set[str], corrupt: set[str]) -> None:
        self.work = work
        self.model_key = model_key
        self.cut, self.corrupt = cut, corrupt
        self.client = httpx.AsyncClient(timeout=60.0)
        self.resumed = 0
        self.verified: dict[str, str] = {}  # device -> version it checked and runs
        self.refused: dict[str, str] = {}
        self.gate = asyncio.Semaphore(16)  # a unit's disk, not the hub, limits unpacking

    async def install(self, fleet: Fleet, device_id: str, cmd: protocol.Command) -> tuple[str, str]:
        p = cmd.params
        dest = self.work / device_id / "pkg.tar"
        dest.parent.mkdir(parents=True, exist_ok=True)
        if device_id in self.cut:
            task = asyncio.create_task(
                fetch_archive(
                    p["url"],
                    p["token"],
                    dest,
                    sha256=p["sha256"],
                    size=p["size"],
                    client=self.client,
                )
            )
            part = part_path(dest)
            await wait_for_half(task, part, p["size"])
            task.cancel()  # the power goes
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            if part.exists() and 0 < part.stat().st_size < p["size"]:
                self.resumed += 1
        await fetch_archive(
            p["url"], p["token"], dest, sha256=p["sha256"], size=p["size"], client=self.client
        )
        async with self.gate:
            state, detail = await asyncio.to_thread(self._check, device_id, dest, p)
        if state == "succeeded":
            fleet.models[device_id] = f"{p['name']}@{p['version']}"
        return state, detail

    def _check(self, device_id: str, archive: Path, p: dict[str, Any]) -> tuple[str, str]:
        unpacked = archive.parent / "pkg"
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(unpacked, filter="data")
            if device_id in self.corrupt:
                model = unpacked / "model.onnx"
                data = bytearray(model.read_bytes())
                data[len(data) // 2] ^= 0xFF
                model.write_bytes(bytes(data))
            verify_package(unpacked, self.model_key)
        except PackageError as exc:
            self.refused[device_id] = str(exc)
            return "rejected", f"package refused, model kept: {exc}"
        finally:
            shutil.rmtree(archive.parent, ignore_errors=True)
        self.verified[device_id] = p["version"]
        return "succeeded", f"installed {p['name']} {p['version']} in slot {p['slot']}"


def start_hub(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "central_hub.cli", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


async def baseline(archive: Path, units: int, rate_per_min: float) -> float:
    """Seconds for ``units`` downloads of ``archive``, started at the rate, from http.server."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietFiles, directory=str(archive.parent))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{archive.name}"
    try:
        async with httpx.AsyncClient(timeout=60.0) as client:

            async def one(delay: float) -> None:
                await asyncio.sleep(delay)
                async with client.stream("GET", url) as resp:
                    async for _chunk in resp.aiter_bytes(1 << 16):
                        pass

            t0 = time.monotonic()
            await asyncio.gather(*(one(i * 60.0 / rate_per_min) for i in range(units)))
            return time.monotonic() - t0
    finally:
        server.shutdown()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="xh-bench-rollout-"))
    broker = MosquittoBroker(work / "broker")
    broker.start()
    hub: subprocess.Popen[bytes] | None = None
    try:
        data = work / "hub"
        api_port = free_port()
        env = {
            **os.environ,
            "XH_HUB_DATA_DIR": str(data),
            "XH_HUB_MQTT_PORT": str(broker.port),
            "XH_HUB_API_PORT": str(api_port),
            "XH_HUB_COMMAND_TICK_S": "0.2",
            "XH_HUB_ROLLOUT_TICK_S": "0.2",
        }
        token = hub_cli(None, "user", "add", "bench-admin", "--role", "admin", env=env).split()[-1]
        model_key = protocol.load_public_key(hub_cli(None, "model", "key", env=env).strip())
        package = work / "street-detector"
        shutil.copytree(ROOT / "models" / "street-detector", package)
        (package / "manifest.yaml").write_text(
            (package / "manifest.yaml").read_text().replace('version: "1.0.0"', 'version: "1.0.1"')
        )
        hub_cli(None, "model", "sign", str(package), env=env)
        sha = (
            hub_cli(None, "model", "publish", str(package), "--by", "bench-admin", env=env)
            .split(": ")[1]
            .split()[0]
        )
        archive = data / "packages" / f"{sha}.tar"
        size = archive.stat().st_size

        raw_s = await baseline(archive, args.units, args.rate)

        hub = await asyncio.to_thread(start_hub, env, work / "hub.log")
        auth = {"Authorization": f"Bearer {token}"}
        hub_key = protocol.load_public_key(hub_cli(None, "keygen", env=env).strip())
        rng = random.Random(5)
        ids = [f"sim-{i:04d}" for i in range(args.units)]
        cut = set(rng.sample(ids, int(args.cut_share * args.units)))
        rest = sorted(set(ids[args.canary :]) - cut)  # a corrupt canary would stop the run
        corrupt = set(rng.sample(rest, int(args.corrupt_share * args.units)))
        units = Units(work / "units", model_key, cut, corrupt)
        fleet: Fleet | None = None

        async def install(device_id: str, cmd: protocol.Command) -> tuple[str, str]:
            assert fleet is not None
            return await units.install(fleet, device_id, cmd)

        fleet = Fleet(
            FleetPlan(devices=args.units, id_prefix="sim", seed=1, telemetry_interval_s=3600),
            host="127.0.0.1",
            port=broker.port or 0,
            public_key=hub_key,
            executors={"model.install": install},
        )
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}/api/v1", timeout=30.0
        ) as api:

            async def api_up() -> bool:
                try:
                    return (await api.get("/me", headers=auth)).status_code == 200
                except httpx.HTTPError:
                    return False

            async def all_online() -> bool:
                devices = (await api.get("/devices", headers=auth)).json()
                return sum(d["state"] == "online" for d in devices) >= args.units

            if not await eventually(api_up, 60.0, every_s=0.2):
                raise SystemExit(f"the hub did not come up; see {work / 'hub.log'}")
            await fleet.connect()
            if not await eventually(all_online, 60.0, every_s=0.2):
                raise SystemExit("not every unit came online at the hub")
            cpu0, t0 = cpu_s(hub.pid), time.monotonic()
            created = await api.post(
                "/rollouts",
                headers=auth,
                json={
                    "package_sha256": sha,
                    "slot": "default",
                    "target": {"devices": ids},
                    "policy": {
                        "canary": args.canary,
                        "rate_per_min": args.rate,
                        "max_failed_share": max(0.5, 2 * args.corrupt_share),
                        "unit_timeout_s": 600,
                    },
                },
            )
            created.raise_for_status()
            rollout_id = created.json()["id"]
            view: dict[str, Any] = {}
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                view = (await api.get(f"/rollouts/{rollout_id}", headers=auth)).json()
                if view["phase"] in ("completed", "aborted"):
                    break
                await asyncio.sleep(0.2)
            complete_s = time.monotonic() - t0
            hub_cpu = cpu_s(hub.pid) - cpu0
            await asyncio.sleep(1.0)  # the last statuses reach the hub
            devices = {d["device_id"]: d for d in (await api.get("/devices", headers=auth)).json()}
        await fleet.close()
        await units.client.aclose()
    finally:
        if hub is not None:
            hub.terminate()
            try:
                hub.wait(20)
            except subprocess.TimeoutExpired:
                hub.kill()
        broker.stop()
    states: dict[str, int] = {}
    for unit in view.get("units", []):
        states[unit["state"]] = states.get(unit["state"], 0) + 1
    new = "street-detector@1.0.1"
    broken = [d for d in ids if devices.get(d, {}).get("model") == new and d not in units.verified]
    on_new = sum(1 for d in ids if devices.get(d, {}).get("model") == new)
    shutil.rmtree(work, ignore_errors=True)
    return {
        "bench": "rollout",
        "units": args.units,
        "rate_per_min": args.rate,
        "package_bytes": size,
        "phase": view.get("phase"),
        "complete_s": round(complete_s, 1),
        "bytes_served": sum(u["bytes_served"] for u in view.get("units", [])),
        "bytes_needed": size * args.units,
        "hub_cpu_s": round(hub_cpu, 1),
        "broken_units": len(broken),
        "units_on_new_model": on_new,
        "states": states,
        "resumed": units.resumed,
        "corrupted": len(corrupt),
        "raw_http_s": round(raw_s, 1),
        "ratio": round(complete_s / raw_s, 2) if raw_s else None,
        "cpus": os.cpu_count(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=200)
    parser.add_argument("--rate", type=float, default=600.0, help="units started a minute")
    parser.add_argument("--canary", type=int, default=1)
    parser.add_argument("--cut-share", type=float, default=0.1)
    parser.add_argument("--corrupt-share", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
