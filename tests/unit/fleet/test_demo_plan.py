"""Demo plan and status table (pure), and the embedded broker's codec and access rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from central_hub.services.provision import hash_password, render_acl
from edge_agent.config import parse_config
from edge_agent.protocol import generate_signing_key, public_key_b64
from simulators.broker import codec
from simulators.broker.access import (
    AccessFileError,
    check_password,
    parse_acl,
    parse_passwords,
    split_shared,
    topic_matches,
    valid_filter,
)
from simulators.demo.plan import (
    TRUCK_MAX_SPEED,
    DemoPlanError,
    agent_config,
    demo_devices,
    route_csv,
    scene_rate,
)
from simulators.demo.status import _fit, render, summarise


def test_devices_cover_the_four_codes() -> None:
    devices = demo_devices()
    codes = {c for d in devices for c in d.expected_codes}
    assert codes == {"0501", "0504", "0505", "2101"}
    assert [d.kind for d in devices].count("pole") == 2
    assert [d.kind for d in devices].count("truck") == 1


@pytest.mark.parametrize("speed", [0.5, 1.0, 10.0, 20.0, 30.0])
def test_wall_rates_stay_modest_at_any_speed(speed: float) -> None:
    pole_speed, pole_fps = scene_rate("pole", speed)
    truck_speed, truck_fps = scene_rate("truck", speed)
    assert pole_speed == speed
    assert pole_speed * pole_fps <= 2.0 + 1e-9  # frames per wall second
    assert truck_speed <= TRUCK_MAX_SPEED
    assert truck_speed * truck_fps <= 4.5 + 1e-9
    assert truck_fps >= 1.5 or truck_speed < TRUCK_MAX_SPEED


@pytest.mark.parametrize("speed", [0.0, -1.0, 31.0, float("nan")])
def test_bad_speed_is_refused_with_the_range(speed: float) -> None:
    with pytest.raises(DemoPlanError, match="between"):
        scene_rate("pole", speed)


def test_route_file_has_one_point_per_line() -> None:
    text = route_csv(((0.0, 28.1, 121.2), (1.0, 28.2, 121.3)))
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert lines == ["28.100000,121.200000", "28.200000,121.300000"]


def test_agent_config_validates(tmp_path: Path) -> None:
    device = demo_devices()[0]
    provisioned = {
        "device": {"id": device.device_id, "kind": "pole"},
        "mqtt": {"host": "127.0.0.1", "port": 1999, "username": device.device_id},
        "hub": {"public_key": public_key_b64(generate_signing_key())},
    }
    camera = {
        "id": "cam",
        "source": "scenario:market_street?seed=0&speed=20",
        "detect_fps": 0.1,
        "zones": [{"name": "pavement", "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}],
        "rules": [{"name": "v", "kind": "vendor", "zone": "pavement", "dwell_s": 60}],
    }
    config = agent_config(
        provisioned,
        device,
        camera=camera,
        location=(28.6, 121.2),
        state_dir=tmp_path,
        model_dir=tmp_path / "model",
        general_model_dir=tmp_path / "general",
        speaker_backend="wav",
        route_file=None,
        route_interval_s=1.0,
    )
    parsed = parse_config(config, tmp_path)
    # A demo pole runs both models: the street model on every frame, the general model
    # at half the camera's rate.
    assert sorted(parsed.vision.models) == ["general", "street"]
    assert parsed.vision.camera_models(parsed.vision.cameras[0]) == (
        ("street", None),
        ("general", 0.05),
    )
    assert parsed.speaker.backend == "wav"
    assert parsed.mqtt.backoff_cap_s <= 5
    assert parsed.device.location is not None
    assert provisioned["mqtt"].get("backoff_cap_s") is None  # the input is not changed


def test_status_table_counts() -> None:
    view = summarise(
        devices=[
            {"device_id": "b", "kind": "pole", "state": "online", "telemetry": {"fps": 2.0}},
            {"device_id": "a", "kind": "truck", "state": "offline", "telemetry": None},
        ],
        events=[{"device_id": "b"}, {"device_id": "b"}, {"device_id": "a"}],
        cases=[
            {"id": 1, "code": "0501", "stage": "closed", "title": "vendor", "event_count": 2},
            {"id": 2, "code": "0501", "stage": "reported", "title": "vendor", "event_count": 1},
        ],
        commands={"b": [{"state": "succeeded"}]},
    )
    assert [r.device_id for r in view.devices] == ["a", "b"]
    assert view.devices[1].events == 2
    assert view.cases_by_code == {"0501": 2}
    assert view.commands == {"succeeded": 1}
    text = render(view, header=["demo"])
    assert "0501 x2" in text
    assert "closed 1" in text
    assert "1 succeeded" in text
    assert [c[0] for c in view.latest] == [2, 1]
    assert "#2" in text


# --------------------------------------------------------------------------- broker


def test_topic_matching() -> None:
    assert topic_matches("xh/v1/dev/+/event", "xh/v1/dev/a/event")
    assert not topic_matches("xh/v1/dev/+/event", "xh/v1/dev/a/cmd/ack")
    assert topic_matches("xh/#", "xh/v1/dev/a/cmd/ack")
    assert topic_matches("xh/v1/#", "xh/v1")
    assert not topic_matches("#", "$SYS/broker")
    assert not valid_filter("xh/#/x")
    assert not valid_filter("xh/a+")
    assert split_shared("$share/hub/xh/v1/#") == ("hub", "xh/v1/#")
    assert split_shared("xh/v1/#") == (None, "xh/v1/#")
    with pytest.raises(ValueError, match="shared"):
        split_shared("$share/hub")


def test_passwords_from_provisioning_and_mosquitto_format() -> None:
    users = parse_passwords(f"hub:{hash_password('s3cret')}\n# comment\n")
    assert check_password(b"s3cret", users["hub"])
    assert not check_password(b"wrong", users["hub"])
    assert not check_password(b"s3cret", "$9$garbage")
    with pytest.raises(AccessFileError, match=":1:"):
        parse_passwords("no colon here")


def test_acl_from_provisioning() -> None:
    acl = parse_acl(render_acl(["pole-1"], ["hub"]))
    assert acl.allows("hub", "hub-1", "xh/v1/dev/pole-1/cmd", "write")
    assert acl.allows("pole-1", "pole-1", "xh/v1/dev/pole-1/event", "write")
    assert not acl.allows("pole-1", "pole-1", "xh/v1/dev/pole-2/event", "write")
    assert acl.allows("pole-1", "pole-1", "xh/v1/dev/pole-1/cmd", "read")
    assert not acl.allows("pole-1", "pole-1", "xh/v1/dev/pole-1/event", "read")
    assert not acl.allows(None, "x", "xh/v1/dev/pole-1/event", "write")
    patterns = parse_acl("pattern write xh/v1/dev/%u/event\n")
    assert patterns.allows("p", "c", "xh/v1/dev/p/event", "write")
    assert not patterns.allows(None, "c", "xh/v1/dev/p/event", "write")
    with pytest.raises(AccessFileError, match="deny"):
        parse_acl("topic deny xh/#\n")
    with pytest.raises(AccessFileError, match="unknown"):
        parse_acl("allow everything\n")


def test_codec_roundtrips() -> None:
    assert codec.encode_remaining_length(0) == b"\x00"
    assert codec.encode_remaining_length(321) == b"\xc1\x02"
    msg = codec.Publish("a/b", b"payload", 1, True, 7)
    raw = codec.publish_packet(msg)
    assert raw[0] >> 4 == codec.PUBLISH
    assert codec.decode_publish(raw[0] & 0x0F, raw[2:]) == msg
    with pytest.raises(codec.MalformedPacket, match="wildcard"):
        codec.decode_publish(0, b"\x00\x03a/#")
    sub = codec.decode_subscribe(b"\x00\x05\x00\x03a/b\x01")
    assert sub == codec.Subscribe(5, (("a/b", 1),))
    with pytest.raises(codec.MalformedPacket):
        codec.decode_connect(b"\x00\x04HTTP\x04\x02\x00\x1e\x00\x00")


def test_cjk_titles_line_up() -> None:
    assert _fit("店外经营 shop", 10) == "店外经营 s"
    assert _fit("店外", 5) == "店外 "
    assert len(_fit("abc", 5)) == 5
