"""The PostgreSQL fixture gives this run its own database."""

from __future__ import annotations

import asyncpg
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


async def test_run_database_is_fresh_and_writable(pg_dsn: str) -> None:
    assert "/xh_test_" in pg_dsn
    conn = await asyncpg.connect(pg_dsn.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS probe (id int primary key)")
        await conn.execute("INSERT INTO probe VALUES (1) ON CONFLICT DO NOTHING")
        assert await conn.fetchval("SELECT count(*) FROM probe") == 1
        assert await conn.fetchval("SELECT current_database()") == pg_dsn.rsplit("/", 1)[1]
    finally:
        await conn.close()
