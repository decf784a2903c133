"""Async engines for SQLite (WAL, the embedded default) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from central_hub.errors import StorageError

log = logging.getLogger(__name__)

__all__ = ["create_engine", "insert_ignore", "is_sqlite", "reader", "writer_turn"]

#: How long an SQLite writer waits for the lock before failing (milliseconds).
SQLITE_BUSY_TIMEOUT_MS = 30_000


def is_sqlite(engine: AsyncEngine | sa.engine.Connection | sa.Dialect) -> bool:
    """True when ``engine`` (or a connection or dialect) talks to SQLite."""
    dialect = engine if isinstance(engine, sa.Dialect) else engine.dialect
    return dialect.name == "sqlite"


#: The execution option that marks a transaction that only reads (`reader`).
_READ_ONLY = "xh_read_only"
_WRITERS: weakref.WeakKeyDictionary[AsyncEngine, asyncio.Lock] = weakref.WeakKeyDictionary()


def writer_turn(engine: AsyncEngine) -> contextlib.AbstractAsyncContextManager[object]:
    """Hold this while writing a short transaction that many requests make at once.

    SQLite has one writer at a time: this process's writers then queue here, in order,
    instead of in SQLite's busy handler, whose growing sleeps (up to 100 ms a try) leave
    a few of them waiting seconds under a burst. On PostgreSQL it holds nothing.
    """
    if not is_sqlite(engine):
        return contextlib.nullcontext()
    lock = _WRITERS.get(engine)
    if lock is None:
        lock = _WRITERS[engine] = asyncio.Lock()
    return lock


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" hook start transactions itself (BEGIN IMMEDIATE below).
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    # The timeout first: switching a new file to WAL takes an exclusive lock, and two hubs
    # opening a fresh database together must wait for it rather than fail "locked".
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_on_begin(conn: sa.engine.Connection) -> None:
    # IMMEDIATE takes the write lock up front: a deferred transaction that later
    # upgrades to a writer fails with SQLITE_BUSY without waiting for busy_timeout.
    # A reader (see `reader`) begins deferred: in WAL it reads its snapshot while a
    # writer writes, instead of queueing for the write lock behind every writer.
    if conn.get_execution_options().get(_READ_ONLY):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def reader(engine: AsyncEngine) -> AsyncEngine:
    """``engine`` for transactions that only read.

    On SQLite every other transaction begins IMMEDIATE, taking the one write lock, so a
    burst of reads (an api_key checked on every Open311 POST) would wait in line behind
    the writers; a reader's transaction takes no lock. Never write through it: a deferred
    transaction cannot wait for the lock when it starts writing. On PostgreSQL it changes
    nothing.
    """
    return engine.execution_options(**{_READ_ONLY: True})


def create_engine(
    url: str, *, pool_size: int = 5, echo: bool = False, pg_schema: str | None = None
) -> AsyncEngine:
    """An async engine for ``url`` (``sqlite+aiosqlite:///...`` or ``postgresql+asyncpg://...``).

    For SQLite the file's folder is created, WAL mode and a busy timeout are set on
    every connection, and every transaction begins IMMEDIATE. ``pg_schema`` puts a
    PostgreSQL engine's tables in that schema (tests isolate themselves this way).
    """
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.drivername != "sqlite+aiosqlite":
            raise StorageError(f"use the sqlite+aiosqlite driver, not {parsed.drivername!r}")
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo)
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
        return engine
    if backend == "postgresql":
        if parsed.drivername != "postgresql+asyncpg":
            raise StorageError(f"use the postgresql+asyncpg driver, not {parsed.drivername!r}")
        connect_args: dict[str, Any] = {}
        if pg_schema is not None:
            connect_args["server_settings"] = {"search_path": pg_schema}
        return create_async_engine(
            url, echo=echo, pool_size=pool_size, pool_pre_ping=True, connect_args=connect_args
        )
    raise StorageError(f"unsupported database {backend!r} in {parsed!r}: use sqlite or postgresql")


def insert_ignore(table: sa.Table, dialect: sa.Dialect, index: list[str] | None) -> Any:
    """``INSERT ... ON CONFLICT (index) DO NOTHING`` for ``dialect`` (``index`` None: a
    conflict on any unique key does nothing); add ``.values()``."""
    if dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=index)
    if dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=index)
    raise StorageError(f"no idempotent insert for dialect {dialect.name!r}")
