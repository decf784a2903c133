"""The whole agent with a camera: events reach the broker, the rule shouts locally,
``snapshot.request`` answers on the snapshot channel, telemetry carries vision figures."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge_agent import protocol
from edge_agent.config import load_config
from edge_agent.runner import Agent
from simulators.polling import eventually

cv2 = pytest.importorskip("cv2")
np = pytest.importorskip("numpy")
testing = pytest.importorskip("edge_agent.vision.testing")

pytestmark = pytest.mark.integration

LABELS = ("person", "car", "stall", "goods")
DEVICE = "pole-test-01"
CHIME = Path(__file__).resolve().parents[3] / "firmware_config" / "clips" / "chime.wav"


def stall_model(folder: Path) -> Path:
    out = np.zeros((1, 4 + len(LABELS), 20), np.float32)
    out[0, :4, 0] = (100, 200, 60, 40)  # a stall low in the frame
    out[0, 4 + LABELS.index("stall"), 0] = 0.9
    return Path(testing.write_constant_model(folder, out, LABELS))


def gray_clip(path: Path) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 5.0, (320, 240))
    for i in range(10):
        writer.write(np.full((240, 320, 3), 60 + i * 10, np.uint8))
    writer.release()
    return path


async def test_camera_events_shout_and_snapshot(
    mosquitto, agent_config, recorder_factory, hub_key, tmp_path: Path
) -> None:
    model = await asyncio.to_thread(stall_model, tmp_path / "model")
    clip = await asyncio.to_thread(gray_clip, tmp_path / "clip.avi")
    config = agent_config(
        mosquitto,
        DEVICE,
        speaker={"clips": {"chime": str(CHIME)}},
        vision={
            "detector": {"model": str(model), "intra_threads": 1},
            "cameras": [
                {
                    "id": "mast",
                    "source": str(clip),
                    "detect_fps": 5,
                    "location": {"lat": 28.6472, "lon": 121.2615},
                    "zones": [
                        {"name": "pavement", "polygon": [[0, 0.4], [1, 0.4], [1, 1], [0, 1]]}
                    ],
                    "rules": [
                        {
                            "name": "vendor",
                            "kind": "vendor",
                            "zone": "pavement",
                            "dwell_s": 1.0,
                            "shout": "chime",
                        }
                    ],
                }
            ],
        },
    )
    recorder = await asyncio.to_thread(recorder_factory, mosquitto)
    agent = Agent(load_config(config), config_path=config)
    task = asyncio.create_task(agent.run())
    try:
        events = await eventually(lambda: recorder.on("event"), 20, every_s=0.05)
        assert events, "no event reached the broker"
        event = events[0]
        assert event["camera_id"] == "mast"
        assert event["location"] == {"lat": 28.6472, "lon": 121.2615, "source": "fixed"}
        assert event["seq"] == 1
        # The public snapshot and the clean frame beside it, both of the 320x240 clip.
        snap, frame = event["snapshot"], event["frame"]
        assert (frame["width"], frame["height"]) == (320, 240)
        assert base64.b64decode(frame["jpeg_b64"])[:2] == b"\xff\xd8"
        assert frame["jpeg_b64"] != snap["jpeg_b64"]  # the snapshot has the boxes drawn
        assert await eventually(
            lambda: list((tmp_path / "spoken").glob("*shout-chime*.wav")), 20, every_s=0.05
        ), "the rule did not shout the chime"
        command = protocol.sign_command(
            hub_key,
            device_id=DEVICE,
            kind="snapshot.request",
            params={"camera_id": "mast"},
            issued_at=datetime.now(UTC),
        )
        await asyncio.to_thread(
            recorder.publish,
            protocol.topic(DEVICE, protocol.Channel.CMD),
            protocol.encode(command),
        )
        replies = await eventually(lambda: recorder.on("snapshot"), 20, every_s=0.05)
        assert replies, "no snapshot reply"
        reply = replies[0]
        assert reply["cmd_id"] == command.cmd_id
        assert base64.b64decode(reply["snapshot"]["jpeg_b64"])[:2] == b"\xff\xd8"
        assert (reply["snapshot"]["width"], reply["snapshot"]["height"]) == (320, 240)
        ack = await eventually(
            lambda: [
                a
                for a in recorder.on("cmd/ack")
                if a["cmd_id"] == command.cmd_id and a["state"] != "received"
            ],
            20,
            every_s=0.05,
        )
        assert ack, "no final ack for the snapshot request"
        assert ack[0]["state"] == "succeeded"
        beat = await eventually(
            lambda: [t for t in recorder.on("telemetry") if t["fps"] > 0], 20, every_s=0.05
        )
        assert beat, "no telemetry with frames per second above 0"
        assert "mast" in beat[-1]["cameras"]
    finally:
        agent.request_stop()
        await asyncio.wait_for(task, 20)


async def test_a_corrupt_second_model_leaves_the_unit_degraded_but_seeing(
    mosquitto, agent_config, recorder_factory, tmp_path: Path
) -> None:
    street = await asyncio.to_thread(stall_model, tmp_path / "street")
    general = await asyncio.to_thread(stall_model, tmp_path / "general")
    data = bytearray((general / "model.onnx").read_bytes())
    data[-8] ^= 0xFF  # one flipped byte: the manifest's sha256 no longer matches
    (general / "model.onnx").write_bytes(bytes(data))
    clip = await asyncio.to_thread(gray_clip, tmp_path / "clip.avi")
    config = agent_config(
        mosquitto,
        DEVICE,
        vision={
            "detectors": {
                "street": {"model": str(street), "intra_threads": 1},
                "general": {"model": str(general), "intra_threads": 1},
            },
            "cameras": [
                {
                    "id": "mast",
                    "source": str(clip),
                    "detect_fps": 5,
                    "models": [{"name": "street"}, {"name": "general", "fps": 2}],
                    "location": {"lat": 28.6472, "lon": 121.2615},
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
    recorder = await asyncio.to_thread(recorder_factory, mosquitto)
    agent = Agent(load_config(config), config_path=config)
    task = asyncio.create_task(agent.run())
    try:
        # The street model still sees the stall and raises the event ...
        events = await eventually(lambda: recorder.on("event"), 20, every_s=0.05)
        assert events, "no event reached the broker"
        event = events[0]
        assert event["objects"][0]["label"] == "stall"
        assert event["model"]["name"] == "const-detector"
        # ... and the unit says it runs without a model it was given.
        status = await eventually(
            lambda: [s for s in recorder.on("status") if s["state"] == "degraded"], 20, every_s=0.05
        )
        assert status, "the unit did not report itself degraded"
        assert set(status[-1]["model"].split(", ")) == {
            "street=const-detector@1.0.0",
            "general=const-detector@1.0.0",
        }
    finally:
        agent.request_stop()
        await asyncio.wait_for(task, 20)


async def test_a_unit_with_the_hubs_model_key_runs_only_signed_packages(
    mosquitto, agent_config, recorder_factory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With ``hub.model_public_key`` the unit loads the package the hub signed and refuses
    the other (valid, but unsigned) with the reason, running degraded without it."""
    from edge_agent.vision.package import sign_package

    model_key = protocol.generate_signing_key()
    street = await asyncio.to_thread(stall_model, tmp_path / "street")
    general = await asyncio.to_thread(stall_model, tmp_path / "general")
    await asyncio.to_thread(sign_package, street, model_key)
    clip = await asyncio.to_thread(gray_clip, tmp_path / "clip.avi")
    camera = {
        "id": "mast",
        "source": str(clip),
        "detect_fps": 5,
        "models": [{"name": "street"}, {"name": "general", "fps": 2}],
        "location": {"lat": 28.6472, "lon": 121.2615},
        "zones": [{"name": "pavement", "polygon": [[0, 0.4], [1, 0.4], [1, 1], [0, 1]]}],
        "rules": [{"name": "vendor", "kind": "vendor", "zone": "pavement", "dwell_s": 1.0}],
    }
    config = agent_config(
        mosquitto,
        DEVICE,
        hub={
            "public_key": protocol.public_key_b64(protocol.generate_signing_key()),
            "model_public_key": protocol.public_key_b64(model_key),
        },
        vision={
            "detectors": {
                "street": {"model": str(street), "intra_threads": 1},
                "general": {"model": str(general), "intra_threads": 1},
            },
            "cameras": [camera],
        },
    )
    recorder = await asyncio.to_thread(recorder_factory, mosquitto)
    agent = Agent(load_config(config), config_path=config)
    task = asyncio.create_task(agent.run())
    try:
        events = await eventually(lambda: recorder.on("event"), 20, every_s=0.05)
        assert events, "the signed model raised no event"
        status = await eventually(
            lambda: [s for s in recorder.on("status") if s["state"] == "degraded"], 20, every_s=0.05
        )
        assert status, "the unit did not report itself degraded"
        assert f"package {general} is not signed" in caplog.text
    finally:
        agent.request_stop()
        await asyncio.wait_for(task, 20)
