"""The hub's MQTT TLS settings: pairs checked when loaded, files checked when it connects,
each error naming the setting and its ``XH_HUB_`` variable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from central_hub.adapters.mqtt import HubMqtt
from central_hub.errors import BrokerError, SettingsError
from central_hub.services.provision import provision_device
from central_hub.settings import HubSettings
from edge_agent.protocol import generate_signing_key, public_key_b64


def test_environment_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XH_HUB_MQTT_TLS_CA", str(tmp_path / "ca.crt"))
    monkeypatch.setenv("XH_HUB_MQTT_TLS_CERT", str(tmp_path / "hub.crt"))
    monkeypatch.setenv("XH_HUB_MQTT_TLS_KEY", str(tmp_path / "hub.key"))
    settings = HubSettings()
    assert settings.mqtt_tls_ca == tmp_path / "ca.crt"
    assert settings.mqtt_tls_key == tmp_path / "hub.key"


def test_cert_and_key_go_together_and_need_a_ca(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="both mqtt_tls_cert and mqtt_tls_key"):
        HubSettings(mqtt_tls_ca=tmp_path / "ca", mqtt_tls_cert=tmp_path / "c")
    with pytest.raises(ValidationError, match="needs mqtt_tls_ca"):
        HubSettings(mqtt_tls_cert=tmp_path / "c", mqtt_tls_key=tmp_path / "k")
    assert HubSettings(mqtt_tls_ca=tmp_path / "ca").mqtt_tls_cert is None  # a CA alone is fine


def test_a_missing_or_unreadable_file_names_its_setting(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("x")
    (tmp_path / "hub.crt").write_text("x")
    settings = HubSettings(
        mqtt_tls_ca=tmp_path / "ca.crt",
        mqtt_tls_cert=tmp_path / "hub.crt",
        mqtt_tls_key=tmp_path / "hub.key",
    )
    with pytest.raises(SettingsError, match=r"mqtt_tls_key \(XH_HUB_MQTT_TLS_KEY\): no such file"):
        settings.check_mqtt_tls()
    (tmp_path / "hub.key").write_text("x")
    settings.check_mqtt_tls()
    if os.geteuid() != 0:  # root reads anything
        (tmp_path / "hub.crt").chmod(0)
        with pytest.raises(SettingsError, match=r"mqtt_tls_cert \(XH_HUB_MQTT_TLS_CERT\): cannot"):
            settings.check_mqtt_tls()


def test_the_adapter_loads_provisioned_files_and_refuses_bad_ones(tmp_path: Path) -> None:
    result = provision_device(
        "pole-a",
        kind="pole",
        broker_dir=tmp_path / "broker",
        out_dir=tmp_path / "devices",
        public_key=public_key_b64(generate_signing_key()),
        mqtt_host="localhost",
        mqtt_port=8883,
    )
    tls = result.broker_tls
    assert tls is not None

    def hub(key: Path) -> HubMqtt:
        return HubMqtt(
            host="localhost",
            port=8883,
            client_id="hub-t",
            subscriptions=[],
            tls_ca=tls.ca,
            tls_cert=tls.hub.cert,
            tls_key=key,
        )

    hub(tls.hub.key)
    with pytest.raises(BrokerError, match="cannot load the MQTT TLS files"):
        hub(result.config_path.parent / "client.key")  # the device's key: not the hub's pair


def test_the_api_certificate_and_key_come_together_and_make_the_url_https(
    tmp_path: Path,
) -> None:
    with pytest.raises(ValidationError, match="api_tls_cert and api_tls_key"):
        HubSettings(data_dir=tmp_path, api_tls_cert=tmp_path / "api.crt")
    settings = HubSettings(
        data_dir=tmp_path, api_tls_cert=tmp_path / "api.crt", api_tls_key=tmp_path / "api.key"
    )
    assert settings.api_url == "https://127.0.0.1:8080"
    assert HubSettings(data_dir=tmp_path).api_url == "http://127.0.0.1:8080"
