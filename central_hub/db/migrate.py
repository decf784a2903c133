"""Run the packaged Alembic migrations programmatically (at startup and ``central-hub migrate``)."""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.errors import StorageError

log = logging.getLogger(__name__)

__all__ = ["MIGRATIONS_DIR", "current_revision", "head_revision", "migrate"]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: The PostgreSQL advisory lock that serialises migrations (any constant bigint of ours):
#: hub workers started together on a fresh database would otherwise all create the
#: tables and all but one fail. SQLite needs none: the migration's transaction begins
#: IMMEDIATE, which already takes the database's write lock.
PG_MIGRATION_LOCK = 0x7869_7568_7561  # "xiuhua"


def _config(connection: sa.engine.Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision shipped with this code."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise StorageError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None when it was never migrated."""

    def _read(conn: sa.engine.Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(_read)


async def migrate(engine: AsyncEngine, revision: str = "head") -> str:
    """Upgrade the database to ``revision``; return the revision it is at afterwards."""

    def _upgrade(conn: sa.engine.Connection) -> None:
        command.upgrade(_config(conn), revision)

    try:
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Held to the end of this transaction: a second hub waits here, then
                # finds the database at head and has nothing to do.
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(PG_MIGRATION_LOCK)))
            await conn.run_sync(_upgrade)
    except sa.exc.SQLAlchemyError as exc:
        raise StorageError(f"migration to {revision} failed: {exc}") from exc
    now = await current_revision(engine)
    log.info("database at revision %s", now)
    return now or ""
