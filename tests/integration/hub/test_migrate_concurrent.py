"""Several hub processes starting at once on a fresh database migrate it exactly once."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import sqlalchemy as sa

from central_hub.db.engine import create_engine
from central_hub.db.migrate import current_revision, head_revision, migrate

pytestmark = pytest.mark.integration


async def test_concurrent_migrations_of_a_fresh_database(db_url: str) -> None:
    schema = None
    if db_url.startswith("postgresql"):
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
        if schema is not None:
            admin = create_engine(db_url)
            async with admin.begin() as conn:
                await conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            await admin.dispose()
