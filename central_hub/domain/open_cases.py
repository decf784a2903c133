"""Open cases by code and place square, kept in memory between filing batches (pure).

Filing looks for merge candidates in the squares a report's merge radius reaches
(``cases.place_key``). Reading those squares from the database for every batch cost a
hub worker more than any other step of filing: a thousand and more rows a batch, each
turned into an :class:`~central_hub.domain.filing.OpenCase`. The index keeps what was
read, and what filing itself changed, for the next batch.

A square is either *loaded*, and then the index holds every open case of that code in
it, or absent, and then the caller reads it from the database (:meth:`missing`,
:meth:`fill`). Whether the index still matches the database is the caller's to know
(:class:`central_hub.services.case_filing.CaseFiler` compares a token the database
changes with every change to a case); when it does not, :meth:`clear` starts again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime

from central_hub.domain.filing import OpenCase

__all__ = ["OpenCaseIndex", "Square"]

#: A code and the key of a place square (``central_hub.services.case_filing.place_key``).
Square = tuple[str, int]


class OpenCaseIndex:
    """Open cases of loaded squares, with the token of the database state they match."""

    def __init__(self) -> None:
        self._squares: dict[Square, dict[int | str, OpenCase]] = {}
        self._where: dict[int | str, Square] = {}
        #: The database token this index matches; None: it matches no known state.
        self.token: int | None = None

    def __len__(self) -> int:
        """Cases held."""
        return len(self._where)

    @property
    def squares(self) -> int:
        """Squares loaded."""
        return len(self._squares)

    def clear(self) -> None:
        """Forget every square and case, and the token."""
        self._squares.clear()
        self._where.clear()
        self.token = None

    def missing(self, squares: Iterable[Square]) -> list[Square]:
        """Those of ``squares`` not loaded, each once, in the order given."""
        out = []
        seen: set[Square] = set()
        for square in squares:
            if square not in self._squares and square not in seen:
                seen.add(square)
                out.append(square)
        return out

    def fill(self, squares: Iterable[Square], cases: Iterable[tuple[Square, OpenCase]]) -> None:
        """Mark ``squares`` loaded with ``cases`` (each with its square): every open case
        of those squares, as the database holds them."""
        for square in squares:
            self._squares.setdefault(square, {})
        for square, case in cases:
            self.put(square, case)

    def put(self, square: Square, case: OpenCase) -> None:
        """Add or replace a case of a loaded square; a case of a square not loaded is left
        for the square's load (the index never holds part of a square)."""
        cases = self._squares.get(square)
        if cases is None:
            return
        old = self._where.get(case.case_id)
        if old is not None and old != square:
            del self._squares[old][case.case_id]
        cases[case.case_id] = case
        self._where[case.case_id] = square

    def near(self, squares: Iterable[Square]) -> list[OpenCase]:
        """The cases of ``squares`` (each should be loaded)."""
        out: list[OpenCase] = []
        for square in squares:
            cases = self._squares.get(square)
            if cases:
                out.extend(cases.values())
        return out

    def touch(self, case_id: int | str, at: datetime, plate: str | None = None) -> None:
        """Record that a report (of ``plate``) merged into ``case_id`` at ``at``: the case's
        last report moves forward, and a case without a plate takes the report's."""
        square = self._where.get(case_id)
        if square is None:
            return
        case = self._squares[square][case_id]
        if at > case.last_event_at or (plate and not case.plate):
            self._squares[square][case_id] = dataclasses.replace(
                case, last_event_at=max(at, case.last_event_at), plate=case.plate or plate
            )

    def rename(self, old: int | str, new: int | str) -> None:
        """Give a case its stored id (filing names the cases it opens before the INSERT)."""
        square = self._where.pop(old, None)
        if square is None:
            return
        case = self._squares[square].pop(old)
        self._squares[square][new] = dataclasses.replace(case, case_id=new)
        self._where[new] = square
