"""The vendor file's colour rules (the bureau's worked examples and generated histories)
and PRC identity numbers (check character, masking)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from central_hub.domain.vendor_file import (
    COLOUR_RANK,
    Colour,
    Counselling,
    History,
    IdNumberError,
    Outcome,
    Violation,
    assess,
    check_id_number,
    colour,
    colour_at,
    id_check_char,
    mask_id_number,
)

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


def v(case_id: int, n: int) -> Violation:
    return Violation(case_id=case_id, at=day(n))


def c(n: int, outcome: Outcome, case_id: int | None = None) -> Counselling:
    return Counselling(at=day(n), officer="王队", outcome=outcome, case_id=case_id)


# --- the bureau's worked examples -------------------------------------------------------------


def test_a_first_violation_counselled_and_complied_earns_no_colour() -> None:
    assert colour(History((v(1, 0),), (c(0, Outcome.COMPLIED),))) is Colour.NONE
    assert colour(History()) is Colour.NONE


def test_told_to_come_in_after_the_first_counselling_and_refused_is_yellow() -> None:
    h = History((v(1, 0),), (c(0, Outcome.REFUSED),))
    assert colour(h) is Colour.YELLOW
    assert assess(h).since == day(0)
    # Refusing at a later counselling is "after the first counselling" too.
    h = History((v(1, 0),), (c(0, Outcome.COMPLIED), c(3, Outcome.REFUSED)))
    assert colour(h) is Colour.YELLOW
    assert assess(h).since == day(3)


def test_a_second_violation_with_counselling_ineffective_is_green() -> None:
    h = History((v(1, 0), v(2, 10)), (c(0, Outcome.COMPLIED), c(10, Outcome.INEFFECTIVE)))
    assert colour(h) is Colour.GREEN
    assert assess(h).since == day(10)
    assert "case 2" in assess(h).reason
    # Straight from none: no refusal needed on the way.
    assert colour(History((v(1, 0), v(2, 1)), (c(1, Outcome.REFUSED),))) is Colour.GREEN


def test_a_second_violation_whose_counselling_was_complied_with_is_not_green() -> None:
    h = History((v(1, 0), v(2, 10)), (c(0, Outcome.COMPLIED), c(10, Outcome.COMPLIED)))
    assert colour(h) is Colour.NONE
    # Yellow from the first counselling stays yellow.
    h = History((v(1, 0), v(2, 10)), (c(0, Outcome.REFUSED), c(10, Outcome.COMPLIED)))
    assert colour(h) is Colour.YELLOW
    # An ineffective counselling before the second violation, naming no case, is for the
    # first one: not green.
    h = History((v(1, 0), v(2, 10)), (c(5, Outcome.INEFFECTIVE),))
    assert colour(h) is Colour.NONE


def test_a_counselling_naming_the_second_case_counts_for_it_whatever_its_time() -> None:
    h = History((v(1, 0), v(2, 10)), (c(9, Outcome.INEFFECTIVE, case_id=2),))
    assert colour(h) is Colour.GREEN
    h = History((v(1, 0), v(2, 10)), (c(9, Outcome.INEFFECTIVE, case_id=1),))
    assert colour(h) is Colour.NONE


def test_the_third_violation_is_red_and_the_file_is_permanent() -> None:
    h = History((v(1, 0), v(2, 10), v(3, 20)), (c(20, Outcome.COMPLIED),))
    assert colour(h) is Colour.RED
    a = assess(h)
    assert a.since == day(20)
    assert "case 3" in a.reason
    # Complying ever after does not take the red away.
    later = History(
        h.violations, (*h.counsellings, c(40, Outcome.COMPLIED), c(50, Outcome.COMPLIED))
    )
    assert colour(later) is Colour.RED
    assert colour_at(later, day(15)) is Colour.NONE
    assert colour_at(later, day(25)) is Colour.RED


# --- generated histories ----------------------------------------------------------------------

outcomes = st.sampled_from(list(Outcome))


@st.composite
def histories(draw: st.DrawFn, named: bool = True) -> History:
    n = draw(st.integers(0, 5))
    found = tuple(Violation(case_id=i + 1, at=day(draw(st.integers(0, 60)))) for i in range(n))
    talks = tuple(
        Counselling(
            at=day(draw(st.integers(0, 60))),
            officer="o",
            outcome=draw(outcomes),
            case_id=draw(st.sampled_from([None, *(x.case_id for x in found)]))
            if named and found
            else None,
        )
        for _ in range(draw(st.integers(0, 5)))
    )
    return History(found, talks)


def walk(h: History) -> Colour:
    """The bureau's procedure event by event, as an officer would keep a paper file:
    violations first at equal times; the highest colour reached."""
    steps = sorted(
        [(x.at, 0, None) for x in h.violations] + [(x.at, 1, x.outcome) for x in h.counsellings],
        key=lambda s: (s[0], s[1]),
    )
    seen, best = 0, Colour.NONE
    for _, kind, outcome in steps:
        now = Colour.NONE
        if kind == 0:
            seen += 1
            if seen >= 3:
                now = Colour.RED
        elif outcome is Outcome.REFUSED:
            now = Colour.GREEN if seen >= 2 else Colour.YELLOW
        elif outcome is Outcome.INEFFECTIVE and seen >= 2:
            now = Colour.GREEN
        best = max(best, now, key=COLOUR_RANK.__getitem__)
    return best


@settings(max_examples=300, deadline=None)
@given(histories(named=False))
def test_the_rules_agree_with_walking_the_file_event_by_event(h: History) -> None:
    assert colour(h) is walk(h)


@settings(max_examples=300, deadline=None)
@given(histories(), histories(), st.data())
def test_a_colour_never_goes_back_down_whatever_is_added(
    h: History, extra: History, data: st.DataObject
) -> None:
    more = History(
        h.violations + tuple(Violation(x.case_id + 100, x.at) for x in extra.violations),
        h.counsellings + extra.counsellings,
    )
    assert COLOUR_RANK[colour(more)] >= COLOUR_RANK[colour(h)]
    # Over time, too: the colour at each moment is never below an earlier one.
    seen = [COLOUR_RANK[colour_at(more, t)] for t in more.times()]
    assert seen == sorted(seen)
    # The order events were recorded in does not matter.
    shuffled = History(
        tuple(data.draw(st.permutations(h.violations))),
        tuple(data.draw(st.permutations(h.counsellings))),
    )
    assert colour(shuffled) is colour(h)


@settings(max_examples=300, deadline=None)
@given(histories())
def test_red_is_three_violations_and_since_is_when_the_colour_was_earned(h: History) -> None:
    got = assess(h)
    assert (got.colour is Colour.RED) == (len(h.violations) >= 3)
    if not any(x.outcome is not Outcome.COMPLIED for x in h.counsellings):
        assert got.colour in (Colour.NONE, Colour.RED)
    if any(x.outcome is Outcome.REFUSED for x in h.counsellings):
        assert got.colour is not Colour.NONE
    if got.colour is Colour.NONE:
        assert got.since is None
        return
    assert got.since is not None
    assert colour_at(h, got.since) is got.colour
    earlier = [t for t in h.times() if t < got.since]
    assert all(COLOUR_RANK[colour_at(h, t)] < COLOUR_RANK[got.colour] for t in earlier)


# --- identity numbers -------------------------------------------------------------------------

#: GB 11643's own example.
SAMPLE = "11010519491231002X"


def test_a_valid_number_is_accepted_normalised_and_masked() -> None:
    assert check_id_number(SAMPLE) == SAMPLE
    assert check_id_number(" 110105 19491231 002x ") == SAMPLE
    assert mask_id_number(SAMPLE) == "110***********002X"
    assert len(mask_id_number(SAMPLE)) == 18
    assert mask_id_number("12345") == "*****"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("11010519491231002", "17 characters, it must have 18"),
        ("1101051949123100X2", "character 17 is not a digit"),
        ("11010519491331002X", "characters 7-14 (19491331) are not a date"),
        ("11010518001231002X", "birth year 1800"),
        ("110105194912310021", "check character 1 is wrong"),
        ("１１0105194912310021", "character 1 is not a digit"),
    ],
)
def test_a_bad_number_is_refused_saying_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(IdNumberError, match="identity number: ") as err:
        check_id_number(text)
    assert says in str(err.value)


@settings(max_examples=200, deadline=None)
@given(
    st.text("0123456789", min_size=6, max_size=6),
    st.dates(min_value=datetime(1900, 1, 1).date(), max_value=datetime(2026, 1, 1).date()),
    st.text("0123456789", min_size=3, max_size=3),
    st.integers(0, 16),
    st.integers(1, 9),
)
def test_every_single_digit_error_is_caught_by_the_check_character(
    region: str, born: object, seq: str, where: int, shift: int
) -> None:
    first17 = region + born.strftime("%Y%m%d") + seq  # type: ignore[attr-defined]
    number = first17 + id_check_char(first17)
    assert check_id_number(number) == number
    wrong = first17[:where] + str((int(first17[where]) + shift) % 10) + first17[where + 1 :]
    with pytest.raises(IdNumberError):
        check_id_number(wrong + number[17])
