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

__all__ = ["NatsBroker", "NatsUser", "find_nats_server", "mqtt_filter_to_subject"]

#: Where the MQTT gateway delivers a session's QoS 1 messages (a JetStream consumer's
#: subject per subscription): every user who subscribes needs it, or its SUBACK fails.
#: MQTT clients cannot name it (the gateway refuses topics under ``$MQTT``), so granting
#: it does not let one device read another's deliveries.
MQTT_DELIVERY_SUBJECTS = "$MQTT.sub.>"


def mqtt_filter_to_subject(topic_filter: str) -> str:
    """An MQTT topic or filter as the NATS subject the gateway maps it to (pure).

    Levels become tokens (``/`` to ``.``), ``+`` becomes ``*`` and a final ``#`` ``>``.
    Topics with ``.`` or spaces have no such subject (xiuhua's ids have neither).
    """
    if any(c in topic_filter for c in ". \t"):
        raise BrokerError(f"topic {topic_filter!r} has no NATS subject: '.' or spaces in it")
    tokens = ["*" if t == "+" else ">" if t == "#" else t for t in topic_filter.split("/")]
    return ".".join(tokens)


@dataclass(frozen=True)
class NatsUser:
    """A broker user: its password and the MQTT topics it may publish and subscribe to."""

    name: str
    password: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]

    def render(self) -> str:
        """This user's entry in the server config's ``authorization.users``."""
        pub = [mqtt_filter_to_subject(t) for t in self.publish]
        sub = [mqtt_filter_to_subject(t) for t in self.subscribe] + [MQTT_DELIVERY_SUBJECTS]
        return (
            f"    {{ user: {_quoted(self.name)}, password: {_quoted(self.password)},"
            f" permissions: {{ publish: {_list(pub)}, subscribe: {_list(sub)} }} }}"
        )


def _quoted(text: str) -> str:
    if any(c in text for c in '"\\\n'):
        raise BrokerError(f"{text!r} cannot be written into a NATS config")
    return f'"{text}"'


def _list(items: list[str]) -> str:
    return "[" + ", ".join(_quoted(i) for i in items) + "]"


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
    #: Users with passwords and permissions; none: anyone may connect and use any topic.
    users: tuple[NatsUser, ...] = ()
    #: ``(ca, cert, key)``: the MQTT port speaks TLS with this certificate and asks each
    #: client for a certificate from ``ca`` (then for its user's password).
    tls: tuple[Path, Path, Path] | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = free_port(self.host)
        if self.nats_port is None:
            self.nats_port = free_port(self.host)

    def render_config(self) -> str:
        """The server's config file text (it holds the users' passwords: written 0600)."""
        lines = [
            f"server_name: xh-{self.port}",
            f"listen: {self.host}:{self.nats_port}",
            f'jetstream {{ store_dir: "{self.workdir / "jetstream"}" }}',
            f"mqtt {{ listen: {self.host}:{self.port}{self._tls_block()} }}",
        ]
        if self.users:
            lines += ["authorization {", "  users = [", *(u.render() for u in self.users)]
            lines += ["  ]", "}"]
        return "\n".join([*lines, ""])

    def _tls_block(self) -> str:
        if self.tls is None:
            return ""
        ca, cert, key = self.tls
        return f', tls {{ ca_file: "{ca}", cert_file: "{cert}", key_file: "{key}", verify: true }}'

    def start(self, timeout: float = 15.0) -> None:
        """Start the server and wait until its MQTT port accepts connections."""
        if self.running:
            return
        assert self.port is not None
        config = self.workdir / "nats.conf"
        config.touch(mode=0o600)
        config.chmod(0o600)
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
