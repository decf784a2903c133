"""Rule engine: dwell, grace, min score, schedule, cooldown, per-object vs per-zone."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta

from edge_agent.vision.config import CameraConfig
from edge_agent.vision.frames import Box
from edge_agent.vision.rules import RuleEngine, Violation
from edge_agent.vision.tracker import TrackedObject

T0 = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
IN_ZONE: Box = (0.40, 0.50, 0.50, 0.70)  # bottom-centre (0.45, 0.70)
OUT_ZONE: Box = (0.40, 0.10, 0.50, 0.30)


def camera(rules: list[dict[str, object]], grace: float = 30.0) -> CameraConfig:
    return CameraConfig.model_validate(
        {
            "id": "cam1",
            "source": "0",
            "track_grace_s": grace,
            "zones": [{"name": "pavement", "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}],
            "rules": rules,
        }
    )


def track(
    tid: int, label: str = "stall", box: Box = IN_ZONE, score: float = 0.9, seen: bool = True
) -> TrackedObject:
    return TrackedObject(tid, label, score, box, T0, T0, seen, 1)


def run(
    engine: RuleEngine, seconds: float, tracks_at, fps: float = 1.0, start: float = 0.0
) -> list[Violation]:
    out: list[Violation] = []
    n = int(seconds * fps)
    for i in range(n + 1):
        t = start + i / fps
        out += engine.evaluate(tracks_at(t), T0 + timedelta(seconds=t), evidence=t)
    return out


def test_vendor_staying_six_minutes_gives_one_event_after_five() -> None:
    engine = RuleEngine(camera([{"name": "v", "kind": "vendor", "zone": "pavement"}]), tz=SHANGHAI)
    found = run(engine, 360, lambda t: [track(1)])
    assert len(found) == 1
    v = found[0]
    assert v.rule.code == "0501"
    assert v.dwell_s >= 300
    assert v.detected_at - v.started_at == timedelta(seconds=300)
    assert v.objects[0].track_id == 1


def test_passers_by_and_short_stays_give_nothing() -> None:
    engine = RuleEngine(camera([{"name": "v", "kind": "vendor", "zone": "pavement"}]), tz=SHANGHAI)
    # A stall that stays 4 minutes, then leaves for good.
    assert run(engine, 600, lambda t: [track(1)] if t < 240 else []) == []


def test_occlusion_within_grace_keeps_the_dwell() -> None:
    engine = RuleEngine(camera([{"name": "v", "kind": "vendor", "zone": "pavement"}]), tz=SHANGHAI)

    def tracks_at(t: float) -> list[TrackedObject]:
        hidden = 150 <= t < 170  # a bus passes for 20 s
        return [track(1, seen=not hidden)]

    found = run(engine, 400, tracks_at)
    assert len(found) == 1
    assert found[0].started_at == T0


def test_absence_longer_than_grace_restarts_the_dwell() -> None:
    engine = RuleEngine(
        camera([{"name": "v", "kind": "vendor", "zone": "pavement"}], grace=10.0), tz=SHANGHAI
    )

    def tracks_at(t: float) -> list[TrackedObject]:
        return [track(1, seen=not 200 <= t < 240)]

    found = run(engine, 400, tracks_at)
    assert len(found) == 0  # 200 s, then 160 s: never 300 s in a row


def test_out_of_zone_and_low_score_do_not_count() -> None:
    engine = RuleEngine(camera([{"name": "v", "kind": "vendor", "zone": "pavement"}]), tz=SHANGHAI)
    assert run(engine, 400, lambda t: [track(1, box=OUT_ZONE)]) == []
    assert run(engine, 400, lambda t: [track(2, score=0.2)]) == []
    assert run(engine, 400, lambda t: [track(3, label="person")]) == []


def test_new_track_on_the_same_spot_within_cooldown_is_silent() -> None:
    engine = RuleEngine(
        camera([{"name": "v", "kind": "vendor", "zone": "pavement", "dwell_s": 60}], grace=5.0),
        tz=SHANGHAI,
    )
    first = run(engine, 100, lambda t: [track(1)])
    # The tracker lost it and made a new id for the same stall.
    second = run(engine, 100, lambda t: [track(2)], start=110)
    assert (len(first), len(second)) == (1, 0)
    # Another stall elsewhere in the zone is a different vendor.
    other = run(engine, 100, lambda t: [track(3, box=(0.7, 0.6, 0.8, 0.9))], start=220)
    assert len(other) == 1


def test_zone_kind_groups_objects_and_respects_cooldown() -> None:
    engine = RuleEngine(
        camera([{"name": "s", "kind": "shop_front", "zone": "pavement", "cooldown_s": 300}]),
        tz=SHANGHAI,
    )
    a = track(1, label="goods", box=(0.1, 0.6, 0.2, 0.7))
    b = track(2, label="goods", box=(0.3, 0.6, 0.4, 0.7))
    found = run(engine, 200, lambda t: [a, b])
    assert len(found) == 1
    assert found[0].rule.code == "0504"
    assert {o.track_id for o in found[0].objects} == {1, 2}
    # A third pile qualifying inside the cooldown is folded in silently; after it, a new one fires.
    c = track(3, label="goods", box=(0.5, 0.6, 0.6, 0.7))
    assert run(engine, 150, lambda t: [a, b, c], start=201) == []
    d = track(4, label="goods", box=(0.7, 0.6, 0.8, 0.7))
    later = run(engine, 200, lambda t: [a, b, c, d], start=352)
    assert [{o.track_id for o in v.objects} for v in later] == [{4}]


def test_schedule_holds_events_outside_hours() -> None:
    cam = camera(
        [
            {
                "name": "v",
                "kind": "vendor",
                "zone": "pavement",
                "dwell_s": 60,
                "schedule": "11:00-22:00",
            }
        ]
    )
    engine = RuleEngine(cam, tz=SHANGHAI)
    # 10:00-10:58 local: dwell grows but the rule sleeps; at 11:00 it fires at once.
    assert run(engine, 3500, lambda t: [track(1)], fps=0.1) == []
    found = run(engine, 200, lambda t: [track(1)], fps=0.1, start=3600)
    assert len(found) == 1
    assert found[0].detected_at.astimezone(SHANGHAI).hour == 11


def test_best_frame_is_the_highest_score() -> None:
    engine = RuleEngine(
        camera([{"name": "v", "kind": "vendor", "zone": "pavement", "dwell_s": 10}]), tz=SHANGHAI
    )
    found = run(engine, 20, lambda t: [track(1, score=0.95 if t in (2, 7) else 0.7)])
    assert found[0].evidence == 7  # the peak at 2 s came before half the dwell: not kept
    assert found[0].objects[0].score == 0.95
    assert 0.7 < found[0].confidence < 0.95


def test_moving_object_never_dwells_but_parks() -> None:
    engine = RuleEngine(
        camera([{"name": "p", "kind": "parking", "zone": "pavement", "dwell_s": 60}]),
        tz=SHANGHAI,
    )

    def driving(t: float) -> list[TrackedObject]:  # creeps 0.06 of the frame a minute
        x = 0.05 + t * 0.001
        return [track(1, label="car", box=(x, 0.6, x + 0.1, 0.8))]

    assert run(engine, 600, driving) == []

    def parks(t: float) -> list[TrackedObject]:  # drives for 100 s, then stays at x = 0.8
        x = 0.3 + min(t - 600.0, 100.0) * 0.005
        return [track(2, label="car", box=(x, 0.6, x + 0.1, 0.8))]

    found = run(engine, 300, parks, start=600)
    assert len(found) == 1
    assert found[0].started_at >= T0 + timedelta(seconds=600 + 80)


def test_jitter_and_half_occlusion_are_not_moving() -> None:
    engine = RuleEngine(
        camera([{"name": "v", "kind": "vendor", "zone": "pavement", "dwell_s": 60}]),
        tz=SHANGHAI,
    )

    def tracks_at(t: float) -> list[TrackedObject]:
        if 20 <= t < 30:  # the left half is hidden
            return [track(1, box=(0.45, 0.5, 0.5, 0.7))]
        wobble = 0.004 if int(t) % 2 else -0.004
        return [track(1, box=(0.4 + wobble, 0.5, 0.5 + wobble, 0.7))]

    found = run(engine, 70, tracks_at)
    assert len(found) == 1
    assert found[0].started_at == T0


def test_spillage_from_a_moving_truck_is_not_stationary() -> None:
    cam = CameraConfig.model_validate(
        {
            "id": "rear",
            "source": "0",
            "zones": [{"name": "road", "polygon": [[0, 0.3], [1, 0.3], [1, 1], [0, 1]]}],
            "rules": [{"name": "s", "kind": "spillage", "zone": "road"}],
        }
    )
    engine = RuleEngine(cam, tz=SHANGHAI)

    def receding(t: float) -> list[TrackedObject]:  # the pile shrinks towards the horizon
        y = 0.9 - t * 0.05
        return [track(1, label="debris", box=(0.45, y - 0.05, 0.55, y))]

    found = run(engine, 6, receding, fps=2.0)
    assert [v.rule.code for v in found] == ["2101"]


def test_sparse_sightings_on_one_spot_are_not_a_stay() -> None:
    """Different cars passing the same spot, sampled every few seconds, chain into one
    track seen now and then; that is not a parked car."""
    engine = RuleEngine(
        camera([{"name": "p", "kind": "parking", "zone": "pavement", "dwell_s": 60}]),
        tz=SHANGHAI,
    )
    assert run(engine, 600, lambda t: [track(1, label="car", seen=int(t) % 10 == 0)]) == []
    # Seen in 8 frames of 10 (a flaky detector) is a stay.
    found = run(engine, 200, lambda t: [track(2, label="car", seen=int(t) % 5 != 0)], start=700)
    assert len(found) == 1


def test_bottom_hidden_by_a_passing_car_is_not_moving() -> None:
    engine = RuleEngine(
        camera([{"name": "v", "kind": "vendor", "zone": "pavement", "dwell_s": 60}]),
        tz=SHANGHAI,
    )

    def tracks_at(t: float) -> list[TrackedObject]:
        if 20 <= t < 25:  # the lower 60% is hidden: the box's bottom edge rises
            return [track(1, box=(0.40, 0.50, 0.50, 0.58))]
        return [track(1)]

    found = run(engine, 70, tracks_at)
    assert len(found) == 1
    assert found[0].started_at == T0
