"""The v1 wire contract: round trips, validation errors, topics, ids, signed commands."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent import protocol as p

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
JPEG = base64.b64encode(b"\xff\xd8\xff\xe0" + b"\0" * 64).decode()


def make_event(**overrides: Any) -> p.Event:
    fields: dict[str, Any] = {
        "event_id": p.uuid7(),
        "device_id": "pole-01",
        "camera_id": "cam-1",
        "seq": 7,
        "kind": "shop_front_overflow",
        "code": "0504",
        "started_at": NOW,
        "detected_at": NOW + timedelta(minutes=2),
        "dwell_s": 120.0,
        "confidence": 0.87,
        "objects": [{"label": "goods", "score": 0.8, "box": (0.1, 0.6, 0.2, 0.7), "track_id": 3}],
        "zone": "shop_front",
        "location": {"lat": 28.6472, "lon": 121.2615, "source": "fixed"},
        "snapshot": {"jpeg_b64": JPEG, "width": 1280, "height": 720},
        "model": {"name": "street-detector", "version": "1.0.0"},
        "plate": {"text": "浙JA12345", "score": 0.9},
    }
    fields.update(overrides)
    return p.Event.model_validate(fields)


SAMPLES: list[p._Message] = [
    p.Status(
        device_id="pole-01", state="online", boot_id="b1", fw="0.1.0", config_version=3, ts=NOW
    ),
    make_event(),
    p.Telemetry(
        device_id="truck-01",
        ts=NOW,
        uptime_s=10,
        fps=4.9,
        inference_ms=12.5,
        outbox_depth=3,
        outbox_bytes=4096,
        evicted=0,
        gps=p.GpsFix(ts=NOW, lat=28.65, lon=121.26, speed_kmh=20),
        cameras={"rear": p.CameraHealth(state="ok", fps=5)},
    ),
    p.Track(
        device_id="truck-01", batch_id=p.uuid7(), points=(p.GpsFix(ts=NOW, lat=28.65, lon=121.26),)
    ),
    p.CommandAck(cmd_id=p.uuid7(), device_id="pole-01", state="succeeded", detail="played", ts=NOW),
    p.ConfigDesired(device_id="pole-01", version=4, config={"speaker": {"volume": 0.5}}),
    p.ConfigReported(device_id="pole-01", version=4, state="rolled_back", errors=("x",), ts=NOW),
    p.SnapshotReply(
        device_id="pole-01",
        cmd_id=p.uuid7(),
        camera_id="cam-1",
        snapshot=p.Snapshot(jpeg_b64=JPEG, width=2, height=2),
        ts=NOW,
    ),
]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: m.SCHEMA)
def test_every_message_round_trips(message: p._Message) -> None:
    wire = p.encode(message)
    assert json.loads(wire)["schema"] == message.SCHEMA
    assert p.decode(type(message), wire) == message


def test_signed_command_round_trips() -> None:
    key = p.generate_signing_key()
    cmd = p.sign_command(
        key, device_id="pole-01", kind="speaker.play", params={"clip": "x"}, issued_at=NOW
    )
    assert p.decode(p.Command, p.encode(cmd)) == cmd


def test_every_channel_has_a_message_type() -> None:
    assert set(p.MESSAGE_TYPES) == set(p.Channel)


def test_missing_required_field_is_named() -> None:
    data = json.loads(p.encode(make_event()))
    del data["device_id"]
    with pytest.raises(p.MalformedPayload) as info:
        p.decode(p.Event, json.dumps(data))
    assert "device_id" in str(info.value)
    assert info.value.fields == ("device_id",)


def test_nested_field_errors_carry_their_path() -> None:
    data = json.loads(p.encode(make_event()))
    data["objects"][0]["score"] = 3
    with pytest.raises(p.MalformedPayload) as info:
        p.decode(p.Event, json.dumps(data))
    assert info.value.fields == ("objects.0.score",)


def test_unknown_fields_are_tolerated() -> None:
    data = json.loads(p.encode(make_event()))
    data["added_in_v1_1"] = {"anything": [1, 2]}
    data["location"]["altitude"] = 12
    assert p.decode(p.Event, json.dumps(data)).event_id == data["event_id"]


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b"[1, 2]", "not an object"),
        (b"{", "not UTF-8 JSON"),
        (b'{"schema": "xh.event/1"}', "missing required field"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON"),
    ],
)
def test_garbage_is_malformed_not_a_crash(payload: bytes, needle: str) -> None:
    with pytest.raises(p.MalformedPayload, match=needle):
        p.decode(p.Event, payload)


def test_bytes_and_mapping_decode_alike() -> None:
    """The JSON fast path and the mapping path give the same message."""
    event = make_event()
    wire = p.encode(event)
    assert p.decode(p.Event, wire) == p.decode(p.Event, json.loads(wire)) == event
    assert p.decode(p.Event, wire.decode()) == event


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16-le", "utf-32"])
def test_what_json_loads_accepts_still_decodes(encoding: str) -> None:
    """Payloads pydantic's JSON parser refuses fall back to json.loads, as before."""
    event = make_event()
    assert p.decode(p.Event, p.encode(event).decode().encode(encoding)) == event


def test_fast_path_errors_are_worded_as_before() -> None:
    data = json.loads(p.encode(make_event()))
    del data["camera_id"]
    data["objects"][0]["score"] = 3
    for payload in (json.dumps(data), json.dumps(data).encode()):
        with pytest.raises(p.MalformedPayload) as info:
            p.decode(p.Event, payload)
        assert str(info.value).startswith("xh.event/1: ")
        assert "missing required field 'camera_id'" in str(info.value)
        assert info.value.fields == ("camera_id", "objects.0.score")


def test_wrong_schema_is_refused() -> None:
    data = json.loads(p.encode(make_event()))
    data["schema"] = "xh.event/9"
    with pytest.raises(p.MalformedPayload, match="schema"):
        p.decode(p.Event, json.dumps(data))


def test_event_rejects_inverted_boxes_and_time() -> None:
    with pytest.raises(ValueError, match="x1 <= x2"):
        make_event(
            objects=[{"label": "goods", "score": 0.8, "box": (0.5, 0.6, 0.2, 0.7), "track_id": 1}]
        )
    with pytest.raises(ValueError, match="before started_at"):
        make_event(detected_at=NOW - timedelta(seconds=1))


def test_snapshot_is_capped_and_must_be_jpeg() -> None:
    big = base64.b64encode(b"\xff\xd8" + b"\0" * (p.MAX_SNAPSHOT_BYTES + 10)).decode()
    with pytest.raises(ValueError, match="jpeg_b64"):
        p.Snapshot(jpeg_b64=big, width=1, height=1)
    with pytest.raises(ValueError, match="JPEG"):
        p.Snapshot(jpeg_b64=base64.b64encode(b"\x89PNG....").decode(), width=1, height=1)


# ------------------------------------------------------------------ topics


def test_topics_build_and_parse() -> None:
    for channel in p.Channel:
        name = p.topic("truck-07", channel)
        assert p.parse_topic(name) == ("truck-07", channel)
    assert p.topic("pole-01", p.Channel.CMD_ACK) == "xh/v1/dev/pole-01/cmd/ack"


@pytest.mark.parametrize("bad", ["A1", "x", "-ab", "pole_01", "pole/01", "a" * 64, "pole+", ""])
def test_invalid_device_ids_are_refused(bad: str) -> None:
    with pytest.raises(p.TopicError, match="invalid device id"):
        p.topic(bad, p.Channel.EVENT)


@pytest.mark.parametrize(
    "name",
    ["xh/v2/dev/pole-01/event", "xh/v1/dev/pole-01/evil", "xh/v1/dev/POLE/event", "other/topic"],
)
def test_foreign_topics_are_refused(name: str) -> None:
    with pytest.raises(p.TopicError):
        p.parse_topic(name)


def test_channel_qos_and_retention_follow_the_design() -> None:
    assert p.Channel.TELEMETRY.qos == 0
    assert p.Channel.LIVE.qos == 0  # live frames: a lost one is not worth resending
    lossy = (p.Channel.TELEMETRY, p.Channel.LIVE)
    assert all(c.qos == 1 for c in p.Channel if c not in lossy)
    assert {c for c in p.Channel if c.retained} == {
        p.Channel.STATUS,
        p.Channel.CONFIG_DESIRED,
        p.Channel.CONFIG_REPORTED,
    }


def test_hub_subscriptions_are_shared_and_device_to_hub_only() -> None:
    subs = p.hub_subscriptions()
    assert all(s.startswith("$share/hub/xh/v1/dev/+/") for s in subs)
    assert not any(s.endswith(("/cmd", "/config/desired")) for s in subs)
    assert not any(s.endswith("/live") for s in subs)  # live frames never reach ingest


def test_payload_device_must_match_topic() -> None:
    with pytest.raises(p.MalformedPayload, match="does not match topic"):
        p.decode_from_topic(p.topic("pole-02", p.Channel.EVENT), p.encode(make_event()))


# ------------------------------------------------------------------ ids and JSON


def test_uuid7_is_time_ordered_and_versioned() -> None:
    ids = [p.uuid7(1_700_000_000_000 + i) for i in range(50)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 50
    assert p.uuid7_time(ids[0]) == datetime.fromtimestamp(1_700_000_000, tz=UTC)
    assert all(i[14] == "7" and i[19] in "89ab" for i in ids)


def test_canonical_json_is_stable() -> None:
    assert p.canonical_json({"b": 1, "a": "区"}) == '{"a":"区","b":1}'.encode()
    with pytest.raises(ValueError, match="JSON compliant"):
        p.canonical_json({"x": float("nan")})


@given(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=6))
def test_canonical_json_ignores_key_order(obj: dict[str, Any]) -> None:
    reordered = dict(reversed(list(obj.items())))
    assert p.canonical_json(obj) == p.canonical_json(reordered)


# ------------------------------------------------------------------ signed commands


@pytest.fixture
def key() -> Any:
    return p.generate_signing_key()


def _verify(
    payload: Any,
    key: Any,
    guard: p.MemoryReplayGuard,
    *,
    now: datetime = NOW,
    device: str = "pole-01",
) -> p.Command:
    return p.verify_command(
        payload, public_key=key.public_key(), device_id=device, now=now, replay=guard
    )


def test_valid_command_verifies_once(key: Any) -> None:
    cmd = p.sign_command(
        key, device_id="pole-01", kind="speaker.say", params={"text": "请勿占道经营"}, issued_at=NOW
    )
    guard = p.MemoryReplayGuard()
    assert _verify(p.encode(cmd), key, guard).params["text"] == "请勿占道经营"
    with pytest.raises(p.CommandRejected) as info:
        _verify(p.encode(cmd), key, guard)
    assert info.value.reason is p.RejectReason.REPLAYED
    assert info.value.ack_state == "rejected"


def _reason(payload: Any, key: Any, **kw: Any) -> p.RejectReason:
    with pytest.raises(p.CommandRejected) as info:
        _verify(payload, key, p.MemoryReplayGuard(), **kw)
    return info.value.reason


def test_rejections_have_distinct_reasons(key: Any) -> None:
    cmd = p.sign_command(
        key, device_id="pole-01", kind="speaker.say", params={"text": "hi"}, issued_at=NOW
    )
    wire = json.loads(p.encode(cmd))

    tampered = dict(wire, params={"text": "something else"})
    assert _reason(tampered, key) is p.RejectReason.BAD_SIGNATURE

    other_key = p.generate_signing_key()
    assert _reason(wire, other_key) is p.RejectReason.BAD_SIGNATURE

    unsigned = {k: v for k, v in wire.items() if k != "sig"}
    assert _reason(unsigned, key) is p.RejectReason.UNSIGNED

    assert _reason(dict(wire, sig="!!notbase64"), key) is p.RejectReason.BAD_SIGNATURE
    assert _reason(wire, key, now=NOW + timedelta(hours=1)) is p.RejectReason.EXPIRED
    assert _reason(wire, key, device="pole-02") is p.RejectReason.WRONG_DEVICE
    assert _reason(wire, key, now=NOW - timedelta(hours=1)) is p.RejectReason.NOT_YET_VALID
    assert _reason(b"not json", key) is p.RejectReason.MALFORMED
    reasons = {
        p.RejectReason.BAD_SIGNATURE,
        p.RejectReason.UNSIGNED,
        p.RejectReason.EXPIRED,
        p.RejectReason.WRONG_DEVICE,
        p.RejectReason.REPLAYED,
    }
    assert len({r.value for r in reasons}) == len(reasons)


def test_expired_command_acks_expired(key: Any) -> None:
    cmd = p.sign_command(
        key, device_id="pole-01", kind="speaker.stop", issued_at=NOW, ttl=timedelta(seconds=5)
    )
    with pytest.raises(p.CommandRejected) as info:
        _verify(p.encode(cmd), key, p.MemoryReplayGuard(), now=NOW + timedelta(seconds=5))
    assert info.value.ack_state == "expired"


def test_forgery_does_not_poison_the_replay_store(key: Any) -> None:
    cmd = p.sign_command(key, device_id="pole-01", kind="speaker.stop", issued_at=NOW)
    guard = p.MemoryReplayGuard()
    forged = dict(json.loads(p.encode(cmd)), sig=base64.b64encode(b"\0" * 64).decode())
    with pytest.raises(p.CommandRejected):
        _verify(forged, key, guard)
    assert _verify(p.encode(cmd), key, guard).cmd_id == cmd.cmd_id


def test_signature_covers_unknown_fields(key: Any) -> None:
    cmd = p.sign_command(key, device_id="pole-01", kind="speaker.stop", issued_at=NOW)
    wire = json.loads(p.encode(cmd))
    wire["priority"] = 9  # added after signing: must not verify
    assert _reason(wire, key) is p.RejectReason.BAD_SIGNATURE


def test_signing_refuses_unknown_kinds_and_long_ttls(key: Any) -> None:
    with pytest.raises(p.ProtocolError, match="unknown command kind"):
        p.sign_command(key, device_id="pole-01", kind="shell.exec", issued_at=NOW)
    with pytest.raises(p.ProtocolError, match="ttl"):
        p.sign_command(
            key, device_id="pole-01", kind="speaker.stop", issued_at=NOW, ttl=timedelta(days=2)
        )


def test_replay_guard_forgets_expired_ids() -> None:
    guard = p.MemoryReplayGuard()
    guard.remember("a", NOW)
    guard.remember("b", NOW + timedelta(hours=2))
    assert guard.prune(NOW + timedelta(hours=1)) == 1
    assert not guard.seen("a")
    assert guard.seen("b")


def test_public_keys_load_from_base64_and_pem(key: Any) -> None:
    from cryptography.hazmat.primitives import serialization

    b64 = p.public_key_b64(key)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for form in (b64, pem):
        loaded = p.load_public_key(form)
        assert p.public_key_b64(loaded) == b64
    with pytest.raises(p.ProtocolError, match="32 bytes"):
        p.load_public_key(base64.b64encode(b"short").decode())
    assert p.public_key_b64(p.load_private_key(p.private_key_pem(key))) == b64


# ------------------------------------------------------------------ schemas


def test_committed_schemas_match_the_models() -> None:
    """Fails when docs/protocol/*.schema.json drift from the models: run `make schemas`."""
    folder = Path(__file__).resolve().parents[3] / "docs" / "protocol"
    expected = p.json_schemas()
    committed = {f.name.removesuffix(".schema.json") for f in folder.glob("*.schema.json")}
    assert committed == set(expected), "schema files differ from the message set; run make schemas"
    for stem, schema in expected.items():
        on_disk = json.loads((folder / f"{stem}.schema.json").read_text())
        assert on_disk == schema, f"docs/protocol/{stem}.schema.json is stale; run make schemas"


@pytest.mark.parametrize(
    ("field", "raw"),
    [("dwell_s", "Infinity"), ("dwell_s", "NaN"), ("seq", str(2**63)), ("seq", str(10**30))],
)
def test_non_finite_floats_and_oversized_integers_are_malformed(field: str, raw: str) -> None:
    """Finding 7 of issue #17: these reached the database and came back as internal errors
    with SQL in the reason; now the message is refused naming the field."""
    text = p.encode(make_event()).decode("utf-8")
    data = json.loads(text)
    data[field] = 0
    doctored = json.dumps(data).replace(f'"{field}": 0', f'"{field}": {raw}')
    with pytest.raises(p.MalformedPayload) as err:
        p.decode(p.Event, doctored.encode("utf-8"))
    assert field in err.value.fields


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dwell_s", "28.6"),
        ("seq", True),
        ("seq", "12"),
        ("seq", 12.5),
        ("camera_id", 7),
        ("started_at", 1_700_000_000),
    ],
)
@pytest.mark.parametrize("as_bytes", [True, False])
def test_values_of_the_wrong_json_type_are_refused_not_coerced(
    field: str, value: object, as_bytes: bool
) -> None:
    """Finding 7 of issue #17: ``"28.6"`` for a number and ``true`` for an integer were
    coerced; a device that sends them is broken and should hear so. Both decoding paths
    (the raw bytes and an already parsed mapping) refuse alike."""
    data = json.loads(p.encode(make_event()))
    data[field] = value
    with pytest.raises(p.MalformedPayload) as err:
        p.decode(p.Event, json.dumps(data).encode() if as_bytes else data)
    assert err.value.fields == (field,)


def test_an_integer_stands_for_a_float_and_a_wrong_schema_is_named() -> None:
    data = json.loads(p.encode(make_event()))
    data["dwell_s"] = 30
    assert p.decode(p.Event, json.dumps(data)).dwell_s == 30.0
    data["schema"] = "xh.status/1"
    with pytest.raises(p.MalformedPayload) as err:
        p.decode(p.Event, json.dumps(data))
    assert err.value.fields == ("schema",)
    assert "xh.event/1" in str(err.value)


def test_a_command_the_broker_would_drop_is_not_signed() -> None:
    with pytest.raises(p.ProtocolError, match="at most 262144"):
        p.sign_command(
            p.generate_signing_key(),
            device_id="pole-01",
            kind="speaker.say",
            params={"text": "请" * 2_000_000},
            issued_at=datetime.now(UTC),
        )
