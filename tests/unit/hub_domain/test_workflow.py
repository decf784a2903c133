"""The case workflow: full path with rework, every illegal move refused, the role matrix."""

from __future__ import annotations

import itertools

import pytest

from central_hub.domain.errors import TransitionRefused
from central_hub.domain.workflow import (
    ACTION_ROLES,
    FINAL_STAGES,
    HUB_ACTIONS,
    TRANSITIONS,
    Action,
    Role,
    Stage,
    allowed_actions,
    is_open,
    needs_verification,
    transition,
)

A, R, S = Action, Role, Stage


def test_full_path_with_rework_loop() -> None:
    steps = [
        (A.START_VERIFY, R.OPERATOR, S.VERIFYING),
        (A.VERIFY, R.OPERATOR, S.REGISTERED),
        (A.DISPATCH, R.DISPATCHER, S.DISPATCHED),
        (A.HANDLE, R.HANDLER, S.HANDLED),
        (A.CHECK, R.OPERATOR, S.CHECKING),
        (A.RETURN_FOR_REWORK, R.OPERATOR, S.RETURNED),
        (A.DISPATCH, R.DISPATCHER, S.DISPATCHED),
        (A.HANDLE, R.HANDLER, S.HANDLED),
        (A.CHECK, R.OPERATOR, S.CHECKING),
        (A.APPROVE, R.OPERATOR, S.CLOSED),
    ]
    stage = S.REPORTED
    for action, role, expected in steps:
        stage = transition(stage, action, role)
        assert stage is expected
    assert not is_open(stage)
    assert allowed_actions(stage, R.ADMIN) == []


def test_cancel_before_dispatch_only() -> None:
    for stage in (S.REPORTED, S.VERIFYING, S.REGISTERED):
        assert transition(stage, A.CANCEL, R.OPERATOR) is S.CANCELLED
    with pytest.raises(TransitionRefused, match="cannot cancel a case that is dispatched"):
        transition(S.DISPATCHED, A.CANCEL, R.ADMIN)


LEGAL = set(TRANSITIONS)


@pytest.mark.parametrize(
    ("stage", "action"),
    [pair for pair in itertools.product(Stage, Action) if pair not in LEGAL],
)
def test_every_illegal_transition_is_refused_with_a_reason(stage: Stage, action: Action) -> None:
    with pytest.raises(TransitionRefused) as info:
        transition(stage, action, R.ADMIN)
    refused = info.value
    assert refused.kind == "illegal"
    assert f"cannot {action.value} a case that is {stage.value}" in refused.reason
    if stage in FINAL_STAGES:
        assert "final" in refused.reason
    else:
        # the reason lists what is possible now, and each of those really is possible
        possible = refused.reason.split("possible now: ", 1)[1].split(", ")
        assert possible
        for name in possible:
            assert (stage, Action(name)) in LEGAL


MATRIX = {
    R.OPERATOR: {
        A.START_VERIFY,
        A.VERIFY,
        A.REGISTER,
        A.CANCEL,
        A.CHECK,
        A.APPROVE,
        A.RETURN_FOR_REWORK,
    },
    R.DISPATCHER: {A.DISPATCH, A.REGISTER},
    R.HANDLER: {A.HANDLE},
    R.ADMIN: set(Action) - {A.REMIND, A.MOVED, A.STAYED},
}


@pytest.mark.parametrize(("pair", "role"), list(itertools.product(sorted(LEGAL), Role)))
def test_role_matrix_on_every_legal_transition(pair: tuple[Stage, Action], role: Role) -> None:
    stage, action = pair
    if action in HUB_ACTIONS:
        with pytest.raises(TransitionRefused, match="taken by the hub itself") as info:
            transition(stage, action, role, verification_needed=False)
        assert info.value.kind == "forbidden"
        assert action not in allowed_actions(stage, role, verification_needed=False)
        assert transition(stage, action, role, by_hub=True) is TRANSITIONS[pair]
    elif action in MATRIX[role]:
        target = transition(stage, action, role, verification_needed=False)
        assert target is TRANSITIONS[pair]
        assert action in allowed_actions(stage, role, verification_needed=False)
    else:
        with pytest.raises(TransitionRefused) as info:
            transition(stage, action, role, verification_needed=False)
        assert info.value.kind == "forbidden"
        assert f"role {role.value} may not {action.value}" in info.value.reason
        assert "admin" in info.value.reason
        assert action not in allowed_actions(stage, role, verification_needed=False)


def test_matrix_table_matches_code() -> None:
    for role, actions in MATRIX.items():
        assert {a for a in Action if role in ACTION_ROLES[a]} == actions


def test_the_parking_loop_reminds_then_closes_or_registers() -> None:
    assert transition(S.REPORTED, A.REMIND, R.ADMIN, by_hub=True) is S.REMINDED
    assert transition(S.REMINDED, A.MOVED, R.ADMIN, by_hub=True) is S.CLOSED
    # Still there registers it for enforcement without the unverified check.
    assert transition(S.REMINDED, A.STAYED, R.OPERATOR, by_hub=True) is S.REGISTERED
    # People take a reminded case over; the hub never takes a person's action.
    assert allowed_actions(S.REMINDED, R.OPERATOR) == [A.START_VERIFY, A.CANCEL]
    with pytest.raises(TransitionRefused, match="does not verify by itself"):
        transition(S.VERIFYING, A.VERIFY, R.ADMIN, by_hub=True)
    with pytest.raises(TransitionRefused, match="cannot remind a case that is verifying"):
        transition(S.VERIFYING, A.REMIND, R.ADMIN, by_hub=True)


def test_unverified_reports_cannot_be_registered_directly() -> None:
    with pytest.raises(TransitionRefused) as info:
        transition(S.REPORTED, A.REGISTER, R.OPERATOR)
    assert info.value.kind == "unverified"
    assert "verif" in info.value.reason
    assert A.REGISTER not in allowed_actions(S.REPORTED, R.OPERATOR)
    assert transition(S.REPORTED, A.REGISTER, R.DISPATCHER, verification_needed=False) is (
        S.REGISTERED
    )
    assert allowed_actions(S.REPORTED, R.OPERATOR, verification_needed=False) == [
        A.START_VERIFY,
        A.REGISTER,
        A.CANCEL,
    ]


def test_role_is_checked_before_verification() -> None:
    with pytest.raises(TransitionRefused) as info:
        transition(S.REPORTED, A.REGISTER, R.HANDLER)
    assert info.value.kind == "forbidden"


def test_needs_verification() -> None:
    assert needs_verification("ai", False)
    assert needs_verification("citizen", False)
    assert needs_verification("inspector", True)
    assert not needs_verification("inspector", False)
    assert not needs_verification("referral", False)


def test_strings_are_accepted_and_garbage_refused() -> None:
    assert transition("dispatched", "handle", "handler") is S.HANDLED  # type: ignore[arg-type]
    with pytest.raises(TransitionRefused, match="not a stage"):
        transition("lost", "handle", "handler")  # type: ignore[arg-type]
    with pytest.raises(TransitionRefused, match="not a stage"):
        transition("dispatched", "handle", "mayor")  # type: ignore[arg-type]


def test_allowed_actions_per_stage_for_admin() -> None:
    assert allowed_actions(S.CHECKING, R.ADMIN) == [A.APPROVE, A.RETURN_FOR_REWORK]
    assert allowed_actions(S.RETURNED, R.ADMIN) == [A.DISPATCH]
    assert allowed_actions(S.RETURNED, R.HANDLER) == []
    assert allowed_actions(S.DISPATCHED, R.HANDLER) == [A.HANDLE]
    assert is_open("returned")
    assert not is_open(S.CANCELLED)


def test_every_open_stage_can_still_end() -> None:
    # from every open stage some path of legal transitions reaches closed or cancelled,
    # so no case can get stuck; and every stage but reported is reachable.
    reachable = {S.REPORTED}
    frontier = [S.REPORTED]
    while frontier:
        stage = frontier.pop()
        for (frm, _), to in TRANSITIONS.items():
            if frm == stage and to not in reachable:
                reachable.add(to)
                frontier.append(to)
    assert reachable == set(Stage)
    for stage in set(Stage) - FINAL_STAGES:
        seen, todo = {stage}, [stage]
        while todo:
            current = todo.pop()
            for (frm, _), to in TRANSITIONS.items():
                if frm == current and to not in seen:
                    seen.add(to)
                    todo.append(to)
        assert seen & FINAL_STAGES, stage
