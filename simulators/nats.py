"""A real NATS server with its MQTT gateway on free loopback ports: the second broker.

NATS keeps MQTT sessions, retained messages and QoS 1 messages in JetStream, so the
server runs with JetStream on, its store under ``workdir``; stopping and starting it on
the same ports keeps them, as an outage would. What differs from Mosquitto for xiuhua is
in ``docs/brokers.md`` (above all: no ``$share`` groups, so one hub worker).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from simulators.mosquitto import BrokerError, ChildBroker, free_port

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


@dataclass
class NatsBroker(ChildBroker):
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
        self._await_listening("nats-server", timeout)

    def log_text(self) -> str:
        """Everything the server has logged so far."""
        path = self.workdir / "nats.log"
        return path.read_text(errors="replace") if path.exists() else ""
