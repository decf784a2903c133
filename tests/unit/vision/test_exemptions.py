"""Exemptions (service days) on the unit: the model, the rule engine honouring them, the
pipeline saying so, and a pushed config refusing a malformed one."""

from __future__ import annotations

import logging
import zoneinfo
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from edge_agent import protocol
from edge_agent.agent.heartbeat import BoardFigures, build_telemetry
from edge_agent.agent.metrics import AgentFigures, families
from edge_agent.config import AgentConfig, ConfigError, parse_config
from edge_agent.config_apply import ApplyRejected, check_pushed, merge_pushed
from edge_agent.link.outbox import OutboxStats
from edge_agent.vision.config import CameraConfig, VisionConfig
from edge_agent.vision.exemptions import Exemption, active_exemption, unused_exemptions
from edge_agent.vision.frames import Box, Detection, Frame
from edge_agent.vision.pipeline import CameraPipeline, VisionStats
from edge_agent.vision.rules import RuleEngine, Violation
from edge_agent.vision.tracker import TrackedObject

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
#: 08:00 in Shanghai on a service day.
OPENS = datetime(2026, 3, 14, 8, 0, tzinfo=SHANGHAI)
CLOSES = datetime(2026, 3, 14, 12, 0, tzinfo=SHANGHAI)
IN_ZONE: Box = (0.40, 0.50, 0.50, 0.70)


def camera(cam_id: str = "mast-east") -> CameraConfig:
    return CameraConfig.model_validate(
        {
            "id": cam_id,
            "source": "0",
            "zones": [
                {"name": "square", "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]},
                {"name": "kerb", "polygon": [[0, 0], [1, 0], [1, 0.5], [0, 0.5]]},
            ],
            "rules": [
                {"name": "vendors", "kind": "vendor", "zone": "square", "dwell_s": 60},
                {"name": "goods", "kind": "shop_front", "zone": "square", "dwell_s": 60},
            ],
        }
    )


def exemption(**kw: Any) -> Exemption:
    data: dict[str, Any] = {
        "name": "便民服务日 Q1",
        "camera": "mast-east",
        "zone": "square",
        "kinds": ["vendor"],
        "start": OPENS.isoformat(),
        "end": CLOSES.isoformat(),
    }
    data.update(kw)
    return Exemption.model_validate(data)


def stall(tid: int = 1) -> TrackedObject:
    return TrackedObject(tid, "stall", 0.9, IN_ZONE, OPENS, OPENS, True, 1)


def run(engine: RuleEngine, start: datetime, seconds: int, step: int = 10) -> list[Violation]:
    out: list[Violation] = []
    for t in range(0, seconds + 1, step):
        out += engine.evaluate([stall()], start + timedelta(seconds=t))
    return out


def test_covers_camera_zone_kind_or_code_and_the_half_open_window() -> None:
    cam = camera()
    vendors, goods = cam.rules
    e = exemption()
    assert e.covers("mast-east", vendors, OPENS)
    assert e.covers("mast-east", vendors, CLOSES - timedelta(microseconds=1))
    assert not e.covers("mast-east", vendors, CLOSES)  # the end is not in the window
    assert not e.covers("mast-east", vendors, OPENS - timedelta(seconds=1))
    assert not e.covers("mast-west", vendors, OPENS)  # another camera
    assert not e.covers("mast-east", goods, OPENS)  # another kind
    assert exemption(kinds=[], codes=["0504"]).covers("mast-east", goods, OPENS)  # by code
    kerb = vendors.model_copy(update={"zone": "kerb"})
    assert not e.covers("mast-east", kerb, OPENS)  # another zone
    assert exemption(zone=None).covers("mast-east", kerb, OPENS)  # every zone of the camera


def test_the_window_is_an_instant_whatever_zone_it_was_written_in() -> None:
    e = exemption(start="2026-03-14T00:00:00Z", end="2026-03-14T04:00:00Z")  # 08:00-12:00 +08
    vendors = camera().rules[0]
    assert e.covers("mast-east", vendors, datetime(2026, 3, 14, 8, 30, tzinfo=SHANGHAI))
    assert not e.covers("mast-east", vendors, datetime(2026, 3, 14, 12, 30, tzinfo=SHANGHAI))


def test_overlapping_exemptions_give_the_one_ending_last() -> None:
    vendors = camera().rules[0]
    short = exemption(name="morning")
    long = exemption(name="all day", end=(CLOSES + timedelta(hours=5)).isoformat())
    found = active_exemption([short, long], "mast-east", vendors, OPENS + timedelta(hours=1))
    assert found is not None
    assert found.name == "all day"
    found = active_exemption([short, long], "mast-east", vendors, CLOSES + timedelta(hours=1))
    assert found is not None
    assert found.name == "all day"
    assert active_exemption([short], "mast-east", vendors, CLOSES) is None


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"end": OPENS.isoformat()}, "<root>", "is not after start"),
        ({"kinds": [], "codes": []}, "<root>", "at least one rule kind or event code"),
        ({"start": "2026-03-14T08:00:00"}, "start", "timezone"),
        ({"kinds": ["juggling"]}, "kinds.0", "vendor"),
        ({"codes": ["05a1"]}, "codes.0", "pattern"),
        ({"camera": "Mast East"}, "camera", "pattern"),
        ({"until": "tomorrow"}, "until", "Extra inputs"),
    ],
)
def test_a_malformed_exemption_is_refused_naming_the_field(
    change: dict[str, Any], field: str, says: str
) -> None:
    with pytest.raises(ValidationError) as info:
        exemption(**change)
    errors = info.value.errors()
    assert any(
        ".".join(str(p) for p in e["loc"]) in (field, "") and says in e["msg"] for e in errors
    ), errors


def test_a_vendor_stall_raises_nothing_during_the_window_and_is_reported_just_after() -> None:
    engine = RuleEngine(camera(), tz=SHANGHAI, exemptions=[exemption()])
    # From 07:59 on: it reaches its 60 s dwell at 08:00, when the window opens.
    assert run(engine, OPENS - timedelta(seconds=60), 60 + 4 * 3600 - 10) == []
    found = run(engine, CLOSES, 30)  # the first frame at 12:00 reports it
    assert len(found) == 1
    assert found[0].detected_at == CLOSES
    assert found[0].rule.name == "vendors"
    assert found[0].dwell_s >= 4 * 3600


def test_before_the_window_a_stall_is_reported_as_ever() -> None:
    engine = RuleEngine(camera(), tz=SHANGHAI, exemptions=[exemption()])
    found = run(engine, OPENS - timedelta(hours=1), 120)
    assert len(found) == 1


def test_another_cameras_exemption_changes_nothing_here() -> None:
    engine = RuleEngine(camera(), tz=SHANGHAI, exemptions=[exemption(camera="mast-west")])
    assert engine.exemptions == ()
    assert len(run(engine, OPENS, 120)) == 1


def test_the_pipeline_logs_when_an_exemption_starts_and_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pipe = CameraPipeline(camera(), timezone="Asia/Shanghai", exemptions=[exemption()])
    box = IN_ZONE
    caplog.set_level(logging.INFO, logger="edge_agent.vision.pipeline")

    def frame(at: datetime) -> Frame:
        return Frame("mast-east", 1, at, np.zeros((72, 128, 3), np.uint8))

    det = [Detection("stall", 0.9, box)]
    pipe.step(frame(OPENS - timedelta(seconds=10)), det)
    assert pipe.exempted == {}
    pipe.step(frame(OPENS), det)
    assert pipe.exempted == {"vendors": "便民服务日 Q1"}
    started = [r.getMessage() for r in caplog.records if "exempted until" in r.getMessage()]
    assert len(started) == 1
    assert "便民服务日 Q1" in started[0]
    assert "vendors" in started[0]
    pipe.step(frame(OPENS + timedelta(seconds=10)), det)
    assert sum("exempted until" in r.getMessage() for r in caplog.records) == 1  # once
    pipe.step(frame(CLOSES), det)
    assert pipe.exempted == {}
    assert any("reports again" in r.getMessage() for r in caplog.records)


def test_unused_exemptions_name_the_camera_zone_or_rule_missing() -> None:
    vision = VisionConfig(cameras=(camera(),))
    lines = unused_exemptions(
        [
            exemption(),
            exemption(camera="mast-west"),
            exemption(zone="door"),
            exemption(kinds=["parking"]),
        ],
        vision,
    )
    assert len(lines) == 3
    assert "exemptions.1" in lines[0]
    assert "no camera 'mast-west'" in lines[0]
    assert "no zone 'door'" in lines[1]
    assert "exemptions.3" in lines[2]
    assert "no rule" in lines[2]


BASE: dict[str, Any] = {
    "device": {"id": "pole-01", "kind": "pole"},
    "mqtt": {"host": "localhost"},
    "hub": {"public_key": "kEahCuDnT/5oZfSHa3DSOTOS0Z9jLgULXr+CK0R8Px0="},
}


def test_a_pushed_service_days_section_is_applied_and_a_malformed_one_rejected(
    tmp_path: Path,
) -> None:
    current = parse_config(BASE, tmp_path)
    good = {
        "service_days": {
            "calendar": "service_days.yaml@1a2b3c",
            "exemptions": [exemption().model_dump(mode="json")],
        }
    }
    new = check_pushed(merge_pushed(BASE, good, 2), current, tmp_path)
    assert isinstance(new, AgentConfig)
    assert new.service_days.exemptions[0].kinds[0] == "vendor"
    assert new.service_days.exemptions[0].start == OPENS
    bad_window = {**exemption().model_dump(mode="json"), "end": "2026-03-14T07:00:00+08:00"}
    bad = {"service_days": {"exemptions": [bad_window]}}
    with pytest.raises(ApplyRejected) as info:
        check_pushed(merge_pushed(BASE, bad, 3), new, tmp_path)
    assert any(
        e.startswith("service_days.exemptions.0") and "is not after start" in e
        for e in info.value.errors
    ), info.value.errors


def test_a_file_without_the_section_has_none(tmp_path: Path) -> None:
    assert parse_config(BASE, tmp_path).service_days.exemptions == ()
    with pytest.raises(ConfigError):
        parse_config({**BASE, "service_days": {"exemptions": "all"}}, tmp_path)


def test_exemption_times_compare_as_instants() -> None:
    e = exemption()
    assert e.start.astimezone(UTC) == datetime(2026, 3, 14, 0, 0, tzinfo=UTC)


def test_the_heartbeat_and_metrics_list_the_rules_a_service_day_keeps_silent() -> None:
    stats = VisionStats(
        fps=5.0,
        inference_ms=10.0,
        dropped_frames=0,
        exempted={"mast-east/vendors": "便民服务日 Q1"},
    )
    tel = build_telemetry(
        device_id="pole-01",
        now=OPENS,
        uptime_s=1.0,
        outbox=OutboxStats(0, 0, 0, 0),
        vision=stats,
        gps=None,
        restarts={},
        board=BoardFigures(),
    )
    on_the_wire = protocol.decode(protocol.Telemetry, protocol.encode(tel))
    assert on_the_wire.exempted == {"mast-east/vendors": "便民服务日 Q1"}
    figures = AgentFigures(
        uptime_s=1.0, outbox=OutboxStats(0, 0, 0, 0), link_connected=True, vision=stats
    )
    [family] = [f for f in families(figures) if f.name == "xh_edge_rule_exempted"]
    [sample] = family.samples
    assert sample.labels == {
        "camera": "mast-east",
        "rule": "vendors",
        "service_day": "便民服务日 Q1",
    }
    assert sample.value == 1
