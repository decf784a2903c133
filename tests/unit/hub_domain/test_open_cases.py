"""The index of open cases filing keeps between batches (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from central_hub.domain.filing import OpenCase
from central_hub.domain.open_cases import OpenCaseIndex
from central_hub.domain.workflow import Stage

T0 = datetime(2026, 12, 6, 1, 0, tzinfo=UTC)
A, B, C = ("0504", 1), ("0504", 2), ("0505", 1)


def case(case_id: int | str, plate: str | None = None, at: datetime = T0) -> OpenCase:
    return OpenCase(case_id, "0504", 28.64, 121.26, Stage.REGISTERED, at, plate)


def test_a_square_is_loaded_whole_or_not_at_all() -> None:
    index = OpenCaseIndex()
    assert index.missing([A, B, A, C]) == [A, B, C]  # each once, in order
    index.fill([A, B], [(A, case(1)), (A, case(2))])
    assert index.missing([A, B, C]) == [C]
    assert [c.case_id for c in index.near([A, B])] == [1, 2]
    assert index.near([B]) == []  # loaded, and empty
    index.put(C, case(3))  # a square not loaded is left for its load
    assert index.missing([C]) == [C]
    assert len(index) == 2
    assert index.near([C]) == []


def test_filed_cases_are_added_renamed_and_moved_forward() -> None:
    index = OpenCaseIndex()
    index.fill([A], [])
    index.put(A, case("new-0"))
    index.rename("new-0", 41)
    (only,) = index.near([A])
    assert only.case_id == 41
    assert len(index) == 1
    later = T0 + timedelta(minutes=5)
    index.touch(41, later, "浙J12345")
    index.touch(41, T0, "浙J99999")  # an earlier report moves nothing back; the plate stays
    (only,) = index.near([A])
    assert (only.last_event_at, only.plate) == (later, "浙J12345")
    index.touch(99, later)  # a case the index does not hold: nothing to do
    assert len(index) == 1


def test_a_case_put_again_in_another_square_leaves_the_first() -> None:
    index = OpenCaseIndex()
    index.fill([A, B], [(A, case(7))])
    index.put(B, case(7))
    assert index.near([A]) == []
    assert [c.case_id for c in index.near([B])] == [7]
    assert len(index) == 1


def test_clear_forgets_squares_cases_and_token() -> None:
    index = OpenCaseIndex()
    index.fill([A], [(A, case(1))])
    index.token = 12345
    index.clear()
    assert (len(index), index.squares) == (0, 0)
    assert index.token is None
    assert index.missing([A]) == [A]
