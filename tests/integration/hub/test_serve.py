"""``central-hub serve`` as a process: API and ingest together, clean stop on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from central_hub.testing import make_event
from edge_agent.protocol import Channel, encode, topic
from simulators.mosquitto import MosquittoBroker, free_port
from simulators.polling import eventually_sync

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "central_hub.cli", "--data-dir", str(data), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_serve_runs_api_and_ingest_and_stops_cleanly(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    data = tmp_path / "hub"
    added = _cli(data, "user", "add", "ops", "--role", "operator")
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    assert token.startswith("xh_")
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "central_hub.cli", "--data-dir", str(data), "serve",
            "--port", str(port), "--mqtt-port", str(mosquitto.port), "--client-id", "hub-serve",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/api/v1"
    auth = {"Authorization": f"Bearer {token}"}

    def api_up() -> bool:
        try:
            return httpx.get(f"{base}/openapi.json", headers=auth, timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        assert eventually_sync(api_up, 30, every_s=0.2), (tmp_path / "serve.log").read_text()
        assert httpx.get(f"{base}/me").status_code == 401
        assert httpx.get(f"{base}/me", headers=auth).json()["role"] == "operator"

        device = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="d1")
        device.connect("127.0.0.1", mosquitto.port)
        device.loop_start()
        event = make_event("pole-1")

        def publish_then_list_cases() -> list[object]:
            # Until the hub's subscription exists, a publish may have nobody to go to.
            device.publish(topic("pole-1", Channel.EVENT), encode(event), qos=1).wait_for_publish(5)
            cases: list[object] = httpx.get(f"{base}/cases", headers=auth).json()
            return cases

        cases = eventually_sync(publish_then_list_cases, 30, every_s=0.3)
        assert cases, "the hub filed no case for the published event"
        device.disconnect()
        device.loop_stop()
        assert len(cases) == 1
        assert httpx.get(f"{base}/events/{event.event_id}", headers=auth).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(20)
        log.close()
    assert rc == 0, (tmp_path / "serve.log").read_text()[-3000:]
    assert "hub stopping" in (tmp_path / "serve.log").read_text()

    # The retired worker's session can be dropped at the broker.
    dropped = _cli(data, "drop-session", "hub-serve", "--mqtt-port", str(mosquitto.port))
    assert dropped.returncode == 0, dropped.stderr
    assert "dropped" in dropped.stdout
    # What the hub wrote is its user's alone (issue #17, finding 9: hub.db was world-readable).
    for path in (data, data / "hub.db", data / "hub_key.pem", *data.glob("hub.db-*")):
        assert path.stat().st_mode & 0o077 == 0, f"{path} is {oct(path.stat().st_mode)}"
