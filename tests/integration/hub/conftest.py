"""Fixtures for the hub's storage tests: a migrated database on SQLite and on PostgreSQL."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.db.engine import create_engine
from central_hub.db.migrate import migrate
from central_hub.hub import Hub, build_hub
from central_hub.settings import HubSettings
from central_hub.testing import FakeClock, RecordingPublisher


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database URL of the backend under test (PostgreSQL: the run's database)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    dsn: str = request.getfixturevalue("pg_dsn")
    return dsn


@contextlib.asynccontextmanager
async def scratch_schema(db_url: str) -> AsyncIterator[str | None]:
    """On PostgreSQL a schema of its own, dropped afterwards; on SQLite nothing (None)."""
    if not db_url.startswith("postgresql"):
        yield None
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(db_url)
    async with admin.begin() as conn:
        await conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    await admin.dispose()
    try:
        yield schema
    finally:
        admin = create_engine(db_url)
        async with admin.begin() as conn:
            await conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


@pytest.fixture
def schema_scope() -> Callable[[str], contextlib.AbstractAsyncContextManager[str | None]]:
    """:func:`scratch_schema`, for fixtures that open several engines on one database."""
    return scratch_schema


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[AsyncEngine]:
    """A freshly migrated database; on PostgreSQL in a schema of its own, dropped after."""
    async with scratch_schema(db_url) as schema:
        engine = create_engine(db_url, pg_schema=schema)
        await migrate(engine)
        yield engine
        await engine.dispose()


HUB_START = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # Monday 09:00 Asia/Shanghai


@pytest.fixture
def clock() -> FakeClock:
    """A hand-moved clock starting on a Monday morning in Shanghai."""
    return FakeClock(HUB_START)


@pytest.fixture
async def hub(db: AsyncEngine, tmp_path: Path, clock: FakeClock) -> Hub:
    """A hub on the test database, without MQTT; commands go to a RecordingPublisher."""
    settings = HubSettings(data_dir=tmp_path / "hub")
    return await build_hub(
        settings,
        clock=clock,
        mqtt=False,
        engine=db,
        run_migrations=False,
        publisher=RecordingPublisher(),
    )


@pytest.fixture
async def sqlite_hub(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Hub]:
    """A hub on SQLite only (for API-shape tests that do not exercise storage)."""
    settings = HubSettings(data_dir=tmp_path / "hub")
    built = await build_hub(settings, clock=clock, mqtt=False, publisher=RecordingPublisher())
    yield built
    await built.close()
