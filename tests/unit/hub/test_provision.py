"""Provisioning files: password hashes, ACL text, device config valid for the edge agent."""

from __future__ import annotations

from pathlib import Path

import pytest

from central_hub.cli import main
from central_hub.errors import ProvisionError
from central_hub.services.provision import (
    hash_password,
    provision_device,
    read_password_file,
    render_acl,
    verify_password,
)
from edge_agent.config import load_config
from edge_agent.protocol import generate_signing_key, public_key_b64


def _provision(tmp_path: Path, device: str, kind: str = "pole") -> object:
    return provision_device(
        device,
        kind=kind,
        broker_dir=tmp_path / "broker",
        out_dir=tmp_path / "devices",
        public_key=public_key_b64(generate_signing_key()),
        mqtt_host="broker.local",
        mqtt_port=8883,
    )


def test_hash_is_mosquitto_pbkdf2_format() -> None:
    hashed = hash_password("pw", salt=b"\x00" * 12)
    kind, iterations, salt, digest = hashed.split("$")[1:]
    assert (kind, iterations, salt) == ("7", "101", "AAAAAAAAAAAAAAAA")
    assert len(digest) == 88  # base64 of 64 bytes
    assert verify_password("pw", hashed)
    assert not verify_password("pw", "$6$not$ours")


def test_acl_gives_devices_only_their_own_topics() -> None:
    text = render_acl(["pole-1", "hub"], ["hub"])
    hub_block, dev_block = text.split("\n\nuser ")[1:]
    assert hub_block.splitlines() == ["hub", "topic readwrite xh/v1/#"]
    lines = dev_block.splitlines()
    assert lines[0] == "pole-1"
    assert "topic read xh/v1/dev/pole-1/cmd" in lines
    assert "topic read xh/v1/dev/pole-1/config/desired" in lines
    assert "topic write xh/v1/dev/pole-1/event" in lines
    assert "topic write xh/v1/dev/pole-1/cmd" not in lines
    assert all("pole-1" in line for line in lines[1:])


def test_provision_writes_a_valid_agent_config(tmp_path: Path) -> None:
    result = _provision(tmp_path, "truck-7", "truck")
    config = load_config(result.config_path)  # type: ignore[attr-defined]
    assert config.device.id == "truck-7"
    assert config.device.kind == "truck"
    assert config.mqtt.username == "truck-7"
    assert config.mqtt.port == 8883
    secret = config.mqtt.secret()
    users = read_password_file(result.password_file)  # type: ignore[attr-defined]
    assert secret is not None
    assert verify_password(secret, users["truck-7"])
    assert (result.password_path.stat().st_mode & 0o777) == 0o600  # type: ignore[attr-defined]


def test_reprovisioning_rotates_one_password_and_keeps_the_rest(tmp_path: Path) -> None:
    first = _provision(tmp_path, "pole-1")
    _provision(tmp_path, "pole-2")
    before = read_password_file(first.password_file)  # type: ignore[attr-defined]
    _provision(tmp_path, "pole-1")
    after = read_password_file(first.password_file)  # type: ignore[attr-defined]
    assert set(after) == {"hub", "pole-1", "pole-2"}
    assert after["pole-2"] == before["pole-2"]
    assert after["hub"] == before["hub"]
    assert after["pole-1"] != before["pole-1"]


@pytest.mark.parametrize(
    ("device", "kind", "message"),
    [("Bad_Id", "pole", "invalid device id"), ("pole-1", "drone", "kind"), ("hub", "pole", "hub")],
)
def test_bad_requests_are_refused_with_the_reason(
    tmp_path: Path, device: str, kind: str, message: str
) -> None:
    with pytest.raises(ProvisionError, match=message):
        _provision(tmp_path, device, kind)


def test_cli_provision(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "--data-dir", str(tmp_path / "hub"), "provision", "pole-3",
            "--broker-dir", str(tmp_path / "b"), "--out", str(tmp_path / "d"),
        ]
    )  # fmt: skip
    assert rc == 0
    assert (tmp_path / "d" / "pole-3" / "agent.yaml").exists()
    assert "hub user: hub" in capsys.readouterr().out
    assert main(["--data-dir", str(tmp_path / "hub"), "provision", "NOPE"]) == 1
    assert "invalid device id" in capsys.readouterr().err


def test_a_provisioned_unit_carries_the_model_key_when_given(tmp_path: Path) -> None:
    """Provisioned with the hub's model key, the unit's config makes it refuse unsigned
    models; without one, the config has no such key."""
    model_key = public_key_b64(generate_signing_key())
    result = provision_device(
        "pole-signed",
        kind="pole",
        broker_dir=tmp_path / "broker",
        out_dir=tmp_path / "devices",
        public_key=public_key_b64(generate_signing_key()),
        mqtt_host="broker.local",
        mqtt_port=8883,
        model_public_key=model_key,
    )
    assert load_config(result.config_path).hub.model_public_key == model_key
    plain = _provision(tmp_path, "pole-plain")
    assert load_config(plain.config_path).hub.model_public_key is None  # type: ignore[attr-defined]
