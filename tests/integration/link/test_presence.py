"""Presence: retained birth on connect, `offline` on a clean stop, the last will on SIGKILL."""

from __future__ import annotations

import time

import pytest

from simulators.polling import eventually_sync

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_birth_clean_stop_and_last_will(mosquitto, agent_config, agent_process, recorder_factory):
    config = agent_config(mosquitto)
    recorder = recorder_factory(mosquitto, topic="xh/v1/dev/+/status")

    def states() -> list[str]:
        return [s["state"] for s in recorder.on("status")]

    agent = agent_process(config)
    assert eventually_sync(lambda: "online" in states(), 20), agent.log_text()
    assert agent.terminate() == 0
    assert eventually_sync(lambda: states()[-1] == "offline", 10), states()
    time.sleep(1.0)  # a will, if one were published, would arrive by now
    assert states().count("offline") == 1, "a clean stop must not trigger the last will"
    clean = len(states())

    agent = agent_process(config)
    assert eventually_sync(lambda: len(states()) > clean and states()[-1] == "online", 20), states()
    boot = recorder.on("status")[-1]["boot_id"]
    agent.kill()
    # keepalive 5 s: the broker gives up after 1.5 keepalives and publishes the will.
    started = time.monotonic()
    assert eventually_sync(lambda: states()[-1] == "offline", 15), states()
    will = recorder.on("status")[-1]
    assert will["boot_id"] == boot, "the will belongs to the killed process"
    assert time.monotonic() - started < 15

    # A late subscriber sees the retained state.
    late = recorder_factory(mosquitto, topic="xh/v1/dev/+/status")
    assert eventually_sync(lambda: bool(late.on("status")), 5), "no retained status"
    assert late.messages[0][2] is True, "status must be retained"
    assert late.on("status")[0]["state"] == "offline"
