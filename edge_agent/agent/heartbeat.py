"""The telemetry heartbeat: what the hub sees of a unit's health every few seconds."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from edge_agent import protocol
from edge_agent.agent.health import cpu_temp_c, disk_free_mb
from edge_agent.link.outbox import OutboxStats

__all__ = ["BoardFigures", "build_telemetry", "read_board"]


@dataclass(frozen=True)
class BoardFigures:
    """Free disk where the outbox lives, and the CPU temperature (None where unknown)."""

    disk_free_mb: float | None = None
    cpu_temp_c: float | None = None


def _read_board_sync(outbox_path: Path) -> BoardFigures:
    return BoardFigures(disk_free_mb(outbox_path), cpu_temp_c())


async def read_board(outbox_path: Path) -> BoardFigures:
    """Read the board's figures off the event loop (sysfs and statvfs calls)."""
    return await asyncio.to_thread(_read_board_sync, outbox_path)


def build_telemetry(
    *,
    device_id: str,
    now: datetime,
    uptime_s: float,
    outbox: OutboxStats,
    vision: Any | None,
    gps: protocol.GpsFix | None,
    restarts: Mapping[str, int],
    board: BoardFigures,
) -> protocol.Telemetry:
    """One heartbeat. ``vision`` is the vision service's stats (``fps``, ``inference_ms``,
    ``dropped_frames``, ``cameras``, ``exempted``) or None on a unit without cameras; ``evicted``
    counts every row the outbox dropped, by byte cap or by TTL."""
    fps = inference_ms = 0.0
    dropped = 0
    cameras: dict[str, Any] = {}
    exempted: dict[str, str] = {}
    if vision is not None:
        fps, inference_ms = float(vision.fps), float(vision.inference_ms)
        dropped, cameras = int(vision.dropped_frames), dict(vision.cameras)
        exempted = dict(getattr(vision, "exempted", {}))
    return protocol.Telemetry(
        device_id=device_id,
        ts=now,
        uptime_s=uptime_s,
        fps=fps,
        inference_ms=inference_ms,
        outbox_depth=outbox.depth,
        outbox_bytes=outbox.bytes,
        evicted=outbox.evicted + outbox.expired,
        dropped_frames=dropped,
        disk_free_mb=board.disk_free_mb,
        cpu_temp_c=board.cpu_temp_c,
        gps=gps,
        cameras=cameras,
        restarts=dict(restarts),
        exempted=exempted,
    )
