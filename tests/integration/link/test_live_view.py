"""Live view on the unit, over a real Mosquitto: a signed ``live.start`` streams JPEG
frames on the ``live`` channel, renewals keep it going, without them it stops within the
lease, a forged or expired start streams nothing, and a bandwidth cap lowers the rate
while events still arrive. And the hub's live view of a real unit over NATS server's MQTT
gateway (the second broker), start to stop."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from central_hub.settings import HubSettings
from central_hub.testing import running_hub
from edge_agent import protocol
from edge_agent.config import load_config
from edge_agent.runner import Agent
from simulators.nats import NatsBroker
from simulators.polling import eventually
from simulators.subscriber import Subscriber

cv2 = pytest.importorskip("cv2")
np = pytest.importorskip("numpy")
testing = pytest.importorskip("edge_agent.vision.testing")

pytestmark = pytest.mark.integration

LABELS = ("person", "car", "stall", "goods")
DEVICE = "pole-live-01"


def stall_model(folder: Path) -> Path:
    out = np.zeros((1, 4 + len(LABELS), 20), np.float32)
    out[0, :4, 0] = (100, 200, 60, 40)
    out[0, 4 + LABELS.index("stall"), 0] = 0.9
    return Path(testing.write_constant_model(folder, out, LABELS))


def clip(path: Path, noisy: bool) -> Path:
    """Ten frames that differ; ``noisy`` ones weigh tens of kB as JPEGs."""
    rng = np.random.default_rng(7)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 5.0, (320, 240))
    for i in range(10):
        frame = np.full((240, 320, 3), 60 + i * 10, np.uint8)
        if noisy:
            frame = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
        writer.write(frame)
    writer.release()
    return path


async def start_unit(
    tmp_path: Path,
    mosquitto: Any,
    agent_config: Any,
    live: dict[str, Any],
    noisy: bool = False,
    **config: Any,
) -> tuple[Agent, asyncio.Task[None]]:
    model = await asyncio.to_thread(stall_model, tmp_path / "model")
    source = await asyncio.to_thread(clip, tmp_path / "clip.avi", noisy)
    config = agent_config(
        mosquitto,
        DEVICE,
        live=live,
        **config,
        vision={
            "detector": {"model": str(model), "intra_threads": 1},
            "cameras": [
                {
                    "id": "mast",
                    "source": str(source),
                    "detect_fps": 5,
                    "zones": [
                        {"name": "pavement", "polygon": [[0, 0.4], [1, 0.4], [1, 1], [0, 1]]}
                    ],
                    "rules": [
                        {"name": "vendor", "kind": "vendor", "zone": "pavement", "dwell_s": 1.0}
                    ],
                }
            ],
        },
    )
    agent = Agent(load_config(config), config_path=config)
    return agent, asyncio.create_task(agent.run())


async def send(recorder: Any, command: protocol.Command) -> None:
    await asyncio.to_thread(
        recorder.publish, protocol.topic(DEVICE, protocol.Channel.CMD), protocol.encode(command)
    )


def start(key: Any, lease_s: float, **kw: Any) -> protocol.Command:
    return protocol.sign_command(
        key,
        device_id=DEVICE,
        kind="live.start",
        params={"camera_id": "mast", "lease_s": lease_s},
        issued_at=kw.pop("issued_at", datetime.now(UTC)),
        **kw,
    )


async def final_ack(recorder: Any, cmd_id: str) -> dict[str, Any]:
    acks = await eventually(
        lambda: [
            a for a in recorder.on("cmd/ack") if a["cmd_id"] == cmd_id and a["state"] != "received"
        ],
        20,
        every_s=0.05,
    )
    assert acks, f"no final ack for {cmd_id}"
    return acks[0]


async def test_a_lease_streams_renewals_keep_it_and_it_lapses_without_them(
    mosquitto, agent_config, recorder_factory, hub_key, tmp_path: Path
) -> None:
    recorder = await asyncio.to_thread(recorder_factory, mosquitto)
    agent, task = await start_unit(tmp_path, mosquitto, agent_config, {})
    try:
        await eventually(lambda: recorder.on("status"), 20, every_s=0.05)
        # Forged (another key) and expired starts stream nothing.
        forged = start(protocol.generate_signing_key(), 5)
        expired = start(
            hub_key,
            5,
            issued_at=datetime.now(UTC) - timedelta(minutes=2),
            ttl=timedelta(minutes=1),
        )
        await send(recorder, forged)
        await send(recorder, expired)
        assert (await final_ack(recorder, forged.cmd_id))["state"] == "rejected"
        assert (await final_ack(recorder, expired.cmd_id))["state"] == "expired"
        await asyncio.sleep(0.5)
        assert recorder.on("live") == [], "a forged or expired start streamed"
        # A real start; wait until the camera gives frames (the model loads first).
        lease = start(hub_key, 2)
        await send(recorder, lease)
        ack = await final_ack(recorder, lease.cmd_id)
        assert ack["state"] == "succeeded", ack
        assert "streaming mast for 2 s" in ack["detail"]
        frames = await eventually(lambda: recorder.on("live"), 20, every_s=0.05)
        assert frames, "no live frame"
        first = protocol.decode(protocol.LiveFrame, frames[0])
        assert first.camera_id == "mast"
        assert first.jpeg_bytes()[:2] == b"\xff\xd8"
        assert (first.width, first.height) == (320, 240)  # never scaled up past 640
        assert "pavement" in first.zones
        assert any(o.label == "stall" for o in first.objects)
        # Renew twice, 1 s apart: frames keep coming past the first lease's end.
        t0 = time.monotonic()
        for _ in range(2):
            await asyncio.sleep(1.0)
            await send(recorder, start(hub_key, 2))
        await asyncio.sleep(0.5)
        later = len(recorder.on("live"))
        await asyncio.sleep(0.6)
        assert len(recorder.on("live")) > later, "renewals did not keep the stream going"
        assert time.monotonic() - t0 > 2.0
        # No more renewals: it stops within the lease (2 s) after the last one.
        await asyncio.sleep(2.2)
        stopped = len(recorder.on("live"))
        await asyncio.sleep(0.8)
        assert len(recorder.on("live")) == stopped, "frames kept coming after the lease"
        assert agent.live.streaming() == []
        seqs = [f["seq"] for f in recorder.on("live")]
        assert seqs == sorted(seqs)
        assert 3 <= len(seqs) <= 5 * 6  # about 5 fps for ~4.5 s
    finally:
        agent.request_stop()
        await asyncio.wait_for(task, 20)


class EventClock:
    """When each of the unit's events reached the broker (wall clock), by event id."""

    def __init__(self, port: int) -> None:
        self.arrived: dict[str, tuple[datetime, datetime]] = {}
        self.link = Subscriber(
            port,
            [protocol.topic(DEVICE, protocol.Channel.EVENT)],
            self._message,
            client_id="event-clock",
        )

    def _message(self, _topic: str, payload: bytes) -> None:
        event = json.loads(payload)
        detected = datetime.fromisoformat(event["detected_at"])
        self.arrived[event["event_id"]] = (detected, datetime.now(UTC))

    def close(self) -> None:
        self.link.close()


async def test_over_the_bandwidth_cap_the_rate_drops_and_events_still_arrive(
    mosquitto, agent_config, recorder_factory, hub_key, tmp_path: Path
) -> None:
    recorder = await asyncio.to_thread(recorder_factory, mosquitto)
    clock = await asyncio.to_thread(EventClock, mosquitto.port)
    agent, task = await start_unit(
        tmp_path, mosquitto, agent_config, {"max_bytes_per_s": 20_000}, noisy=True
    )
    try:
        await eventually(lambda: recorder.on("status"), 20, every_s=0.05)
        lease = start(hub_key, 30)
        await send(recorder, lease)
        assert (await final_ack(recorder, lease.cmd_id))["state"] == "succeeded"
        assert await eventually(lambda: recorder.on("live"), 20, every_s=0.05)
        began = time.monotonic()
        n0 = len(recorder.on("live"))
        events_before = len(recorder.on("event"))
        await asyncio.sleep(3.0)
        frames = recorder.on("live")[n0:]
        rate = len(frames) / (time.monotonic() - began)
        sent_bytes = sum(len(base64.b64decode(f["jpeg_b64"])) for f in frames)
        assert rate < 4.0, f"{rate:.1f} fps: the cap did not lower the rate"
        assert frames[-1]["fps"] < 5.0
        assert sent_bytes / 3.0 < 20_000 * 1.5  # about within the cap (first frames guess)
        events = await eventually(
            lambda: recorder.on("event")[events_before:] or None, 20, every_s=0.05
        )
        assert events, "no event arrived while the unit streamed at its cap"
        # Each arrived promptly: detection (the rule firing) to the broker, evidence and
        # outbox included, well under the fleet's event-to-case goal plus a margin.
        delays = [
            (arrived - detected).total_seconds()
            for e in events
            if e["event_id"] in clock.arrived
            for detected, arrived in [clock.arrived[e["event_id"]]]
        ]
        assert delays, "the event clock saw none of the events"
        assert max(delays) < 2.0, delays
    finally:
        clock.close()
        agent.request_stop()
        await asyncio.wait_for(task, 20)


async def test_the_hubs_live_view_of_a_unit_over_nats(agent_config: Any, tmp_path: Path) -> None:
    """The whole chain on the second broker: the hub's signed start, the unit's QoS 0
    frames through NATS's MQTT gateway to the hub's tap, the viewer leaving, the stop."""
    with NatsBroker(tmp_path / "nats") as nats:
        settings = HubSettings(
            data_dir=tmp_path / "hub",
            mqtt_port=nats.port,
            mqtt_client_id="hub-nats-live",
            share_group="",  # NATS has no $share groups
            command_tick_s=0.2,
        )
        async with running_hub(settings) as hub:
            assert hub.live is not None
            views = asyncio.create_task(hub.live.run())
            agent, task = await start_unit(
                tmp_path,
                nats,
                agent_config,
                {},
                hub={"public_key": protocol.public_key_b64(hub.key)},
            )
            try:
                got: list[protocol.LiveFrame] = []

                async def watch() -> None:
                    assert hub.live is not None
                    async with hub.live.watch(DEVICE, "mast", user="ann", case_id=None) as viewer:
                        async for frame in viewer.frames_until_closed():
                            got.append(frame)
                            if len(got) >= 3:
                                return

                await asyncio.wait_for(watch(), 60)  # the unit loads its model first
                assert [f.camera_id for f in got] == ["mast"] * 3
                assert all(f.jpeg_bytes()[:2] == b"\xff\xd8" for f in got)
                assert [f.seq for f in got] == sorted(f.seq for f in got)
                assert any(o.label == "stall" for f in got for o in f.objects)
                # The last viewer left: the hub's live.stop reaches the unit over NATS.
                assert await eventually(lambda: agent.live.streaming() == [], 15, every_s=0.1)
                history = await eventually(
                    lambda: _ended(hub.live.history(device_id=DEVICE)), 10, every_s=0.1
                )
                assert [(v.user_name, v.frames >= 3) for v in history] == [("ann", True)]
            finally:
                agent.request_stop()
                await asyncio.wait_for(task, 20)
                views.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await views


async def _ended(history: Any) -> list[Any] | None:
    views = await history
    return views if views and all(v.ended_at is not None for v in views) else None
