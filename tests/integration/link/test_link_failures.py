"""Acceptance: wrong credentials and an unreachable broker give a clear line and backoff."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from edge_agent.backoff import Backoff
from edge_agent.link import mqtt as mqtt_module
from edge_agent.link.mqtt import BrokerLink, LinkSettings
from simulators.mosquitto import free_port, write_password_file

pytestmark = pytest.mark.integration


class Quiet:
    """A listener that counts what it hears."""

    def __init__(self) -> None:
        self.up = 0
        self.down = 0

    def link_up(self) -> None:
        self.up += 1

    def link_down(self, reason: str) -> None:
        self.down += 1

    def message(self, topic: str, payload: bytes) -> None:
        pass

    def published(self, mids: list[int]) -> None:
        pass


async def _watch(link: BrokerLink, seconds: float) -> Quiet:
    listener = Quiet()
    link.start(listener)
    await asyncio.sleep(seconds)
    await link.stop()
    return listener


async def test_wrong_password_is_logged_and_retried_with_backoff(
    broker_factory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    passwd = write_password_file(tmp_path / "passwd", {"pole-test-01": "right"})
    broker = await asyncio.to_thread(broker_factory, password_file=passwd)
    settings = LinkSettings(
        host=broker.host,
        port=broker.port,
        client_id="pole-test-01",
        username="pole-test-01",
        password="wrong",
    )
    link = BrokerLink(settings, backoff=Backoff(0.4, 1.0))
    with caplog.at_level(logging.WARNING, logger=mqtt_module.__name__):
        listener = await _watch(link, 2.0)
    assert listener.up == 0
    assert 2 <= link.attempts <= 7, f"{link.attempts} attempts in 2 s: not a backoff"
    refusals = [
        r.getMessage() for r in caplog.records if "refused the connection" in r.getMessage()
    ]
    assert refusals, [r.getMessage() for r in caplog.records]
    assert "mqtt.username" in refusals[0]
    assert "retrying in" in caplog.text


async def test_right_password_connects(broker_factory, tmp_path: Path) -> None:
    passwd = write_password_file(tmp_path / "passwd", {"pole-test-01": "right"})
    broker = await asyncio.to_thread(broker_factory, password_file=passwd)
    settings = LinkSettings(
        host=broker.host,
        port=broker.port,
        client_id="pole-test-01",
        username="pole-test-01",
        password="right",
    )
    listener = await _watch(BrokerLink(settings), 1.0)
    assert listener.up == 1


async def test_unreachable_broker_backs_off_without_crashing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    settings = LinkSettings(host="127.0.0.1", port=port, client_id="pole-test-01")
    link = BrokerLink(settings, backoff=Backoff(0.4, 1.0))
    with caplog.at_level(logging.WARNING, logger=mqtt_module.__name__):
        listener = await _watch(link, 2.0)
    assert listener.up == 0
    assert 2 <= link.attempts <= 7, f"{link.attempts} attempts in 2 s: not a backoff"
    assert f"cannot reach MQTT broker 127.0.0.1:{port}" in caplog.text
    assert link.last_error is not None
    assert "cannot reach" in link.last_error
