"""``snapshot.request``: a camera's current frame, answered on the ``snapshot`` channel."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from datetime import datetime

from edge_agent import protocol
from edge_agent.link.commands import CommandFailed
from edge_agent.link.outbox import Outbox, Priority

__all__ = ["jpeg_size", "send_snapshot"]


def jpeg_size(data: bytes) -> tuple[int, int]:
    """Width and height of a baseline or progressive JPEG, read from its SOF marker."""
    if not data.startswith(b"\xff\xd8"):
        raise ValueError("not a JPEG (no SOI marker)")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"corrupt JPEG marker at byte {pos}")
        marker = data[pos + 1]
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2, 0xC3) and pos + 9 <= len(data):
            height = int.from_bytes(data[pos + 5 : pos + 7], "big")
            width = int.from_bytes(data[pos + 7 : pos + 9], "big")
            return width, height
        pos += 2 + length
    raise ValueError("JPEG has no frame header")


async def send_snapshot(
    command: protocol.Command,
    camera_id: str,
    grab: Callable[[str], Awaitable[bytes]],
    *,
    outbox: Outbox,
    clock: Callable[[], datetime],
) -> str:
    """Grab ``camera_id``'s frame, store the :class:`protocol.SnapshotReply`, return a detail.

    ``grab`` raises (KeyError or the vision package's errors) for an unknown camera or one
    without a frame; the caller turns that into a failed ack.
    """
    jpeg = await grab(camera_id)
    try:
        width, height = jpeg_size(jpeg)
    except ValueError as exc:
        raise CommandFailed(f"camera {camera_id} gave no usable JPEG: {exc}") from exc
    reply = protocol.SnapshotReply(
        device_id=command.device_id,
        cmd_id=command.cmd_id,
        camera_id=camera_id,
        snapshot=protocol.Snapshot(
            jpeg_b64=base64.b64encode(jpeg).decode("ascii"), width=width, height=height
        ),
        ts=clock(),
    )
    topic = protocol.topic(command.device_id, protocol.Channel.SNAPSHOT)
    await outbox.append(topic, protocol.encode(reply), priority=Priority.SNAPSHOT)
    return f"snapshot of {camera_id} sent ({len(jpeg)} bytes)"
