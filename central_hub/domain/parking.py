"""The move-your-car loop (pure): whom to remind, how long to wait, what the recheck says.

The bureau sent 47,995 "please move your car" reminders in a year, after which 28,723
cars left (DOMAIN.md). Here a camera's 0505 (illegally parked motor vehicle) case with a
read plate whose owner the vehicle registry knows becomes a text to the owner, and the
case waits (stage ``reminded``) for the wait of its grid area. Then the unit that saw the
car looks again (a signed ``spot.recheck``): ``cleared`` closes the case as rectified
after the reminder (action ``moved``), ``still_there`` registers it for enforcement
(action ``stayed``). An unread plate or an unknown owner goes straight to the operators'
verification queue, as any AI report does; so does a recheck the unit cannot answer.

Everything here is pure: the service (:mod:`central_hub.services.parking`) reads the
database, the clock and the registry, and asks these functions what to do.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo

from central_hub.domain.workflow import Action

__all__ = [
    "DEFAULT_TEMPLATE",
    "Answer",
    "CheckState",
    "ParkingMonth",
    "ParkingPolicy",
    "Remind",
    "ToOperators",
    "monthly",
    "plan",
    "read_answer",
]

#: The reminder's text (a notice template; ``{plate}``, ``{place}`` and ``{minutes}``).
DEFAULT_TEMPLATE = (
    "【城管提醒】您的车辆{plate}停放在{place}禁停区域，请在{minutes}分钟内驶离，逾期将依法处理。"
)


class CheckState(enum.StrEnum):
    """Where one case stands in the loop (``parking_checks.state``)."""

    #: Claimed by a worker, the reminder not yet queued (a crash leaves it here).
    DECIDING = "deciding"
    #: The owner's text is queued or sent; the case waits for its area's wait, counted
    #: from when the text went out.
    REMINDED = "reminded"
    #: The unit was asked to look again.
    RECHECKING = "rechecking"
    MOVED = "moved"
    STAYED = "stayed"
    #: No reminder possible (no plate, unknown owner, no phone): left to the operators.
    TO_OPERATORS = "to_operators"
    #: The unit could not answer (failed, expired, silent): left to the operators.
    UNANSWERED = "unanswered"
    #: The text to the owner failed (refused number, opted out): left to the operators.
    NOT_DELIVERED = "not_delivered"
    #: An operator took the case over before the loop finished.
    TAKEN_OVER = "taken_over"


@dataclass(frozen=True)
class ParkingPolicy:
    """How the loop behaves; the hub's settings fill it.

    ``by_area`` maps grid cell ids (any level: a street, a zone, a squadron's area) to
    their wait; the most specific cell on a case's path wins, else ``default_wait``.
    """

    default_wait: timedelta = timedelta(minutes=10)
    by_area: Mapping[str, timedelta] = field(default_factory=dict)
    #: How long the unit has to answer a recheck before the operators take over.
    answer_within: timedelta = timedelta(minutes=5)
    #: A case older than this when the loop first sees it (a hub that was down for
    #: hours) is left to the operators: a reminder that late means nothing.
    horizon: timedelta = timedelta(minutes=30)
    #: The catalogue codes the loop handles.
    codes: frozenset[str] = frozenset({"0505"})
    template: str = "parking.move_car"

    def wait_for(self, cell_path: Sequence[str]) -> timedelta:
        """The wait for a case whose grid cell has ``cell_path`` (root first)."""
        for cell_id in reversed(cell_path):
            if cell_id in self.by_area:
                return self.by_area[cell_id]
        return self.default_wait


@dataclass(frozen=True)
class Remind:
    """Text the owner and wait."""

    plate: str
    owner_name: str
    phone: str


@dataclass(frozen=True)
class ToOperators:
    """No reminder: the case goes to the operators' verification queue, with why."""

    reason: str


def plan(plate: str | None, owner: tuple[str, str] | None) -> Remind | ToOperators:
    """What to do with a new case: ``owner`` is ``(name, phone)`` from the vehicle
    registry for ``plate`` (None when the plate is unknown there)."""
    if not plate:
        return ToOperators("no plate was read")
    if owner is None:
        return ToOperators(f"plate {plate} is not in the vehicle registry")
    name, phone = owner
    if not phone.strip():
        return ToOperators(f"the owner of {plate} has no phone on file")
    return Remind(plate=plate, owner_name=name, phone=phone)


@dataclass(frozen=True)
class Answer:
    """What a recheck command's state means for the case: ``action`` to take (None:
    leave it to the operators, or keep waiting when ``pending``), and why."""

    action: Action | None
    state: CheckState | None
    detail: str
    pending: bool = False


def read_answer(
    cmd_state: str, detail: str, asked_at: datetime, now: datetime, policy: ParkingPolicy
) -> Answer:
    """Read the unit's ack of a ``spot.recheck`` (its detail starts with the outcome:
    ``still_there: …`` or ``cleared: …``)."""
    if cmd_state == "succeeded":
        outcome = detail.split(":", 1)[0].strip()
        if outcome == "still_there":
            return Answer(Action.STAYED, CheckState.STAYED, detail)
        if outcome == "cleared":
            return Answer(Action.MOVED, CheckState.MOVED, detail)
        return Answer(None, CheckState.UNANSWERED, f"the unit answered {detail!r}")
    if cmd_state in ("failed", "rejected", "expired"):
        return Answer(None, CheckState.UNANSWERED, f"the recheck {cmd_state}: {detail}".strip())
    if now - asked_at >= policy.answer_within:
        return Answer(
            None,
            CheckState.UNANSWERED,
            f"no answer from the unit within {int(policy.answer_within.total_seconds())} s",
        )
    return Answer(None, None, "", pending=True)


@dataclass(frozen=True)
class ParkingMonth:
    """One month of the loop: reminders sent, cars moved, cars registered for
    enforcement, and the shares (of the reminders; ``None`` without reminders)."""

    month: str
    reminded: int
    moved: int
    stayed: int
    share_moved: float | None
    enforcement_rate: float | None


def monthly(actions: Iterable[tuple[datetime, str]], tz: tzinfo) -> list[ParkingMonth]:
    """Per local month (``YYYY-MM``, oldest first) from the audit trail's
    ``(at, action)`` rows of ``remind``, ``moved`` and ``stayed``; each counts in the
    month it happened."""
    counts: dict[str, dict[str, int]] = {}
    for at, action in actions:
        if action not in (Action.REMIND, Action.MOVED, Action.STAYED):
            continue
        month = at.astimezone(tz).strftime("%Y-%m")
        bucket = counts.setdefault(month, {"remind": 0, "moved": 0, "stayed": 0})
        bucket[str(action)] += 1
    out = []
    for month in sorted(counts):
        c = counts[month]
        reminded = c["remind"]
        out.append(
            ParkingMonth(
                month=month,
                reminded=reminded,
                moved=c["moved"],
                stayed=c["stayed"],
                share_moved=round(c["moved"] / reminded, 4) if reminded else None,
                enforcement_rate=round(c["stayed"] / reminded, 4) if reminded else None,
            )
        )
    return out
