"""Fleet simulator, pure parts: plan checks, ids, events, telemetry and command answers."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from edge_agent import protocol
from simulators.fleet import (
    FleetError,
    FleetPlan,
    FleetReport,
    answer_command,
    build_event,
    build_telemetry,
    device_ids,
    device_site,
    small_jpeg,
)

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def test_plan_rejects_nonsense() -> None:
    with pytest.raises(FleetError, match="devices"):
        FleetPlan(devices=0)
    with pytest.raises(FleetError, match="intervals"):
        FleetPlan(event_interval_s=0)
    with pytest.raises(protocol.TopicError):
        FleetPlan(id_prefix="Bad_Prefix")


def test_ids_are_unique_valid_and_sortable() -> None:
    ids = device_ids(FleetPlan(devices=500))
    assert len(set(ids)) == 500
    assert ids == sorted(ids)
    for device_id in ids:
        protocol.check_device_id(device_id)


def test_events_pass_the_wire_contract_with_a_small_snapshot() -> None:
    jpeg = small_jpeg()
    assert jpeg[:2] == b"\xff\xd8"
    assert len(jpeg) < 20_000
    rng = random.Random(1)
    site = device_site("sim-0001")
    for seq in range(1, 30):
        event = build_event("sim-0001", seq, NOW, rng, site=site, snapshot=jpeg)
        back = protocol.decode(protocol.Event, protocol.encode(event))
        assert back == event
        assert back.seq == seq
        assert back.snapshot is not None
        assert back.snapshot.jpeg_bytes() == jpeg
        assert abs(back.location.lat - 28.646) < 0.01


def test_sites_are_stable_per_device() -> None:
    assert device_site("sim-0001") == device_site("sim-0001")
    assert device_site("sim-0001") != device_site("sim-0002")


def test_telemetry_is_valid() -> None:
    tel = build_telemetry("sim-0001", NOW, 12.5)
    assert protocol.decode(protocol.Telemetry, protocol.encode(tel)).uptime_s == 12.5


def test_commands_are_verified_like_a_real_unit() -> None:
    key = protocol.generate_signing_key()
    public = key.public_key()
    guard = protocol.MemoryReplayGuard()
    cmd = protocol.sign_command(
        key,
        device_id="sim-0001",
        kind="speaker.say",
        params={"text": "hi"},
        issued_at=NOW,
        ttl=timedelta(minutes=5),
    )
    payload = protocol.encode(cmd)
    answer = answer_command("sim-0001", payload, now=NOW, public_key=public, replay=guard)
    assert answer.command == cmd
    acks = answer.acks
    assert [a.state for a in acks] == ["received", "succeeded"]
    assert {a.cmd_id for a in acks} == {cmd.cmd_id}
    again = answer_command("sim-0001", payload, now=NOW, public_key=public, replay=guard).acks
    assert [a.state for a in again] == ["rejected"]
    assert "replay" in again[0].detail or "seen" in again[0].detail
    other = answer_command(
        "sim-0002", payload, now=NOW, public_key=public, replay=protocol.MemoryReplayGuard()
    ).acks
    assert [a.state for a in other] == ["rejected"]
    late = answer_command(
        "sim-0001",
        payload,
        now=NOW + timedelta(hours=1),
        public_key=public,
        replay=protocol.MemoryReplayGuard(),
    ).acks
    assert [a.state for a in late] == ["expired"]
    junk = answer_command("sim-0001", b"{not json", now=NOW, public_key=public, replay=guard)
    assert junk.command is None
    junk_acks = junk.acks
    assert [a.state for a in junk_acks] == ["rejected"]


def test_report_summary_leaves_out_the_maps() -> None:
    report = FleetReport(devices=3, events=5)
    report.event_sent_at["x"] = 1.0
    summary = report.summary()
    assert summary["events"] == 5
    assert "event_sent_at" not in summary
