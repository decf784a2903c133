"""Operators' verdicts as labels: the first verification decision counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from central_hub.domain.labels import Verdict, VerdictStep, label_of

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def step(action: str, minutes: int, verdict: Verdict | None = None) -> VerdictStep:
    return VerdictStep(action, T0 + timedelta(minutes=minutes), f"op-{minutes}", verdict)


def test_undecided_cases_have_no_label() -> None:
    assert label_of([]) is None
    assert label_of([step("file", 0), step("start_verify", 1)]) is None


def test_verified_is_a_true_positive() -> None:
    assert label_of([step("register", 2)]) == label_of([step("verify", 2)])
    label = label_of([step("file", 0), step("start_verify", 1), step("verify", 3)])
    assert label is not None
    assert (label.positive, label.verdict, label.name) == (True, None, "true_positive")
    assert (label.decided_at, label.by) == (T0 + timedelta(minutes=3), "op-3")


def test_cancelled_at_verification_is_a_false_alarm_of_its_kind() -> None:
    for verdict in Verdict:
        label = label_of([step("file", 0), step("cancel", 2, verdict)])
        assert label is not None
        assert not label.positive
        assert label.name == f"false_positive:{verdict.value}"


def test_the_first_decision_counts_in_any_order_given() -> None:
    """Registered, then cancelled as outside the remit: the unit still saw it right."""
    trail = [step("cancel", 9, Verdict.NOT_A_VIOLATION), step("verify", 4), step("file", 0)]
    label = label_of(trail)
    assert label is not None
    assert label.positive


def test_a_cancel_without_a_verdict_counts_as_other() -> None:
    label = label_of([step("cancel", 2)])
    assert label is not None
    assert label.verdict is Verdict.OTHER
    assert label.name == "false_positive:other"
