"""Read-only queries the console needs beyond the hub's services (map positions)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.db.schema import events
from central_hub.services.devices import DeviceView

__all__ = ["device_positions", "position_of"]


def position_of(device: DeviceView) -> tuple[float, float] | None:
    """Where a device is from its own data: GPS in telemetry, else its configured location."""
    gps = (device.telemetry or {}).get("gps")
    if isinstance(gps, dict) and isinstance(gps.get("lat"), int | float):
        return float(gps["lat"]), float(gps["lon"])
    config: dict[str, Any] = device.desired_config or {}
    loc = (config.get("device") or {}).get("location")
    if isinstance(loc, dict) and isinstance(loc.get("lat"), int | float):
        return float(loc["lat"]), float(loc["lon"])
    return None


async def device_positions(
    engine: AsyncEngine, devices: list[DeviceView]
) -> dict[str, tuple[float, float]]:
    """A position per device: its own data, else the location of its latest event."""
    out: dict[str, tuple[float, float]] = {}
    missing = []
    for device in devices:
        pos = position_of(device)
        if pos is None:
            missing.append(device.device_id)
        else:
            out[device.device_id] = pos
    if not missing:
        return out
    latest = (
        sa.select(events.c.device_id, sa.func.max(events.c.detected_at).label("at"))
        .where(events.c.device_id.in_(missing))
        .group_by(events.c.device_id)
        .subquery()
    )
    q = sa.select(events.c.device_id, events.c.lat, events.c.lon).join(
        latest,
        sa.and_(events.c.device_id == latest.c.device_id, events.c.detected_at == latest.c.at),
    )
    async with engine.connect() as conn:
        for row in (await conn.execute(q)).all():
            out.setdefault(row.device_id, (float(row.lat), float(row.lon)))
    return out
