"""Rollout campaigns, decided: which units to start, time out or roll back, and when a
campaign moves on or stops. Pure: the service feeds it rows and a clock.

A campaign takes a model package (or a config) to a set of units in two phases::

    canary --(canary units all done, soak over, thresholds kept)--> rolling --> completed
       \\--(a threshold crossed: canary rolled back)--> aborted          \\--> aborted

Each unit goes ``queued -> in_progress -> succeeded | failed | rejected | timed_out``,
and a succeeded unit of an aborted canary (or of a campaign rolled back by hand)
``-> rolled_back``. Units are started only while online: the canary's all at once, the
rest at most ``rate_per_min`` a minute spread evenly from the rolling phase's start; a
unit still offline stays ``queued`` (the campaign completes only when none is left).
``failed``, ``rejected`` and ``timed_out`` count as failures for ``max_failed_share``;
for a model campaign the false-alarm rate of the canary's judged events (operators'
verdicts on AI reports the new model raised, :mod:`central_hub.domain.labels`) is held
against ``max_false_alarm_rate`` once it has at least ``min_verdicts`` of them.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "FAILURES",
    "MIN_JUDGED",
    "Phase",
    "Policy",
    "Step",
    "Unit",
    "UnitState",
    "Verdicts",
    "decide",
    "pick_canary",
]


class Phase(enum.StrEnum):
    """Where a campaign is."""

    CANARY = "canary"
    ROLLING = "rolling"
    COMPLETED = "completed"
    ABORTED = "aborted"

    @property
    def active(self) -> bool:
        """True while the campaign still starts or watches units."""
        return self in (Phase.CANARY, Phase.ROLLING)


class UnitState(enum.StrEnum):
    """Where one unit of a campaign is."""

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"
    ROLLED_BACK = "rolled_back"

    @property
    def done(self) -> bool:
        """True once the unit has an outcome."""
        return self not in (UnitState.QUEUED, UnitState.IN_PROGRESS)


#: Units done before the rolling phase judges its failed share (the canary judges its own
#: however few).
MIN_JUDGED = 5

#: Outcomes that count against ``max_failed_share``.
FAILURES = frozenset({UnitState.FAILED, UnitState.REJECTED, UnitState.TIMED_OUT})


class Policy(BaseModel):
    """How a campaign proceeds and when it stops (stored with it as JSON)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    canary: int = Field(default=1, ge=0, description="units that go first, alone")
    rate_per_min: float = Field(
        default=10.0, gt=0, le=100_000, description="units started a minute"
    )
    max_failed_share: float = Field(
        default=0.2, ge=0, le=1, description="abort when more than this share of units failed"
    )
    max_false_alarm_rate: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="model campaigns: abort when more than this share of the canary's judged "
        "events were false alarms",
    )
    min_verdicts: int = Field(default=5, ge=1, description="judged events the rate needs")
    soak_s: float = Field(
        default=0.0, ge=0, le=30 * 86400, description="watch the canary this long after it is done"
    )
    unit_timeout_s: float = Field(
        default=1800.0, gt=0, le=7 * 86400, description="a unit not done by then is timed out"
    )

    @model_validator(mode="after")
    def _verdicts_need_a_canary(self) -> Policy:
        if self.max_false_alarm_rate is not None and self.canary == 0:
            raise ValueError("max_false_alarm_rate judges the canary; give canary >= 1")
        return self


@dataclass(frozen=True)
class Unit:
    """What the decision needs of one unit."""

    device_id: str
    state: UnitState
    canary: bool
    online: bool
    started_at: datetime | None = None


@dataclass(frozen=True)
class Verdicts:
    """The canary's events judged so far: how many, and how many were false alarms."""

    judged: int
    false_alarms: int

    @property
    def rate(self) -> float:
        """The false-alarm share (0 with nothing judged)."""
        return self.false_alarms / self.judged if self.judged else 0.0


@dataclass
class Step:
    """What to do now: start these units, time these out, roll these back, change phase."""

    start: list[str] = field(default_factory=list)
    time_out: list[str] = field(default_factory=list)
    roll_back: list[str] = field(default_factory=list)
    phase: Phase | None = None
    reason: str = ""


def pick_canary(device_ids: Sequence[str], online: Sequence[str], count: int) -> list[str]:
    """The canary: ``count`` units, online ones first, each group in id order."""
    up = set(online)
    ordered = sorted(device_ids, key=lambda d: (d not in up, d))
    return ordered[:count]


def _failed_share(units: Sequence[Unit]) -> tuple[float, int]:
    done = [u for u in units if u.state.done and u.state is not UnitState.ROLLED_BACK]
    failed = sum(1 for u in done if u.state in FAILURES)
    return (failed / len(done) if done else 0.0), failed


def _starts(
    policy: Policy, units: Sequence[Unit], phase_since: datetime, now: datetime
) -> list[str]:
    """Queued online units of the rolling phase to start now, keeping to the rate."""
    elapsed = max(0.0, (now - phase_since).total_seconds())
    allowed = math.floor(elapsed * policy.rate_per_min / 60.0) + 1
    started = sum(
        1
        for u in units
        if not u.canary and u.started_at is not None and u.started_at >= phase_since
    )
    budget = max(0, allowed - started)
    ready = sorted(
        u.device_id for u in units if not u.canary and u.state is UnitState.QUEUED and u.online
    )
    return ready[:budget]


def decide(
    policy: Policy,
    phase: Phase,
    phase_since: datetime,
    units: Sequence[Unit],
    now: datetime,
    *,
    verdicts: Verdicts | None = None,
    last_canary_done: datetime | None = None,
) -> Step:
    """The next step of a campaign in ``phase`` (since ``phase_since``) with these units.

    ``verdicts``: the canary's judged events (model campaigns with a false-alarm limit);
    ``last_canary_done``: when the canary's last unit finished (the soak counts from it).
    """
    step = Step()
    if not phase.active:
        return step
    limit = timedelta(seconds=policy.unit_timeout_s)
    step.time_out = sorted(
        u.device_id
        for u in units
        if u.state is UnitState.IN_PROGRESS
        and u.started_at is not None
        and now - u.started_at > limit
    )
    timed = set(step.time_out)
    units = [
        Unit(u.device_id, UnitState.TIMED_OUT, u.canary, u.online, u.started_at)
        if u.device_id in timed
        else u
        for u in units
    ]
    if phase is Phase.CANARY:
        return _canary(policy, phase_since, units, now, step, verdicts, last_canary_done)
    share, failed = _failed_share(units)
    done = sum(1 for u in units if u.state.done)
    if failed and share > policy.max_failed_share and done >= min(len(units), MIN_JUDGED):
        step.phase = Phase.ABORTED
        step.reason = (
            f"{failed} of {done} units failed "
            f"({share:.0%} > {policy.max_failed_share:.0%}); no more units started"
        )
        return step
    if all(u.state.done for u in units):
        step.phase = Phase.COMPLETED
        step.reason = f"all {len(units)} units done"
        return step
    step.start = _starts(policy, units, phase_since, now)
    return step


def _canary(
    policy: Policy,
    phase_since: datetime,
    units: Sequence[Unit],
    now: datetime,
    step: Step,
    verdicts: Verdicts | None,
    last_canary_done: datetime | None,
) -> Step:
    canary = [u for u in units if u.canary]
    if any(not u.state.done for u in canary):
        step.start = sorted(u.device_id for u in canary if u.state is UnitState.QUEUED and u.online)
        return step
    succeeded = sorted(u.device_id for u in canary if u.state is UnitState.SUCCEEDED)
    share, failed = _failed_share(canary)
    if failed and share > policy.max_failed_share:
        step.phase, step.roll_back = Phase.ABORTED, succeeded
        step.reason = (
            f"canary: {failed} of {len(canary)} units failed "
            f"({share:.0%} > {policy.max_failed_share:.0%}); canary rolled back"
        )
        return step
    if (
        policy.max_false_alarm_rate is not None
        and verdicts is not None
        and verdicts.judged >= policy.min_verdicts
        and verdicts.rate > policy.max_false_alarm_rate
    ):
        step.phase, step.roll_back = Phase.ABORTED, succeeded
        step.reason = (
            f"canary: {verdicts.false_alarms} of {verdicts.judged} judged events were false "
            f"alarms ({verdicts.rate:.0%} > {policy.max_false_alarm_rate:.0%}); canary rolled back"
        )
        return step
    done_at = last_canary_done or phase_since
    if (now - done_at).total_seconds() < policy.soak_s:
        return step
    step.phase = Phase.ROLLING
    judged = (
        f"; {verdicts.false_alarms} of {verdicts.judged} judged events false alarms"
        if verdicts is not None
        else ""
    )
    step.reason = f"canary: {len(succeeded)} of {len(canary)} units succeeded{judged}"
    return step
