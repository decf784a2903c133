"""The vendor file (文明执法查询平台): a person's history and the colour it earns.

A person in the file is a street vendor the bureau met more than once. Their history is
the unlicensed-vendor cases (code ``0501``) an officer linked to them, each a
*violation* at the time the case was reported, and the *counsellings* (劝导) officers
gave, each with a time, the officer, an outcome and optionally the case it was for.

The bureau's colours, as DOMAIN.md quotes them: "yellow when, after the first
counselling, the person was told to come in and refused; green on the second violation
found with counselling ineffective; red on the third; the file is permanent". This
module reads them as follows (:func:`assess`):

* **yellow**: a counselling on file has the outcome ``refused`` (the officer told the
  person to come in, 约谈, and they refused). Refusing at the first counselling, or at a
  later one, both turn the file yellow: either way it is "after the first counselling".
* **green**: the person has at least two violations, and a counselling given for the
  second or a later violation had no effect (outcome ``ineffective``: kept trading, or
  ``refused``: refusing to come in is not stopping either). A counselling is "for" a
  violation when it names that violation's case, or when it took place at or after the
  second violation's time. So a second violation whose counselling was ``complied`` does
  *not* turn the file green (it stays what it was, none or yellow); a counselling before
  the second violation that named no case, even an ineffective one, does not count for it.
* **red**: a third violation, whatever the counsellings said.
* **none**: none of the above.

The colours are ranked none < yellow < green < red and the file shows the highest one
the history earns; the file may jump (none straight to green, or to red). *Permanent*:
every rule above only asks whether something exists in the history (a refusal, a
second violation with an ineffective counselling, a third violation), so adding any
event, earlier or later, never takes a colour away, and since nothing is ever removed
from the file (no unlink, no delete), a colour never goes back down: a complied
counselling after a red does not make it green. The colour is computed from the history
each time it is shown, never typed in.

Identity numbers (:func:`check_id_number`, :func:`mask_id_number`): the 18-character PRC
resident identity number (GB 11643): 6 digits of region, the birth date as YYYYMMDD, 3
digits of sequence and an ISO 7064 MOD 11-2 check character (``0``-``9`` or ``X``).
Shown masked as the first 3 and the last 4 characters with the 11 between starred:
``330***********123X``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from central_hub.domain.errors import DomainError

__all__ = [
    "COLOUR_RANK",
    "NAME_MAX",
    "NOTE_MAX",
    "REASON_MAX",
    "VENDOR_CODE",
    "Assessment",
    "Colour",
    "Counselling",
    "History",
    "IdNumberError",
    "Outcome",
    "VendorFileError",
    "Violation",
    "assess",
    "check_id_number",
    "colour",
    "colour_at",
    "id_check_char",
    "mask_id_number",
    "ordered_violations",
]

#: The catalogue code a person's cases must have (无照经营游商, unlicensed mobile vendor).
VENDOR_CODE = "0501"
#: Longest name, note and lookup reason the file takes.
NAME_MAX = 64
NOTE_MAX = 500
REASON_MAX = 200


class VendorFileError(DomainError):
    """A vendor-file rule refused something (names what and why)."""


class IdNumberError(VendorFileError):
    """An identity number that is not a valid 18-character PRC resident identity number."""


class Colour(enum.StrEnum):
    """The bureau's colour of a person's file, lowest first."""

    NONE = "none"
    YELLOW = "yellow"
    GREEN = "green"
    RED = "red"


#: Each colour's rank: a file only moves up.
COLOUR_RANK = {c: i for i, c in enumerate(Colour)}


class Outcome(enum.StrEnum):
    """What came of a counselling."""

    #: The person stopped trading there (and came in when told to).
    COMPLIED = "complied"
    #: Told to come in (约谈) and refused.
    REFUSED = "refused"
    #: Counselled and kept trading: the counselling had no effect.
    INEFFECTIVE = "ineffective"


@dataclass(frozen=True)
class Violation:
    """A linked ``0501`` case: the violation happened when the case was reported."""

    case_id: int
    at: datetime


@dataclass(frozen=True)
class Counselling:
    """One counselling: when, by whom, with what outcome; ``case_id`` the case it was
    for, when the officer named one."""

    at: datetime
    officer: str
    outcome: Outcome
    case_id: int | None = None
    note: str = ""


@dataclass(frozen=True)
class History:
    """A person's violations and counsellings (any order; :func:`assess` sorts them)."""

    violations: tuple[Violation, ...] = ()
    counsellings: tuple[Counselling, ...] = ()

    def until(self, at: datetime) -> History:
        """The part of the history that had happened by ``at`` (inclusive)."""
        return History(
            tuple(v for v in self.violations if v.at <= at),
            tuple(c for c in self.counsellings if c.at <= at),
        )

    def times(self) -> list[datetime]:
        """Every event's time, sorted, each once."""
        return sorted({v.at for v in self.violations} | {c.at for c in self.counsellings})


@dataclass(frozen=True)
class Assessment:
    """A history's colour, since when it has had it, and why (a sentence)."""

    colour: Colour
    since: datetime | None
    reason: str


def _ordered(violations: Iterable[Violation]) -> list[Violation]:
    return sorted(violations, key=lambda v: (v.at, v.case_id))


def _rule(history: History) -> tuple[Colour, str]:
    """The colour the whole of ``history`` earns and why (the rules of the module doc)."""
    found = _ordered(history.violations)
    if len(found) >= 3:
        return Colour.RED, f"third violation (case {found[2].case_id})"
    if len(found) >= 2:
        second = found[1]
        later_cases = {v.case_id for v in found[1:]}
        for c in sorted(history.counsellings, key=lambda c: c.at):
            for_later = c.at >= second.at or (c.case_id is not None and c.case_id in later_cases)
            if for_later and c.outcome is not Outcome.COMPLIED:
                return Colour.GREEN, (
                    f"second violation (case {second.case_id}) and counselling {c.outcome.value}"
                )
    refusal = min(
        (c for c in history.counsellings if c.outcome is Outcome.REFUSED),
        key=lambda c: c.at,
        default=None,
    )
    if refusal is not None:
        return Colour.YELLOW, "told to come in after counselling and refused"
    return Colour.NONE, "no colour earned"


def assess(history: History) -> Assessment:
    """The colour ``history`` earns, the first time it had it, and why."""
    earned, reason = _rule(history)
    since = None
    if earned is not Colour.NONE:
        # The earliest moment whose history already earned it (the rules only grow).
        since = next(t for t in history.times() if _rule(history.until(t))[0] is earned)
    return Assessment(colour=earned, since=since, reason=reason)


def colour(history: History) -> Colour:
    """The colour of a person's file (see the module doc for the rules)."""
    return _rule(history)[0]


def colour_at(history: History, at: datetime) -> Colour:
    """The colour the file had at ``at``: the history up to then."""
    return colour(history.until(at))


# --- identity numbers --------------------------------------------------------------------------

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"
_SHAPE = re.compile(r"^[0-9]{17}[0-9X]$")


def id_check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of the first 17 digits."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise IdNumberError("an identity number's first 17 characters must be digits")
    return _CHECK_CHARS[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def check_id_number(text: str) -> str:
    """``text`` as a valid identity number (spaces dropped, ``x`` upper-cased), or
    :class:`IdNumberError` saying what is wrong: the length, a character, the birth
    date, or the check character."""
    number = re.sub(r"\s+", "", text).upper()
    if len(number) != 18:
        raise IdNumberError(f"identity number: {len(number)} characters, it must have 18")
    if not _SHAPE.fullmatch(number):
        bad = next((i for i, ch in enumerate(number) if not (ch.isascii() and ch.isdigit())), None)
        where = bad + 1 if bad is not None else 18
        raise IdNumberError(
            f"identity number: character {where} is not a digit (only the last one may be X)"
        )
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise IdNumberError(
            f"identity number: characters 7-14 ({number[6:14]}) are not a date YYYYMMDD"
        ) from None
    if born.year < 1900:
        raise IdNumberError(f"identity number: birth year {born.year} is before 1900")
    expected = id_check_char(number[:17])
    if number[17] != expected:
        raise IdNumberError(
            f"identity number: check character {number[17]} is wrong (mistyped digit?)"
        )
    return number


def mask_id_number(number: str) -> str:
    """The first 3 and last 4 characters with the rest starred (``330***********123X``);
    anything shorter than 8 characters is starred whole."""
    if len(number) < 8:
        return "*" * len(number)
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


def ordered_violations(history: History) -> Sequence[Violation]:
    """The violations in time order (what the file page lists)."""
    return _ordered(history.violations)
