"""The live view's pure rules: a start's parameters, leases and the bandwidth pace."""

from __future__ import annotations

import pytest

from edge_agent.agent.live import (
    MIN_FPS,
    QUALITY_STEPS,
    LeaseBook,
    LiveRefused,
    LiveRequest,
    pace,
    parse_start,
)
from edge_agent.config import LiveSection

LIMITS = LiveSection()


def test_defaults_are_5_fps_640_px_two_cameras_2_mbit() -> None:
    assert (LIMITS.fps, LIMITS.width, LIMITS.max_cameras) == (5.0, 640, 2)
    assert LIMITS.max_bytes_per_s * 8 == 2_000_000


def test_a_start_takes_the_unit_defaults_and_is_lowered_to_its_limits() -> None:
    assert parse_start({"camera_id": "mast", "lease_s": 30}, LIMITS) == LiveRequest(
        "mast", 30.0, 5.0, 640
    )
    fast = parse_start({"camera_id": "mast", "lease_s": 5, "fps": 25, "width": 1920}, LIMITS)
    assert (fast.fps, fast.width) == (5.0, 640)
    slow = parse_start({"camera_id": "mast", "lease_s": 5, "fps": 2, "width": 320}, LIMITS)
    assert (slow.fps, slow.width) == (2.0, 320)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"lease_s": 30}, "params.camera_id"),
        ({"camera_id": "mast"}, "params.lease_s"),
        ({"camera_id": "mast", "lease_s": 0.5}, "params.lease_s"),
        ({"camera_id": "mast", "lease_s": 121}, "params.lease_s: must be 1..120"),
        ({"camera_id": "mast", "lease_s": True}, "params.lease_s"),
        ({"camera_id": "mast", "lease_s": 5, "fps": 0}, "params.fps"),
        ({"camera_id": "mast", "lease_s": 5, "width": 8}, "params.width"),
        ({"camera_id": "mast", "lease_s": 5, "width": "640"}, "params.width"),
    ],
)
def test_a_bad_start_is_refused_naming_the_parameter(params: dict[str, object], named: str) -> None:
    with pytest.raises(LiveRefused, match=named.replace(".", r"\.")):
        parse_start(params, LIMITS)


def test_a_lease_lapses_without_renewal_and_a_renewal_extends_it() -> None:
    book = LeaseBook(max_cameras=2)
    assert book.grant(LiveRequest("mast", 10.0, 5.0, 640), now=100.0) is True
    assert book.grant(LiveRequest("mast", 10.0, 5.0, 640), now=108.0) is False  # renewal
    assert book.expire(117.9) == []
    assert book.next_expiry() == pytest.approx(118.0)
    assert book.expire(118.0) == ["mast"]
    assert book.active() == {}
    assert book.next_expiry() is None


def test_no_more_cameras_than_the_cap_and_a_stopped_one_frees_its_place() -> None:
    book = LeaseBook(max_cameras=2)
    book.grant(LiveRequest("a", 10.0, 5.0, 640), now=0.0)
    book.grant(LiveRequest("b", 10.0, 5.0, 640), now=0.0)
    with pytest.raises(LiveRefused, match=r"at most 2 camera\(s\) at once \(now: a, b\)"):
        book.grant(LiveRequest("c", 10.0, 5.0, 640), now=1.0)
    book.grant(LiveRequest("a", 10.0, 5.0, 640), now=1.0)  # a renewal is not a new camera
    assert book.stop("a") is True
    assert book.stop("a") is False
    assert book.grant(LiveRequest("c", 100.0, 5.0, 640), now=2.0) is True
    # A lapsed lease frees its place too.
    assert book.grant(LiveRequest("d", 1.0, 5.0, 640), now=20.0) is True
    assert sorted(book.active()) == ["c", "d"]


def test_under_the_cap_a_stream_keeps_its_rate_and_quality() -> None:
    p = pace(5.0, frame_bytes=30_000, cap_bytes_per_s=250_000, streams=1)
    assert p.fps == pytest.approx(5.0)
    assert p.quality == QUALITY_STEPS[0]
    assert pace(5.0, frame_bytes=0, cap_bytes_per_s=8_000, streams=2).fps == pytest.approx(5.0)


def test_over_the_cap_the_rate_drops_to_fit_the_streams_share() -> None:
    p = pace(5.0, frame_bytes=40_000, cap_bytes_per_s=250_000, streams=2)
    assert p.fps == pytest.approx(125_000 / 40_000)
    assert p.fps * 40_000 * 2 <= 250_000 + 1e-6
    assert p.quality == QUALITY_STEPS[0]


def test_at_the_floor_rate_the_quality_steps_down() -> None:
    p = pace(5.0, frame_bytes=20_000, cap_bytes_per_s=16_000, streams=2)
    assert p.fps == pytest.approx(MIN_FPS)
    assert p.quality < QUALITY_STEPS[0]
    hopeless = pace(5.0, frame_bytes=1_000_000, cap_bytes_per_s=8_000, streams=1)
    assert (hopeless.fps, hopeless.quality) == (MIN_FPS, QUALITY_STEPS[-1])
