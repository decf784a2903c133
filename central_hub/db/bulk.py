"""Multi-row INSERTs for ingest's batches, bound on SQLite without SQLAlchemy's per-row work.

Ingest writes a batch's events, new cases and filing audits as a few multi-row INSERTs.
Through a Core ``insert()`` SQLAlchemy builds, per row, a dictionary of every bind
parameter and then a second one of processed values: for a batch of 500 events that
bookkeeping cost more than SQLite's own work on the rows. On SQLite, :func:`insert_rows`
renders the statement itself and binds each row as one tuple, converting each value
with the bind processor SQLAlchemy would use for its column (so the stored values are
the same: datetimes as SQLAlchemy's text, JSON through the engine's serializer), in
statements of at most the dialect's ``insertmanyvalues_max_parameters``. Other dialects
take SQLAlchemy's own ``insert()`` with the same rows (asyncpg binds them natively).

:func:`existing` answers which of a batch's keys a table already holds, in one query
whose keys travel as one parameter on SQLite (SQLAlchemy renders and binds an expanding
``IN`` of 500 values anew on every call).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from central_hub.errors import StorageError

__all__ = ["bind_processors", "existing", "insert_rows"]

_Processor = Callable[[Any], Any]
#: Per (dialect, table, columns): the bind processors of the columns, in order.
_PROCESSORS: dict[tuple[str, str, tuple[str, ...]], list[_Processor | None]] = {}


def bind_processors(
    dialect: sa.Dialect, table: sa.Table, names: tuple[str, ...]
) -> list[_Processor | None]:
    """The bind processors SQLAlchemy would apply to ``names`` of ``table`` (None: as is).

    For statements sent straight to the driver that must store what a Core statement
    stores (datetimes as SQLAlchemy's text on SQLite, JSON through the serializer). Built
    once per dialect, table and columns.
    """
    key = (dialect.name, table.name, names)
    found = _PROCESSORS.get(key)
    if found is None:
        found = [table.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names]
        _PROCESSORS[key] = found
    return found


async def insert_rows(
    conn: AsyncConnection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    *,
    returning: Sequence[str] = (),
    ignore_conflicts_on: Sequence[str] | None = None,
) -> list[tuple[Any, ...]]:
    """Insert ``rows`` (dicts with the same keys, all columns' values given) into ``table``.

    ``ignore_conflicts_on`` names a unique index: rows that conflict on it are skipped
    (``ON CONFLICT ... DO NOTHING``). Returns the ``returning`` columns of the inserted
    rows as tuples, in no particular order (empty without ``returning``).
    """
    if not rows:
        return []
    dialect = conn.dialect
    if dialect.name != "sqlite":
        return await _insert_core(conn, table, rows, returning, ignore_conflicts_on)
    names = tuple(rows[0])
    # The columns that need converting: position, processor, and what it makes of None
    # (JSON's writes 'null'), asked once a call rather than once a row.
    conversions = [
        (i, p, p(None))
        for i, p in enumerate(bind_processors(dialect, table, names))
        if p is not None
    ]
    quote = dialect.identifier_preparer.quote
    one = "(" + ", ".join("?" * len(names)) + ")"
    head = f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) VALUES "
    tail = ""
    if ignore_conflicts_on is not None:
        tail += f" ON CONFLICT ({', '.join(quote(n) for n in ignore_conflicts_on)}) DO NOTHING"
    if returning:
        tail += f" RETURNING {', '.join(quote(n) for n in returning)}"
    per_statement = max(1, dialect.insertmanyvalues_max_parameters // len(names))
    out: list[tuple[Any, ...]] = []
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        params: list[Any] = []
        for row in chunk:
            if len(row) != len(names):
                raise StorageError(f"rows for {table.name} name different columns: {list(row)}")
            values = [row[n] for n in names]  # KeyError: a row lacks a column the first has
            # None too is converted, as SQLAlchemy converts it: to what its processor gave.
            for i, process, if_none in conversions:
                value = values[i]
                values[i] = if_none if value is None else process(value)
            params += values
        sql = head + ", ".join([one] * len(chunk)) + tail
        result = await conn.exec_driver_sql(sql, tuple(params))
        if returning:
            out.extend(tuple(r) for r in result.all())
    return out


async def existing(conn: AsyncConnection, column: sa.Column[str], keys: Sequence[str]) -> set[str]:
    """The ``keys`` that ``column`` (of text) already holds, in one query."""
    if not keys:
        return set()
    if conn.dialect.name == "sqlite":
        quote = conn.dialect.identifier_preparer.quote
        name, table = quote(column.name), quote(column.table.name)
        sql = f"SELECT {name} FROM {table} WHERE {name} IN (SELECT value FROM json_each(?))"
        result = await conn.exec_driver_sql(sql, (json.dumps(list(keys)),))
    else:
        result = await conn.execute(sa.select(column).where(column.in_(list(keys))))
    return set(result.scalars())


async def _insert_core(
    conn: AsyncConnection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    returning: Sequence[str],
    ignore_conflicts_on: Sequence[str] | None,
) -> list[tuple[Any, ...]]:
    """The same insert through SQLAlchemy Core (PostgreSQL)."""
    stmt: Any
    if ignore_conflicts_on is not None:
        if conn.dialect.name != "postgresql":
            raise StorageError(f"no idempotent insert for dialect {conn.dialect.name!r}")
        stmt = postgresql.insert(table).on_conflict_do_nothing(
            index_elements=list(ignore_conflicts_on)
        )
    else:
        stmt = table.insert()
    if not returning:
        await conn.execute(stmt, list(rows))
        return []
    result = await conn.execute(stmt.returning(*(table.c[n] for n in returning)), list(rows))
    return [tuple(r) for r in result.all()]
