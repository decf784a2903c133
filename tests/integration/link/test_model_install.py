"""Model packages reach a real agent: ``model.install`` survives a power cut mid-download
(the unit resumes with ``Range`` after it restarts and acks the original command), events
then carry the new version, a package signed by another key or not the archive the command
names is refused with the reason (the unit keeps its model), and ``model.rollback`` brings
the earlier model back. The agent runs as its own process so it can be SIGKILLed; the hub's
side is a signed command on a real Mosquitto and a plain HTTP server for the archive."""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from central_hub.services.packages import pack_archive, parse_range
from edge_agent import protocol
from edge_agent.vision.package import sign_package
from simulators.polling import eventually

cv2 = pytest.importorskip("cv2")
np = pytest.importorskip("numpy")
testing = pytest.importorskip("edge_agent.vision.testing")

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

DEVICE = "pole-test-01"
LABELS = ("person", "car", "stall", "goods")
TOKEN = "one-time-token"


def package(folder: Path, version: str, key: Ed25519PrivateKey, padding: int = 0) -> Path:
    out = np.zeros((1, 4 + len(LABELS), 20), np.float32)
    out[0, :4, 0] = (100, 200, 60, 40)  # a stall low in the frame
    out[0, 4 + LABELS.index("stall"), 0] = 0.9
    testing.write_constant_model(folder, out, LABELS, name="street-detector")
    manifest = folder / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("version: 1.0.0", f"version: {version}"))
    if padding:
        (folder / "calibration.bin").write_bytes(np.random.default_rng(1).bytes(padding))
    sign_package(folder, key)
    return folder


class Archives(http.server.ThreadingHTTPServer):
    """Serves archives by path with Range, checks the token, can go slowly, and notes the
    Range of every request."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.ranges: list[str | None] = []
        self.slow = False
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Archives

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        data = self.server.files.get(self.path.lstrip("/"))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}" or data is None:
            self.send_error(401 if data is not None else 404)
            return
        header = self.headers.get("Range")
        self.server.ranges.append(header)
        span = parse_range(header, len(data))
        start, end = span or (0, len(data))
        self.send_response(206 if span else 200)
        self.send_header("Content-Length", str(end - start))
        if span:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        self.end_headers()
        try:
            for at in range(start, end, 8192):
                self.wfile.write(data[at : min(end, at + 8192)])
                if self.server.slow:
                    time.sleep(0.02)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the unit lost power


def gray_clip(path: Path, frames: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 5.0, (320, 240))
    for i in range(frames):
        writer.write(np.full((240, 320, 3), 60 + i % 100, np.uint8))
    writer.release()
    return path


def install(
    hub_key: Ed25519PrivateKey, url: str, archive: bytes, version: str, sha: str | None = None
) -> protocol.Command:
    return protocol.sign_command(
        hub_key,
        device_id=DEVICE,
        kind="model.install",
        params={
            "slot": "street",
            "url": url,
            "token": TOKEN,
            "sha256": sha or hashlib.sha256(archive).hexdigest(),
            "size": len(archive),
            "name": "street-detector",
            "version": version,
        },
        issued_at=datetime.now(UTC),
    )


async def test_install_resumes_after_a_power_cut_refuses_bad_packages_and_rolls_back(
    mosquitto, agent_config, recorder_factory, agent_process, hub_key, tmp_path: Path
) -> None:
    model_key = protocol.generate_signing_key()
    v1 = await asyncio.to_thread(package, tmp_path / "v1", "1.0.0", model_key)
    v2 = await asyncio.to_thread(package, tmp_path / "v2", "2.0.0", model_key, 600_000)
    v3 = await asyncio.to_thread(package, tmp_path / "v3", "3.0.0", protocol.generate_signing_key())
    server = Archives()
    server.files = {"v2": pack_archive(v2), "v3": pack_archive(v3)}
    clip = await asyncio.to_thread(gray_clip, tmp_path / "clip.avi", 600)
    config = agent_config(
        mosquitto,
        DEVICE,
        hub={"model_public_key": protocol.public_key_b64(model_key)},
        vision={
            "detectors": {"street": {"model": str(v1), "intra_threads": 1}},
            "cameras": [
                {
                    "id": "mast",
                    "source": str(clip),
                    "detect_fps": 5,
                    "location": {"lat": 28.6472, "lon": 121.2615},
                    "zones": [
                        {"name": "pavement", "polygon": [[0, 0.4], [1, 0.4], [1, 1], [0, 1]]}
                    ],
                    "rules": [
                        {"name": "vendor", "kind": "vendor", "zone": "pavement", "dwell_s": 1.0}
                    ],
                }
            ],
        },
    )
    recorder = await asyncio.to_thread(recorder_factory, mosquitto)
    cmd_topic = protocol.topic(DEVICE, protocol.Channel.CMD)

    def models() -> list[str]:
        return [s["model"] for s in recorder.on("status") if s["state"] != "offline"]

    def final(cmd_id: str) -> list[dict[str, Any]]:
        return [
            a for a in recorder.on("cmd/ack") if a["cmd_id"] == cmd_id and a["state"] != "received"
        ]

    unit = agent_process(config)
    try:
        assert await eventually(lambda: "street-detector@1.0.0" in models(), 30), models()
        # 1. A power cut a third of the way into the download.
        server.slow = True
        first = install(hub_key, server.url("v2"), server.files["v2"], "2.0.0")
        await asyncio.to_thread(recorder.publish, cmd_topic, protocol.encode(first))
        sha = first.params["sha256"]
        part = tmp_path / "state" / "models" / "incoming" / f"{sha}.tar.part"
        size = len(server.files["v2"])
        assert await eventually(lambda: part.exists() and part.stat().st_size > size // 3, 30)
        await asyncio.to_thread(unit.kill)
        cut_at = part.stat().st_size
        assert cut_at < size
        assert not final(first.cmd_id)
        server.slow = False
        unit = agent_process(config)  # power back
        acks = await eventually(lambda: final(first.cmd_id), 60)
        assert acks, unit.log_text()[-3000:]
        assert acks[0]["state"] == "succeeded", acks
        assert "installed street-detector 2.0.0 in slot street" in acks[0]["detail"]
        resumed = [r for r in server.ranges if r and r != "bytes=0-"]
        assert resumed, server.ranges  # the rest only, not the whole archive again
        assert int(resumed[-1].removeprefix("bytes=").rstrip("-")) >= cut_at - 65536
        assert await eventually(lambda: models() and models()[-1] == "street-detector@2.0.0", 30)
        newer = await eventually(
            lambda: [e for e in recorder.on("event") if e["model"]["version"] == "2.0.0"], 40
        )
        assert newer, "no event from the new model"
        # 2. Signed by another key: refused, the unit keeps 2.0.0.
        bad = install(hub_key, server.url("v3"), server.files["v3"], "3.0.0")
        await asyncio.to_thread(recorder.publish, cmd_topic, protocol.encode(bad))
        refused = await eventually(lambda: final(bad.cmd_id), 30)
        assert refused[0]["state"] == "rejected", refused
        assert "does not verify with the hub's model key" in refused[0]["detail"]
        # 3. Not the archive the signed command names: refused before anything is unpacked.
        wrong = install(
            hub_key,
            server.url("v3"),
            server.files["v3"],
            "3.0.1",
            sha=hashlib.sha256(b"x").hexdigest(),
        )
        await asyncio.to_thread(recorder.publish, cmd_topic, protocol.encode(wrong))
        refused = await eventually(lambda: final(wrong.cmd_id), 30)
        assert refused[0]["state"] == "rejected", refused
        assert "sha256" in refused[0]["detail"]
        assert models()[-1] == "street-detector@2.0.0"
        # 4. Roll back: the config's own model runs again.
        back = protocol.sign_command(
            hub_key,
            device_id=DEVICE,
            kind="model.rollback",
            params={"slot": "street"},
            issued_at=datetime.now(UTC),
        )
        await asyncio.to_thread(recorder.publish, cmd_topic, protocol.encode(back))
        done = await eventually(lambda: final(back.cmd_id), 30)
        assert done[0]["state"] == "succeeded", done
        assert await eventually(lambda: models()[-1] == "street-detector@1.0.0", 30), models()
        assert "Traceback" not in unit.log_text()
        state = tmp_path / "state"
        for path in (state / "outbox.db", state / "models", state / "models" / "street"):
            assert path.stat().st_mode & 0o077 == 0, f"{path} is {oct(path.stat().st_mode)}"
    finally:
        unit.terminate()
        server.shutdown()


async def test_a_shadow_candidate_reports_beside_the_model_and_stops(
    mosquitto, agent_config, recorder_factory, agent_process, hub_key, tmp_path: Path
) -> None:
    model_key = protocol.generate_signing_key()
    v1 = await asyncio.to_thread(package, tmp_path / "v1", "1.0.0", model_key)
    v2 = await asyncio.to_thread(package, tmp_path / "v2", "2.0.0", model_key)
    server = Archives()
    server.files = {"v2": pack_archive(v2)}
    clip = await asyncio.to_thread(gray_clip, tmp_path / "clip.avi", 3000)
    camera = {
        "id": "mast",
        "source": str(clip),
        "detect_fps": 5,
        "location": {"lat": 28.6472, "lon": 121.2615},
        "zones": [{"name": "pavement", "polygon": [[0, 0.4], [1, 0.4], [1, 1], [0, 1]]}],
        "rules": [
            {
                "name": "vendor",
                "kind": "vendor",
                "zone": "pavement",
                "dwell_s": 1.0,
                "cooldown_s": 2,
            }
        ],
    }
    config = agent_config(
        mosquitto,
        DEVICE,
        hub={"model_public_key": protocol.public_key_b64(model_key)},
        vision={
            "detectors": {"street": {"model": str(v1), "intra_threads": 1}},
            "cameras": [camera],
        },
    )
    recorder = await asyncio.to_thread(recorder_factory, mosquitto)
    cmd_topic = protocol.topic(DEVICE, protocol.Channel.CMD)

    def final(cmd_id: str) -> list[dict[str, Any]]:
        return [
            a for a in recorder.on("cmd/ack") if a["cmd_id"] == cmd_id and a["state"] != "received"
        ]

    def shadows() -> list[dict[str, Any]]:
        return [e for e in recorder.on("event") if e.get("shadow")]

    unit = agent_process(config)
    try:
        assert await eventually(lambda: recorder.on("event"), 40), unit.log_text()[-2000:]
        cmd = install(hub_key, server.url("v2"), server.files["v2"], "2.0.0")
        cmd = protocol.sign_command(
            hub_key,
            device_id=DEVICE,
            kind="model.install",
            params={**cmd.params, "shadow": {"cameras": ["mast"]}},
            issued_at=datetime.now(UTC),
        )
        await asyncio.to_thread(recorder.publish, cmd_topic, protocol.encode(cmd))
        acks = await eventually(lambda: final(cmd.cmd_id), 30)
        assert acks[0]["state"] == "succeeded", acks
        assert "shadowing slot street with street-detector 2.0.0 on mast" in acks[0]["detail"]
        found = await eventually(shadows, 40)
        assert found, unit.log_text()[-2000:]
        event = found[0]
        assert event["model"]["version"] == "2.0.0"
        assert event["seq"] == 0
        assert event.get("frame") is None
        assert event["snapshot"] is not None
        real = [e for e in recorder.on("event") if not e.get("shadow")]
        assert real[-1]["model"]["version"] == "1.0.0"  # the running model still reports
        seqs = [e["seq"] for e in real]
        assert seqs == list(range(1, len(seqs) + 1))  # shadows take no place in the sequence
        stop = protocol.sign_command(
            hub_key,
            device_id=DEVICE,
            kind="model.shadow_stop",
            params={"slot": "street"},
            issued_at=datetime.now(UTC),
        )
        await asyncio.to_thread(recorder.publish, cmd_topic, protocol.encode(stop))
        done = await eventually(lambda: final(stop.cmd_id), 30)
        assert done[0]["state"] == "succeeded", done
        assert done[0]["detail"] == "slot street shadow stopped"
        await asyncio.sleep(1.0)  # events already in flight arrive
        count = len(shadows())
        assert await eventually(
            lambda: len([e for e in recorder.on("event") if not e.get("shadow")]) > len(real),
            40,
        ), unit.log_text()[-4000:]
        assert len(shadows()) == count  # none after the stop
        assert not (tmp_path / "state" / "models" / "street" / "shadow.json").exists()
    finally:
        unit.terminate()
        server.shutdown()
