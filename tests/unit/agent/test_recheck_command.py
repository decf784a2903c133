"""``spot.recheck`` on the unit: bad parameters refused untouched, the answer in the ack."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge_agent import protocol
from edge_agent.agent.recheck import run_recheck
from edge_agent.link.commands import CommandFailed, CommandRefused
from edge_agent.link.outbox import Outbox
from edge_agent.vision.errors import VisionError
from edge_agent.vision.recheck import Outcome, RecheckResult

NOW = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
KEY = protocol.generate_signing_key()
JPEG = bytes(cv2.imencode(".jpg", np.zeros((48, 64, 3), np.uint8))[1])


def command(params: dict[str, Any]) -> protocol.Command:
    return protocol.sign_command(
        KEY, device_id="pole-parking-01", kind="spot.recheck", params=params, issued_at=NOW
    )


async def test_the_answer_goes_in_the_ack_and_the_frame_on_the_snapshot_channel(
    tmp_path: Path,
) -> None:
    box = await Outbox.open(tmp_path / "o.db")
    asked: list[tuple[Any, ...]] = []

    async def recheck(
        camera_id: str, zone: str, plate: str | None, box_: tuple[float, ...] | None
    ) -> tuple[RecheckResult, bytes]:
        asked.append((camera_id, zone, plate, box_))
        return RecheckResult(Outcome.STILL_THERE, 5, 4, (0.1, 0.5, 0.3, 0.8), "浙J·A12345"), JPEG

    params = {
        "camera_id": "mast",
        "zone": "no_parking",
        "plate": "浙J·A12345",
        "box": [0.1, 0.5, 0.3, 0.8],
    }
    cmd = command(params)
    detail = await run_recheck(cmd, recheck, outbox=box, clock=lambda: NOW)
    assert detail == "still_there: seen in 4 of 5 frames, plate 浙J·A12345"
    assert asked == [("mast", "no_parking", "浙J·A12345", (0.1, 0.5, 0.3, 0.8))]
    (row,) = await box.next_batch(10)
    assert row.topic == protocol.topic("pole-parking-01", protocol.Channel.SNAPSHOT)
    reply = protocol.decode(protocol.SnapshotReply, json.loads(row.payload))
    assert (reply.cmd_id, reply.camera_id) == (cmd.cmd_id, "mast")
    assert (reply.snapshot.width, reply.snapshot.height) == (64, 48)
    await box.close()


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"zone": "no_parking"}, "camera_id"),
        ({"camera_id": "mast", "zone": ""}, "zone"),
        ({"camera_id": "mast", "zone": "z", "box": [0.1, 0.2, 1.5, 0.4]}, "box.2"),
        ({"camera_id": "mast", "zone": "z", "colour": "red"}, "colour"),
    ],
)
async def test_bad_parameters_are_refused_before_the_camera_is_touched(
    tmp_path: Path, params: dict[str, Any], named: str
) -> None:
    box = await Outbox.open(tmp_path / "o.db")

    async def recheck(*_: Any) -> tuple[RecheckResult, bytes]:
        raise AssertionError("the camera was touched")

    with pytest.raises(CommandRefused, match=named):
        await run_recheck(command(params), recheck, outbox=box, clock=lambda: NOW)
    assert await box.next_batch(10) == []
    await box.close()


async def test_a_camera_without_frames_fails_the_command(tmp_path: Path) -> None:
    box = await Outbox.open(tmp_path / "o.db")

    async def recheck(*_: Any) -> tuple[RecheckResult, bytes]:
        raise VisionError("camera 'mast' gave no frame for 20.0 s")

    with pytest.raises(CommandFailed, match="recheck of mast/no_parking failed: camera"):
        await run_recheck(
            command({"camera_id": "mast", "zone": "no_parking"}),
            recheck,
            outbox=box,
            clock=lambda: NOW,
        )
    await box.close()
