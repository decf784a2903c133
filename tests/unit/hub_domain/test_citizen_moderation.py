"""Moderating citizens' reports, pure part: who may, the reason, each action's state
checks, merge targets and when the case a report leaves is cancelled."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from central_hub.domain.citizen_moderation import (
    AUDIT_ACTIONS,
    MERGED_IN,
    MODERATORS,
    REASON_MAX,
    Moderation,
    ReportState,
    cancels_source,
    check_merge,
    check_moderation,
    check_moderator,
    check_reason,
)
from central_hub.domain.errors import ModerationRefused
from central_hub.domain.workflow import Action, Role, Stage

M = Moderation
VISIBLE = ReportState(report_id=7, case_id=3, hidden=False, redacted=False)
HIDDEN = ReportState(report_id=7, case_id=3, hidden=True, redacted=False)
REDACTED = ReportState(report_id=7, case_id=3, hidden=False, redacted=True)


def refused(kind: str, call: Callable[[], object]) -> ModerationRefused:
    """The refusal ``call`` raises, checked to be of ``kind``."""
    with pytest.raises(ModerationRefused) as err:
        call()
    assert err.value.kind == kind, err.value.reason
    return err.value


def moderate(action: Moderation, state: ReportState, role: Role = Role.OPERATOR) -> str:
    return check_moderation(action, role, state, "r", in_case=None)


def test_operators_and_admins_moderate() -> None:
    assert {Role.OPERATOR, Role.ADMIN} == MODERATORS
    for role in MODERATORS:
        check_moderator(role)


@pytest.mark.parametrize("role", [Role.DISPATCHER, Role.HANDLER])
def test_no_one_else_moderates(role: Role) -> None:
    err = refused("forbidden", lambda: check_moderator(role))
    assert f"role {role.value} may not moderate" in err.reason
    assert "admin, operator" in err.reason
    # The role is checked before anything else: a dispatcher with a bad reason is a 403.
    refused("forbidden", lambda: check_moderation(M.HIDE, role, VISIBLE, "", in_case=None))


@pytest.mark.parametrize(
    ("reason", "says"),
    [
        ("", "say why"),
        ("   \n ", "say why"),
        ("x" * (REASON_MAX + 1), f"at most {REASON_MAX} characters, not {REASON_MAX + 1}"),
        ("abuse\x00", "control characters"),
    ],
)
def test_a_bad_reason_is_refused_naming_the_field(reason: str, says: str) -> None:
    err = refused("invalid", lambda: check_reason(reason))
    assert err.field == "reason"
    assert err.reason.startswith("reason: ")
    assert says in err.reason


def test_a_good_reason_is_trimmed_and_may_span_lines() -> None:
    assert check_reason("  骂人的话 abusive\nwords  ") == "骂人的话 abusive\nwords"
    assert check_reason("x" * REASON_MAX) == "x" * REASON_MAX
    assert check_moderation(M.HIDE, Role.OPERATOR, VISIBLE, " spam ", in_case=3) == "spam"


def test_each_action_needs_the_state_it_changes() -> None:
    assert moderate(M.HIDE, VISIBLE) == "r"
    assert "hidden already" in refused("conflict", lambda: moderate(M.HIDE, HIDDEN)).reason
    assert moderate(M.UNHIDE, HIDDEN) == "r"
    assert "not hidden" in refused("conflict", lambda: moderate(M.UNHIDE, VISIBLE)).reason
    assert moderate(M.REDACT, HIDDEN, Role.ADMIN) == "r"
    assert "redacted already" in refused("conflict", lambda: moderate(M.REDACT, REDACTED)).reason
    # Merging and hiding do not care whether the text was redacted.
    assert moderate(M.MERGE, REDACTED) == "r"
    assert moderate(M.HIDE, REDACTED) == "r"


def test_a_report_moved_since_the_page_was_drawn_is_refused() -> None:
    err = refused(
        "conflict", lambda: check_moderation(M.HIDE, Role.OPERATOR, VISIBLE, "r", in_case=9)
    )
    assert "in case 3 now, not 9" in err.reason


def test_merge_targets() -> None:
    for stage in (Stage.REPORTED, Stage.VERIFYING, Stage.DISPATCHED, Stage.RETURNED):
        check_merge(VISIBLE, 4, stage)
    err = refused("conflict", lambda: check_merge(VISIBLE, 3, Stage.REPORTED))
    assert "in case 3 already" in err.reason
    assert err.field == "case_id"


@pytest.mark.parametrize("stage", [Stage.CLOSED, Stage.CANCELLED])
def test_no_merge_into_a_closed_or_cancelled_case(stage: Stage) -> None:
    err = refused("conflict", lambda: check_merge(VISIBLE, 4, stage))
    assert err.reason == f"case 4 is {stage.value}: a report can only join an open case"
    assert err.field == "case_id"


def test_the_emptied_case_a_citizen_opened_is_cancelled_while_cancel_applies() -> None:
    for stage in (Stage.REPORTED, Stage.VERIFYING, Stage.REGISTERED):
        assert cancels_source(stage, "citizen", 0)
        assert not cancels_source(stage, "citizen", 1)  # another report or an event is left
        assert not cancels_source(stage, "inspector", 0)  # an inspector's case stays
        assert not cancels_source(stage, "ai", 0)
    for stage in (Stage.DISPATCHED, Stage.HANDLED, Stage.CHECKING, Stage.RETURNED):
        assert not cancels_source(stage, "citizen", 0)  # the unit has it: not behind its back
    for stage in (Stage.CLOSED, Stage.CANCELLED):
        assert not cancels_source(stage, "citizen", 0)


def test_audit_words_fit_the_column_and_are_not_workflow_actions() -> None:
    words = [*AUDIT_ACTIONS.values(), MERGED_IN]
    assert set(AUDIT_ACTIONS) == set(Moderation)
    assert len(set(words)) == len(words)
    assert all(len(w) <= 32 for w in words)  # audits.action is String(32)
    assert not {a.value for a in Action} & set(words)
