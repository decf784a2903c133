"""``xiuhua demo`` as a user runs it: Ctrl-C stops it cleanly and leaves no process behind.

Uses the embedded broker, so the fallback path (no Mosquitto) is covered end to end too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

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


def test_ctrl_c_stops_the_demo_cleanly(tmp_path: Path) -> None:
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
            "embedded",
            "--sound",
            "wav",
            "--runs-dir",
            str(runs),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 90
        manifest = None
        while time.monotonic() < deadline and proc.poll() is None:
            found = list(runs.glob("demo-*/demo.json"))
            if found:
                manifest = json.loads(found[0].read_text())
                break
            time.sleep(0.5)
        assert manifest is not None, "the demo never got its units running"
        assert manifest["broker"]["kind"] == "embedded"
        assert manifest["broker"]["port"] != 1883
        run_dir = manifest["run_dir"]
        time.sleep(5)  # let the units connect and report
        proc.send_signal(signal.SIGINT)
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
    for name in ("hub", "pole-market-01", "pole-parking-01", "truck-07", "broker"):
        assert (run / "logs" / f"{name}.log").stat().st_size > 0, name
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["exit_status"]) == {"hub", "pole-market-01", "pole-parking-01", "truck-07"}
    assert processes_mentioning(run_dir) == []
