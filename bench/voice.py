"""Voice (高空喊话): from the release of the talk button to the unit's first sample.

    python bench/voice.py [--messages 20] [--seconds 5]

Starts an anonymous Mosquitto, ``central-hub serve`` (SQLite) and the real agent
(``python -m edge_agent.run_command``) with the WAV-file speaker, all on loopback. Each of
``--messages`` recordings (``--seconds`` of Opus in WebM, as Chromium's MediaRecorder
makes them, each a different tone) is posted to ``POST /api/v1/devices/{id}/voice`` as
the console does on release; the clock starts just before the POST. The hub converts and
stores it and queues the signed ``speaker.play_clip``; the unit fetches it with its token,
checks it and plays it; the clock stops when the speaker backend has written the message's
samples (the WAV file's modification time: the backend writes the whole clip, then the
playback would start on a real speaker). One message at a time, each after the last one's
command succeeded.

Baseline, in the same run: the same work without the hub's and the unit's logic — a raw
MQTT publish -> receive of a command-sized payload through the same Mosquitto, plus an
HTTP GET of the same WAV bytes from a plain local server (``http.server``), per message.

Figures (one JSON line): messages, seconds, p50_voice_ms, p95_voice_ms, max_voice_ms,
baseline_p50_ms, baseline_p95_ms, ratio (p95_voice_ms / baseline_p95_ms), goal_ms
(1500, the issue's acceptance: p95 <= 1.5 s for a 5 s message) and goal_met.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from central_hub.testing import hub_cli
from simulators.mosquitto import MosquittoBroker, free_port
from simulators.polling import eventually_sync

GOAL_MS = 1500.0
DEVICE = "pole-bench-voice"
REPO = Path(__file__).resolve().parents[1]
PLACE = {"lat": 30.27, "lon": 120.15}


def _recording(path: Path, seconds: float, freq: int) -> bytes:
    """A message as Chromium's MediaRecorder sends it: Opus in WebM, 48 kHz mono."""
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         f"sine=frequency={freq}:duration={seconds}:sample_rate=48000", "-ac", "1",
         "-c:a", "libopus", "-b:a", "32k", str(path)],
        check=True,
    )  # fmt: skip
    return path.read_bytes()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class _Files(http.server.ThreadingHTTPServer):
    def __init__(self, data: bytes) -> None:
        super().__init__(("127.0.0.1", 0), _FileHandler)
        self.data = data
        threading.Thread(target=self.serve_forever, daemon=True).start()


class _FileHandler(http.server.BaseHTTPRequestHandler):
    server: _Files
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.server.data)))
        self.end_headers()
        self.wfile.write(self.server.data)


def _baseline(port: int, wav: bytes, n: int) -> list[float]:
    """Per message: a raw MQTT publish -> receive of ~1 kB, plus a GET of the WAV bytes."""
    got = threading.Event()
    sub = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-sub")
    subscribed = threading.Event()
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe("bench/voice", qos=1)
    sub.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
    sub.on_message = lambda c, u, m: got.set()
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    pub = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-pub")
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    files = _Files(wav)
    url = f"http://127.0.0.1:{files.server_address[1]}/clip.wav"
    times = []
    try:
        assert subscribed.wait(10)
        with httpx.Client() as http:
            for _ in range(n):
                got.clear()
                started = time.perf_counter()
                pub.publish("bench/voice", b"x" * 1000, qos=1)
                assert got.wait(10)
                body = http.get(url).content
                assert len(body) == len(wav)
                times.append((time.perf_counter() - started) * 1000)
    finally:
        files.shutdown()
        for c in (sub, pub):
            c.disconnect()
            c.loop_stop()
    return times


class BenchFailed(RuntimeError):
    """The run could not measure (a process did not start, a message did not play)."""


def measure(messages: int = 20, seconds: float = 5.0) -> dict[str, Any]:
    """Run the bench (see the module doc) and return its figures; another bench (e.g.
    bench/live.py's ``voice_figures``) may call this to put them on its own line."""
    args = argparse.Namespace(messages=messages, seconds=seconds)
    with tempfile.TemporaryDirectory(prefix="xh-bench-voice-") as tmp:
        root = Path(tmp)
        data = root / "hub"
        recordings = [
            _recording(root / f"msg-{i}.webm", args.seconds, 300 + 20 * i)
            for i in range(args.messages)
        ]
        with MosquittoBroker(root / "broker") as broker:
            assert broker.port is not None
            port = free_port()
            env = {
                **os.environ,
                "XH_HUB_DB_URL": f"sqlite+aiosqlite:///{data / 'hub.db'}",
                "XH_HUB_PUBLIC_URL": f"http://127.0.0.1:{port}",
            }
            data.mkdir()
            public_key = hub_cli(data, "keygen", env=env).splitlines()[-1].split()[-1]
            token = hub_cli(
                data, "user", "add", "bench-op", "--role", "operator", env=env
            ).splitlines()[-1]
            log = (root / "serve.log").open("ab")
            hub = subprocess.Popen(
                [sys.executable, "-m", "central_hub.cli", "--data-dir", str(data), "serve",
                 "--port", str(port), "--mqtt-port", str(broker.port), "--client-id", "hub-bench"],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
            unit_dir = root / "unit"
            unit_dir.mkdir()
            config = unit_dir / "agent.yaml"
            config.write_text(
                yaml.safe_dump(
                    {
                        "device": {"id": DEVICE, "kind": "pole", "location": PLACE},
                        "mqtt": {"host": "127.0.0.1", "port": broker.port, "keepalive": 5},
                        "hub": {"public_key": public_key},
                        "outbox": {"path": "state/outbox.db"},
                        "speaker": {"backend": "wav", "wav_dir": "spoken", "volume": 1.0},
                        "telemetry": {"interval_s": 5},
                    }
                )
            )  # fmt: skip
            agent = subprocess.Popen(
                [sys.executable, "-m", "edge_agent.run_command", "--config", str(config)],
                cwd=REPO,
                stdout=(root / "agent.log").open("ab"),
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            base = f"http://127.0.0.1:{port}/api/v1"
            auth = {"Authorization": f"Bearer {token}"}
            try:
                with httpx.Client(headers=auth, timeout=30) as http:

                    def online() -> bool:
                        try:
                            r = http.get(f"{base}/devices/{DEVICE}")
                        except httpx.TransportError:
                            return False
                        return r.status_code == 200 and r.json()["state"] == "online"

                    if not eventually_sync(online, 60, every_s=0.1):
                        raise BenchFailed(
                            (root / "serve.log").read_text()[-3000:]
                            + (root / "agent.log").read_text()[-3000:]
                        )
                    spoken = unit_dir / "spoken"
                    times: list[float] = []
                    wav = b""
                    for i, body in enumerate(recordings):
                        released = time.time_ns()
                        r = http.post(
                            f"{base}/devices/{DEVICE}/voice",
                            content=body,
                            headers={"Content-Type": "audio/webm"},
                        )
                        r.raise_for_status()
                        cmd = r.json()

                        def done(cmd_id: str = cmd["cmd_id"]) -> dict[str, Any] | None:
                            c = http.get(f"{base}/commands/{cmd_id}").json()
                            return c if c["state"] in ("succeeded", "failed", "rejected") else None

                        final = eventually_sync(done, 30, every_s=0.02)
                        if final is None or final["state"] != "succeeded":
                            raise BenchFailed(f"message {i}: {final}")
                        [written] = sorted(
                            spoken.glob(f"*-voice-{cmd['params']['sha256'][:12]}.wav")
                        )
                        times.append((written.stat().st_mtime_ns - released) / 1e6)
                        wav = written.read_bytes()
                    baseline = _baseline(broker.port, wav, args.messages)
            finally:
                for proc in (agent, hub):
                    proc.terminate()
                    try:
                        proc.wait(30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                log.close()
    p95 = _percentile(times, 0.95)
    base95 = _percentile(baseline, 0.95)
    return {
        "messages": len(times),
        "seconds": args.seconds,
        "p50_voice_ms": round(statistics.median(times), 1),
        "p95_voice_ms": round(p95, 1),
        "max_voice_ms": round(max(times), 1),
        "baseline_p50_ms": round(statistics.median(baseline), 1),
        "baseline_p95_ms": round(base95, 1),
        "ratio": round(p95 / base95, 1) if base95 else None,
        "goal_ms": GOAL_MS,
        "goal_met": p95 <= GOAL_MS,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    try:
        figures = measure(args.messages, args.seconds)
    except BenchFailed as exc:
        print(exc, file=sys.stderr)
        return 1
    print(json.dumps(figures))
    return 0 if figures["goal_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
