"""Shared fixtures: a real Mosquitto on a free port, and a PostgreSQL database per run."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from simulators.mosquitto import MosquittoBroker

DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """An anonymous Mosquitto on a free port; ``.stop()``/``.start()`` keep the port."""
    with MosquittoBroker(tmp_path / "mosquitto") as broker:
        yield broker


BrokerFactory = Callable[..., MosquittoBroker]


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[BrokerFactory]:
    """Start brokers with a password file and/or ACL file; all are stopped after the test."""
    started: list[MosquittoBroker] = []

    def make(
        *,
        password_file: Path | None = None,
        acl_file: Path | None = None,
        allow_anonymous: bool | None = None,
    ) -> MosquittoBroker:
        broker = MosquittoBroker(
            tmp_path / f"mosquitto-{len(started)}",
            password_file=password_file,
            acl_file=acl_file,
            allow_anonymous=password_file is None if allow_anonymous is None else allow_anonymous,
        )
        broker.start()
        started.append(broker)
        return broker

    yield make
    for broker in started:
        broker.stop()


def _pg_admin_dsn() -> str:
    return os.environ.get("XH_TEST_PG_DSN", DEFAULT_PG_DSN)


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, as an SQLAlchemy asyncpg URL.

    The server comes from ``XH_TEST_PG_DSN`` (a libpq URL of a role that may create
    databases; default the local server). The database is dropped after the run.
    """
    psycopg_free_dsn = _pg_admin_dsn()
    name = f"xh_test_{uuid.uuid4().hex[:12]}"
    import asyncio

    import asyncpg

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(psycopg_free_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL at {psycopg_free_dsn} is not usable ({exc}); set XH_TEST_PG_DSN")
    base = psycopg_free_dsn.rsplit("/", 1)[0]
    url = base.replace("postgresql://", "postgresql+asyncpg://", 1) + f"/{name}"
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
