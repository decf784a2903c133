"""Presence: retained birth on connect, `offline` on a clean stop, the last will on SIGKILL."""

from __future__ import annotations

import time

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_birth_clean_stop_and_last_will(mosquitto, agent_config, agent_process, recorder_factory):
    config = agent_config(mosquitto)
    recorder = recorder_factory(mosquitto, topic="xh/v1/dev/+/status")

    def states() -> list[str]:
        return [s["state"] for s in recorder.on("status")]

    agent = agent_process(config)
    assert recorder.wait_for(lambda: "online" in states()), agent.log_text()
    assert agent.terminate() == 0
    assert recorder.wait_for(lambda: states()[-1] == "offline", timeout=10)
    time.sleep(1.0)  # a will, if one were published, would arrive by now
    assert states().count("offline") == 1, "a clean stop must not trigger the last will"
    clean = len(states())

    agent = agent_process(config)
    assert recorder.wait_for(lambda: len(states()) > clean and states()[-1] == "online")
    boot = recorder.on("status")[-1]["boot_id"]
    agent.kill()
    # keepalive 5 s: the broker gives up after 1.5 keepalives and publishes the will.
    started = time.monotonic()
    assert recorder.wait_for(lambda: states()[-1] == "offline", timeout=15), states()
    will = recorder.on("status")[-1]
    assert will["boot_id"] == boot, "the will belongs to the killed process"
    assert time.monotonic() - started < 15

    # A late subscriber sees the retained state.
    late = recorder_factory(mosquitto, topic="xh/v1/dev/+/status")
    assert late.wait_for(lambda: bool(late.on("status")), timeout=5)
    assert late.messages[0][2] is True, "status must be retained"
    assert late.on("status")[0]["state"] == "offline"
