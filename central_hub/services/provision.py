"""Provisioning: a device's broker credentials and config file, and the broker's password and ACL.

Layout written (DESIGN.md §4):

* ``broker_dir/passwd`` — Mosquitto password file (PBKDF2-SHA512, Mosquitto's ``$7$`` format),
  one line per broker user; a re-provisioned user's line is replaced (its password rotates).
* ``broker_dir/acl`` — regenerated from the password file on every run: hub users read and
  write ``xh/v1/#``; each device may publish only its own device → hub topics and read
  only its own ``cmd`` and ``config/desired``.
* ``broker_dir/hub_users`` — the names that get the hub's rights.
* ``broker_dir/<hub user>.password`` — the hub's own broker password (mode 0600).
* ``broker_dir/tls/`` — the city's CA (``ca.crt``; ``ca.key`` when the CA was made
  here rather than given), the broker's certificate (``broker.crt``/``broker.key``) and
  the hub user's client certificate (``<hub user>.crt``/``.key``); keys mode 0600
  (:mod:`central_hub.services.pki`).
* ``broker_dir/conf.d/listeners.conf`` — regenerated on every run: the password and ACL
  files, plain MQTT on 127.0.0.1 only (tools on the broker's host) and MQTT over TLS on
  every interface, where a client needs a certificate from the city's CA *and* its
  password. Mosquitto reads it through ``include_dir`` (``firmware_config/broker/``).
* ``out_dir/<device>/agent.yaml``, ``mqtt.password``, ``ca.crt``, ``client.crt`` and
  ``client.key`` — what the device needs: its id, the broker address (the TLS port), its
  username/password file, the CA it trusts and its own certificate (common name = device
  id, reissued on every run), and the hub's public keys.

``tls=False`` (``provision --no-tls``) leaves certificates out and opens plain MQTT on
every interface: for a lab broker that cannot do TLS, never for a city.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from central_hub.errors import ProvisionError
from central_hub.services import pki
from edge_agent.protocol import Channel, TopicError, check_device_id

log = logging.getLogger(__name__)

__all__ = [
    "BROKER_SETTINGS",
    "HUB_TOPICS",
    "BrokerTls",
    "ProvisionResult",
    "device_config",
    "device_topics",
    "ensure_api_tls",
    "ensure_broker_tls",
    "ensure_hub_user",
    "hash_password",
    "provision_device",
    "read_password_file",
    "render_acl",
    "render_listeners",
    "verify_password",
]

#: Mosquitto's own default for ``$7$`` hashes.
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12


def hash_password(
    password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS
) -> str:
    """A Mosquitto ``$7$`` password hash: ``$7$iterations$b64(salt)$b64(pbkdf2-sha512)``."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    salt_b64 = base64.b64encode(salt).decode()
    digest_b64 = base64.b64encode(digest).decode()
    return f"$7${iterations}${salt_b64}${digest_b64}"


def verify_password(password: str, hashed: str) -> bool:
    """Check ``password`` against a ``$7$`` hash (as Mosquitto does)."""
    try:
        _, kind, iterations, salt_b64, digest_b64 = hashed.split("$")
        if kind != "7":
            return False
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(digest_b64)
        digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(digest, expected)


def read_password_file(path: Path) -> dict[str, str]:
    """``{user: hash}`` from a Mosquitto password file (empty when it does not exist)."""
    if not path.exists():
        return {}
    users: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep:
            raise ProvisionError(f"{path}:{n}: not a 'user:hash' line")
        users[user] = hashed
    return users


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


#: What a hub user may read and write: the whole tree.
HUB_TOPICS = "xh/v1/#"

#: Settings every listener of a provisioned Mosquitto must have (:func:`render_listeners`
#: puts them under each). With ``use_username_as_clientid`` the broker names every client
#: after its user, so a device cannot connect under the hub's or another device's client
#: id and knock it off (each hub worker therefore gets its own broker user:
#: ``provision --hub-user hub-2``).
BROKER_SETTINGS = ("use_username_as_clientid true",)

#: Where the broker's part of the config is written, under ``broker_dir``.
LISTENERS_CONF = Path("conf.d") / "listeners.conf"
#: The port of the loopback-only plain listener, by default.
PLAIN_PORT = 1883
#: The port of the TLS listener that units and the hub use, by default.
TLS_PORT = 8883


@dataclass(frozen=True)
class BrokerTls:
    """The broker side's TLS files: the CA, the broker's certificate, the hub user's."""

    ca: Path
    server: pki.CertFiles
    hub: pki.CertFiles


def ensure_api_tls(
    broker_dir: Path,
    ca: pki.Authority,
    *,
    hosts: Iterable[str],
    now: datetime,
) -> pki.CertFiles:
    """The hub API's HTTPS certificate from the city's ``ca`` (``broker_dir/tls/api.crt``),
    valid for ``hosts`` plus ``localhost`` and ``127.0.0.1``; reused while good. Units
    trust it through the same ``ca.crt`` they verify the broker with (model packages)."""
    tls_dir = Path(broker_dir) / "tls"
    return pki.ensure_server_cert(
        pki.CertFiles(tls_dir / "api.crt", tls_dir / "api.key"),
        ca,
        ["localhost", "127.0.0.1", *hosts],
        now,
    )


def ensure_broker_tls(
    broker_dir: Path,
    ca: pki.Authority,
    *,
    hub_user: str = "hub",
    hosts: Iterable[str] = (),
    now: datetime,
) -> BrokerTls:
    """A broker certificate from ``ca`` valid for ``hosts`` (plus ``localhost`` and
    ``127.0.0.1``) and the hub user's client certificate, each reused while good.
    ``ca`` is :func:`pki.load_or_create_ca` of ``broker_dir/tls``."""
    tls_dir = Path(broker_dir) / "tls"
    server = pki.ensure_server_cert(
        pki.CertFiles(tls_dir / "broker.crt", tls_dir / "broker.key"),
        ca,
        ["localhost", "127.0.0.1", *hosts],
        now,
    )
    hub = pki.issue_client_cert(
        pki.CertFiles(tls_dir / f"{hub_user}.crt", tls_dir / f"{hub_user}.key"),
        ca,
        hub_user,
        now,
        reuse=True,
    )
    return BrokerTls(ca=ca.cert_path, server=server, hub=hub)


def render_listeners(
    broker_dir: Path, *, port: int, plain_port: int = PLAIN_PORT, tls: bool = True
) -> str:
    """Mosquitto's listeners and access files for a provisioned ``broker_dir`` (pure).

    With ``tls``: plain MQTT on 127.0.0.1:``plain_port`` only, and TLS on every interface
    at ``port``, where a client must show a certificate from the city's CA and then log
    in with its password (both: the certificate says "one of the city's", the password
    which one). Without: plain MQTT on every interface at ``port``.
    """
    base = Path(broker_dir).resolve()
    tls_dir = base / "tls"
    lines = [
        "# Managed by `central-hub provision`; regenerated on every run, edits are lost.",
        f"password_file {base / 'passwd'}",
        f"acl_file {base / 'acl'}",
        "allow_anonymous false",
        "",
    ]
    if not tls:
        lines += ["# Plain MQTT on every interface (provision --no-tls): a lab only.", ""]
        lines += [f"listener {port}", *BROKER_SETTINGS]
        return "\n".join(lines) + "\n"
    lines += [
        "# Plain MQTT for tools on the broker's own host only.",
        f"listener {plain_port} 127.0.0.1",
        *BROKER_SETTINGS,
        "",
        "# MQTT over TLS for the units and the hub: a certificate signed by the city's CA,",
        "# then the user's password.",
        f"listener {port}",
        *BROKER_SETTINGS,
        f"cafile {tls_dir / 'ca.crt'}",
        f"certfile {tls_dir / 'broker.crt'}",
        f"keyfile {tls_dir / 'broker.key'}",
        "require_certificate true",
        "tls_version tlsv1.2",
    ]
    return "\n".join(lines) + "\n"


def device_topics(device_id: str) -> tuple[list[str], list[str]]:
    """The topics a device may publish and those it may read (pure): its own, nothing else.

    Every broker's permissions come from here (Mosquitto's ACL, NATS' users), so a
    device's credentials grant the same on each.
    """
    write = [f"xh/v1/dev/{device_id}/{ch.value}" for ch in Channel if ch.from_device]
    read = [f"xh/v1/dev/{device_id}/{ch.value}" for ch in Channel if not ch.from_device]
    return write, read


def render_acl(device_ids: Iterable[str], hub_users: Iterable[str]) -> str:
    """The Mosquitto ACL text for these hub users and devices."""
    lines = [
        "# Managed by `central-hub provision`; regenerated on every run, edits are lost.",
        "# Hub users read and write the whole tree; $share subscriptions need read here too.",
    ]
    for hub in sorted(set(hub_users)):
        lines += ["", f"user {hub}", f"topic readwrite {HUB_TOPICS}"]
    for dev in sorted(set(device_ids) - set(hub_users)):
        write, read = device_topics(dev)
        lines += ["", f"user {dev}"]
        lines += [f"topic write {t}" for t in write]
        lines += [f"topic read {t}" for t in read]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ProvisionResult:
    """The files one provisioning run wrote."""

    device_id: str
    config_path: Path
    password_path: Path
    password_file: Path
    acl_file: Path
    hub_password_path: Path
    broker_config: Path
    #: The device's client certificate and key (None with ``tls=False``).
    device_tls: pki.CertFiles | None = None
    #: The broker's and the hub's TLS files (None with ``tls=False``).
    broker_tls: BrokerTls | None = None


def _hub_users(broker_dir: Path) -> list[str]:
    path = broker_dir / "hub_users"
    if not path.exists():
        return []
    return [u.strip() for u in path.read_text(encoding="utf-8").splitlines() if u.strip()]


def _save(broker_dir: Path, users: dict[str, str], hubs: list[str]) -> None:
    _write_private(broker_dir / "passwd", "".join(f"{u}:{h}\n" for u, h in sorted(users.items())))
    _write_private(broker_dir / "hub_users", "".join(f"{u}\n" for u in sorted(set(hubs))))
    _write_private(broker_dir / "acl", render_acl(users, hubs))


def ensure_hub_user(broker_dir: Path, username: str = "hub") -> Path:
    """Create the hub's broker user once; return the file holding its password."""
    broker_dir = Path(broker_dir)
    secret_path = broker_dir / f"{username}.password"
    users = read_password_file(broker_dir / "passwd")
    hubs = _hub_users(broker_dir)
    if username in users and username in hubs and secret_path.exists():
        return secret_path
    password = secrets.token_urlsafe(24)
    _write_private(secret_path, password + "\n")
    users[username] = hash_password(password)
    _save(broker_dir, users, [*hubs, username])
    log.info("hub broker user %s written to %s", username, broker_dir)
    return secret_path


def device_config(
    device_id: str,
    kind: str,
    *,
    mqtt_host: str,
    mqtt_port: int,
    password_file: Path,
    public_key: str,
    model_public_key: str | None = None,
    tls: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The agent config sections provisioning owns (the rest keeps the agent's defaults).

    With ``model_public_key`` the unit loads only model packages the hub signed; ``tls``
    is the ``mqtt.tls`` section (``ca``, ``cert``, ``key``).
    """
    hub: dict[str, Any] = {"public_key": public_key}
    if model_public_key is not None:
        hub["model_public_key"] = model_public_key
    mqtt: dict[str, Any] = {
        "host": mqtt_host,
        "port": mqtt_port,
        "username": device_id,
        "password_file": str(password_file),
    }
    if tls is not None:
        mqtt["tls"] = dict(tls)
    return {"device": {"id": device_id, "kind": kind}, "mqtt": mqtt, "hub": hub}


def provision_device(
    device_id: str,
    *,
    kind: str,
    broker_dir: Path,
    out_dir: Path,
    public_key: str,
    mqtt_host: str,
    mqtt_port: int,
    hub_user: str = "hub",
    device_password_path: Path | None = None,
    model_public_key: str | None = None,
    tls: bool = True,
    plain_port: int = PLAIN_PORT,
    broker_hosts: Sequence[str] = (),
    ca_cert: Path | None = None,
    ca_key: Path | None = None,
    now: datetime | None = None,
) -> ProvisionResult:
    """Write a device's credentials and config and update the broker's files.

    ``device_password_path`` is where the config says the password file will be on the
    device (default: next to the config file as written here; the TLS files are named
    next to it too). ``model_public_key`` (the hub's model-signing key) makes the unit
    refuse models the hub did not sign. With ``tls`` (the default) ``mqtt_port`` is the
    broker's TLS port, whose certificate names ``mqtt_host``, ``broker_hosts``,
    ``localhost`` and ``127.0.0.1``; ``ca_cert``/``ca_key`` give the city's own CA
    (default: one made in ``broker_dir/tls`` on the first run). ``now`` is the clock.
    """
    try:
        check_device_id(device_id)
    except TopicError as exc:
        raise ProvisionError(str(exc)) from exc
    if kind not in ("pole", "truck"):
        raise ProvisionError(f"device kind must be 'pole' or 'truck', not {kind!r}")
    broker_dir, out_dir = Path(broker_dir), Path(out_dir)
    hubs = _hub_users(broker_dir)
    if device_id in hubs or device_id == hub_user:
        raise ProvisionError(f"{device_id!r} is the hub's broker user, not a device")
    now = now or datetime.now(UTC)
    try:
        hub_secret = ensure_hub_user(broker_dir, hub_user)
        password = secrets.token_urlsafe(24)
        dev_dir = out_dir / device_id
        password_path = dev_dir / "mqtt.password"
        _write_private(password_path, password + "\n")
        on_device = (device_password_path or password_path.resolve()).parent
        broker_tls = device_tls = tls_section = None
        if tls:
            ca = pki.load_or_create_ca(broker_dir / "tls", now, ca_cert=ca_cert, ca_key=ca_key)
            broker_tls = ensure_broker_tls(
                broker_dir, ca, hub_user=hub_user, hosts=[mqtt_host, *broker_hosts], now=now
            )
            shutil.copyfile(broker_tls.ca, dev_dir / "ca.crt")
            device_tls = pki.issue_client_cert(
                pki.CertFiles(dev_dir / "client.crt", dev_dir / "client.key"), ca, device_id, now
            )
            tls_section = {
                name: str(on_device / file)
                for name, file in (("ca", "ca.crt"), ("cert", "client.crt"), ("key", "client.key"))
            }
        config = device_config(
            device_id,
            kind,
            mqtt_host=mqtt_host,
            mqtt_port=mqtt_port,
            password_file=device_password_path or password_path.resolve(),
            public_key=public_key,
            model_public_key=model_public_key,
            tls=tls_section,
        )
        config_path = dev_dir / "agent.yaml"
        _write_private(
            config_path,
            f"# Written by `central-hub provision {device_id}`.\n"
            + yaml.safe_dump(config, sort_keys=False, allow_unicode=True),
        )
        users = read_password_file(broker_dir / "passwd")
        users[device_id] = hash_password(password)
        _save(broker_dir, users, _hub_users(broker_dir))
        broker_config = broker_dir / LISTENERS_CONF
        _write_private(
            broker_config,
            render_listeners(broker_dir, port=mqtt_port, plain_port=plain_port, tls=tls),
        )
    except OSError as exc:
        raise ProvisionError(f"cannot write provisioning files for {device_id}: {exc}") from exc
    log.info("provisioned %s (%s) into %s", device_id, kind, out_dir)
    return ProvisionResult(
        device_id=device_id,
        config_path=config_path,
        password_path=password_path,
        password_file=broker_dir / "passwd",
        acl_file=broker_dir / "acl",
        hub_password_path=hub_secret,
        broker_config=broker_config,
        device_tls=device_tls,
        broker_tls=broker_tls,
    )
