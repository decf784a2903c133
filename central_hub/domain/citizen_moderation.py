"""Moderating citizens' reports: who may, with what reason, and what each action needs.

Operators and admins moderate a citizen report (an Open311 service request) from its
case:

* ``hide``: the report leaves Open311's public lists and ``requests/{id}`` (404, as an
  unknown id); its token still answers, so the reporter's own status page keeps working.
* ``unhide``: it is public again.
* ``redact``: the description and the photo reference (the uploaded photo's hash and the
  client's ``media_url``) are cleared for good (personal data, abuse); who and when stay
  on the report, why in the case's audit trail.
* ``merge``: the report moves into another open case (a citizen reported a few metres
  off, a case exists already). The case it leaves is cancelled as a duplicate when a
  citizen's report opened it, nothing is left in it, and it can still be cancelled
  (:func:`cancels_source`).

Every action needs a reason of 1-200 characters. Pure: the service
(:mod:`central_hub.services.citizen_moderation`) loads the facts, calls these checks and
writes the result with its audit rows in one transaction.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from central_hub.domain.errors import ModerationRefused
from central_hub.domain.workflow import TRANSITIONS, Action, Role, Stage, is_open

__all__ = [
    "AUDIT_ACTIONS",
    "MERGED_IN",
    "MODERATORS",
    "REASON_MAX",
    "Moderation",
    "ReportState",
    "cancels_source",
    "check_merge",
    "check_moderation",
    "check_moderator",
    "check_reason",
]

#: Roles that may moderate citizens' reports (the command centre's seats and admins).
MODERATORS: frozenset[Role] = frozenset({Role.OPERATOR, Role.ADMIN})
#: Longest moderation reason, in characters.
REASON_MAX = 200


class Moderation(enum.StrEnum):
    """What a moderator does to a citizen report."""

    HIDE = "hide"
    UNHIDE = "unhide"
    REDACT = "redact"
    MERGE = "merge"


#: The ``audits.action`` word of each moderation; a merge writes it on the case the report
#: leaves and :data:`MERGED_IN` on the case it joins. Metrics ignore these words (the
#: stage does not change), as they ignore the filer's ``file``.
AUDIT_ACTIONS: Mapping[Moderation, str] = {
    Moderation.HIDE: "citizen_hide",
    Moderation.UNHIDE: "citizen_unhide",
    Moderation.REDACT: "citizen_redact",
    Moderation.MERGE: "citizen_merge_out",
}
MERGED_IN = "citizen_merge_in"


@dataclass(frozen=True)
class ReportState:
    """What the checks need of a report: its case and whether it is hidden or redacted."""

    report_id: int
    case_id: int
    hidden: bool
    redacted: bool


def check_moderator(role: Role) -> None:
    """Refuse (``forbidden``) a role that may not moderate."""
    if role not in MODERATORS:
        who = ", ".join(sorted(r.value for r in MODERATORS))
        raise ModerationRefused(
            f"role {role.value} may not moderate citizens' reports; roles that may: {who}",
            kind="forbidden",
        )


def check_reason(reason: str) -> str:
    """The reason without surrounding blanks; refused (``invalid``, field ``reason``) when
    it is empty, longer than :data:`REASON_MAX` or holds control characters."""
    text = reason.strip()
    if not text:
        raise ModerationRefused("reason: say why (1-200 characters)", field="reason")
    if len(text) > REASON_MAX:
        raise ModerationRefused(
            f"reason: at most {REASON_MAX} characters, not {len(text)}", field="reason"
        )
    if not all(ch.isprintable() or ch in "\n\t" for ch in text):
        raise ModerationRefused("reason: control characters are not allowed", field="reason")
    return text


def check_moderation(
    action: Moderation, role: Role, report: ReportState, reason: str, *, in_case: int | None
) -> str:
    """Whether ``role`` may take ``action`` on ``report`` now; the clean reason.

    ``in_case``: the case the moderator saw the report in (the console's page); a report
    moved meanwhile is refused (``conflict``) rather than changed behind their back.
    Refusals, in this order: ``forbidden`` (role), ``invalid`` (reason), ``conflict``
    (moved, already hidden, not hidden, already redacted).
    """
    check_moderator(role)
    text = check_reason(reason)
    if in_case is not None and report.case_id != in_case:
        raise ModerationRefused(
            f"report {report.report_id} is in case {report.case_id} now, not {in_case}; "
            "reload the page",
            kind="conflict",
        )
    if action is Moderation.HIDE and report.hidden:
        raise ModerationRefused(f"report {report.report_id} is hidden already", kind="conflict")
    if action is Moderation.UNHIDE and not report.hidden:
        raise ModerationRefused(f"report {report.report_id} is not hidden", kind="conflict")
    if action is Moderation.REDACT and report.redacted:
        raise ModerationRefused(f"report {report.report_id} is redacted already", kind="conflict")
    return text


def check_merge(report: ReportState, target_case: int, target_stage: Stage) -> None:
    """Refuse (``conflict``) merging into the report's own case or a closed or cancelled one."""
    if target_case == report.case_id:
        raise ModerationRefused(
            f"report {report.report_id} is in case {target_case} already: "
            "merge it into another case",
            kind="conflict",
            field="case_id",
        )
    if not is_open(target_stage):
        raise ModerationRefused(
            f"case {target_case} is {target_stage.value}: a report can only join an open case",
            kind="conflict",
            field="case_id",
        )


def cancels_source(stage: Stage, source: str, left: int) -> bool:
    """Whether the case a merged report leaves is cancelled as a duplicate.

    It is when a citizen's report opened it (``source`` citizen: this report, or one moved
    out before), no report or event is ``left`` in it, and ``cancel`` still applies to its
    ``stage`` (a dispatched case is not cancelled behind the unit's back: it stays, and
    its trail says the report left).
    """
    return source == "citizen" and left == 0 and (stage, Action.CANCEL) in TRANSITIONS
