"""``xiuhua demo`` as a user runs it: Ctrl-C stops it cleanly and leaves no process behind.

Ctrl-C is sent the way a terminal sends it, to the whole foreground process group. With
both brokers: Mosquitto, and the embedded fallback (the path taken without Mosquitto).
The units say goodbye on the way out: the hub has them all ``offline`` at the end.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulators.polling import eventually_sync

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(150)]


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def wait_all_online(api_url: str, token: str, within_s: float) -> bool:
    """Poll the hub until every unit is online; False if that takes over ``within_s``."""
    with httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {token}"}) as api:

        def all_online() -> bool:
            try:
                devices = api.get("/api/v1/devices").json()
            except httpx.HTTPError:
                devices = []
            return len(devices) == 3 and all(d["state"] == "online" for d in devices)

        return eventually_sync(all_online, within_s, every_s=0.5)


@pytest.mark.parametrize("broker", ["embedded", "mosquitto"])
def test_ctrl_c_stops_the_demo_cleanly(tmp_path: Path, broker: str) -> None:
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulators.launcher",
            "demo",
            "--speed",
            "20",
            "--broker",
            broker,
            "--sound",
            "wav",
            "--runs-dir",
            str(runs),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,  # its own group, as a shell job has
    )
    try:

        def manifest_or_exit() -> dict[str, Any] | bool:
            """The demo's manifest once it is written; ``True`` if the demo exited first."""
            if proc.poll() is not None:
                return True
            found = list(runs.glob("demo-*/demo.json"))
            return json.loads(found[0].read_text()) if found else False

        manifest = eventually_sync(manifest_or_exit, 90, every_s=0.5)
        assert isinstance(manifest, dict), "the demo never got its units running"
        assert manifest["broker"]["kind"] == broker
        assert manifest["broker"]["port"] != 1883
        run_dir = manifest["run_dir"]
        token = json.loads(Path(manifest["tokens_file"]).read_text())["operator"]
        assert wait_all_online(manifest["api_url"], token, 60.0), "units never came online"
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    text = out.decode()
    assert "API: http://127.0.0.1:" in text
    assert "/console/" in text
    assert "stopped; run folder" in text
    run = Path(run_dir)
    logs = ["demo", "hub", "pole-market-01", "pole-parking-01", "truck-07"]
    for name in [*logs, "broker"] if broker == "embedded" else logs:
        assert (run / "logs" / f"{name}.log").stat().st_size > 0, name
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["exit_status"]) == {"hub", "pole-market-01", "pole-parking-01", "truck-07"}
    assert processes_mentioning(run_dir) == []
    hub_db = sqlite3.connect(run / "hub" / "hub.db")
    try:
        states = dict(hub_db.execute("SELECT device_id, state FROM devices").fetchall())
    finally:
        hub_db.close()
    assert states == dict.fromkeys(summary["exit_status"].keys() - {"hub"}, "offline")
