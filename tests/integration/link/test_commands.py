"""Acceptance: signed commands over a real broker, with the agent in this process."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edge_agent import protocol
from edge_agent.config import load_config
from edge_agent.runner import Agent
from edge_agent.speaker.audio import read_wav
from simulators.polling import eventually

pytestmark = pytest.mark.integration

DEVICE = "pole-test-01"


@contextlib.asynccontextmanager
async def running(config: Path) -> AsyncIterator[Agent]:
    agent = Agent(load_config(config), config_path=config)
    task = asyncio.create_task(agent.run(), name="agent")
    try:
        yield agent
    finally:
        agent.request_stop()
        await asyncio.wait_for(task, 20)


def final_ack(recorder: Any, cmd_id: str) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        for ack in recorder.on("cmd/ack"):
            if ack["cmd_id"] == cmd_id and ack["state"] != "received":
                return ack
        return None

    return check


def send(recorder: Any, command: protocol.Command | dict[str, Any]) -> None:
    payload = (
        protocol.encode(command)
        if isinstance(command, protocol.Command)
        else json.dumps(command).encode()
    )
    recorder.publish(protocol.topic(DEVICE, protocol.Channel.CMD), payload)


async def test_signed_commands_are_run_and_bad_ones_refused(
    mosquitto, agent_config, recorder_factory, hub_key, tmp_path
):
    config = agent_config(mosquitto, DEVICE)
    spoken = tmp_path / "spoken"
    recorder = await asyncio.to_thread(recorder_factory, mosquitto)
    now = datetime.now(UTC)
    good = protocol.sign_command(
        hub_key,
        device_id=DEVICE,
        kind="speaker.say",
        params={"text": "请勿占道经营"},
        issued_at=now,
    )
    forger = protocol.generate_signing_key()
    forged = protocol.sign_command(
        forger, device_id=DEVICE, kind="speaker.say", params={"text": "伪造"}, issued_at=now
    )
    expired = protocol.sign_command(
        hub_key,
        device_id=DEVICE,
        kind="speaker.say",
        params={"text": "过期"},
        issued_at=now - timedelta(hours=1),
        ttl=timedelta(minutes=10),
    )
    unsigned = protocol.sign_command(
        hub_key, device_id=DEVICE, kind="speaker.say", params={"text": "无签名"}, issued_at=now
    ).model_copy(update={"sig": None})

    async with running(config):
        assert await eventually(
            lambda: any(s["state"] == "online" for s in recorder.on("status")), 20, every_s=0.05
        ), "the agent did not come online"
        await asyncio.to_thread(send, recorder, good)
        ack = await eventually(final_ack(recorder, good.cmd_id), 20, every_s=0.05)
        assert ack, "no final ack for the good command"
        assert ack["state"] == "succeeded", ack
        files = sorted(spoken.glob("*.wav"))
        assert len(files) == 1
        speech = read_wav(files[0])
        assert speech.duration_s > 0.5
        assert speech.peak() > 1000, "the WAV file holds silence, not speech"

        for command, state, reason in (
            (forged, "rejected", "bad_signature"),
            (expired, "expired", "expired"),
            (unsigned, "rejected", "unsigned"),
            (good, "rejected", "replayed"),
        ):
            await asyncio.to_thread(send, recorder, command)
            ack = await eventually(
                final_ack(recorder, command.cmd_id)
                if command is not good
                else (
                    lambda: next(
                        (
                            a
                            for a in recorder.on("cmd/ack")
                            if a["cmd_id"] == good.cmd_id and a["state"] == "rejected"
                        ),
                        None,
                    )
                ),
                20,
                every_s=0.05,
            )
            assert ack, f"no final ack for the {reason} command"
            assert ack["state"] == state, ack
            assert ack["detail"].startswith(reason), ack

    # After a restart the replay is still refused: the seen ids live on disk.
    online_before = len([s for s in recorder.on("status") if s["state"] == "online"])
    async with running(config):
        before = len([a for a in recorder.on("cmd/ack") if a["cmd_id"] == good.cmd_id])
        # Send once the restarted unit is back online (its start can be slow on a busy box).
        assert await eventually(
            lambda: (
                len([s for s in recorder.on("status") if s["state"] == "online"]) > online_before
            ),
            60,
            every_s=0.05,
        ), "the unit did not come back online"
        await asyncio.to_thread(send, recorder, good)
        acks = await eventually(
            lambda: (
                found
                if len(found := [a for a in recorder.on("cmd/ack") if a["cmd_id"] == good.cmd_id])
                > before
                else None
            ),
            20,
            every_s=0.05,
        )
        assert acks, "no new ack for the replay after the restart"
        assert acks[-1]["state"] == "rejected"
        assert acks[-1]["detail"].startswith("replayed")
    assert len(sorted(spoken.glob("*.wav"))) == 1, "a refused command made the speaker talk"


async def test_config_apply_applies_rejects_and_rolls_back(
    mosquitto, agent_config, recorder_factory, hub_key, tmp_path
):
    config = agent_config(mosquitto, DEVICE)
    recorder = await asyncio.to_thread(recorder_factory, mosquitto)
    base = load_config(config)
    current = json.loads(base.model_dump_json(exclude={"config_version"}))

    def apply(version: int, data: dict[str, Any]) -> protocol.Command:
        return protocol.sign_command(
            hub_key,
            device_id=DEVICE,
            kind="config.apply",
            params={"version": version, "config": data},
            issued_at=datetime.now(UTC),
        )

    def reported(version: int) -> Callable[[], dict[str, Any] | None]:
        return lambda: next(
            (r for r in recorder.on("config/reported") if r["version"] == version), None
        )

    async with running(config) as agent:
        assert await eventually(
            lambda: any(s["state"] == "online" for s in recorder.on("status")), 20, every_s=0.05
        ), "the agent did not come online"
        louder = {**current, "speaker": {**current["speaker"], "volume": 0.3}}
        cmd = apply(2, louder)
        await asyncio.to_thread(send, recorder, cmd)
        ack = await eventually(final_ack(recorder, cmd.cmd_id), 20, every_s=0.05)
        assert ack, "no final ack for config version 2"
        assert ack["state"] == "succeeded"
        report = await eventually(reported(2), 20, every_s=0.05)
        assert report, "config version 2 was not reported"
        assert report["state"] == "applied"
        assert agent.config.speaker.volume == 0.3
        assert load_config(config).config_version == 2, "the applied config was not saved"

        broken = {**current, "speaker": {**current["speaker"], "volume": 3}, "nonsense": 1}
        cmd = apply(3, broken)
        await asyncio.to_thread(send, recorder, cmd)
        ack = await eventually(final_ack(recorder, cmd.cmd_id), 20, every_s=0.05)
        assert ack, "no final ack for config version 3"
        assert ack["state"] == "failed"
        report = await eventually(reported(3), 20, every_s=0.05)
        assert report, "config version 3 was not reported"
        assert report["state"] == "rejected"
        assert any(e.startswith("speaker.volume") for e in report["errors"])
        assert any(e.startswith("nonsense") for e in report["errors"])

        # Valid on paper, but the stage cannot start: a clip file that does not exist.
        missing = {**current, "speaker": {**current["speaker"], "clips": {"x": "nope.wav"}}}
        cmd = apply(4, missing)
        await asyncio.to_thread(send, recorder, cmd)
        ack = await eventually(final_ack(recorder, cmd.cmd_id), 20, every_s=0.05)
        assert ack, "no final ack for config version 4"
        assert ack["state"] == "failed"
        report = await eventually(reported(4), 20, every_s=0.05)
        assert report, "config version 4 was not reported"
        assert report["state"] == "rolled_back"
        assert agent.config.config_version == 2
        assert agent.config.speaker.volume == 0.3


async def test_retained_config_desired_is_applied_once(
    mosquitto, agent_config, recorder_factory, hub_key, tmp_path
):
    config = agent_config(mosquitto, DEVICE)
    recorder = await asyncio.to_thread(recorder_factory, mosquitto)
    desired = protocol.sign_desired(
        hub_key,
        device_id=DEVICE,
        version=5,
        config={"speaker": {"backend": "null", "volume": 0.25}},
    )
    topic = protocol.topic(DEVICE, protocol.Channel.CONFIG_DESIRED)
    await asyncio.to_thread(
        lambda: recorder.client.publish(
            topic, protocol.encode(desired), qos=1, retain=True
        ).wait_for_publish(5)
    )

    def reports() -> list[dict[str, Any]]:
        return [r for r in recorder.on("config/reported") if r["version"] == 5]

    async with running(config) as agent:
        found = await eventually(reports, 20, every_s=0.05)
        assert found, "the retained config version 5 was not reported"
        report = found[0]
        assert report["state"] == "applied", report
        assert agent.config.speaker.volume == 0.25
        assert agent.config.mqtt.port == mosquitto.port, "sections left out are kept"
    saved = load_config(config)
    assert saved.config_version == 5
    assert saved.speaker.backend == "null"
    # The retained copy arrives again after a restart: already running it, no new report.
    async with running(config) as agent:
        assert await eventually(
            lambda: any(s["state"] == "online" for s in recorder.on("status")[1:]),
            20,
            every_s=0.05,
        ), "the agent did not come online after the restart"
        await asyncio.sleep(0.5)
        assert agent.config.config_version == 5
    assert len(reports()) == 1


async def test_a_desired_config_not_signed_by_the_hub_is_refused(
    mosquitto, agent_config, recorder_factory, hub_key, tmp_path
):
    """Whoever can write config/desired (or sits on the link) cannot reconfigure a unit:
    unsigned, signed by another key, or signed for another unit, nothing is applied."""
    config = agent_config(mosquitto, DEVICE)
    recorder = await asyncio.to_thread(recorder_factory, mosquitto)
    evil = {"speaker": {"backend": "null", "volume": 1.0}}
    forged = [
        protocol.ConfigDesired(device_id=DEVICE, version=7, config=evil),
        protocol.sign_desired(
            protocol.generate_signing_key(), device_id=DEVICE, version=8, config=evil
        ),
        protocol.sign_desired(hub_key, device_id="pole-other-01", version=9, config=evil),
    ]
    tampered = protocol.sign_desired(
        hub_key, device_id=DEVICE, version=10, config={"speaker": {"volume": 0.1}}
    )
    topic = protocol.topic(DEVICE, protocol.Channel.CONFIG_DESIRED)
    async with running(config) as agent:
        for n, message in enumerate([*forged, tampered.model_copy(update={"config": evil})]):
            payload = protocol.encode(message)
            await asyncio.to_thread(
                lambda p=payload: recorder.client.publish(
                    topic, p, qos=1, retain=True
                ).wait_for_publish(5)
            )
            # One at a time: a retained message published before the unit subscribed
            # would be replaced by the next one and never reach it.
            assert await eventually(lambda n=n: agent._applier.refused == n + 1, 20, every_s=0.05)
        assert agent.config.config_version == 0
        assert agent.config.speaker.volume != 1.0
        assert not recorder.on("config/reported")
        # The hub's own, signed for this unit, still applies.
        good = protocol.sign_desired(
            hub_key, device_id=DEVICE, version=11, config={"speaker": {"volume": 0.4}}
        )
        payload = protocol.encode(good)
        await asyncio.to_thread(
            lambda: recorder.client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
        )
        assert await eventually(lambda: agent.config.config_version == 11, 20, every_s=0.05)
        assert agent.config.speaker.volume == 0.4
