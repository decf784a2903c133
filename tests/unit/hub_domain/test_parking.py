"""The move-your-car loop's pure decisions: whom to remind, the wait, the answer, months."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from central_hub.domain.parking import (
    CheckState,
    ParkingPolicy,
    Remind,
    ToOperators,
    monthly,
    plan,
    read_answer,
)
from central_hub.domain.workflow import Action

T0 = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
POLICY = ParkingPolicy(
    default_wait=timedelta(minutes=10),
    by_area={"squad-1": timedelta(minutes=5), "street-9": timedelta(minutes=2)},
)


def test_a_known_owner_with_a_phone_is_reminded() -> None:
    assert plan("浙J12345", ("王某", "13800000000")) == Remind("浙J12345", "王某", "13800000000")


@pytest.mark.parametrize(
    ("plate", "owner", "reason"),
    [
        (None, None, "no plate was read"),
        ("", ("王某", "138"), "no plate was read"),
        ("浙J12345", None, "浙J12345 is not in the vehicle registry"),
        ("浙J12345", ("王某", "  "), "has no phone on file"),
    ],
)
def test_otherwise_the_case_goes_to_the_operators_with_why(
    plate: str | None, owner: tuple[str, str] | None, reason: str
) -> None:
    decision = plan(plate, owner)
    assert isinstance(decision, ToOperators)
    assert reason in decision.reason


def test_the_most_specific_area_on_the_path_sets_the_wait() -> None:
    assert POLICY.wait_for(["district", "squad-1", "zone-3", "street-9"]) == timedelta(minutes=2)
    assert POLICY.wait_for(["district", "squad-1", "zone-3", "street-8"]) == timedelta(minutes=5)
    assert POLICY.wait_for(["district", "squad-2"]) == timedelta(minutes=10)
    assert POLICY.wait_for([]) == timedelta(minutes=10)


@pytest.mark.parametrize(
    ("state", "detail", "action", "check"),
    [
        ("succeeded", "still_there: seen in 4 of 5 frames", Action.STAYED, CheckState.STAYED),
        ("succeeded", "cleared: seen in 0 of 5 frames", Action.MOVED, CheckState.MOVED),
        ("succeeded", "snapshot sent", None, CheckState.UNANSWERED),
        ("failed", "camera cam-1 has given no frame", None, CheckState.UNANSWERED),
        ("expired", "", None, CheckState.UNANSWERED),
        ("rejected", "bad signature", None, CheckState.UNANSWERED),
    ],
)
def test_the_units_answer_decides(
    state: str, detail: str, action: Action | None, check: CheckState
) -> None:
    answer = read_answer(state, detail, T0, T0 + timedelta(seconds=5), POLICY)
    assert (answer.action, answer.state, answer.pending) == (action, check, False)
    if check is CheckState.UNANSWERED and state != "succeeded":
        assert state in answer.detail


def test_silence_is_waited_for_until_the_answer_time_runs_out() -> None:
    for state in ("queued", "sent", "received"):
        assert read_answer(state, "", T0, T0 + timedelta(minutes=4), POLICY).pending
    late = read_answer("sent", "", T0, T0 + timedelta(minutes=5), POLICY)
    assert (late.action, late.state, late.pending) == (None, CheckState.UNANSWERED, False)
    assert "no answer" in late.detail


def test_months_count_reminders_moves_and_enforcement_in_local_time() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    rows = [
        (datetime(2026, 11, 30, 17, 0, tzinfo=UTC), "remind"),  # 1 December, 01:00 local
        (datetime(2026, 11, 30, 15, 0, tzinfo=UTC), "remind"),  # 30 November, 23:00
        (datetime(2026, 11, 30, 15, 20, tzinfo=UTC), "moved"),
        (datetime(2026, 12, 1, 2, 0, tzinfo=UTC), "remind"),
        (datetime(2026, 12, 1, 2, 5, tzinfo=UTC), "stayed"),
        (datetime(2026, 12, 1, 2, 9, tzinfo=UTC), "moved"),
        (datetime(2026, 12, 1, 3, 0, tzinfo=UTC), "verify"),  # not the loop's
    ]
    nov, dec = monthly(rows, shanghai)
    assert (nov.month, nov.reminded, nov.moved, nov.stayed) == ("2026-11", 1, 1, 0)
    assert (nov.share_moved, nov.enforcement_rate) == (1.0, 0.0)
    assert (dec.month, dec.reminded, dec.moved, dec.stayed) == ("2026-12", 2, 1, 1)
    assert (dec.share_moved, dec.enforcement_rate) == (0.5, 0.5)
    assert monthly([(T0, "moved")], shanghai)[0].share_moved is None
    # The bureau's year: 28,723 of 47,995 moved.
    year = [(T0, "remind")] * 47_995 + [(T0, "moved")] * 28_723
    assert monthly(year, shanghai)[0].share_moved == 0.5985
