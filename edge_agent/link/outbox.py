"""The durable outbox: every outgoing QoS1 message is committed here before it is sent.

SQLite in WAL mode through aiosqlite. A row is written (and fsynced, with
``synchronous=FULL``) before :meth:`Outbox.append` returns, and deleted only when the
broker's PUBACK for it arrives (:meth:`Outbox.ack`). Concurrent appends are committed
together in one transaction (group commit), which is what makes thousands of durable
appends per second possible on an SD card.

Rows carry a priority (higher is sent first: acks, then snapshots, events, tracks), an
expiry (TTL) and their size. When the total size passes the byte cap, the oldest rows of
the lowest priority are evicted and counted; the counters live in the same database, so
they survive restarts.

Reading for the uplink uses one cursor per priority (:meth:`Outbox.next_batch`), so rows
handed out once are not handed out again until :meth:`Outbox.rewind` (a fresh process
starts rewound, which is the ordered resend after a restart). Ids come from
``AUTOINCREMENT`` so a new row always sorts after every row handed out before.

The same database keeps the per-device event counter (``seq``) and the ids of commands
already accepted (the on-disk replay guard).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from edge_agent.link.errors import MessageTooLarge, OutboxClosed, OutboxError

log = logging.getLogger(__name__)

__all__ = ["Outbox", "OutboxRow", "OutboxStats", "Priority"]


class Priority(enum.IntEnum):
    """Send order of outbox rows: higher first; eviction takes the lowest first."""

    SHADOW = 5  # a shadow candidate's would-be events: the first to go when space runs out
    TRACK = 10
    EVENT = 20
    SNAPSHOT = 30
    CONFIG = 40
    ACK = 50


@dataclass(frozen=True)
class OutboxRow:
    """One stored message as handed to the uplink."""

    id: int
    priority: int
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(frozen=True)
class OutboxStats:
    """Counters for telemetry: rows and bytes waiting, rows dropped by cap and by TTL."""

    depth: int
    bytes: int
    evicted: int
    expired: int


_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    priority INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_prio_id ON outbox (priority, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS seen_commands (
    cmd_id TEXT PRIMARY KEY,
    expires_ms INTEGER NOT NULL
);
"""

#: Fixed cost counted per row on top of topic and payload (row header, index entry).
ROW_OVERHEAD = 64


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class _Pending:
    priority: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    ttl_ms: int
    size: int
    done: asyncio.Future[int]


class Outbox:
    """A durable, size-capped, prioritised message queue in one SQLite file.

    Open with ``await Outbox.open(path, max_bytes=..., ttl_s=...)`` and close with
    :meth:`close`. All methods are coroutines or cheap reads of in-memory counters and
    must be called from the event loop that opened the outbox.
    """

    def __init__(
        self,
        db: aiosqlite.Connection,
        *,
        path: Path,
        max_bytes: int,
        ttl_s: float,
        clock_ms: Callable[[], int],
    ) -> None:
        self._db = db
        self.path = path
        self.max_bytes = max_bytes
        self.ttl_ms = int(ttl_s * 1000)
        self._clock_ms = clock_ms
        self._pending: list[_Pending] = []
        self._pending_acks: list[int] = []
        self._pending_meta: dict[str, int] = {}
        self._flush_task: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()
        self._cursors: dict[int, int] = {}
        self._depth = 0
        self._bytes = 0
        self._evicted = 0
        self._expired = 0
        self._meta: dict[str, int] = {}
        self._seen: dict[str, int] = {}
        self._closed = False
        #: Set whenever rows are added; the uplink waits on it when it has nothing to send.
        self.changed = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        max_bytes: int = 256 * 1024 * 1024,
        ttl_s: float = 7 * 24 * 3600,
        synchronous: str = "FULL",
        clock_ms: Callable[[], int] = _now_ms,
    ) -> Outbox:
        """Open (creating if needed) the outbox at ``path`` and load its counters."""
        if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise OutboxError(f"outbox synchronous must be FULL, NORMAL or EXTRA: {synchronous}")
        if max_bytes <= ROW_OVERHEAD:
            raise OutboxError(f"outbox max_bytes must be more than {ROW_OVERHEAD}: {max_bytes}")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = await aiosqlite.connect(path, isolation_level=None)
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            await db.execute("PRAGMA busy_timeout=5000")
            await db.executescript(_SCHEMA)
        except Exception as exc:  # aiosqlite raises sqlite3 errors and OSError
            raise OutboxError(f"cannot open outbox {path}: {exc}") from exc
        box = cls(db, path=path, max_bytes=max_bytes, ttl_s=ttl_s, clock_ms=clock_ms)
        await box._load()
        return box

    async def _load(self) -> None:
        async with self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM outbox") as cur:
            row = await cur.fetchone()
        assert row is not None  # an aggregate always yields a row
        self._depth, self._bytes = int(row[0]), int(row[1])
        async with self._db.execute("SELECT key, value FROM meta") as cur:
            meta = {str(k): int(v) for k, v in await cur.fetchall()}
        self._evicted = meta.get("evicted", 0)
        self._expired = meta.get("expired", 0)
        self._meta = meta
        now = self._clock_ms()
        await self._db.execute("DELETE FROM seen_commands WHERE expires_ms < ?", (now,))
        async with self._db.execute("SELECT cmd_id, expires_ms FROM seen_commands") as cur:
            self._seen = {str(k): int(v) for k, v in await cur.fetchall()}
        log.info(
            "outbox %s: %d rows, %d bytes waiting, %d evicted so far",
            self.path,
            self._depth,
            self._bytes,
            self._evicted,
        )

    async def close(self) -> None:
        """Flush what is pending and close the database."""
        if self._closed:
            return
        await self.flush()
        self._closed = True
        await self._db.close()

    # ------------------------------------------------------------------ counters

    def stats(self) -> OutboxStats:
        """Current depth, bytes and drop counters (in memory, no I/O)."""
        return OutboxStats(self._depth, self._bytes, self._evicted, self._expired)

    def counter(self, name: str) -> int:
        """The committed value of a counter raised by :meth:`append` (0 if never set)."""
        return self._meta.get(name, 0)

    # ------------------------------------------------------------------ writing

    async def append(
        self,
        topic: str,
        payload: bytes,
        *,
        priority: int = Priority.EVENT,
        qos: int = 1,
        retain: bool = False,
        ttl_s: float | None = None,
        counters: dict[str, int] | None = None,
    ) -> int:
        """Store one message durably and return its row id once committed.

        ``counters`` (e.g. ``{"seq": event.seq}``, the per-device event counter) are
        raised to at least these values in the same transaction, so they resume after a
        restart from the last message actually stored (see :meth:`counter`).
        Raises :class:`MessageTooLarge` for a message bigger than the whole byte cap.
        """
        if self._closed:
            raise OutboxClosed(f"outbox {self.path} is closed")
        size = len(topic.encode()) + len(payload) + ROW_OVERHEAD
        if size > self.max_bytes:
            raise MessageTooLarge(
                f"message for {topic} is {size} bytes, more than the outbox cap {self.max_bytes}"
            )
        ttl_ms = self.ttl_ms if ttl_s is None else int(ttl_s * 1000)
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append(
            _Pending(int(priority), topic, payload, qos, retain, ttl_ms, size, done)
        )
        for key, value in (counters or {}).items():
            if key in ("evicted", "expired"):
                raise OutboxError(f"counter name {key!r} is reserved")
            if value > self._pending_meta.get(key, self._meta.get(key, 0)):
                self._pending_meta[key] = value
        self._kick()
        return await done

    def ack(self, ids: Iterable[int]) -> None:
        """Mark rows as delivered (PUBACK received); they are deleted in the next flush."""
        if self._closed:
            return  # a late PUBACK after shutdown: the row is simply sent again next run
        self._pending_acks.extend(ids)
        self._kick()

    def _kick(self) -> None:
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.get_running_loop().create_task(
                self._flush_loop(), name="outbox-flush"
            )

    async def _flush_loop(self) -> None:
        while self._pending or self._pending_acks or self._pending_meta:
            await self.flush()

    async def flush(self) -> None:
        """Commit every pending append and ack now, in one transaction."""
        async with self._flush_lock:
            if self._closed:
                return
            pending, self._pending = self._pending, []
            acks, self._pending_acks = self._pending_acks, []
            meta, self._pending_meta = self._pending_meta, {}
            if not (pending or acks or meta):
                return
            try:
                ids = await self._commit(pending, acks, meta)
            except Exception as exc:  # sqlite3.Error, OSError (disk full): fail the waiters
                await self._rollback()
                error = OutboxError(f"outbox write failed: {exc}")
                error.__cause__ = exc
                for item in pending:
                    if not item.done.done():
                        item.done.set_exception(error)
                # Acks are only an optimisation: a lost ack means a duplicate send.
                log.error("outbox %s: write failed: %s", self.path, exc)
                return
            for item, row_id in zip(pending, ids, strict=True):
                if not item.done.done():
                    item.done.set_result(row_id)
            if pending:
                self.changed.set()

    async def _rollback(self) -> None:
        try:
            await self._db.execute("ROLLBACK")
        except Exception as exc:
            log.debug("rollback: %s", exc)

    async def _commit(
        self, pending: list[_Pending], acks: list[int], meta: dict[str, int]
    ) -> list[int]:
        db = self._db
        now = self._clock_ms()
        await db.execute("BEGIN IMMEDIATE")
        ids: list[int] = []
        removed_rows = 0
        removed_bytes = 0
        if acks:
            deleted = await self._delete_ids(acks)
            removed_rows += len(deleted)
            removed_bytes += sum(deleted)
        added_bytes = sum(item.size for item in pending)
        if pending:
            await db.executemany(
                "INSERT INTO outbox (priority, topic, payload, qos, retain, created_ms,"
                " expires_ms, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        item.priority,
                        item.topic,
                        item.payload,
                        item.qos,
                        int(item.retain),
                        now,
                        now + item.ttl_ms,
                        item.size,
                    )
                    for item in pending
                ],
            )
            async with db.execute("SELECT last_insert_rowid()") as cur:
                row = await cur.fetchone()
            assert row is not None  # always answers
            # AUTOINCREMENT inside one write transaction hands out consecutive ids.
            last = int(row[0])
            ids = list(range(last - len(pending) + 1, last + 1))
        total = self._bytes - removed_bytes + added_bytes
        evicted_rows = 0
        evicted_bytes = 0
        while total - evicted_bytes > self.max_bytes:
            need = total - evicted_bytes - self.max_bytes
            victims: list[int] = []
            got = 0
            async with db.execute(
                "SELECT id, size FROM outbox ORDER BY priority ASC, id ASC LIMIT 512"
            ) as cur:
                async for vid, vsize in cur:
                    victims.append(int(vid))
                    got += int(vsize)
                    if got >= need:
                        break
            if not victims:
                break
            sizes = await self._delete_ids(victims)
            evicted_rows += len(sizes)
            evicted_bytes += sum(sizes)
        if evicted_rows:
            meta["evicted"] = self._evicted + evicted_rows
        for key, value in meta.items():
            await db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
        await db.execute("COMMIT")
        # Only now, with the transaction durable, do the in-memory counters move.
        self._depth += len(pending) - removed_rows - evicted_rows
        self._bytes = total - evicted_bytes
        if evicted_rows:
            self._evicted += evicted_rows
            log.warning(
                "outbox full (%d bytes cap): evicted %d oldest low-priority rows (%d in all)",
                self.max_bytes,
                evicted_rows,
                self._evicted,
            )
        self._meta.update(meta)
        for item in pending:
            self._cursors.setdefault(item.priority, 0)
        return ids

    async def _delete_ids(self, ids: list[int]) -> list[int]:
        """Delete rows by id inside the current transaction; return the deleted sizes."""
        sizes: list[int] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            async with self._db.execute(
                f"DELETE FROM outbox WHERE id IN ({marks}) RETURNING size",
                chunk,
            ) as cur:
                sizes.extend(int(r[0]) for r in await cur.fetchall())
        return sizes

    # ------------------------------------------------------------------ reading

    def rewind(self) -> None:
        """Hand out every stored row again from the start (oldest first per priority)."""
        self._cursors = dict.fromkeys(self._cursors, 0)

    async def next_batch(self, limit: int) -> list[OutboxRow]:
        """Up to ``limit`` rows not handed out since the last rewind, highest priority first.

        Rows past their TTL are deleted here and counted as expired instead.
        """
        if self._closed:
            raise OutboxClosed(f"outbox {self.path} is closed")
        # Under the write lock: a read inside an open write transaction would see (and
        # send) rows that are not committed yet.
        async with self._flush_lock:
            out, stale = await self._read_batch(limit)
        if stale:
            await self._expire(stale)
        return out

    async def _read_batch(self, limit: int) -> tuple[list[OutboxRow], list[int]]:
        if not self._cursors:
            async with self._db.execute("SELECT DISTINCT priority FROM outbox") as cur:
                self._cursors = {int(r[0]): 0 for r in await cur.fetchall()}
        now = self._clock_ms()
        out: list[OutboxRow] = []
        stale: list[int] = []
        for priority in sorted(self._cursors, reverse=True):
            if len(out) >= limit:
                break
            async with self._db.execute(
                "SELECT id, topic, payload, qos, retain, expires_ms FROM outbox"
                " WHERE priority = ? AND id > ? ORDER BY id LIMIT ?",
                (priority, self._cursors[priority], limit - len(out)),
            ) as cur:
                rows: list[Any] = list(await cur.fetchall())
            for row_id, topic, payload, qos, retain, expires_ms in rows:
                self._cursors[priority] = int(row_id)
                if int(expires_ms) < now:
                    stale.append(int(row_id))
                    continue
                out.append(
                    OutboxRow(
                        int(row_id), priority, str(topic), bytes(payload), int(qos), bool(retain)
                    )
                )
        return out, stale

    async def _expire(self, ids: list[int]) -> None:
        async with self._flush_lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                sizes = await self._delete_ids(ids)
                total = self._expired + len(sizes)
                await self._db.execute(
                    "INSERT INTO meta (key, value) VALUES ('expired', ?)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (total,),
                )
                await self._db.execute("COMMIT")
            except Exception as exc:
                await self._rollback()
                raise OutboxError(f"outbox expiry failed: {exc}") from exc
        self._expired = total
        self._depth -= len(sizes)
        self._bytes -= sum(sizes)
        log.warning("outbox: dropped %d rows past their TTL (%d in all)", len(sizes), total)

    # ------------------------------------------------------------------ commands seen

    def reserve_command(self, cmd_id: str, expires_at: datetime) -> None:
        """Note ``cmd_id`` as seen in memory at once; :meth:`remember_command` persists it."""
        self._seen[cmd_id] = int(expires_at.astimezone(UTC).timestamp() * 1000)

    def command_seen(self, cmd_id: str) -> bool:
        """True if ``cmd_id`` was recorded by :meth:`remember_command` and has not expired."""
        return cmd_id in self._seen

    async def remember_command(self, cmd_id: str, expires_at: datetime) -> None:
        """Record an accepted command id durably until its expiry (the replay guard)."""
        expires_ms = int(expires_at.astimezone(UTC).timestamp() * 1000)
        self._seen[cmd_id] = expires_ms
        now = self._clock_ms()
        # Forget ids whose commands have expired: a replay of those is refused as expired.
        for old in [k for k, exp in self._seen.items() if exp < now]:
            del self._seen[old]
        async with self._flush_lock:
            await self._db.execute("DELETE FROM seen_commands WHERE expires_ms < ?", (now,))
            await self._db.execute(
                "INSERT OR REPLACE INTO seen_commands (cmd_id, expires_ms) VALUES (?, ?)",
                (cmd_id, expires_ms),
            )

    async def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: ``"ok"`` for a sound database."""
        async with self._db.execute("PRAGMA integrity_check") as cur:
            row = await cur.fetchone()
        return str(row[0]) if row else "no answer"
