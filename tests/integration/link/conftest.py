"""Fixtures for the edge link's integration tests: agent configs, a recording subscriber,
and the agent as a separate process (so it can be SIGKILLed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent import protocol

REPO = Path(__file__).resolve().parents[3]


@dataclass
class Recorder:
    """A paho subscriber in its own thread that keeps every message it receives."""

    host: str
    port: int
    topic: str = "xh/v1/#"
    messages: list[tuple[str, bytes, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    persistent: bool = False
    client: Any = None

    def start(self) -> Recorder:
        subscribed = threading.Event()
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"recorder-{os.getpid()}-{id(self)}",
            clean_session=not self.persistent,
        )
        client.reconnect_delay_set(0.1, 0.5)

        def on_connect(c: Any, u: Any, f: Any, rc: Any, p: Any) -> None:
            c.subscribe(self.topic, qos=1)

        def on_subscribe(c: Any, u: Any, mid: Any, rcs: Any, p: Any) -> None:
            subscribed.set()

        def on_message(c: Any, u: Any, msg: Any) -> None:
            with self.lock:
                self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        client.connect(self.host, self.port)
        client.loop_start()
        assert subscribed.wait(10), "recorder could not subscribe"
        self.client = client
        return self

    def stop(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()

    def on(self, channel: str) -> list[dict[str, Any]]:
        """Decoded JSON payloads received on topics ending in ``/channel``."""
        with self.lock:
            found = [p for t, p, _ in self.messages if t.endswith("/" + channel)]
        return [json.loads(p) for p in found]

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)


@pytest.fixture
def recorder_factory() -> Iterator[Callable[[Any], Recorder]]:
    made: list[Recorder] = []

    def make(broker: Any, topic: str = "xh/v1/#", persistent: bool = False) -> Recorder:
        """A recorder; ``persistent`` keeps its session (and queued messages) across outages."""
        rec = Recorder(broker.host, broker.port, topic, persistent=persistent).start()
        made.append(rec)
        return rec

    yield make
    for rec in made:
        rec.stop()


@pytest.fixture
def hub_key() -> Ed25519PrivateKey:
    return protocol.generate_signing_key()


@pytest.fixture
def agent_config(tmp_path: Path, hub_key: Ed25519PrivateKey) -> Callable[..., Path]:
    """Write an agent config for ``broker`` with section overrides; return its path."""

    def write(broker: Any, device_id: str = "pole-test-01", **sections: Any) -> Path:
        data: dict[str, Any] = {
            "device": {"id": device_id, "kind": "pole", "location": {"lat": 30.27, "lon": 120.15}},
            "mqtt": {
                "host": broker.host,
                "port": broker.port,
                "keepalive": 5,
                "backoff_initial_s": 0.2,
                "backoff_cap_s": 1.0,
            },
            "hub": {"public_key": protocol.public_key_b64(hub_key)},
            "outbox": {"path": "state/outbox.db"},
            "speaker": {"backend": "wav", "wav_dir": "spoken", "tts_cache": "state/tts"},
            "telemetry": {"interval_s": 0.5},
        }
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        path = tmp_path / f"{device_id}.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True))
        return path

    return write


@dataclass
class AgentProcess:
    """The real agent stack in a child process: ``python -m edge_agent.run_command``."""

    config: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProcess:
        handle = open(self.log, "ab")  # noqa: SIM115 - the child keeps it open
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge_agent.run_command", "--config", str(self.config)],
            cwd=REPO,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
        )
        handle.close()
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait(5)
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
def agent_process(tmp_path: Path) -> Iterator[Callable[[Path], AgentProcess]]:
    started: list[AgentProcess] = []

    def make(config: Path) -> AgentProcess:
        proc = AgentProcess(config, tmp_path / f"agent-{len(started)}.log").start()
        started.append(proc)
        return proc

    yield make
    for proc in started:
        if proc.alive():
            proc.kill()
