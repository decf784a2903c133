"""The NATS server config the simulators write: topics as subjects, users with grants."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.mosquitto import BrokerError
from simulators.nats import NatsBroker, NatsUser, mqtt_filter_to_subject


def test_topic_filters_become_the_subjects_the_gateway_uses() -> None:
    assert mqtt_filter_to_subject("xh/v1/dev/pole-1/cmd/ack") == "xh.v1.dev.pole-1.cmd.ack"
    assert mqtt_filter_to_subject("xh/v1/dev/+/event") == "xh.v1.dev.*.event"
    assert mqtt_filter_to_subject("xh/v1/#") == "xh.v1.>"
    with pytest.raises(BrokerError, match="no NATS subject"):
        mqtt_filter_to_subject("xh/v1/dev/pole.1/event")


def test_users_are_written_with_their_grants_and_the_delivery_subjects(tmp_path: Path) -> None:
    user = NatsUser("pole-1", "s3cret", ("xh/v1/dev/pole-1/event",), ("xh/v1/dev/pole-1/cmd",))
    text = NatsBroker(tmp_path, port=1, nats_port=2, users=(user,)).render_config()
    assert 'user: "pole-1", password: "s3cret"' in text
    assert 'publish: ["xh.v1.dev.pole-1.event"]' in text
    assert 'subscribe: ["xh.v1.dev.pole-1.cmd", "$MQTT.sub.>"]' in text
    assert "authorization" not in NatsBroker(tmp_path, port=1, nats_port=2).render_config()
    with pytest.raises(BrokerError, match="cannot be written"):
        NatsUser("x", 'pass"word', (), ()).render()


def test_the_mqtt_port_speaks_tls_and_asks_for_a_client_certificate(tmp_path: Path) -> None:
    files = (tmp_path / "ca.crt", tmp_path / "broker.crt", tmp_path / "broker.key")
    text = NatsBroker(tmp_path, port=1, nats_port=2, tls=files).render_config()
    mqtt = next(line for line in text.splitlines() if line.startswith("mqtt {"))
    assert f'ca_file: "{files[0]}"' in mqtt
    assert f'cert_file: "{files[1]}", key_file: "{files[2]}"' in mqtt
    assert "verify: true" in mqtt
    assert "cert_file" not in NatsBroker(tmp_path, port=1, nats_port=2).render_config()
