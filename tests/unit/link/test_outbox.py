"""The outbox on a real SQLite file: durability, order, priorities, cap, TTL, counters."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge_agent.link.errors import MessageTooLarge, OutboxClosed, OutboxError
from edge_agent.link.outbox import ROW_OVERHEAD, Outbox, Priority


class Clock:
    def __init__(self) -> None:
        self.ms = 1_700_000_000_000

    def __call__(self) -> int:
        return self.ms


async def test_append_is_durable_and_survives_reopen(tmp_path: Path) -> None:
    box = await Outbox.open(tmp_path / "o.db")
    ids = await asyncio.gather(*(box.append(f"t/{i}", b"x" * 10) for i in range(50)))
    assert len(set(ids)) == 50
    await box.close()
    # Read it back without the outbox: the rows are really on disk.
    conn = sqlite3.connect(tmp_path / "o.db")
    assert conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 50
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    box = await Outbox.open(tmp_path / "o.db")
    assert box.stats().depth == 50
    rows = await box.next_batch(100)
    assert [r.topic for r in rows] == [f"t/{i}" for i in range(50)]
    await box.close()


async def test_ack_deletes_and_updates_counters(tmp_path: Path) -> None:
    box = await Outbox.open(tmp_path / "o.db")
    for i in range(5):
        await box.append("t", bytes([i]) * 100)
    rows = await box.next_batch(10)
    before = box.stats()
    box.ack([rows[0].id, rows[1].id])
    await box.flush()
    after = box.stats()
    assert after.depth == before.depth - 2
    assert after.bytes == before.bytes - 2 * (1 + 100 + ROW_OVERHEAD)
    box.ack([rows[0].id])  # a duplicate PUBACK deletes nothing more
    await box.flush()
    assert box.stats().depth == 3
    await box.close()


async def test_higher_priority_first_and_cursor_does_not_repeat(tmp_path: Path) -> None:
    box = await Outbox.open(tmp_path / "o.db")
    await box.append("track1", b"a", priority=Priority.TRACK)
    await box.append("event1", b"b", priority=Priority.EVENT)
    await box.append("ack1", b"c", priority=Priority.ACK)
    await box.append("event2", b"d", priority=Priority.EVENT)
    assert [r.topic for r in await box.next_batch(10)] == ["ack1", "event1", "event2", "track1"]
    assert await box.next_batch(10) == []
    await box.append("event3", b"e")
    assert [r.topic for r in await box.next_batch(10)] == ["event3"]
    box.rewind()
    assert len(await box.next_batch(10)) == 5
    await box.close()


async def test_new_row_after_acked_top_row_is_still_handed_out(tmp_path: Path) -> None:
    box = await Outbox.open(tmp_path / "o.db")
    await box.append("a", b"1")
    (row,) = await box.next_batch(10)
    box.ack([row.id])
    await box.flush()
    await box.append("b", b"2")  # AUTOINCREMENT: must not reuse the deleted id
    assert [r.topic for r in await box.next_batch(10)] == ["b"]
    await box.close()


async def test_cap_evicts_oldest_lowest_priority_and_counts(tmp_path: Path) -> None:
    size = len("event") + 100 + ROW_OVERHEAD  # "track" has the same length
    box = await Outbox.open(tmp_path / "o.db", max_bytes=size * 6)
    for i in range(3):
        await box.append("track", bytes([i]) * 100, priority=Priority.TRACK)
    for i in range(3):
        await box.append("event", bytes([i]) * 100, priority=Priority.EVENT)
    assert box.stats().evicted == 0
    await box.append("event", b"\x09" * 100, priority=Priority.EVENT)
    await box.append("event", b"\x0a" * 100, priority=Priority.EVENT)
    stats = box.stats()
    assert stats.evicted == 2
    assert stats.bytes <= size * 6
    rows = await box.next_batch(10)
    tracks = [r.payload[0] for r in rows if r.topic == "track"]
    assert tracks == [2], "the oldest tracks go first, events stay"
    assert len([r for r in rows if r.topic == "event"]) == 5
    await box.close()
    again = await Outbox.open(tmp_path / "o.db", max_bytes=size * 6)
    assert again.stats().evicted == 2, "the evicted count survives a restart"
    await again.close()


async def test_too_large_message_is_refused_with_reason(tmp_path: Path) -> None:
    box = await Outbox.open(tmp_path / "o.db", max_bytes=1000)
    with pytest.raises(MessageTooLarge, match="more than the outbox cap 1000"):
        await box.append("t", b"x" * 2000)
    assert box.stats().depth == 0
    await box.close()


async def test_ttl_expired_rows_are_dropped_and_counted(tmp_path: Path) -> None:
    clock = Clock()
    box = await Outbox.open(tmp_path / "o.db", ttl_s=60, clock_ms=clock)
    await box.append("old", b"1")
    await box.append("short", b"2", ttl_s=1)
    clock.ms += 30_000
    await box.append("fresh", b"3")
    assert [r.topic for r in await box.next_batch(10)] == ["old", "fresh"]
    clock.ms += 40_000
    box.rewind()
    assert [r.topic for r in await box.next_batch(10)] == ["fresh"]
    stats = box.stats()
    assert stats.expired == 2
    assert stats.depth == 1
    await box.close()


async def test_counters_are_raised_with_the_append_and_persist(tmp_path: Path) -> None:
    box = await Outbox.open(tmp_path / "o.db")
    await box.append("e", b"1", counters={"seq": 5})
    await box.append("e", b"2", counters={"seq": 3})
    assert box.counter("seq") == 5
    with pytest.raises(OutboxError, match="reserved"):
        await box.append("e", b"3", counters={"evicted": 1})
    await box.close()
    box = await Outbox.open(tmp_path / "o.db")
    assert box.counter("seq") == 5
    assert box.counter("never") == 0
    await box.close()


async def test_seen_commands_persist_until_expiry(tmp_path: Path) -> None:
    clock = Clock()
    box = await Outbox.open(tmp_path / "o.db", clock_ms=clock)
    now = datetime.fromtimestamp(clock.ms / 1000, tz=UTC)
    await box.remember_command("a", now + timedelta(minutes=5))
    await box.remember_command("b", now + timedelta(hours=2))
    assert box.command_seen("a")
    await box.close()
    clock.ms += 3_600_000
    box = await Outbox.open(tmp_path / "o.db", clock_ms=clock)
    assert not box.command_seen("a"), "expired ids are forgotten"
    assert box.command_seen("b")
    await box.close()


async def test_closed_outbox_refuses(tmp_path: Path) -> None:
    box = await Outbox.open(tmp_path / "o.db")
    await box.close()
    with pytest.raises(OutboxClosed):
        await box.append("t", b"1")


async def test_bad_settings_are_named(tmp_path: Path) -> None:
    with pytest.raises(OutboxError, match="synchronous"):
        await Outbox.open(tmp_path / "o.db", synchronous="OFF")
    with pytest.raises(OutboxError, match="max_bytes"):
        await Outbox.open(tmp_path / "o.db", max_bytes=10)


async def test_integrity_check_is_ok(tmp_path: Path) -> None:
    box = await Outbox.open(tmp_path / "o.db")
    await box.append("t", b"1")
    assert await box.integrity_check() == "ok"
    await box.close()


async def test_remembering_prunes_expired_ids(tmp_path: Path) -> None:
    clock = Clock()
    box = await Outbox.open(tmp_path / "o.db", clock_ms=clock)
    now = datetime.fromtimestamp(clock.ms / 1000, tz=UTC)
    await box.remember_command("old", now + timedelta(seconds=1))
    clock.ms += 5_000
    await box.remember_command("new", now + timedelta(hours=1))
    assert not box.command_seen("old")
    assert box.command_seen("new")
    await box.close()
    conn = sqlite3.connect(tmp_path / "o.db")
    assert [r[0] for r in conn.execute("SELECT cmd_id FROM seen_commands")] == ["new"]
    conn.close()
