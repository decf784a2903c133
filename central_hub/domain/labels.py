"""Operators' verdicts as labels for the detector (pure).

Every AI case is verified by an operator before it is registered. That decision is the
one real label the field gives: **verified** (``verify``, which registers the case; or
``register`` for reports that need no verification) means the unit saw what it reported
(a true positive); **cancelled** at verification, with a :class:`Verdict` saying why,
means a false alarm (a false positive), and the verdict says what kind. The first
decision in a case's audit trail counts: a case cancelled later (after registration, say
as outside the bureau's remit) was still seen correctly.

These labels, with each event's detections and evidence, are what a retraining set is
built from (``central-hub dataset export``, issue #13).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

__all__ = ["DECISIONS", "Label", "Verdict", "VerdictStep", "label_of"]

#: The audit actions that decide a report at verification.
DECISIONS = ("verify", "register", "cancel")


class Verdict(enum.StrEnum):
    """Why an operator did not register an AI report."""

    WRONG_OBJECT = "wrong_object"  # the unit mistook something for the object
    NOT_A_VIOLATION = "not_a_violation"  # the object is there, but breaks no rule
    DUPLICATE = "duplicate"  # a case for this problem exists already
    OTHER = "other"


@dataclass(frozen=True)
class VerdictStep:
    """What labelling needs of one audit entry."""

    action: str
    at: datetime
    actor: str
    verdict: Verdict | None = None


@dataclass(frozen=True)
class Label:
    """A case's label: ``positive`` (registered) or a false alarm with its verdict."""

    positive: bool
    verdict: Verdict | None
    decided_at: datetime
    by: str

    @property
    def name(self) -> str:
        """``true_positive``, or ``false_positive:<verdict>``."""
        if self.positive:
            return "true_positive"
        return f"false_positive:{(self.verdict or Verdict.OTHER).value}"


def label_of(trail: Iterable[VerdictStep]) -> Label | None:
    """The label an audit trail gives its case, or None while nobody has decided.

    The first ``verify``, ``register`` or ``cancel`` in time decides; a cancel recorded
    without a verdict (before verdicts were asked for) counts as :attr:`Verdict.OTHER`.
    """
    decisions = sorted((s for s in trail if s.action in DECISIONS), key=lambda s: s.at)
    if not decisions:
        return None
    first = decisions[0]
    if first.action != "cancel":
        return Label(positive=True, verdict=None, decided_at=first.at, by=first.actor)
    return Label(
        positive=False, verdict=first.verdict or Verdict.OTHER, decided_at=first.at, by=first.actor
    )
