"""The hub's live views on a real Mosquitto and database (SQLite and PostgreSQL): two
viewers of one camera cost one ``live.start``; the unit's frames reach both; renewals go
out while they watch; the last one leaving sends ``live.stop``; each view is an audit row
closed with its frame count. The unit here is a paho client that answers a start with
frames (the real unit's side is tested in tests/integration/link/test_live_view.py)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.adapters.mqtt import HubMqtt
from central_hub.services.live import LIVE_FILTER, LiveViews
from edge_agent import protocol
from simulators.mosquitto import MosquittoBroker
from simulators.polling import eventually
from simulators.subscriber import Subscriber

pytestmark = pytest.mark.integration

DEVICE = "pole-live-h1"
JPEG = base64.b64encode(b"\xff\xd8\xff\xe0" + b"\x00" * 64).decode("ascii")


class Unit:
    """Records the commands sent to DEVICE and publishes live frames on demand."""

    def __init__(self, port: int) -> None:
        self.commands: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.link = Subscriber(
            port,
            [protocol.topic(DEVICE, protocol.Channel.CMD)],
            self._message,
            client_id="fake-unit-link",
        )
        self.seq = 0

    def _message(self, _topic: str, payload: bytes) -> None:
        with self.lock:
            self.commands.append(json.loads(payload))

    def kinds(self) -> list[str]:
        with self.lock:
            return [c["kind"] for c in self.commands]

    def send_frame(self, camera_id: str = "mast") -> None:
        self.seq += 1
        frame = protocol.LiveFrame(
            device_id=DEVICE,
            camera_id=camera_id,
            seq=self.seq,
            ts=datetime.now(UTC),
            jpeg_b64=JPEG,
            width=320,
            height=240,
            fps=5.0,
        )
        self.link.publish(
            protocol.topic(DEVICE, protocol.Channel.LIVE), protocol.encode(frame), qos=0
        )

    def close(self) -> None:
        self.link.close()


async def test_two_viewers_one_stream_renewed_then_stopped_and_audited(
    db: AsyncEngine, mosquitto: MosquittoBroker
) -> None:
    assert mosquitto.port is not None
    key = protocol.generate_signing_key()
    link = HubMqtt(
        host="127.0.0.1",
        port=mosquitto.port,
        client_id="hub-live-test",
        subscriptions=[LIVE_FILTER],
        clean_session=True,
    )
    live = LiveViews(db, key, link, protocol.utc_now, lease_s=3.0)
    link.tap(f"/{protocol.Channel.LIVE.value}", live.deliver)  # as build_hub wires it
    await link.start()
    unit = await asyncio.to_thread(Unit, mosquitto.port)
    task = asyncio.create_task(live.run())
    try:
        await link.wait_subscribed()
        got: list[list[int]] = [[], []]

        async def view(n: int, frames: int, user: str) -> None:
            async with live.watch(DEVICE, "mast", user=user, case_id=None) as viewer:
                async for frame in viewer.frames_until_closed():
                    got[n].append(frame.seq)
                    if len(got[n]) >= frames:
                        return

        first = asyncio.create_task(view(0, 6, "ann"))
        assert await eventually(lambda: unit.kinds() == ["live.start"], 10, every_s=0.02)
        second = asyncio.create_task(view(1, 3, "bob"))
        assert await eventually(lambda: live.viewers(DEVICE, "mast") == 2, 5, every_s=0.02)
        for _ in range(3):
            await asyncio.to_thread(unit.send_frame)
            await asyncio.sleep(0.05)
        await asyncio.wait_for(second, 5)
        assert got[1] == [1, 2, 3]
        assert unit.kinds() == ["live.start"]  # the second viewer asked the unit nothing
        # A frame of a camera nobody watches goes nowhere.
        await asyncio.to_thread(unit.send_frame, "gate")
        # Renewals (the same start again) every lease/3 while someone watches.
        assert await eventually(lambda: unit.kinds().count("live.start") >= 2, 5, every_s=0.05)
        for _ in range(3):
            await asyncio.to_thread(unit.send_frame)
            await asyncio.sleep(0.05)
        await asyncio.wait_for(first, 5)
        assert got[0] == [1, 2, 3, 5, 6, 7]
        assert await eventually(lambda: unit.kinds()[-1] == "live.stop", 5, every_s=0.05)
        stop = unit.commands[-1]
        assert stop["params"] == {"camera_id": "mast"}
        protocol.verify_command(  # signed like every command
            stop,
            public_key=key.public_key(),
            device_id=DEVICE,
            now=datetime.now(UTC),
            replay=protocol.MemoryReplayGuard(),
        )
        assert live.starts == 1
        views = await eventually(lambda: _closed(live), 5, every_s=0.05)
        assert sorted((v.user_name, v.frames) for v in views) == [("ann", 6), ("bob", 3)]
        assert all(v.ended_at is not None and v.ended_at >= v.started_at for v in views)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await link.stop()
        await asyncio.to_thread(unit.close)


async def _closed(live: LiveViews) -> list[Any] | None:
    views = await live.history(device_id=DEVICE)
    return views if len(views) == 2 and all(v.ended_at for v in views) else None
