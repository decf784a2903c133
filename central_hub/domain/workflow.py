"""The case workflow of DESIGN §5 as a pure state machine.

Stages (DOMAIN.md, "Case workflow")::

    reported ─start_verify─▶ verifying ─verify─▶ registered ─dispatch─▶ dispatched
        │                        │                   │                      │
        ├─register─▶ registered  │ cancel            │ cancel            handle
        │ (only when no          ▼                   ▼                      ▼
        │  verification      cancelled           cancelled              handled
        │  is needed)                                                       │
        └─cancel─▶ cancelled                                              check
                                                                            ▼
               dispatched ◀─dispatch─ returned ◀─return_for_rework─── checking ─approve─▶ closed

* ``verify`` is the person's confirmation that the report is real; it registers the case
  (立案) in the same step. ``cancel`` before dispatch is "not a case" (不予立案).
* ``register`` straight from ``reported`` is only for reports that need no verification
  (an inspector's own report, a referral); AI- and citizen-sourced reports and codes whose
  catalogue entry says ``verification_required`` must go through ``verifying`` first
  (see :func:`needs_verification`).
* ``returned`` is rework (返工): the field check failed and the case waits to be
  dispatched again, to the same unit or another.
* ``closed`` and ``cancelled`` are final.
* ``reminded`` is the move-your-car loop (:mod:`central_hub.domain.parking`): the hub
  itself takes ``remind`` on a parked car whose owner it can text, waits, asks the unit to
  look again, and takes ``moved`` (closed: rectified after the reminder) or ``stayed``
  (registered for enforcement: two sightings minutes apart and a plate matched in the
  vehicle registry stand in for the operator's check). An operator may take the case
  over at any time (``start_verify``), and does when the unit cannot answer.

Role matrix (who may take each action; ``admin`` may take every action):

==================  ========  ==========  =======  =====
action              operator  dispatcher  handler  admin
==================  ========  ==========  =======  =====
start_verify        yes                            yes
verify              yes                            yes
register            yes       yes                  yes
cancel              yes                            yes
dispatch                      yes                  yes
handle                                    yes      yes
check               yes                            yes
approve             yes                            yes
return_for_rework   yes                            yes
==================  ========  ==========  =======  =====

``remind``, ``moved`` and ``stayed`` (:data:`HUB_ACTIONS`) are the hub's own actions, no
person's: its parking loop takes them with ``by_hub=True``; people take the case over
with ``start_verify``.

The operator (the command centre's 坐席) verifies, registers, cancels, runs the field
check and closes or returns; the dispatcher (派遣员) dispatches and may register; the
handler (the line's unit, 处置单位) records the handling with its photos.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

from central_hub.domain.errors import TransitionRefused

__all__ = [
    "ACTION_ROLES",
    "FINAL_STAGES",
    "HUB_ACTIONS",
    "OPEN_STAGES",
    "TRANSITIONS",
    "UNHANDLED_STAGES",
    "Action",
    "Role",
    "Stage",
    "allowed_actions",
    "is_open",
    "needs_verification",
    "transition",
]


class Stage(enum.StrEnum):
    """Where a case stands in the workflow."""

    REPORTED = "reported"
    VERIFYING = "verifying"
    REGISTERED = "registered"
    DISPATCHED = "dispatched"
    HANDLED = "handled"
    CHECKING = "checking"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    RETURNED = "returned"
    REMINDED = "reminded"


class Action(enum.StrEnum):
    """What a person does to a case; each moves it to another stage."""

    START_VERIFY = "start_verify"
    VERIFY = "verify"
    REGISTER = "register"
    CANCEL = "cancel"
    DISPATCH = "dispatch"
    HANDLE = "handle"
    CHECK = "check"
    APPROVE = "approve"
    RETURN_FOR_REWORK = "return_for_rework"
    REMIND = "remind"
    MOVED = "moved"
    STAYED = "stayed"


class Role(enum.StrEnum):
    """The hub's user roles."""

    OPERATOR = "operator"
    DISPATCHER = "dispatcher"
    HANDLER = "handler"
    ADMIN = "admin"


#: (stage, action) -> next stage; anything not here is illegal.
TRANSITIONS: Mapping[tuple[Stage, Action], Stage] = {
    (Stage.REPORTED, Action.START_VERIFY): Stage.VERIFYING,
    (Stage.REPORTED, Action.REGISTER): Stage.REGISTERED,
    (Stage.REPORTED, Action.CANCEL): Stage.CANCELLED,
    (Stage.VERIFYING, Action.VERIFY): Stage.REGISTERED,
    (Stage.VERIFYING, Action.CANCEL): Stage.CANCELLED,
    (Stage.REGISTERED, Action.DISPATCH): Stage.DISPATCHED,
    (Stage.REGISTERED, Action.CANCEL): Stage.CANCELLED,
    (Stage.DISPATCHED, Action.HANDLE): Stage.HANDLED,
    (Stage.HANDLED, Action.CHECK): Stage.CHECKING,
    (Stage.CHECKING, Action.APPROVE): Stage.CLOSED,
    (Stage.CHECKING, Action.RETURN_FOR_REWORK): Stage.RETURNED,
    (Stage.RETURNED, Action.DISPATCH): Stage.DISPATCHED,
    (Stage.REPORTED, Action.REMIND): Stage.REMINDED,
    (Stage.REMINDED, Action.MOVED): Stage.CLOSED,
    (Stage.REMINDED, Action.STAYED): Stage.REGISTERED,
    (Stage.REMINDED, Action.START_VERIFY): Stage.VERIFYING,
    (Stage.REMINDED, Action.CANCEL): Stage.CANCELLED,
}

#: action -> roles that may take it (admin may take all).
ACTION_ROLES: Mapping[Action, frozenset[Role]] = {
    Action.START_VERIFY: frozenset({Role.OPERATOR, Role.ADMIN}),
    Action.VERIFY: frozenset({Role.OPERATOR, Role.ADMIN}),
    Action.REGISTER: frozenset({Role.OPERATOR, Role.DISPATCHER, Role.ADMIN}),
    Action.CANCEL: frozenset({Role.OPERATOR, Role.ADMIN}),
    Action.DISPATCH: frozenset({Role.DISPATCHER, Role.ADMIN}),
    Action.HANDLE: frozenset({Role.HANDLER, Role.ADMIN}),
    Action.CHECK: frozenset({Role.OPERATOR, Role.ADMIN}),
    Action.APPROVE: frozenset({Role.OPERATOR, Role.ADMIN}),
    Action.RETURN_FOR_REWORK: frozenset({Role.OPERATOR, Role.ADMIN}),
    Action.REMIND: frozenset(),
    Action.MOVED: frozenset(),
    Action.STAYED: frozenset(),
}

#: Actions only the hub takes (the parking loop), never a person, whatever their role.
HUB_ACTIONS: frozenset[Action] = frozenset({Action.REMIND, Action.MOVED, Action.STAYED})

#: Stages after which nothing more happens.
FINAL_STAGES: frozenset[Stage] = frozenset({Stage.CLOSED, Stage.CANCELLED})
#: Stages of a case that is still open (a new report of the same problem merges into it).
OPEN_STAGES: frozenset[Stage] = frozenset(Stage) - FINAL_STAGES
#: Open stages in which the problem has not (or not acceptably) been handled yet.
UNHANDLED_STAGES: frozenset[Stage] = frozenset(
    {
        Stage.REPORTED,
        Stage.VERIFYING,
        Stage.REGISTERED,
        Stage.DISPATCHED,
        Stage.RETURNED,
        Stage.REMINDED,
    }
)

#: Sources whose reports always need a person's verification (DESIGN §5).
_VERIFIED_SOURCES = frozenset({"ai", "citizen"})


def is_open(stage: Stage | str) -> bool:
    """Whether a case in ``stage`` is still open (not closed, not cancelled)."""
    return Stage(stage) in OPEN_STAGES


def needs_verification(source: str, verification_required: bool) -> bool:
    """Whether a report must pass ``verifying`` before it can be registered.

    AI- and citizen-sourced reports always do; others when their catalogue entry says
    ``verification_required``.
    """
    return source in _VERIFIED_SOURCES or verification_required


def _names(items: Iterable[enum.StrEnum]) -> str:
    values = [item.value for item in items]
    return ", ".join(values) if values else "none"


def transition(
    stage: Stage,
    action: Action,
    role: Role,
    *,
    verification_needed: bool = True,
    by_hub: bool = False,
) -> Stage:
    """The stage a case moves to when ``role`` takes ``action`` in ``stage``.

    Raises :class:`TransitionRefused` with a sentence a person can read and a ``kind``:
    ``illegal`` when the action does not apply in this stage (it lists what does),
    ``forbidden`` when the role may not take it (it lists who may), ``unverified`` when
    ``register`` is tried on an unverified report while ``verification_needed`` (the
    default; pass :func:`needs_verification`'s answer for the case). The hub's own
    actions (:data:`HUB_ACTIONS`) need ``by_hub`` and ignore ``role``; a person's need
    the role and are never taken ``by_hub``.
    """
    try:
        stage, action, role = Stage(stage), Action(action), Role(role)
    except ValueError as exc:
        raise TransitionRefused(f"not a stage, action or role: {exc}", kind="illegal") from exc
    target = TRANSITIONS.get((stage, action))
    if target is None:
        possible = [a for (s, a) in TRANSITIONS if s == stage]
        if stage in FINAL_STAGES:
            reason = f"cannot {action.value} a case that is {stage.value}: it is final"
        else:
            reason = (
                f"cannot {action.value} a case that is {stage.value}; "
                f"possible now: {_names(possible)}"
            )
        raise TransitionRefused(reason, kind="illegal")
    if (action in HUB_ACTIONS) != by_hub:
        raise TransitionRefused(
            f"{action.value} is taken by the hub itself, not by a person"
            if action in HUB_ACTIONS
            else f"the hub does not {action.value} by itself",
            kind="forbidden",
        )
    roles = ACTION_ROLES[action]
    if not by_hub and role not in roles:
        who = _names(r for r in Role if r in roles)
        raise TransitionRefused(
            f"role {role.value} may not {action.value}; roles that may: {who}",
            kind="forbidden",
        )
    if stage is Stage.REPORTED and action is Action.REGISTER and verification_needed:
        raise TransitionRefused(
            "cannot register this report before it is verified: "
            "start_verify, then verify (AI and citizen reports need a person's check)",
            kind="unverified",
        )
    return target


def allowed_actions(stage: Stage, role: Role, *, verification_needed: bool = True) -> list[Action]:
    """The actions ``role`` may take on a case in ``stage``, in workflow order."""
    allowed = []
    for action in Action:
        try:
            transition(stage, action, role, verification_needed=verification_needed)
        except TransitionRefused:
            continue
        allowed.append(action)
    return allowed
