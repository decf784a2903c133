"""The uplink against a fake transport: order, window, PUBACK deletes, refusals."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from edge_agent.link.outbox import Outbox
from edge_agent.link.uplink import Uplink
from simulators.polling import eventually


class FakeTransport:
    def __init__(self) -> None:
        self.connected = True
        self.sent: list[tuple[int, str]] = []
        self.refuse = False
        self._mid = 0

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> int | None:
        if self.refuse:
            return None
        self._mid += 1
        self.sent.append((self._mid, topic))
        return self._mid


@contextlib.asynccontextmanager
async def running(uplink: Uplink):  # type: ignore[no-untyped-def]
    task = asyncio.create_task(uplink.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_window_bounds_inflight_and_acks_delete(tmp_path: Path) -> None:
    box = await Outbox.open(tmp_path / "o.db")
    for i in range(25):
        await box.append(f"t/{i}", b"x")
    fake = FakeTransport()
    uplink = Uplink(box, fake, window=10)
    async with running(uplink):
        assert await eventually(lambda: len(fake.sent) == 10, 5, every_s=0.01), fake.sent
        await asyncio.sleep(0.05)
        assert len(fake.sent) == 10, "more than the window in flight"
        uplink.published([mid for mid, _ in fake.sent])
        assert await eventually(lambda: len(fake.sent) == 20, 5, every_s=0.01), fake.sent
        uplink.published([mid for mid, _ in fake.sent[10:]])
        assert await eventually(lambda: len(fake.sent) == 25, 5, every_s=0.01), fake.sent
        uplink.published([mid for mid, _ in fake.sent[20:]] + [999])  # unknown mid ignored
        assert await eventually(lambda: box.stats().depth == 0, 5, every_s=0.01), (
            f"{box.stats().depth} rows left in the outbox"
        )
    assert [t for _, t in fake.sent] == [f"t/{i}" for i in range(25)]
    assert uplink.delivered == 25
    await box.close()


async def test_nothing_is_sent_while_disconnected(tmp_path: Path) -> None:
    box = await Outbox.open(tmp_path / "o.db")
    fake = FakeTransport()
    fake.connected = False
    uplink = Uplink(box, fake)
    async with running(uplink):
        await box.append("t", b"x")
        await asyncio.sleep(0.1)
        assert fake.sent == []
        fake.connected = True
        uplink.wake()
        assert await eventually(lambda: len(fake.sent) == 1, 5, every_s=0.01), fake.sent
    await box.close()


async def test_refused_publish_rewinds_and_resends_in_order(tmp_path: Path) -> None:
    box = await Outbox.open(tmp_path / "o.db")
    for i in range(3):
        await box.append(f"t/{i}", b"x")
    fake = FakeTransport()
    fake.refuse = True
    uplink = Uplink(box, fake)
    async with running(uplink):
        await asyncio.sleep(0.05)
        fake.refuse = False
        uplink.wake()
        assert await eventually(lambda: len(fake.sent) >= 3, 5, every_s=0.01), fake.sent
    assert [t for _, t in fake.sent[:3]] == ["t/0", "t/1", "t/2"]
    await box.close()


async def test_refusing_link_is_not_a_busy_loop(tmp_path: Path) -> None:
    box = await Outbox.open(tmp_path / "o.db")
    await box.append("t", b"x")
    calls = 0

    class Refusing(FakeTransport):
        def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> None:
            nonlocal calls
            calls += 1

    uplink = Uplink(box, Refusing())
    async with running(uplink):
        await asyncio.sleep(0.3)
    assert calls <= 3, f"{calls} publish attempts in 0.3 s"
    await box.close()
