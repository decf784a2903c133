"""Exceptions of the hub's pure domain.

Every error a domain function raises derives from :class:`DomainError`; its message is
one line a person can read and names what is wrong (the file and field for data files,
the stage, action and role for refused transitions).
"""

from __future__ import annotations

__all__ = [
    "CalendarError",
    "CatalogueError",
    "DomainError",
    "FilingError",
    "GridError",
    "MetricsError",
    "ModerationRefused",
    "NoticeError",
    "PlateError",
    "PlateRefused",
    "ServiceDayError",
    "TransitionRefused",
    "UnknownCell",
    "UnknownCode",
]


class DomainError(Exception):
    """Base of every error raised by ``central_hub.domain``."""


class CatalogueError(DomainError):
    """The event catalogue file is missing, unreadable or invalid (names file and field)."""


class UnknownCode(CatalogueError, KeyError):
    """An event code that the catalogue does not hold."""

    def __init__(self, code: str) -> None:
        super().__init__(f"unknown event code {code!r}: not in the catalogue")
        self.code = code

    def __str__(self) -> str:
        # KeyError would print the repr of the argument; keep the readable sentence.
        return str(self.args[0])


class CalendarError(DomainError):
    """The working-time calendar file is invalid, or a time given to it is not tz-aware."""


class ServiceDayError(DomainError):
    """The service-day calendar file is invalid, or a time given to it is not tz-aware.

    ``problems`` lists every problem of a file, one ``line N: field: what`` each.
    """

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


class GridError(DomainError):
    """The grid's GeoJSON is invalid: a bad level, a missing parent, a broken polygon.

    ``problems`` lists every problem found, one ``where: what`` line each (the message
    shows the first few); a lookup error has none.
    """

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


class UnknownCell(GridError, KeyError):
    """A grid cell id that the grid does not hold."""

    def __init__(self, cell_id: str) -> None:
        super().__init__(f"unknown grid cell {cell_id!r}")
        self.cell_id = cell_id

    def __str__(self) -> str:
        return str(self.args[0])


class TransitionRefused(DomainError):
    """A workflow transition that is not allowed.

    ``reason`` is a sentence for the person who tried it; ``kind`` says why in one word:
    ``illegal`` (the action does not apply in this stage), ``forbidden`` (the role may not
    do it) or ``unverified`` (the case must be verified before it is registered).
    """

    def __init__(self, reason: str, *, kind: str = "illegal") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


class FilingError(DomainError):
    """An event that cannot be planned into a case (bad facts, not a catalogue problem)."""


class ModerationRefused(DomainError):
    """A moderation of a citizen report that is refused.

    ``reason`` is a sentence for the moderator; ``kind`` says why in one word: ``invalid``
    (a bad value: ``field`` names it, e.g. ``reason``), ``forbidden`` (the role may not
    moderate) or ``conflict`` (the report's or the target case's state does not allow it).
    """

    def __init__(self, reason: str, *, kind: str = "invalid", field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.field = field


class MetricsError(DomainError):
    """Metrics asked for an empty or inverted period, or with naive datetimes."""


class PlateError(DomainError):
    """The QR plates' points file is invalid: a bad id, a missing street, a broken point.

    ``problems`` lists every problem found, one ``where: what`` line each, the way
    :class:`GridError` does (the message shows the first few).
    """

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


class PlateRefused(DomainError):
    """A scanned plate link that is refused.

    ``kind`` says why in one word: ``malformed`` (not ``<point id>.<signature>``),
    ``forged`` (the signature is not the hub's for that id) or ``unknown`` (signed, but
    the point is no longer in the city's list).
    """

    def __init__(self, reason: str, *, kind: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


class NoticeError(DomainError):
    """A notice template, its variables, an audience or a notice setting that is invalid;
    the message names every problem (the field, the variable)."""
