"""The device registry: presence from ``status``, health from ``telemetry``, config versions.

The ``apply_*`` functions run inside the ingest worker's transaction; :class:`DeviceService`
serves the API and publishes desired configs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from central_hub.db.engine import insert_ignore
from central_hub.db.schema import devices
from central_hub.errors import BrokerError, InvalidInputError, NotFoundError
from central_hub.services.publisher import Publisher
from edge_agent.protocol import (
    Channel,
    ConfigReported,
    ProtocolError,
    Status,
    Telemetry,
    check_device_id,
    encode,
    sign_desired,
    topic,
)

log = logging.getLogger(__name__)

__all__ = [
    "TELEMETRY_STALE_AFTER",
    "DeviceService",
    "DeviceView",
    "apply_config_reported",
    "apply_status",
    "apply_telemetry",
    "ensure_device",
]

#: A device whose last heartbeat is older than this is reported with health ``stale``.
TELEMETRY_STALE_AFTER = timedelta(seconds=120)

Health = Literal["ok", "degraded", "stale", "unknown"]


class DeviceView(BaseModel):
    """A device as the API shows it."""

    model_config = ConfigDict(frozen=True)

    device_id: str
    kind: str | None
    state: str
    health: Health
    status_ts: datetime | None
    seen_at: datetime | None
    boot_id: str | None
    fw: str | None
    model: str | None
    config_version: int | None
    telemetry: dict[str, Any] | None
    telemetry_at: datetime | None
    desired_version: int
    desired_config: dict[str, Any] | None
    reported_version: int | None
    reported_state: str | None
    reported_errors: list[str] | None
    config_in_sync: bool


def _health(row: sa.Row[Any], now: datetime) -> Health:
    if row.telemetry_at is None:
        return "unknown"
    if now - row.telemetry_at > TELEMETRY_STALE_AFTER:
        return "stale"
    cams = (row.telemetry or {}).get("cameras") or {}
    if row.state == "degraded" or any(c.get("state") != "ok" for c in cams.values()):
        return "degraded"
    return "ok"


def view_of(row: sa.Row[Any], now: datetime) -> DeviceView:
    """Build the API view of a ``devices`` row at time ``now``."""
    return DeviceView(
        device_id=row.device_id,
        kind=row.kind,
        state=row.state,
        health=_health(row, now),
        status_ts=row.status_ts,
        seen_at=row.seen_at,
        boot_id=row.boot_id,
        fw=row.fw,
        model=row.model,
        config_version=row.config_version,
        telemetry=row.telemetry,
        telemetry_at=row.telemetry_at,
        desired_version=row.desired_version,
        desired_config=row.desired_config,
        reported_version=row.reported_version,
        reported_state=row.reported_state,
        reported_errors=row.reported_errors,
        config_in_sync=row.desired_version == 0
        or (row.reported_version == row.desired_version and row.reported_state == "applied"),
    )


async def ensure_device(
    conn: AsyncConnection, device_id: str, now: datetime, kind: str | None = None
) -> None:
    """Register ``device_id`` if it is new (idempotent)."""
    stmt = insert_ignore(devices, conn.dialect, ["device_id"]).values(
        device_id=device_id, kind=kind, state="unknown", created_at=now, desired_version=0
    )
    await conn.execute(stmt)
    if kind is not None:
        await conn.execute(
            devices.update()
            .where(devices.c.device_id == device_id, devices.c.kind.is_(None))
            .values(kind=kind)
        )


async def apply_status(conn: AsyncConnection, status: Status, now: datetime) -> bool:
    """Record a ``status`` message; return True when the device is reachable now.

    A status older than the one stored (a stale retained message) changes nothing.
    """
    await ensure_device(conn, status.device_id, now)
    result = await conn.execute(
        devices.update()
        .where(
            devices.c.device_id == status.device_id,
            sa.or_(devices.c.status_ts.is_(None), devices.c.status_ts <= status.ts),
        )
        .values(
            state=status.state,
            status_ts=status.ts,
            seen_at=now,
            boot_id=status.boot_id,
            fw=status.fw,
            model=status.model,
            config_version=status.config_version,
        )
    )
    return result.rowcount > 0 and status.state != "offline"


async def apply_telemetry(conn: AsyncConnection, tel: Telemetry, now: datetime) -> None:
    """Record a heartbeat as the device's current health; an older one than that stored
    (redelivered late) only marks the device seen."""
    await ensure_device(conn, tel.device_id, now)
    newer = devices.c.telemetry_at.is_(None) | (devices.c.telemetry_at <= tel.ts)
    result = await conn.execute(
        devices.update()
        .where(devices.c.device_id == tel.device_id, newer)
        .values(
            telemetry=tel.model_dump(mode="json", by_alias=True), telemetry_at=tel.ts, seen_at=now
        )
    )
    if not result.rowcount:
        await conn.execute(
            devices.update().where(devices.c.device_id == tel.device_id).values(seen_at=now)
        )


async def apply_config_reported(conn: AsyncConnection, rep: ConfigReported, now: datetime) -> None:
    """Record what the device did with a desired config; an older report than that
    stored (redelivered late) only marks the device seen."""
    await ensure_device(conn, rep.device_id, now)
    newer = devices.c.reported_at.is_(None) | (devices.c.reported_at <= rep.ts)
    result = await conn.execute(
        devices.update()
        .where(devices.c.device_id == rep.device_id, newer)
        .values(
            reported_version=rep.version,
            reported_state=rep.state,
            reported_errors=list(rep.errors),
            reported_at=rep.ts,
            seen_at=now,
        )
    )
    if not result.rowcount:
        await conn.execute(
            devices.update().where(devices.c.device_id == rep.device_id).values(seen_at=now)
        )


class DeviceService:
    """Reads the registry and pushes desired configs (retained ``config/desired``)."""

    def __init__(
        self,
        engine: AsyncEngine,
        publisher: Publisher | None,
        clock: Callable[[], datetime],
        key: Ed25519PrivateKey,
    ) -> None:
        self.engine = engine
        self.publisher = publisher
        self.clock = clock
        self.key = key

    async def all(self) -> list[DeviceView]:
        """Every registered device, by id."""
        now = self.clock()
        async with self.engine.connect() as conn:
            rows = (await conn.execute(devices.select().order_by(devices.c.device_id))).all()
        return [view_of(r, now) for r in rows]

    async def get(self, device_id: str) -> DeviceView:
        """One device; NotFoundError when unknown."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(devices.select().where(devices.c.device_id == device_id))
            ).first()
        if row is None:
            raise NotFoundError(f"no device {device_id!r}")
        return view_of(row, self.clock())

    async def register(self, device_id: str, kind: str | None = None) -> None:
        """Register a device (provisioning does this); idempotent."""
        check_device_id(device_id)
        async with self.engine.begin() as conn:
            await ensure_device(conn, device_id, self.clock(), kind)

    async def set_desired(self, device_id: str, config: dict[str, Any]) -> int:
        """Store a new desired config with the next version and publish it retained.

        The row is committed first, so a publish failure leaves the desired config on
        record; the next call (or a reconnecting device reading the retained message)
        converges. Returns the new version.
        """
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    sa.select(devices.c.desired_version).where(devices.c.device_id == device_id)
                )
            ).first()
            if row is None:
                raise NotFoundError(f"no device {device_id!r}")
            version = int(row.desired_version) + 1
            try:  # signed before it is stored: one the broker would drop is refused
                message = sign_desired(
                    self.key, device_id=device_id, version=version, config=config
                )
            except ProtocolError as exc:
                raise InvalidInputError(str(exc)) from exc
            await conn.execute(
                devices.update()
                .where(devices.c.device_id == device_id)
                .values(desired_version=version, desired_config=config)
            )
        if self.publisher is not None:
            try:
                await self.publisher.publish(
                    topic(device_id, Channel.CONFIG_DESIRED), encode(message), qos=1, retain=True
                )
            except BrokerError as exc:
                raise BrokerError(f"stored but not published: {exc}") from exc
        log.info("desired config v%s for %s", version, device_id)
        return version

    async def resign_desired(self) -> int:
        """Publish every stored desired config again, signed with the current key (after a
        key rotation, so a unit that reconnects once the old key has retired still
        verifies its retained config). Versions do not change, so no unit re-applies.
        Returns how many were published."""
        if self.publisher is None:
            raise BrokerError("no broker to publish the desired configs to")
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(
                        devices.c.device_id, devices.c.desired_version, devices.c.desired_config
                    ).where(devices.c.desired_version > 0, devices.c.desired_config.is_not(None))
                )
            ).all()
        for row in rows:
            message = sign_desired(
                self.key,
                device_id=row.device_id,
                version=row.desired_version,
                config=row.desired_config,
            )
            await self.publisher.publish(
                topic(row.device_id, Channel.CONFIG_DESIRED), encode(message), qos=1, retain=True
            )
        log.info("re-signed %d desired configs with the current hub key", len(rows))
        return len(rows)
