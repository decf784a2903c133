"""Live view: from a frame captured on the unit to the frame received by a viewer.

    python bench/live.py [--seconds 20] [--viewers 3]

Starts an anonymous Mosquitto, ``central-hub serve`` (SQLite) and the real agent
(``python -m edge_agent.run_command``) with a moving scenario camera at 5 fps
(:mod:`simulators.live_camera`), all on loopback. ``--viewers`` console sessions log in
(as an operator) and each opens the camera's MJPEG stream
(``GET /console/devices/{id}/live/mast/stream``) as the device page's ``<img>`` does; for
``--seconds`` every part received is timed against its ``X-Capture-Ts`` (the unit's
capture time; one machine, one clock). A tap on the broker counts the unit's live frames
and its acks: ``unit_streams`` is how many ``live.start`` the unit acked as a new stream
(``streaming ...``; renewals ack ``renewed ...``), 1 when the hub fans one stream out.

Baseline, in the same run: a raw paho publish -> receive of payloads the size of the
live messages, at 5 a second through the same Mosquitto (what the broker hop alone costs).

Figures (one JSON line): seconds, viewers, unit_streams, unit_frames, frames_per_viewer,
fps_seen, p50_live_ms, p95_live_ms, max_live_ms, baseline_p50_ms, baseline_p95_ms, ratio
(p95_live_ms / baseline_p95_ms), goal_ms (700: the issue's acceptance at 5 fps), goal_met,
and with ``--voice N`` the voice half's figures (``p95_voice_ms``, ``voice_goal_met``...,
from bench/voice.py's ``measure`` with N messages: :func:`voice_figures`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from central_hub.hub import load_or_create_key
from central_hub.settings import HubSettings
from edge_agent.protocol import public_key_b64
from simulators.live_camera import write_live_unit
from simulators.mosquitto import MosquittoBroker, free_port
from simulators.polling import eventually_sync
from simulators.subscriber import Subscriber

#: The acceptance goal: p95 from capture to a viewer, at 5 fps.
GOAL_P95_MS = 700.0
DEVICE = "pole-live-bench"
REPO = Path(__file__).resolve().parents[1]
_FORM_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _env(data: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "XH_HUB_COMMAND_TICK_S": "0.2"}


@contextlib.contextmanager
def _process(args: list[str], log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    handle = log.open("wb")
    proc = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        handle.close()


class Tap:
    """The unit's live frames (count, sizes) and acks, straight from the broker."""

    def __init__(self, port: int) -> None:
        self.frames = 0
        self.sizes: list[int] = []
        self.acks: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.link = Subscriber(
            port, [f"xh/v1/dev/{DEVICE}/#"], self._message, client_id="live-bench-tap"
        )

    def _message(self, topic: str, payload: bytes) -> None:
        with self.lock:
            if topic.endswith("/live"):
                self.frames += 1
                self.sizes.append(len(payload))
            elif topic.endswith("/cmd/ack"):
                self.acks.append(json.loads(payload))

    def new_streams(self) -> int:
        with self.lock:
            return sum(1 for a in self.acks if str(a.get("detail", "")).startswith("streaming"))

    def close(self) -> None:
        self.link.close()


async def _login(base: str, token: str) -> httpx.AsyncClient:
    http = httpx.AsyncClient(base_url=base, timeout=30)
    page = await http.get("/console/login")
    found = _FORM_CSRF.search(page.text)
    if found is None:
        raise RuntimeError("no CSRF token on the login page")
    r = await http.post(
        "/console/login", data={"name": "watcher", "token": token, "csrf_token": found.group(1)}
    )
    if r.status_code not in (200, 303):
        raise RuntimeError(f"login failed: {r.status_code}")
    return http


async def _view(http: httpx.AsyncClient, seconds: float, latencies: list[float]) -> int:
    """Read the MJPEG stream for ``seconds``; time each part from its capture time."""
    parts = 0
    buffer = b""
    deadline = time.monotonic() + seconds
    async with http.stream("GET", f"/console/devices/{DEVICE}/live/mast/stream") as r:
        if r.status_code != 200:
            raise RuntimeError(f"stream answered {r.status_code}: {await r.aread()!r}")
        async for chunk in r.aiter_bytes():
            now = datetime.now(UTC)
            buffer += chunk
            while True:
                head_end = buffer.find(b"\r\n\r\n")
                if head_end < 0:
                    break
                head = buffer[:head_end].decode("ascii", "replace")
                length = int(re.search(r"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
                if len(buffer) < head_end + 4 + length + 2:
                    break  # the JPEG is not all here yet
                ts = re.search(r"X-Capture-Ts: (\S+)", head).group(1)  # type: ignore[union-attr]
                latencies.append((now - datetime.fromisoformat(ts)).total_seconds() * 1000)
                buffer = buffer[head_end + 4 + length + 2 :]
                parts += 1
            if time.monotonic() > deadline:
                break
    return parts


def _baseline(port: int, size: int, count: int) -> list[float]:
    """Raw paho publish -> receive of ``size``-byte payloads at 5 a second."""
    got: dict[int, float] = {}
    ready = threading.Event()
    done = threading.Event()
    sub = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bl-sub")
    sub.on_connect = lambda c, *_: c.subscribe("bench/live", qos=0)
    sub.on_subscribe = lambda *_: ready.set()

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        got[int(msg.payload[:12])] = time.perf_counter()
        if len(got) >= count:
            done.set()

    sub.on_message = on_message
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    pub = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bl-pub")
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    if not ready.wait(10):
        raise RuntimeError("baseline subscriber did not subscribe")
    sent: dict[int, float] = {}
    filler = b"x" * max(0, size - 12)
    for i in range(count):
        sent[i] = time.perf_counter()
        pub.publish("bench/live", b"%012d" % i + filler, qos=0)
        time.sleep(0.2)
    done.wait(5)
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()
    return [(got[i] - sent[i]) * 1000 for i in sent if i in got]


def voice_figures(messages: int) -> dict[str, Any]:
    """The voice half's figures on this line: ``p95_voice_ms`` and its goal, measured by
    bench/voice.py's :func:`measure` with ``messages`` recordings (its own broker, hub
    and unit, after the live run); nothing when ``messages`` is 0."""
    if messages <= 0:
        return {}
    sys.path.insert(0, str(Path(__file__).parent))
    import voice  # bench/voice.py, beside this file

    found: dict[str, Any] = voice.measure(messages)
    keep = ("p50_voice_ms", "p95_voice_ms", "max_voice_ms", "goal_ms", "goal_met", "messages")
    return {f"voice_{k}" if not k.endswith("voice_ms") else k: found[k] for k in keep if k in found}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _watch_all(base: str, token: str, viewers: int, seconds: float) -> list[list[float]]:
    clients = [await _login(base, token) for _ in range(viewers)]
    latencies: list[list[float]] = [[] for _ in clients]
    try:
        await asyncio.gather(
            *(_view(c, seconds, lat) for c, lat in zip(clients, latencies, strict=True))
        )
    finally:
        for c in clients:
            await c.aclose()
    return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--viewers", type=int, default=3)
    parser.add_argument(
        "--voice", type=int, default=0, help="also run bench/voice.py with this many messages"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, MosquittoBroker(Path(tmp) / "broker") as broker:
        assert broker.port is not None
        root = Path(tmp)
        data = root / "hub"
        data.mkdir()
        env = _env(data)
        key = load_or_create_key(HubSettings(data_dir=data).hub_key_path)
        token = subprocess.run(
            [sys.executable, "-m", "central_hub.cli", "--data-dir", str(data), "user", "add",
             "watcher", "--role", "operator"],
            capture_output=True, text=True, timeout=120, check=True, env=env,
        ).stdout.strip()  # fmt: skip
        port = free_port()
        serve = [
            sys.executable, "-m", "central_hub.cli", "--data-dir", str(data), "serve",
            "--port", str(port), "--mqtt-port", str(broker.port), "--client-id", "hub-live",
        ]  # fmt: skip
        config = write_live_unit(
            root / "unit",
            device_id=DEVICE,
            mqtt_port=broker.port,
            hub_public_key=public_key_b64(key),
        )
        agent = [sys.executable, "-m", "edge_agent.run_command", "--config", str(config)]
        base = f"http://127.0.0.1:{port}"
        with (
            _process(serve, root / "serve.log", env),
            _process(agent, root / "agent.log", env),
        ):
            tap = Tap(broker.port)
            try:

                def camera_known() -> bool:
                    try:
                        r = httpx.get(
                            f"{base}/api/v1/devices/{DEVICE}",
                            headers={"Authorization": f"Bearer {token}"},
                            timeout=2,
                        )
                    except httpx.TransportError:
                        return False
                    return r.status_code == 200 and bool(
                        (r.json().get("telemetry") or {}).get("cameras")
                    )

                if not eventually_sync(camera_known, 90, every_s=0.3):
                    sys.stderr.write((root / "serve.log").read_text()[-3000:])
                    sys.stderr.write((root / "agent.log").read_text()[-3000:])
                    raise RuntimeError("the unit never reported its camera to the hub")
                frames_before = tap.frames
                latencies = asyncio.run(_watch_all(base, token, args.viewers, args.seconds))
                unit_frames = tap.frames - frames_before
                unit_streams = tap.new_streams()
                with tap.lock:
                    size = int(statistics.median(tap.sizes)) if tap.sizes else 40_000
            finally:
                tap.close()
        baseline = _baseline(broker.port, size, 50)
    flat = [v for lat in latencies for v in lat]
    if not flat or not baseline:
        raise RuntimeError("no frame reached a viewer" if not flat else "no baseline message")
    p95 = _pct(flat, 0.95)
    base_p95 = _pct(baseline, 0.95)
    figures: dict[str, Any] = {
        "seconds": args.seconds,
        "viewers": args.viewers,
        "unit_streams": unit_streams,
        "unit_frames": unit_frames,
        "frames_per_viewer": [len(lat) for lat in latencies],
        "fps_seen": round(min(len(lat) for lat in latencies) / args.seconds, 2),
        "p50_live_ms": round(_pct(flat, 0.5), 1),
        "p95_live_ms": round(p95, 1),
        "max_live_ms": round(max(flat), 1),
        "baseline_p50_ms": round(_pct(baseline, 0.5), 2),
        "baseline_p95_ms": round(base_p95, 2),
        "ratio": round(p95 / base_p95, 1) if base_p95 > 0 else None,
        "message_bytes": size,
        "goal_ms": GOAL_P95_MS,
        "goal_met": p95 <= GOAL_P95_MS and unit_streams == 1,
    }
    figures |= voice_figures(args.voice)
    print(json.dumps(figures))
    return 0 if figures["goal_met"] and figures.get("voice_goal_met", True) else 1


if __name__ == "__main__":
    sys.exit(main())
