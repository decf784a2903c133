"""Shared fixtures: a real Mosquitto on a free port, a PostgreSQL database per run, and a
guard that fails any test whose code logged an exception it did not expect."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from simulators.mosquitto import MosquittoBroker

DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


class _LoggedExceptions(logging.Handler):
    """Keeps every error logged with an exception attached (``log.exception`` and the like,
    asyncio's "Task exception was never retrieved" included). Warnings with a traceback are
    handled trouble (a broker down, a camera gone) and do not count."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[0] is not None:
            self.records.append(record)


@pytest.fixture(autouse=True)
def fail_on_logged_exception(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test whose code logged an exception, unless the test names the logger.

    Code that swallows an error after logging it keeps running, so a test that only checks
    the happy outcome would pass over a crash in a callback, a worker or a task. A test
    that provokes a logged exception on purpose says which loggers may log one with
    ``@pytest.mark.logs_exceptions("edge_agent.agent.supervisor", ...)``; a name covers
    its child loggers.
    """
    recorder = _LoggedExceptions()
    root = logging.getLogger()
    root.addHandler(recorder)
    try:
        yield
    finally:
        root.removeHandler(recorder)
    allowed: set[str] = set()
    for marker in request.node.iter_markers("logs_exceptions"):
        allowed.update(marker.args)
    unexpected = [
        r
        for r in recorder.records
        if not any(r.name == name or r.name.startswith(name + ".") for name in allowed)
    ]
    if unexpected:
        lines = [
            f"{r.name}: {r.getMessage()} ({r.exc_info[1]!r})"  # type: ignore[index]
            for r in unexpected[:5]
        ]
        pytest.fail(
            "the code logged exceptions the test does not expect "
            "(mark it logs_exceptions(<logger>) if it provokes them on purpose):\n  "
            + "\n  ".join(lines),
            pytrace=False,
        )


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
