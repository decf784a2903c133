"""A real Mosquitto broker on a free loopback port, for tests, benchmarks and the demo.

The broker runs as a child process from a generated config file, either anonymous, with
a password file and an ACL file, or with the listeners ``central-hub provision`` wrote
(``listeners_file``: plain MQTT on loopback, MQTT over TLS with client certificates, the
password and ACL files), included as a city's broker includes them. It can be stopped
and started again on the same ports, which is how outage tests simulate a network that
goes away and comes back.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

log = logging.getLogger(__name__)

__all__ = [
    "BrokerError",
    "ChildBroker",
    "MosquittoBroker",
    "find_mosquitto",
    "free_port",
    "port_open",
    "provisioned_ports",
    "write_password_file",
]


class BrokerError(RuntimeError):
    """The broker could not be found or did not come up."""


def find_mosquitto() -> Path:
    """The ``mosquitto`` program: from PATH, or Debian's /usr/sbin where PATH lacks sbin."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise BrokerError(
            "mosquitto is not installed: run `sudo apt-get install mosquitto` (make test does)"
        )
    return Path(found)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``host:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class ChildBroker(abc.ABC):
    """What the brokers tests start as child processes share: stopping, running, ``with``.

    A subclass sets ``host``, ``port`` and ``_proc`` and implements :meth:`start`.
    """

    host: str
    port: int | None
    _proc: subprocess.Popen[bytes] | None

    @abc.abstractmethod
    def start(self, timeout: float = 10.0) -> None:
        """Start the broker and wait until it accepts connections."""

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL) and wait until the port is closed."""
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
        if proc.stderr is not None:
            proc.stderr.close()
        assert self.port is not None
        deadline = time.monotonic() + timeout
        while port_open(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.02)

    def _await_listening(self, name: str, timeout: float) -> None:
        """Wait until the started process accepts connections; BrokerError if it exits or
        stays deaf (then it is stopped), with what it said."""
        proc, port = self._proc, self.port
        assert proc is not None
        assert port is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                said = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                logged = self.log_text()[-2000:]
                raise BrokerError(f"{name} exited at start: {said.strip()} {logged.strip()}")
            if port_open(self.host, port):
                log.info("%s up on %s:%s", name, self.host, port)
                return
            time.sleep(0.02)
        self.stop()
        raise BrokerError(f"{name} did not listen on {self.host}:{self.port} in {timeout} s")

    def log_text(self) -> str:
        """Everything the broker has logged so far (empty where it keeps no log)."""
        return ""

    def restart(self) -> None:
        """Stop and start again on the same port."""
        self.stop()
        self.start()

    def __enter__(self) -> Self:
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


@dataclass
class MosquittoBroker(ChildBroker):
    """One Mosquitto process bound to ``host:port`` with its files under ``workdir``.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. ``port`` is picked
    once and kept across restarts. Persistence is on, so sessions and queued QoS1
    messages of clients with ``clean_session=False`` survive a restart, as they would on
    a production broker.
    """

    workdir: Path
    port: int | None = None
    host: str = "127.0.0.1"
    password_file: Path | None = None
    acl_file: Path | None = None
    allow_anonymous: bool = True
    persistence: bool = True
    extra_config: str = ""
    #: A provisioned ``conf.d/listeners.conf``: its folder is included and its listeners
    #: replace this broker's own (``port`` becomes its loopback listener's, or its only
    #: one's; ``tls_port`` its TLS listener's).
    listeners_file: Path | None = None
    #: The TLS listener's port (from ``listeners_file``); None without one.
    tls_port: int | None = field(default=None, init=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.listeners_file is not None:
            self.port, self.tls_port = provisioned_ports(self.listeners_file)
        if self.port is None:
            self.port = free_port(self.host)

    @property
    def config_path(self) -> Path:
        """Where the generated ``mosquitto.conf`` is written."""
        return self.workdir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        """The broker's log file."""
        return self.workdir / "mosquitto.log"

    def render_config(self) -> str:
        """The config file text for the current settings."""
        if self.listeners_file is not None:
            lines = [f"include_dir {Path(self.listeners_file).resolve().parent}"]
        else:
            lines = [
                f"listener {self.port} {self.host}",
                f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            ]
        lines += [
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            "autosave_interval 1",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "max_queued_messages 0",
            "max_inflight_messages 0",
            "set_tcp_nodelay true",
        ]
        if os.geteuid() == 0:
            # Run as root the broker would switch to user "mosquitto", which cannot
            # read a test's private temp folder; stay as the invoking user instead.
            lines.append("user root")
        if self.password_file is not None:
            lines.append(f"password_file {self.password_file}")
        if self.acl_file is not None:
            lines.append(f"acl_file {self.acl_file}")
        if self.extra_config:
            lines.append(self.extra_config.strip())
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker and wait until it accepts connections."""
        if self.running:
            return
        assert self.port is not None
        if port_open(self.host, self.port):
            raise BrokerError(f"port {self.host}:{self.port} is already in use")
        self.config_path.write_text(self.render_config())
        # The broker refuses world-readable password/ACL files in newer releases.
        for path in (self.password_file, self.acl_file):
            if path is not None:
                path.chmod(0o600)
        self._proc = subprocess.Popen(
            [str(find_mosquitto()), "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._await_listening("mosquitto", timeout)

    def log_text(self) -> str:
        """Everything the broker has logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def provisioned_ports(listeners_file: Path) -> tuple[int, int | None]:
    """The plain and TLS ports of a provisioned listeners file: the plain one is the
    listener on 127.0.0.1 (or the only listener, without TLS); TLS is the one with a
    ``certfile``."""
    plain: int | None = None
    tls: int | None = None
    current: int | None = None
    for line in Path(listeners_file).read_text(encoding="utf-8").splitlines():
        if m := re.match(r"\s*listener\s+(\d+)(?:\s+(\S+))?", line):
            current = int(m.group(1))
            plain = current if plain is None else plain
        elif re.match(r"\s*certfile\s", line) and current is not None:
            tls = current
            plain = None if plain == current else plain
    if plain is None:
        raise BrokerError(f"{listeners_file}: no plain listener to watch")
    return plain, tls


def write_password_file(path: Path, users: dict[str, str]) -> Path:
    """Write a Mosquitto password file for ``users`` with ``mosquitto_passwd``."""
    tool = shutil.which("mosquitto_passwd") or shutil.which(
        "mosquitto_passwd", path="/usr/bin:/usr/sbin"
    )
    if tool is None:
        raise BrokerError("mosquitto_passwd is not installed (package mosquitto)")
    path.write_text("")
    path.chmod(0o600)
    for user, password in users.items():
        subprocess.run([tool, "-b", str(path), user, password], check=True, capture_output=True)
    return path
