"""Helpers for the vendor file's tests: a 0501 (or other) case seeded directly."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.db.schema import cases

#: GB 11643's example identity number (valid check character).
NUMBER = "11010519491231002X"


async def seed_case(engine: AsyncEngine, at: datetime, code: str = "0501") -> int:
    """A case of ``code`` reported at ``at``; its id."""
    async with engine.begin() as conn:
        return int(
            (
                await conn.execute(
                    cases.insert()
                    .values(
                        source="ai",
                        code=code,
                        major=code[:2],
                        category="test",
                        title=f"test {code}",
                        line="enforcement",
                        stage="registered",
                        lat=28.6472,
                        lon=121.2615,
                        reported_at=at,
                        limit_kind="working_hours",
                        limit_amount=4.0,
                        verification_required=False,
                        event_count=1,
                        last_event_at=at,
                        updated_at=at,
                    )
                    .returning(cases.c.id)
                )
            ).scalar_one()
        )
