"""A real NATS server with its MQTT gateway on free loopback ports: the second broker.

NATS keeps MQTT sessions, retained messages and QoS 1 messages in JetStream, so the
server runs with JetStream on, its store under ``workdir``; stopping and starting it on
the same ports keeps them, as an outage would. What differs from Mosquitto for xiuhua is
in ``docs/brokers.md`` (above all: no ``$share`` groups, so one hub worker).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from simulators.mosquitto import BrokerError, free_port

log = logging.getLogger(__name__)

__all__ = ["NatsBroker", "find_nats_server"]


def find_nats_server() -> Path:
    """The ``nats-server`` program: from PATH, or Debian's /usr/sbin."""
    found = shutil.which("nats-server") or shutil.which(
        "nats-server", path="/usr/sbin:/usr/local/sbin"
    )
    if found is None:
        raise BrokerError(
            "nats-server is not installed: run `sudo apt-get install nats-server` (make test does)"
        )
    return Path(found)


def _port_open(host: str, port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


@dataclass
class NatsBroker:
    """One nats-server: ``port`` is its MQTT port (what the hub and units connect to)."""

    workdir: Path
    port: int | None = None
    host: str = "127.0.0.1"
    nats_port: int | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = free_port(self.host)
        if self.nats_port is None:
            self.nats_port = free_port(self.host)

    def render_config(self) -> str:
        """The server's config file text."""
        return "\n".join(
            [
                f"server_name: xh-{self.port}",
                f"listen: {self.host}:{self.nats_port}",
                f'jetstream {{ store_dir: "{self.workdir / "jetstream"}" }}',
                f"mqtt {{ listen: {self.host}:{self.port} }}",
                "",
            ]
        )

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 15.0) -> None:
        """Start the server and wait until its MQTT port accepts connections."""
        if self.running:
            return
        assert self.port is not None
        config = self.workdir / "nats.conf"
        config.write_text(self.render_config())
        logfile = (self.workdir / "nats.log").open("ab")
        self._proc = subprocess.Popen(
            [str(find_nats_server()), "-c", str(config)], stdout=logfile, stderr=logfile
        )
        logfile.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerError(f"nats-server exited at start: {self.log_text()[-2000:]}")
            if _port_open(self.host, self.port):
                log.info("nats-server MQTT up on %s:%s", self.host, self.port)
                return
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"nats-server did not listen on {self.host}:{self.port} in {timeout} s")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait until the port is closed."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        assert self.port is not None
        deadline = time.monotonic() + timeout
        while _port_open(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.02)

    def log_text(self) -> str:
        """Everything the server has logged so far."""
        path = self.workdir / "nats.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> NatsBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(Exception):
            self.stop()
