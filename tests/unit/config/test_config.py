"""The agent config: example files, every error with its path, env overrides, secrets."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from edge_agent import protocol
from edge_agent.config import ConfigError, load_config, parse_config, register, validate_file

DEVICES = Path(__file__).resolve().parents[3] / "firmware_config" / "devices"
KEY = protocol.public_key_b64(protocol.generate_signing_key())


def minimal(**extra: object) -> dict[str, object]:
    return {
        "device": {"id": "pole-01", "kind": "pole"},
        "mqtt": {"host": "broker.local"},
        "hub": {"public_key": KEY},
        **extra,
    }


def write(tmp_path: Path, data: object, name: str = "dev.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


@pytest.mark.parametrize("path", sorted(DEVICES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_examples_validate(path: Path) -> None:
    assert validate_file(path) == []


def test_examples_cover_a_pole_and_a_truck() -> None:
    kinds = {load_config(p).device.kind for p in DEVICES.glob("*.yaml")}
    assert kinds == {"pole", "truck"}


def test_three_mistakes_are_all_reported_with_paths(tmp_path: Path) -> None:
    data = minimal()
    data["device"] = {"id": "Pole_01", "kind": "pole"}  # 1: bad id
    data["mqtt"] = {"host": "broker.local", "port": 70000}  # 2: port out of range
    data["speaker"] = {"backend": "wav", "wav_dir": "out", "volum": 0.5}  # 3: typo
    errors = validate_file(write(tmp_path, data))
    assert len(errors) == 3, errors
    assert errors[0].startswith("device.id: ")
    assert errors[1].startswith("mqtt.port: ")
    assert "70000" in errors[1]
    assert errors[2] == "speaker.volum: unknown field (not part of the config)"


def test_missing_sections_and_cross_checks(tmp_path: Path) -> None:
    errors = validate_file(write(tmp_path, {"device": {"id": "pole-01", "kind": "bus"}}))
    assert "mqtt: required field is missing" in errors
    assert "hub: required field is missing" in errors
    assert any(e.startswith("device.kind:") for e in errors)
    errors = validate_file(
        write(tmp_path, minimal(gps={"source": "route"}, speaker={"backend": "wav"}))
    )
    assert any("route_file" in e and e.startswith("gps") for e in errors)
    assert any("wav_dir" in e and e.startswith("speaker") for e in errors)


def test_bad_hub_key_and_both_passwords(tmp_path: Path) -> None:
    data = minimal()
    data["hub"] = {"public_key": "AAAA"}
    data["mqtt"] = {"host": "h", "password": "x", "password_file": "pw"}
    errors = validate_file(write(tmp_path, data))
    assert any(e.startswith("hub.public_key: not an Ed25519 public key") for e in errors)
    assert any(e.startswith("mqtt: ") and "not both" in e for e in errors)
    assert all("'x'" not in e for e in errors), "a password leaked into an error"


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("device:\n  id: pole-01\n  kind: [pole\n")
    errors = validate_file(path)
    assert len(errors) == 1
    assert errors[0].startswith("line ")
    assert "YAML" in errors[0]
    assert validate_file(tmp_path / "missing.yaml")[0].startswith("<file>: cannot read")
    path.write_text("- a list\n")
    assert validate_file(path) == ["<root>: expected a mapping, got list"]


def test_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "pw").write_text("s3cret\n")
    data = minimal(
        outbox={"path": "state/o.db"},
        speaker={"backend": "wav", "wav_dir": "/abs/out", "clips": {"c": "clips/c.wav"}},
    )
    data["mqtt"] = {"host": "h", "username": "pole-01", "password_file": "secrets/pw"}
    config = load_config(write(tmp_path, data))
    assert config.outbox.path == tmp_path / "state" / "o.db"
    assert config.speaker.wav_dir == Path("/abs/out")
    assert config.speaker.clips["c"] == tmp_path / "clips" / "c.wav"
    assert config.mqtt.secret() == "s3cret"


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, minimal())
    monkeypatch.setenv("XH_MQTT__HOST", "10.0.0.5")
    monkeypatch.setenv("XH_MQTT__PORT", "8883")
    monkeypatch.setenv("XH_TELEMETRY__INTERVAL_S", "5")
    config = load_config(path)
    assert config.mqtt.host == "10.0.0.5"
    assert config.mqtt.port == 8883
    assert config.telemetry.interval_s == 5
    assert config.device.id == "pole-01"
    monkeypatch.setenv("XH_MQTT__PORT", "many")
    assert any(e.startswith("mqtt.port:") for e in validate_file(path))


def test_hub_key_from_file(tmp_path: Path) -> None:
    (tmp_path / "hub.pub").write_text(KEY + "\n")
    data = minimal()
    data["hub"] = {"public_key_file": "hub.pub"}
    config = load_config(write(tmp_path, data))
    protocol.load_public_key(config.hub.key_text())
    data["hub"] = {}
    with pytest.raises(ConfigError, match="exactly one"):
        parse_config(data, tmp_path)


def test_validate_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    good = write(tmp_path, minimal(), "good.yaml")
    args = parser.parse_args(["validate", str(good)])
    assert args.func(args) == 0
    assert "ok" in capsys.readouterr().out
    bad = write(tmp_path, minimal(telemetry={"interval_s": -1}, oops=1), "bad.yaml")
    args = parser.parse_args(["validate", str(bad)])
    assert args.func(args) == 1
    err = capsys.readouterr().err
    assert "2 error(s)" in err
    assert "telemetry.interval_s" in err
    assert "oops" in err


def test_config_and_runner_import_without_opencv() -> None:
    import subprocess
    import sys

    code = (
        "import sys, edge_agent.config, edge_agent.runner, edge_agent.run_command; "
        "print(','.join(m for m in ('cv2', 'onnxruntime') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_run_subcommand_registers() -> None:
    from edge_agent import run_command

    parser = argparse.ArgumentParser()
    run_command.register(parser.add_subparsers())
    args = parser.parse_args(["run", "--config", "x.yaml"])
    assert args.config == "x.yaml"
    assert callable(args.func)


def test_run_with_a_broken_config_exits_2(tmp_path: Path) -> None:
    from edge_agent import run_command

    bad = write(tmp_path, {"device": {"id": "x"}})
    assert run_command.main(["--config", str(bad)]) == 2


def test_save_config_file_keeps_the_previous_one(tmp_path: Path) -> None:
    from edge_agent.config import save_config_file

    path = write(tmp_path, minimal())
    before = path.read_text()
    save_config_file(path, minimal(config_version=7))
    assert load_config(path).config_version == 7
    assert (tmp_path / "dev.yaml.prev").read_text() == before
    assert not (tmp_path / "dev.yaml.new").exists()


def test_configs_written_by_hub_provisioning_validate(tmp_path: Path) -> None:
    provision = pytest.importorskip("central_hub.services.provision")
    (tmp_path / "pw").write_text("secret\n")
    data = provision.device_config(
        "truck-07",
        "truck",
        mqtt_host="broker.local",
        mqtt_port=8883,
        password_file=tmp_path / "pw",
        public_key=KEY,
    )
    config = load_config(write(tmp_path, data))
    assert config.device.id == "truck-07"
    assert config.mqtt.secret() == "secret"
