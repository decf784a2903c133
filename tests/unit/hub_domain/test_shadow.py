"""Matching a shadow candidate's events to the real ones and their verdicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from central_hub.domain.shadow import Seen, compare

T0 = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def test_counts_kept_missed_repeated_spared_and_new() -> None:
    real = [
        Seen("0501", at(0), True),  # kept
        Seen("0501", at(300), True),  # missed
        Seen("0504", at(0), False),  # repeated
        Seen("0504", at(600), False),  # spared
        Seen("0505", at(900), None),  # undecided, matched: neither kept nor new
    ]
    shadow = [
        Seen("0501", at(20)),
        Seen("0504", at(-30)),
        Seen("0505", at(930)),
        Seen("0501", at(2000)),  # new
        Seen("0502", at(0)),  # another code at the same time: new
    ]
    c = compare(real, shadow, window_s=60)
    assert (c.real, c.judged, c.true_positives, c.false_alarms, c.shadow) == (5, 4, 2, 2, 5)
    assert (c.kept, c.missed, c.repeated, c.spared, c.new) == (1, 1, 1, 1, 2)


def test_each_real_event_matches_once_nearest_first() -> None:
    real = [Seen("0501", at(0), True), Seen("0501", at(100), False)]
    shadow = [Seen("0501", at(50)), Seen("0501", at(95)), Seen("0501", at(5))]
    c = compare(real, shadow, window_s=60)
    assert (c.kept, c.repeated, c.new) == (1, 1, 1)  # 5 s -> the first, 95 s -> the second


def test_window_bounds_a_match() -> None:
    c = compare([Seen("0501", at(0), True)], [Seen("0501", at(61))], window_s=60)
    assert (c.kept, c.missed, c.new) == (0, 1, 1)
    assert compare([], []).shadow == 0
