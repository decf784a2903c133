"""The recheck decision: the same car still in the zone, or cleared."""

from __future__ import annotations

import pytest

from edge_agent.vision.frames import Box, Detection
from edge_agent.vision.geometry import Polygon
from edge_agent.vision.recheck import Outcome, decide, normalise_plate

ZONE = Polygon.of([(0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)])
SPOT: Box = (0.10, 0.55, 0.30, 0.80)
ELSEWHERE: Box = (0.60, 0.55, 0.80, 0.80)
OUTSIDE: Box = (0.10, 0.10, 0.30, 0.40)
CARS = frozenset({"car"})


def car(box: Box, score: float = 0.8, label: str = "car") -> Detection:
    return Detection(label=label, score=score, box=box)


def run(
    frames: list[list[Detection]],
    *,
    plate: str | None = "浙J12345",
    reads: dict[Box, str | None] | None = None,
    original: Box | None = SPOT,
) -> tuple[Outcome, int, list[Box]]:
    asked: list[Box] = []

    def read(_index: int, detection: Detection) -> str | None:
        asked.append(detection.box)
        return (reads or {}).get(detection.box)

    result = decide(
        frames,
        zone=ZONE,
        labels=CARS,
        min_score=0.5,
        plate=plate,
        original_box=original,
        read_plate=read,
    )
    return result.outcome, result.seen, asked


def test_the_same_plate_in_the_zone_is_still_there_wherever_it_stands() -> None:
    outcome, seen, _ = run([[car(ELSEWHERE)]] * 4, reads={ELSEWHERE: "浙J 12345"})
    assert (outcome, seen) == (Outcome.STILL_THERE, 4)


def test_another_plate_on_the_same_spot_is_another_car() -> None:
    outcome, seen, _ = run([[car(SPOT)]] * 4, reads={SPOT: "浙A99999"})
    assert (outcome, seen) == (Outcome.CLEARED, 0)


def test_an_unreadable_plate_counts_only_on_the_same_spot() -> None:
    assert run([[car(SPOT)]] * 4)[0] is Outcome.STILL_THERE
    assert run([[car(ELSEWHERE)]] * 4)[0] is Outcome.CLEARED


def test_an_empty_zone_or_cars_outside_it_are_cleared_and_no_plate_is_read() -> None:
    outcome, _, asked = run([[], [car(OUTSIDE)], [car(OUTSIDE)]])
    assert outcome is Outcome.CLEARED
    assert asked == []


def test_weak_detections_and_other_labels_do_not_count() -> None:
    frames = [[car(SPOT, score=0.3), car(SPOT, label="person")]] * 3
    assert run(frames)[0] is Outcome.CLEARED


@pytest.mark.parametrize(
    ("present", "total", "expected"),
    [(2, 4, Outcome.STILL_THERE), (1, 4, Outcome.CLEARED), (3, 5, Outcome.STILL_THERE)],
)
def test_a_car_must_be_seen_in_half_the_frames(present: int, total: int, expected: Outcome) -> None:
    frames = [[car(SPOT)] if i < present else [] for i in range(total)]
    assert run(frames)[0] is expected


def test_without_a_reminded_plate_the_spot_decides_and_nothing_is_read() -> None:
    outcome, _, asked = run([[car(SPOT)]] * 2, plate=None)
    assert outcome is Outcome.STILL_THERE
    assert asked == []
    assert run([[car(SPOT)]] * 2, plate=None, original=None)[0] is Outcome.CLEARED


def test_no_frames_is_an_error_not_an_answer() -> None:
    with pytest.raises(ValueError, match="at least one frame"):
        run([])


def test_plates_compare_without_spacing_or_case() -> None:
    assert normalise_plate("浙j·123-45 ") == "浙J12345"
