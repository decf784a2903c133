"""UTCDateTime's SQLite bind processor writes every aware instant as UTC text.

Zones with a zero offset take a short path (the text less its "+00:00"); every zone must
give the text of the instant converted to UTC, as SQLAlchemy's SQLite DateTime writes it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from pydantic import TypeAdapter
from sqlalchemy.dialects.sqlite import aiosqlite

from central_hub.db.schema import UTCDateTime

PROCESS = UTCDateTime().dialect_impl(aiosqlite.dialect()).bind_processor(aiosqlite.dialect())
PARSED = TypeAdapter(datetime).validate_json('"2026-12-05T22:00:00.123456Z"')  # pydantic's zone


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 12, 5, 22, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 12, 5, 22, 0, tzinfo=UTC),  # no microseconds: still six digits
        PARSED,
        datetime(2026, 12, 6, 6, 0, 0, 5, tzinfo=ZoneInfo("Asia/Shanghai")),
        datetime(2026, 12, 5, 22, 0, tzinfo=ZoneInfo("Europe/London")),  # +00:00 in winter
        datetime(2026, 7, 5, 22, 0, tzinfo=ZoneInfo("Europe/London")),  # +01:00 in summer
        datetime(2026, 12, 5, 22, 0, tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
        datetime(2026, 12, 5, 22, 0, tzinfo=timezone(timedelta(seconds=30))),
    ],
)
def test_every_zone_is_written_as_utc_text(value: datetime) -> None:
    assert PROCESS is not None
    expected = value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    assert PROCESS(value) == expected
    assert len(expected) == len("2026-12-05 22:00:00.000000")


def test_naive_and_none() -> None:
    assert PROCESS is not None
    assert PROCESS(None) is None
    with pytest.raises(ValueError, match="naive"):
        PROCESS(datetime(2026, 12, 5, 22, 0))


def test_repeated_values_keep_their_own_text() -> None:
    """The processor remembers the last value it wrote (a batch binds one ``now`` in
    every row): each value, repeated or not, still gets its own text."""
    assert PROCESS is not None
    now = datetime(2026, 12, 6, 3, 0, 0, 1, tzinfo=UTC)
    later = now + timedelta(microseconds=1)
    elsewhere = now.astimezone(ZoneInfo("Asia/Shanghai"))  # the same instant, another zone
    for value in (now, now, later, now, elsewhere, elsewhere, later, later):
        assert PROCESS(value) == value.astimezone(UTC).replace(tzinfo=None).isoformat(
            " ", "microseconds"
        )
    many = [now + timedelta(seconds=k) for k in range(10_000)]
    for value in [*many, *many[:100]]:
        assert PROCESS(value) == value.replace(tzinfo=None).isoformat(" ", "microseconds")
    for k in range(1_000):  # each freed as the next is made: ids would recur if not held
        value = now + timedelta(microseconds=k)
        assert PROCESS(value) == value.replace(tzinfo=None).isoformat(" ", "microseconds")
    PROCESS(now)
    with pytest.raises(ValueError, match="naive"):
        PROCESS(now.replace(tzinfo=None))
