"""NMEA 0183 parsing (pure): checksums, ``GGA`` and ``RMC`` sentences into fixes."""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

__all__ = ["NmeaError", "NmeaFix", "checksum", "parse_sentence"]


class NmeaError(ValueError):
    """A sentence that is not valid NMEA (bad checksum, bad field)."""


@dataclass(frozen=True)
class NmeaFix:
    """What one sentence says: position, and what else it carries (speed, course, hdop)."""

    lat: float
    lon: float
    utc_time: time | None
    utc_date: date | None = None
    speed_kmh: float | None = None
    heading_deg: float | None = None
    hdop: float | None = None

    def timestamp(self, today: date) -> datetime:
        """The fix time as an aware datetime, using ``today`` when the sentence has no date."""
        day = self.utc_date or today
        return datetime.combine(day, self.utc_time or time(0), tzinfo=UTC)


def checksum(body: str) -> str:
    """The two-hex-digit XOR checksum of the text between ``$`` and ``*``."""
    return f"{functools.reduce(operator.xor, body.encode('ascii'), 0):02X}"


def _coord(value: str, hemi: str, degree_digits: int) -> float:
    if not value or not hemi:
        raise NmeaError("empty coordinate")
    try:
        degrees = int(value[:degree_digits])
        minutes = float(value[degree_digits:])
    except ValueError as exc:
        raise NmeaError(f"bad coordinate {value!r}") from exc
    if minutes >= 60:
        raise NmeaError(f"bad coordinate minutes in {value!r}")
    result = degrees + minutes / 60.0
    if hemi in ("S", "W"):
        return -result
    if hemi not in ("N", "E"):
        raise NmeaError(f"bad hemisphere {hemi!r}")
    return result


def _utc_time(value: str) -> time | None:
    if len(value) < 6:
        return None
    try:
        seconds = float(value[4:])
        return time(int(value[:2]), int(value[2:4]), int(seconds), int((seconds % 1) * 1e6))
    except ValueError as exc:
        raise NmeaError(f"bad time {value!r}") from exc


def parse_sentence(line: str) -> NmeaFix | None:
    """Parse one sentence; return a fix for a valid ``GGA``/``RMC`` with a position.

    Other sentence types and sentences without a fix give None; a corrupt sentence
    (wrong checksum, malformed field) raises :class:`NmeaError`.
    """
    line = line.strip()
    if not line.startswith("$"):
        raise NmeaError(f"not an NMEA sentence: {line[:40]!r}")
    body, star, given = line[1:].partition("*")
    if star and checksum(body) != given.strip().upper()[:2]:
        raise NmeaError(f"checksum mismatch in {line[:40]!r}")
    fields = body.split(",")
    kind = fields[0][2:] if len(fields[0]) == 5 else fields[0]
    if kind == "GGA":
        if len(fields) < 9:
            raise NmeaError("GGA sentence too short")
        if fields[6] in ("", "0"):
            return None  # no fix
        return NmeaFix(
            lat=_coord(fields[2], fields[3], 2),
            lon=_coord(fields[4], fields[5], 3),
            utc_time=_utc_time(fields[1]),
            hdop=float(fields[8]) if fields[8] else None,
        )
    if kind == "RMC":
        if len(fields) < 10:
            raise NmeaError("RMC sentence too short")
        if fields[2] != "A":
            return None  # void: receiver has no fix
        knots = float(fields[7]) if fields[7] else None
        heading = float(fields[8]) % 360 if fields[8] else None
        day = None
        if len(fields[9]) == 6:
            try:
                day = date(2000 + int(fields[9][4:]), int(fields[9][2:4]), int(fields[9][:2]))
            except ValueError as exc:
                raise NmeaError(f"bad date {fields[9]!r}") from exc
        return NmeaFix(
            lat=_coord(fields[3], fields[4], 2),
            lon=_coord(fields[5], fields[6], 3),
            utc_time=_utc_time(fields[1]),
            utc_date=day,
            speed_kmh=knots * 1.852 if knots is not None else None,
            heading_deg=heading,
        )
    return None
