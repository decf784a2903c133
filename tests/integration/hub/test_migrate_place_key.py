"""Migration 0005 gives cases filed before it the square keys filing reads them by."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa

from central_hub.db.engine import create_engine
from central_hub.db.migrate import current_revision, head_revision, migrate
from central_hub.services.case_filing import place_key

AT = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


async def test_older_cases_get_their_place_keys(
    db_url: str,
    schema_scope: Callable[[str], contextlib.AbstractAsyncContextManager[str | None]],
) -> None:
    async with schema_scope(db_url) as schema:
        engine = create_engine(db_url, pg_schema=schema)
        try:
            await migrate(engine, "0004")
            old = sa.table(
                "cases",
                *(sa.column(c) for c in ("source", "code", "major", "category", "title")),
                *(sa.column(c) for c in ("line", "stage", "lat", "lon", "limit_kind")),
                *(sa.column(c) for c in ("limit_amount", "verification_required")),
                *(sa.column(c) for c in ("reported_at", "last_event_at", "updated_at")),
            )
            places = [(28.6472, 121.2615), (28.6401, 121.2733), (None, None)]
            async with engine.begin() as conn:
                await conn.execute(
                    old.insert(),
                    [
                        {
                            "source": "ai", "code": "0504", "major": "05", "category": "c",
                            "title": "t", "line": "enforcement", "stage": "registered",
                            "lat": lat, "lon": lon, "limit_kind": "working_hours",
                            "limit_amount": 2.0, "verification_required": False,
                            "reported_at": AT, "last_event_at": AT, "updated_at": AT,
                        }
                        for lat, lon in places
                    ],
                )  # fmt: skip
            await migrate(engine)
            assert await current_revision(engine) == head_revision()
            async with engine.connect() as conn:
                keys = (
                    await conn.execute(sa.text("SELECT place_key FROM cases ORDER BY id"))
                ).scalars()
                assert list(keys) == [
                    place_key(28.6472, 121.2615),
                    place_key(28.6401, 121.2733),
                    None,
                ]
        finally:
            await engine.dispose()
