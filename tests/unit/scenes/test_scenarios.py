"""Scripted scenarios: API, timing, truth against frames, video round trip."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from simulators.scenarios import (
    CAMERA_SITES,
    Scenario,
    TruthViolation,
    UnknownScenarioError,
    load,
    names,
    write_video,
)

REQUIRED = {
    "market_vendor",
    "vendor_bus_occlusion",
    "shop_front",
    "no_parking",
    "passers_by",
    "truck_debris",
    "market_street",
    "parking_street",
}
W, H = 320, 180


def _inside(pt: tuple[float, float], poly: list[tuple[float, float]]) -> bool:
    x, y = pt
    inside = False
    for (x1, y1), (x2, y2) in zip(poly, poly[1:] + poly[:1], strict=True):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _foot(box: tuple[float, float, float, float]) -> tuple[float, float]:
    return ((box[0] + box[2]) / 2, box[3])


def _labelled(sc: Scenario, t: float, label: str) -> list[tuple[float, float, float, float]]:
    fr = sc.frame_at(round(t * sc.fps))
    return [o.box for o in fr.objects if o.label == label]


def test_names_and_sites() -> None:
    assert set(names()) >= REQUIRED
    assert CAMERA_SITES["market"] == (28.6472, 121.2615)
    assert CAMERA_SITES["parking"] == (28.6455, 121.2650)
    with pytest.raises(UnknownScenarioError):
        load("nope")


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_scenario_basics(name: str) -> None:
    sc = load(name, width=W, height=H, fps=2.0)
    assert sc.frame_count() == round(sc.duration_s * 2.0)
    assert sc.camera in ("pole", "truck")
    for v in sc.truth:
        assert isinstance(v, TruthViolation)
        assert 0 <= v.start_s < v.end_s <= sc.duration_s
        assert v.zone in sc.zones
    for poly in sc.zones.values():
        assert len(poly) >= 3
        assert all(0 <= x <= 1 and 0 <= y <= 1 for x, y in poly)
    fr = sc.frame_at(sc.frame_count() // 2)
    assert fr.image.shape == (H, W, 3)
    assert fr.image.dtype == np.uint8
    for o in fr.objects:
        x1, y1, x2, y2 = o.box
        assert 0 <= x1 < x2 <= 1
        assert 0 <= y1 < y2 <= 1


def test_timestamps_follow_start_time() -> None:
    start = datetime(2025, 6, 1, 2, 0, tzinfo=UTC)
    sc = load("passers_by", width=W, height=H, fps=4.0, start_time=start)
    fr = sc.frame_at(10)
    assert fr.index == 10
    assert fr.t == pytest.approx(2.5)
    assert fr.ts == start + timedelta(seconds=2.5)
    assert fr.ts.tzinfo is not None
    with pytest.raises(IndexError):
        sc.frame_at(sc.frame_count())


def test_frames_are_deterministic_and_seed_dependent() -> None:
    a = load("market_vendor", seed=3, width=W, height=H).frame_at(200).image
    b = load("market_vendor", seed=3, width=W, height=H).frame_at(200).image
    c = load("market_vendor", seed=4, width=W, height=H).frame_at(200).image
    assert hashlib.sha256(a.tobytes()).digest() == hashlib.sha256(b.tobytes()).digest()
    assert not np.array_equal(a, c)


def test_vendor_stall_in_pavement_zone_only_during_truth() -> None:
    sc = load("market_vendor", width=W, height=H, fps=1.0)
    (v,) = sc.truth
    zone = sc.zones[v.zone]
    for t in (v.start_s + 5, (v.start_s + v.end_s) / 2, v.end_s - 5):
        stalls = _labelled(sc, t, "stall")
        assert len(stalls) == 1
        assert _inside(_foot(stalls[0]), zone)
    for t in (5.0, v.end_s + 30):
        assert _labelled(sc, t, "stall") == []


def test_bus_hides_the_stall() -> None:
    sc = load("vendor_bus_occlusion", width=W, height=H, fps=1.0)
    assert _labelled(sc, 100, "stall")
    assert _labelled(sc, 180, "bus")
    assert _labelled(sc, 180, "stall") == []


def test_goods_cross_the_door_line_at_truth_start() -> None:
    sc = load("shop_front", width=W, height=H, fps=1.0)
    (v,) = sc.truth
    zone = sc.zones["shop_front"]
    before = _labelled(sc, 30, "goods")
    assert before
    assert not any(_inside(_foot(b), zone) for b in before)
    after = _labelled(sc, v.start_s + 60, "goods")
    assert after
    assert any(_inside(_foot(b), zone) for b in after)
    assert v.end_s - v.start_s >= 180


def test_parked_car_in_box_with_plate() -> None:
    sc = load("no_parking", width=1280, height=720, fps=1.0)
    (v,) = sc.truth
    assert v.plate
    assert v.plate[0] == "浙"
    zone = sc.zones["no_parking"]
    cars = _labelled(sc, 300, "car")
    parked = [b for b in cars if _inside(_foot(b), zone)]
    assert len(parked) == 1
    x1, _y1, x2, _y2 = parked[0]
    assert (x2 - x1) * 1280 > 150  # near enough for the plate to be read
    others = [b for b in _labelled(sc, 5, "car") if _inside(_foot(b), zone)]
    assert others == []


def test_passers_by_has_no_violation() -> None:
    sc = load("passers_by", width=W, height=H)
    assert sc.truth == ()
    assert any(o.label == "person" for o in sc.frame_at(300).objects)


def test_truck_debris_route_and_debris() -> None:
    sc = load("truck_debris", width=W, height=H, fps=2.0)
    assert sc.camera == "truck"
    assert len(sc.route) >= 100
    for _t, lat, lon in sc.route:
        assert 28.6440 <= lat <= 28.6520
        assert 121.2560 <= lon <= 121.2680
    assert [p[0] for p in sc.route] == sorted(p[0] for p in sc.route)
    (v,) = sc.truth
    assert _labelled(sc, v.start_s + 3, "debris")
    assert _labelled(sc, v.start_s - 10, "debris") == []


def test_write_video_reads_back(tmp_path: Path) -> None:
    import cv2

    sc = load("passers_by", width=W, height=H, fps=5.0)
    path = tmp_path / "clip.mp4"
    n = write_video(sc, path, max_frames=15)
    assert n == 15
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened()
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(5.0)
    count, stamps = 0, []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        stamps.append(cap.get(cv2.CAP_PROP_POS_MSEC))
        assert frame.shape == (H, W, 3)
        count += 1
    cap.release()
    assert count == 15
    assert stamps[-1] - stamps[0] == pytest.approx(14 * 200.0, abs=1.0)
