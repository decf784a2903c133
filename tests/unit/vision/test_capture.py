"""Backoff, the newest-frame board, and the capture loop's reconnect and health states."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime

import numpy as np
import pytest

from edge_agent.backoff import Backoff
from edge_agent.vision import capture
from edge_agent.vision.capture import CaptureLoop, FrameBoard
from edge_agent.vision.errors import SourceError
from edge_agent.vision.frames import Frame
from simulators.polling import eventually_sync

TS = datetime(2026, 5, 1, tzinfo=UTC)


def frame(cam: str, i: int) -> Frame:
    return Frame(cam, i, TS, np.zeros((4, 4, 3), np.uint8))


def test_backoff_doubles_caps_and_jitters() -> None:
    backoff = Backoff(0.5, 8.0, uniform=random.Random(1).uniform)
    delays = [backoff.next() for _ in range(10)]
    assert all(0.25 <= d <= 0.5 for d in delays[:1])
    assert all(d <= 8.0 for d in delays)
    assert max(delays[6:]) > 4.0  # reached the cap region
    assert len(set(delays)) == len(delays)  # jittered


def test_board_keeps_newest_and_counts_drops() -> None:
    board = FrameBoard()
    board.put(frame("a", 1))
    board.put(frame("a", 2))
    board.put(frame("b", 1))
    taken = board.take_all(timeout=0)
    assert sorted((f.camera_id, f.index) for f in taken) == [("a", 2), ("b", 1)]
    assert board.dropped == {"a": 1}
    assert board.take_all(timeout=0.01) == []
    kept = taken[0] if taken[0].camera_id == "a" else taken[1]
    assert board.latest("a") is kept.image
    del taken, kept
    assert board.latest("a") is None  # the board does not keep frames alive
    assert board.latest("zzz") is None


class FlakySource:
    """Fails to open ``fail_opens`` times, then gives ``frames`` frames and fails the read."""

    live = True

    def __init__(self, fail_opens: int, frames: int) -> None:
        self.camera_id = "cam1"
        self.fail_opens = fail_opens
        self.frames = frames
        self.opens = 0
        self.sent = 0
        self.gate = threading.Event()

    def open(self) -> None:
        self.opens += 1
        if self.opens <= self.fail_opens:
            raise SourceError(
                f"camera cam1: cannot open url http://127.0.0.1:9/ (try {self.opens})"
            )

    def read(self) -> Frame | None:
        if self.sent >= self.frames:
            self.gate.wait(5)
            raise SourceError("camera cam1: stream lost (no frame)")
        self.sent += 1
        return frame("cam1", self.sent)

    def close(self) -> None:
        pass


def test_loop_reconnects_and_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capture, "BACKOFF_BASE_S", 0.01)
    monkeypatch.setattr(capture, "BACKOFF_CAP_S", 0.02)
    board = FrameBoard()
    stop = threading.Event()
    source = FlakySource(fail_opens=3, frames=5)
    loop = CaptureLoop(source, board, stall_after_s=0.05, stop=stop, seed=0)
    assert loop.health().state == "reconnecting"
    thread = threading.Thread(target=loop.run)
    thread.start()
    try:
        eventually_sync(lambda: source.sent >= 5, 2, every_s=0.01)
        assert source.opens == 4
        assert loop.frames == 5
        assert loop.reconnects == 3
        assert loop.last_error is None  # cleared once the camera came back
        stop.wait(0.1)
        assert loop.health().state == "stalled"  # connected, no frame for > 0.05 s
        source.gate.set()  # the stream now fails: the loop reopens
        eventually_sync(lambda: source.opens >= 5, 2, every_s=0.01)
        assert source.opens >= 5
    finally:
        stop.set()
        source.gate.set()
        thread.join(5)
    assert not thread.is_alive()
    assert loop.health().state == "stopped"


def test_board_holds_back_a_camera_until_its_frame_is_done() -> None:
    board = FrameBoard()
    board.put(frame("a", 1))
    board.put(frame("b", 1))
    first = board.take_all(timeout=0, limit=1)
    assert [f.camera_id for f in first] == ["a"]
    board.put(frame("a", 2))  # a's next frame arrives while its first is still in work
    second = board.take_all(timeout=0)
    assert [(f.camera_id, f.index) for f in second] == [("b", 1)]
    assert board.take_all(timeout=0.01) == []
    board.done(first)
    assert [(f.camera_id, f.index) for f in board.take_all(timeout=0)] == [("a", 2)]


def test_next_image_waits_for_the_next_frame_when_the_newest_is_gone() -> None:
    board = FrameBoard()
    assert board.next_image("a", timeout=0.01) is None
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(board.next_image("a", timeout=5)))
    waiter.start()

    def wish_registered() -> bool:
        with board._cond:
            return "a" in board._wanted

    eventually_sync(wish_registered, 1, every_s=0.01)  # until the waiter has registered its wish
    sent = frame("a", 7)
    board.put(sent)
    waiter.join(5)
    assert got == [sent.image]
