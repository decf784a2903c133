"""A shadow candidate against the model that runs, on one camera, judged by verdicts (pure).

The real events of a camera carry the operators' verdicts (through their cases: ``True``
registered, ``False`` cancelled as a false alarm, ``None`` not decided yet). The shadow
candidate's would-be events of the same camera and time are matched to them: a shadow
event matches a real one of the same event code detected within ``window_s`` of it, each
real event matched at most once, nearest in time first. Then, per camera:

* ``kept``: real true positives the candidate also raised (it would have caught them);
* ``missed``: real true positives it did not raise (it would have lost them);
* ``repeated``: real false alarms it raised too (it would not have spared the operator);
* ``spared``: real false alarms it did not raise;
* ``new``: its events that match no real one (nobody has judged those: look at them).

A better candidate keeps more and misses fewer, repeats fewer false alarms, and raises
few new events that turn out wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

__all__ = ["Comparison", "Seen", "compare"]


@dataclass(frozen=True)
class Seen:
    """One event as the comparison needs it."""

    code: str
    at: datetime
    verdict: bool | None = None  # real events only


@dataclass(frozen=True)
class Comparison:
    """How the candidate fared on one camera (see the module docstring)."""

    real: int
    judged: int
    true_positives: int
    false_alarms: int
    shadow: int
    kept: int
    missed: int
    repeated: int
    spared: int
    new: int


def compare(real: Sequence[Seen], shadow: Sequence[Seen], window_s: float = 60.0) -> Comparison:
    """Match ``shadow`` to ``real`` events and count (see the module docstring)."""
    pairs = sorted(
        (abs((s.at - r.at).total_seconds()), si, ri)
        for si, s in enumerate(shadow)
        for ri, r in enumerate(real)
        if s.code == r.code and abs((s.at - r.at).total_seconds()) <= window_s
    )
    matched_real: set[int] = set()
    matched_shadow: set[int] = set()
    for _gap, si, ri in pairs:
        if si not in matched_shadow and ri not in matched_real:
            matched_shadow.add(si)
            matched_real.add(ri)
    true = [i for i, r in enumerate(real) if r.verdict is True]
    false = [i for i, r in enumerate(real) if r.verdict is False]
    return Comparison(
        real=len(real),
        judged=len(true) + len(false),
        true_positives=len(true),
        false_alarms=len(false),
        shadow=len(shadow),
        kept=sum(1 for i in true if i in matched_real),
        missed=sum(1 for i in true if i not in matched_real),
        repeated=sum(1 for i in false if i in matched_real),
        spared=sum(1 for i in false if i not in matched_real),
        new=len(shadow) - len(matched_shadow),
    )
