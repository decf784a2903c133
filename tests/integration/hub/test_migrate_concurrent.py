"""Several hubs starting at once on a fresh PostgreSQL database migrate it exactly once.

(SQLite serialises migrations with BEGIN IMMEDIATE on the file; separate processes were
checked by hand. Three engines in one process can wait out the busy timeout there, so
this test is PostgreSQL's, where the advisory lock is what makes it safe.)"""

from __future__ import annotations

import asyncio
import uuid

import pytest
import sqlalchemy as sa

from central_hub.db.engine import create_engine
from central_hub.db.migrate import current_revision, head_revision, migrate

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


async def test_concurrent_migrations_of_a_fresh_database(pg_dsn: str) -> None:
    db_url = pg_dsn
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(db_url)
    async with admin.begin() as conn:
        await conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    await admin.dispose()
    engines = [create_engine(db_url, pg_schema=schema) for _ in range(3)]
    try:
        done = await asyncio.gather(*(migrate(e) for e in engines))
        assert done == [head_revision()] * 3
        assert await current_revision(engines[0]) == head_revision()
    finally:
        for e in engines:
            await e.dispose()
        admin = create_engine(db_url)
        async with admin.begin() as conn:
            await conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()
