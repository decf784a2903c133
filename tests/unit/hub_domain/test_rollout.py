"""The campaign decisions: canary first, the rate, timeouts, thresholds, rollback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from central_hub.domain.rollout import (
    Phase,
    Policy,
    Unit,
    UnitState,
    Verdicts,
    decide,
    pick_canary,
)

T0 = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
Q, RUN, OK, FAIL = UnitState.QUEUED, UnitState.IN_PROGRESS, UnitState.SUCCEEDED, UnitState.FAILED


def units(
    states: list[UnitState], *, canary: int = 0, started: datetime | None = None
) -> list[Unit]:
    return [
        Unit(f"u{i:02d}", s, i < canary, True, None if s is Q else started or T0)
        for i, s in enumerate(states)
    ]


def test_canary_is_online_units_first_in_id_order() -> None:
    assert pick_canary(["c", "a", "b", "d"], online=["d", "b"], count=3) == ["b", "d", "a"]


def test_the_canary_starts_alone() -> None:
    step = decide(
        Policy(canary=2, rate_per_min=600), Phase.CANARY, T0, units([Q] * 6, canary=2), T0
    )
    assert step.start == ["u00", "u01"]
    assert step.phase is None


def test_the_canary_waits_for_all_its_units() -> None:
    us = units([OK, RUN, Q, Q], canary=2)
    step = decide(Policy(canary=2), Phase.CANARY, T0, us, T0 + timedelta(seconds=5))
    assert step.start == []
    assert step.phase is None


def test_a_good_canary_moves_on_after_the_soak() -> None:
    us = units([OK, Q, Q], canary=1)
    policy = Policy(canary=1, soak_s=60)
    done = T0 + timedelta(seconds=10)
    assert (
        decide(
            policy, Phase.CANARY, T0, us, done + timedelta(seconds=59), last_canary_done=done
        ).phase
        is None
    )
    step = decide(policy, Phase.CANARY, T0, us, done + timedelta(seconds=61), last_canary_done=done)
    assert step.phase is Phase.ROLLING
    assert "1 of 1 units succeeded" in step.reason


def test_a_failed_canary_aborts_and_rolls_back_the_units_that_took_it() -> None:
    us = units([OK, FAIL, Q, Q], canary=2)
    step = decide(Policy(canary=2, max_failed_share=0.2), Phase.CANARY, T0, us, T0)
    assert step.phase is Phase.ABORTED
    assert step.roll_back == ["u00"]
    assert "1 of 2 units failed (50% > 20%)" in step.reason


def test_a_failure_within_the_share_does_not_abort_the_canary() -> None:
    us = units([OK, OK, OK, OK, FAIL, Q], canary=5)
    step = decide(Policy(canary=5, max_failed_share=0.2), Phase.CANARY, T0, us, T0)
    assert step.phase is Phase.ROLLING


def test_false_alarms_of_the_canary_abort_once_enough_are_judged() -> None:
    us = units([OK, Q], canary=1)
    policy = Policy(canary=1, max_false_alarm_rate=0.3, min_verdicts=5, soak_s=600)
    few = decide(policy, Phase.CANARY, T0, us, T0, verdicts=Verdicts(judged=4, false_alarms=4))
    assert few.phase is None  # too few judged yet, and still soaking
    many = decide(policy, Phase.CANARY, T0, us, T0, verdicts=Verdicts(judged=10, false_alarms=4))
    assert many.phase is Phase.ABORTED
    assert many.roll_back == ["u00"]
    assert "4 of 10 judged events were false alarms (40% > 30%)" in many.reason
    fine = decide(
        policy,
        Phase.CANARY,
        T0,
        us,
        T0 + timedelta(seconds=601),
        verdicts=Verdicts(judged=10, false_alarms=2),
        last_canary_done=T0,
    )
    assert fine.phase is Phase.ROLLING
    assert "2 of 10 judged events false alarms" in fine.reason


def test_the_rate_spreads_starts_over_the_phase() -> None:
    policy = Policy(canary=0, rate_per_min=60)  # one a second
    us = units([Q] * 10)
    assert decide(policy, Phase.ROLLING, T0, us, T0).start == ["u00"]
    assert len(decide(policy, Phase.ROLLING, T0, us, T0 + timedelta(seconds=3.5)).start) == 4
    two_started = [
        Unit(u.device_id, RUN, False, True, T0) if i < 2 else u for i, u in enumerate(us)
    ]
    assert decide(policy, Phase.ROLLING, T0, two_started, T0 + timedelta(seconds=3.5)).start == [
        "u02",
        "u03",
    ]


def test_offline_units_wait_queued_and_keep_the_campaign_open() -> None:
    us = [Unit("a", OK, False, True, T0), Unit("b", Q, False, False)]
    step = decide(Policy(canary=0), Phase.ROLLING, T0, us, T0 + timedelta(hours=1))
    assert step.start == []
    assert step.phase is None


def test_units_past_their_timeout_are_timed_out_and_count_as_failures() -> None:
    policy = Policy(canary=0, unit_timeout_s=60, max_failed_share=0.5)
    us = units([RUN, OK, OK, OK, OK, OK], started=T0)
    step = decide(policy, Phase.ROLLING, T0, us, T0 + timedelta(seconds=61))
    assert step.time_out == ["u00"]
    assert step.phase is Phase.COMPLETED
    bad = units([RUN, RUN, RUN, OK, OK, OK], started=T0)
    step = decide(policy, Phase.ROLLING, T0, bad, T0 + timedelta(seconds=61))
    assert step.time_out == ["u00", "u01", "u02"]
    assert step.phase is Phase.COMPLETED
    worse = units([RUN, RUN, RUN, RUN, OK, OK], started=T0)
    assert (
        decide(policy, Phase.ROLLING, T0, worse, T0 + timedelta(seconds=61)).phase is Phase.ABORTED
    )


def test_rolling_judges_its_share_only_after_a_few_units() -> None:
    policy = Policy(canary=0, max_failed_share=0.2, rate_per_min=1)
    early = units([FAIL, Q, Q, Q, Q, Q, Q, Q])
    assert decide(policy, Phase.ROLLING, T0, early, T0).phase is None
    later = units([FAIL, OK, OK, FAIL, OK, Q, Q, Q])
    step = decide(policy, Phase.ROLLING, T0, later, T0)
    assert step.phase is Phase.ABORTED
    assert step.start == []
    assert step.roll_back == []


def test_finished_campaigns_do_nothing() -> None:
    for phase in (Phase.COMPLETED, Phase.ABORTED):
        step = decide(Policy(), phase, T0, units([Q, RUN]), T0 + timedelta(days=1))
        assert step.start == step.time_out == step.roll_back == []
        assert step.phase is None


def test_a_false_alarm_limit_needs_a_canary() -> None:
    with pytest.raises(ValidationError, match="give canary >= 1"):
        Policy(canary=0, max_false_alarm_rate=0.2)
