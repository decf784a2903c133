"""``insert_rows`` stores what SQLAlchemy's own ``insert()`` stores, on SQLite and PostgreSQL.

On SQLite it binds the rows itself (central_hub.db.bulk): the raw values the database
holds afterwards (datetimes as text, JSON, None, booleans) must be the ones a Core
insert of the same rows leaves, conflicts must be skipped and only inserted rows
returned, and a batch larger than one statement's parameters must be split.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from central_hub.db.bulk import existing, insert_rows
from central_hub.db.schema import events
from central_hub.errors import StorageError

pytestmark = pytest.mark.integration

AT = datetime(2026, 11, 26, 2, 0, 0, 123456, tzinfo=UTC)
EAST8 = timezone(timedelta(hours=8))


def _row(n: int) -> dict[str, Any]:
    return {
        "event_id": f"ev-{n:04d}",
        "device_id": "pole-1",
        "camera_id": "cam-1",
        "seq": n,
        "kind": "stall",
        "code": "0504",
        "started_at": AT - timedelta(seconds=n),
        # Another zone than UTC: stored as the same instant.
        "detected_at": (AT + timedelta(microseconds=n)).astimezone(EAST8),
        "received_at": AT,
        "dwell_s": 12.5,
        "confidence": 0.875,
        "lat": 28.6472 + n * 1e-7,
        "lon": 121.2615,
        "location_source": "gps",
        "zone": "z1",
        "model_name": "street",
        "model_version": "1.0",
        "plate_text": None if n % 2 else "浙J12345",
        "snapshot_sha256": None,
        "frame_sha256": None,
        "frame_faces": None if n % 2 else [[0.1, 0.2, 0.3, 0.4]],
        "objects": [{"label": "person", "score": 0.9, "box": [1, 2, 3, 4]}],
        "case_id": None,
        "shadow": bool(n % 3 == 0),
        "not_filed_reason": None,
    }


async def _raw(conn: AsyncConnection) -> list[tuple[Any, ...]]:
    """Every events row as the driver returns it, no SQLAlchemy type processing."""
    result = await conn.exec_driver_sql("SELECT * FROM events ORDER BY event_id")
    return [tuple(r) for r in result.all()]


async def test_rows_are_stored_as_a_core_insert_stores_them(db: AsyncEngine) -> None:
    rows = [_row(n) for n in range(6)]
    async with db.begin() as conn:
        await conn.execute(events.insert(), rows)
        by_core = await _raw(conn)
        await conn.execute(events.delete())
        got = await insert_rows(conn, events, rows, returning=["event_id"])
        assert sorted(got) == [(r["event_id"],) for r in rows]
        assert await _raw(conn) == by_core
        typed = (await conn.execute(sa.select(events).order_by(events.c.event_id))).all()
    assert typed[1].detected_at == rows[1]["detected_at"]
    assert typed[0].frame_faces == [[0.1, 0.2, 0.3, 0.4]]
    assert typed[1].frame_faces is None


async def test_conflicting_rows_are_skipped_and_not_returned(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        await insert_rows(conn, events, [_row(n) for n in range(3)])
        got = await insert_rows(
            conn,
            events,
            [_row(n) for n in range(1, 5)],
            returning=["event_id"],
            ignore_conflicts_on=["event_id"],
        )
        assert sorted(got) == [("ev-0003",), ("ev-0004",)]
        assert len(await _raw(conn)) == 5


async def test_a_batch_larger_than_a_statement_is_split(
    db: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [_row(n) for n in range(7)]
    async with db.begin() as conn:
        # Two rows' parameters a statement: seven rows take four statements.
        monkeypatch.setattr(conn.dialect, "insertmanyvalues_max_parameters", 2 * len(rows[0]))
        got = await insert_rows(conn, events, rows, returning=["event_id", "seq"])
        assert sorted(got) == [(r["event_id"], r["seq"]) for r in rows]
        assert len(await _raw(conn)) == 7


async def test_rows_must_name_the_same_columns(db: AsyncEngine) -> None:
    first, second = _row(1), _row(2)
    del second["plate_text"]
    async with db.begin() as conn:
        # SQLite: ours; PostgreSQL: SQLAlchemy's, for the missing bind parameter.
        with pytest.raises((StorageError, sa.exc.StatementError)):
            await insert_rows(conn, events, [first, second])


async def test_existing_names_the_keys_already_stored(db: AsyncEngine) -> None:
    """Only stored keys come back, whatever characters they hold; none asked, none found."""
    odd = dict(_row(9), event_id="ev-'quote\"-浙J-%_")
    async with db.begin() as conn:
        await insert_rows(conn, events, [_row(1), _row(2), odd])
        asked = ["ev-0002", "ev-0003", odd["event_id"], "ev-'quote", "ev-%"]
        assert await existing(conn, events.c.event_id, asked) == {"ev-0002", odd["event_id"]}
        assert await existing(conn, events.c.event_id, []) == set()
