"""The pure part of applying a pushed config: merge, validate, fixed sections, crashes."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent import protocol
from edge_agent.config import parse_config
from edge_agent.config_apply import (
    ApplyRejected,
    apply_params,
    check_pushed,
    crashed_stages,
    is_new_desired,
    merge_pushed,
)
from edge_agent.link.commands import CommandFailed

KEY = protocol.public_key_b64(protocol.generate_signing_key())
RAW: dict[str, object] = {
    "config_version": 3,
    "device": {"id": "pole-01", "kind": "pole"},
    "mqtt": {"host": "broker.local"},
    "hub": {"public_key": KEY},
    "telemetry": {"interval_s": 30},
}


def test_merge_keeps_left_out_sections_and_sets_the_version() -> None:
    merged = merge_pushed(RAW, {"telemetry": {"interval_s": 10}, "config_version": 99}, 4)
    assert merged["telemetry"] == {"interval_s": 10}
    assert merged["device"] == RAW["device"]
    assert merged["config_version"] == 4
    assert RAW["config_version"] == 3  # the file's data is not changed


def test_a_valid_push_is_returned_validated(tmp_path: Path) -> None:
    current = parse_config(RAW, tmp_path)
    new = check_pushed(merge_pushed(RAW, {"telemetry": {"interval_s": 10}}, 4), current, tmp_path)
    assert new.config_version == 4
    assert new.telemetry.interval_s == 10


def test_an_invalid_push_is_rejected_with_every_error(tmp_path: Path) -> None:
    current = parse_config(RAW, tmp_path)
    merged = merge_pushed(RAW, {"telemetry": {"interval_s": -1, "oops": 1}}, 4)
    with pytest.raises(ApplyRejected) as info:
        check_pushed(merged, current, tmp_path)
    assert str(info.value) == "config 4 rejected: 2 error(s)"
    assert [e.split(":")[0] for e in info.value.errors] == [
        "telemetry.interval_s",
        "telemetry.oops",
    ]


def test_a_push_may_not_change_who_the_unit_is(tmp_path: Path) -> None:
    current = parse_config(RAW, tmp_path)
    merged = merge_pushed(RAW, {"mqtt": {"host": "elsewhere"}}, 4)
    with pytest.raises(ApplyRejected) as info:
        check_pushed(merged, current, tmp_path)
    assert info.value.errors == ["mqtt: cannot be changed by config.apply (re-provision the unit)"]
    assert isinstance(info.value, CommandFailed)


@pytest.mark.parametrize(
    "params", [{}, {"version": 0, "config": {}}, {"version": "2", "config": {}}, {"version": 2}]
)
def test_bad_params_are_refused(params: dict[str, object]) -> None:
    with pytest.raises(CommandFailed, match="params need version"):
        apply_params(params)


def test_good_params_are_split() -> None:
    assert apply_params({"version": 2, "config": {"a": 1}}) == (2, {"a": 1})


def test_only_stages_restarted_since_the_start_count_as_crashed() -> None:
    before = {"uplink": 1, "gps": 2}
    after = {"uplink": 5, "gps": 2, "vision": 1}
    assert crashed_stages(before, after) == ["vision"]
    assert crashed_stages(after, after) == []


def test_a_desired_version_is_tried_once_and_only_if_newer() -> None:
    assert is_new_desired(4, 3, set())
    assert not is_new_desired(3, 3, set())
    assert not is_new_desired(4, 3, {4})
