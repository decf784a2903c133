"""Rotating the hub's command-signing key without locking any unit out.

1. ``central-hub keys rotate [--overlap-days N]`` makes the next key
   (``hub_key.next.pem``) and queues a ``keys.trust`` command for every registered unit,
   signed by the current key: trust the next key from now on, and the current one only
   until the overlap ends. The hub keeps signing with the current key.
2. ``central-hub keys status`` lists the units that confirmed, and those that have not
   (offline past the command's 24 h life: ``keys resend`` queues it again).
3. ``central-hub keys finish`` (with the hub stopped; ``--force`` if some units never
   confirmed) makes the next key current; the old one is kept as
   ``hub_key.retired-<time>.pem``. Units trust both until the overlap ends, so commands
   signed either side of the switch verify. Started again, the hub signs with the new
   key and re-signs every stored desired config with it (:meth:`DeviceService.resign_desired`).

The hub's MQTT client id and share group are derived from its key; so that a rotation
does not orphan the workers' persistent sessions (and the events queued in them), the
first ``finish`` pins them to the key they came from (``hub_identity.pem``). A key
rotated because it leaked should also get a new identity: ``finish --new-identity``, with
every worker stopped and its old session dropped (``central-hub drop-session``).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from central_hub.db.schema import commands, devices
from central_hub.errors import ConflictError, HubError
from central_hub.services.commands import CommandService
from central_hub.settings import HubSettings
from edge_agent.protocol import (
    MAX_COMMAND_TTL,
    MAX_KEY_OVERLAP,
    generate_signing_key,
    load_private_key,
    private_key_pem,
    public_key_b64,
)

log = logging.getLogger(__name__)

__all__ = [
    "KeyRotation",
    "RotationStatus",
    "finish_rotation",
    "identity_key",
    "resign_marker",
    "rotation_status",
    "send_trust",
    "start_rotation",
]

TRUST_KIND = "keys.trust"


@dataclass(frozen=True)
class KeyRotation:
    """A rotation under way: the next key's public half and when units drop the others."""

    next_public_key: str
    started_at: datetime
    previous_until: datetime


@dataclass(frozen=True)
class RotationStatus:
    """Which units confirmed the next key, and which have not (yet)."""

    rotation: KeyRotation
    confirmed: list[str]
    waiting: list[str]
    refused: dict[str, str]


def _next_path(settings: HubSettings) -> Path:
    return settings.hub_key_path.with_name(settings.hub_key_path.stem + ".next.pem")


def _state_path(settings: HubSettings) -> Path:
    return settings.data_dir / "key_rotation.json"


def _identity_path(settings: HubSettings) -> Path:
    return settings.data_dir / "hub_identity.pem"


def _write_key(path: Path, key: Ed25519PrivateKey) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_key_pem(key))
        fh.flush()
        os.fsync(fh.fileno())


def resign_marker(settings: HubSettings) -> Path:
    """Present after a finished rotation until the hub has re-signed the desired configs."""
    return settings.data_dir / "resign_desired.pending"


def identity_key(settings: HubSettings, key: Ed25519PrivateKey) -> Ed25519PrivateKey:
    """The key the hub's client id and share group derive from: the signing key, or the
    one a key rotation pinned them to."""
    path = _identity_path(settings)
    return load_private_key(path) if path.exists() else key


def current_rotation(settings: HubSettings) -> KeyRotation | None:
    """The rotation under way, if any."""
    path = _state_path(settings)
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return KeyRotation(
        next_public_key=data["next_public_key"],
        started_at=datetime.fromisoformat(data["started_at"]),
        previous_until=datetime.fromisoformat(data["previous_until"]),
    )


async def start_rotation(
    settings: HubSettings,
    service: CommandService,
    *,
    overlap: timedelta,
    now: datetime,
    by: str,
) -> tuple[KeyRotation, list[str]]:
    """Make the next key and queue ``keys.trust`` to every unit; the units queued."""
    # A day under the unit's limit, so a unit whose clock is behind the hub's accepts it.
    longest = MAX_KEY_OVERLAP - timedelta(days=1)
    if not timedelta(days=1) <= overlap <= longest:
        raise HubError(f"the overlap must be 1 to {longest.days} days")
    existing = current_rotation(settings)
    if existing is not None:
        raise ConflictError(
            f"a rotation to {existing.next_public_key[:12]}… is under way since "
            f"{existing.started_at.isoformat()}: `central-hub keys finish` it first"
        )
    next_key = generate_signing_key()
    _write_key(_next_path(settings), next_key)
    rotation = KeyRotation(public_key_b64(next_key), now, now + overlap)
    state = {
        "next_public_key": rotation.next_public_key,
        "started_at": rotation.started_at.isoformat(),
        "previous_until": rotation.previous_until.isoformat(),
    }
    _state_path(settings).write_text(json.dumps(state), encoding="utf-8")
    queued = await send_trust(service, rotation, None, by=by)
    log.info("key rotation started by %s: %d units asked to trust the next key", by, len(queued))
    return rotation, queued


async def send_trust(
    service: CommandService, rotation: KeyRotation, only: list[str] | None, *, by: str
) -> list[str]:
    """Queue ``keys.trust`` for ``only`` (default: every registered unit)."""
    async with service.engine.connect() as conn:
        ids = [
            r[0]
            for r in await conn.execute(
                sa.select(devices.c.device_id).order_by(devices.c.device_id)
            )
        ]
    targets = [d for d in ids if only is None or d in only]
    params = {
        "public_key": rotation.next_public_key,
        "previous_until": rotation.previous_until.astimezone(UTC).isoformat(),
    }
    for device_id in targets:
        await service.enqueue(device_id, TRUST_KIND, params, ttl=MAX_COMMAND_TTL, actor=by)
    return targets


async def rotation_status(settings: HubSettings, service: CommandService) -> RotationStatus:
    """Per unit, whether it confirmed the next key (a succeeded ``keys.trust``)."""
    rotation = current_rotation(settings)
    if rotation is None:
        raise HubError("no key rotation is under way")
    async with service.engine.connect() as conn:
        ids = [
            r[0]
            for r in await conn.execute(
                sa.select(devices.c.device_id).order_by(devices.c.device_id)
            )
        ]
        rows = (
            await conn.execute(
                sa.select(
                    commands.c.device_id, commands.c.state, commands.c.detail, commands.c.params
                )
                .where(commands.c.kind == TRUST_KIND)
                .order_by(commands.c.issued_at)
            )
        ).all()
    confirmed: set[str] = set()
    refused: dict[str, str] = {}
    for row in rows:
        params: dict[str, Any] = row.params or {}
        if params.get("public_key") != rotation.next_public_key:
            continue
        if row.state == "succeeded":
            confirmed.add(row.device_id)
            refused.pop(row.device_id, None)
        elif row.state in ("rejected", "failed") and row.device_id not in confirmed:
            refused[row.device_id] = row.detail
    return RotationStatus(
        rotation=rotation,
        confirmed=sorted(confirmed),
        waiting=sorted(d for d in ids if d not in confirmed),
        refused=refused,
    )


async def finish_rotation(
    settings: HubSettings,
    service: CommandService,
    *,
    now: datetime,
    force: bool = False,
    new_identity: bool = False,
) -> Path:
    """Make the next key current (the hub stopped); returns where the old key went."""
    status = await rotation_status(settings, service)
    if status.waiting and not force:
        raise ConflictError(
            f"{len(status.waiting)} units have not confirmed the next key "
            f"({', '.join(status.waiting[:10])}{' …' if len(status.waiting) > 10 else ''}); "
            "`keys resend` reaches those back online; --force switches anyway (they will "
            "refuse the hub's commands until re-provisioned)"
        )
    current_path, next_path = settings.hub_key_path, _next_path(settings)
    old = load_private_key(current_path)
    identity = _identity_path(settings)
    if new_identity:
        identity.unlink(missing_ok=True)  # ids from the new key: drain the old sessions
    elif not identity.exists():
        _write_key(identity, old)  # the workers' client ids and share group stay
    retired = current_path.with_name(
        f"{current_path.stem}.retired-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}.pem"
    )
    os.replace(current_path, retired)
    os.replace(next_path, current_path)
    _state_path(settings).unlink()
    resign_marker(settings).write_text(now.isoformat(), encoding="utf-8")
    log.info(
        "hub key rotated: now %s; the old one kept at %s",
        public_key_b64(load_private_key(current_path)),
        retired,
    )
    return retired
