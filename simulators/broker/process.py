"""The embedded broker as a child process, with :class:`MosquittoBroker`'s interface."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from simulators.demo.processes import Child, ChildError
from simulators.mosquitto import port_open

__all__ = ["EmbeddedBrokerProcess"]


@dataclass
class EmbeddedBrokerProcess:
    """``python -m simulators.broker`` on ``host:port``; stop and start keep the port."""

    workdir: Path
    port: int | None = None
    host: str = "127.0.0.1"
    password_file: Path | None = None
    acl_file: Path | None = None
    allow_anonymous: bool = True
    log_path: Path | None = None
    _child: Child | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        from simulators.mosquitto import free_port

        self.workdir = Path(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = free_port(self.host)

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self._child is not None and self._child.running

    def start(self, timeout: float = 15.0) -> None:
        """Start the broker and wait until it accepts connections."""
        if self.running:
            return
        assert self.port is not None
        if port_open(self.host, self.port):
            raise ChildError(f"port {self.host}:{self.port} is already in use")
        argv = [sys.executable, "-m", "simulators.broker", "--host", self.host]
        argv += ["--port", str(self.port)]
        if self.password_file is not None:
            argv += ["--password-file", str(self.password_file)]
        if self.acl_file is not None:
            argv += ["--acl-file", str(self.acl_file)]
        if self.allow_anonymous:
            argv.append("--allow-anonymous")
        child = Child("broker", argv, self.log_path or self.workdir / "broker.log")
        child.start()
        self._child = child
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not child.running:
                raise ChildError(f"the embedded broker exited at start: {child.log_tail()}")
            if port_open(self.host, self.port):
                return
            time.sleep(0.05)
        child.stop()
        raise ChildError(f"the embedded broker did not listen on {self.host}:{self.port}")

    def stop(self) -> None:
        """Stop the broker and wait until the port is closed."""
        child, self._child = self._child, None
        if child is None:
            return
        child.stop()
        assert self.port is not None
        deadline = time.monotonic() + 10.0
        while port_open(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.02)

    def restart(self) -> None:
        """Stop and start again on the same port (sessions and retained messages are lost)."""
        self.stop()
        self.start()
