"""Tracker: stable ids, grace period through occlusion, per-label matching."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edge_agent.vision.frames import Detection
from edge_agent.vision.tracker import Tracker

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


STALL = Detection("stall", 0.9, (0.40, 0.50, 0.50, 0.70))


def test_stationary_object_keeps_its_id_through_a_20s_occlusion() -> None:
    tracker = Tracker(grace_s=30.0)
    first = tracker.update([STALL], at(0))
    tid = first[0].track_id
    for i in range(1, 50):  # 10 s visible at 5 fps
        tracker.update([STALL], at(i * 0.2))
    # A bus passes in front for 20 s: the stall is not detected at all.
    for i in range(100):
        bus = Detection("bus", 0.95, (0.1 + i * 0.005, 0.3, 0.6 + i * 0.005, 0.8))
        tracks = tracker.update([bus], at(10 + i * 0.2))
        stall = [t for t in tracks if t.label == "stall"]
        assert [(t.track_id, t.seen) for t in stall] == [(tid, False)]
    tracks = tracker.update([STALL], at(31))
    stall = [t for t in tracks if t.label == "stall"]
    assert [(t.track_id, t.seen) for t in stall] == [(tid, True)]
    assert stall[0].first_seen == T0


def test_partly_hidden_object_matches_by_containment() -> None:
    tracker = Tracker()
    tid = tracker.update([STALL], at(0))[0].track_id
    half = Detection("stall", 0.6, (0.45, 0.50, 0.50, 0.70))  # left half hidden
    assert tracker.update([half], at(0.2))[0].track_id == tid
    assert tracker.update([STALL], at(0.4))[0].track_id == tid


def test_track_dropped_after_grace() -> None:
    tracker = Tracker(grace_s=5.0)
    tracker.update([STALL], at(0))
    assert len(tracker.update([], at(4.9))) == 1
    assert tracker.update([], at(5.1)) == []
    new = tracker.update([STALL], at(6))
    assert new[0].track_id == 2


def test_labels_do_not_mix_and_two_objects_stay_apart() -> None:
    tracker = Tracker()
    car_a = Detection("car", 0.9, (0.1, 0.5, 0.3, 0.7))
    car_b = Detection("car", 0.9, (0.6, 0.5, 0.8, 0.7))
    person = Detection("person", 0.9, (0.1, 0.5, 0.3, 0.7))
    tracks = tracker.update([car_a, car_b, person], at(0))
    ids = {t.track_id for t in tracks}
    assert len(ids) == 3
    again = tracker.update([car_b, person, car_a], at(0.2))
    by_box = {(t.label, t.box): t.track_id for t in again}
    first = {(t.label, t.box): t.track_id for t in tracks}
    assert by_box == first


def test_moving_object_followed_at_low_frame_rate() -> None:
    tracker = Tracker()
    ids = set()
    for i in range(10):  # moves its own width each frame: IoU is 0, centres are close
        x = 0.1 + i * 0.05
        tracks = tracker.update([Detection("debris", 0.8, (x, 0.8, x + 0.05, 0.85))], at(i))
        ids.add(tracks[0].track_id)
    assert len(ids) == 1


def test_a_second_box_on_a_tracked_object_is_not_a_new_track() -> None:
    tracker = Tracker()
    tid = tracker.update([STALL], at(0))[0].track_id
    double = Detection("stall", 0.7, (0.41, 0.52, 0.47, 0.72))  # mostly inside STALL
    tracks = tracker.update([STALL, double], at(0.2))
    assert [t.track_id for t in tracks] == [tid]
    # The old track keeps the object when the detector later gives only the second box.
    assert [t.track_id for t in tracker.update([double], at(0.4))] == [tid]
