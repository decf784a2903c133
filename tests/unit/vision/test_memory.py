"""Process memory settings: the config's defaults and bounds, and how they are applied."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from edge_agent.vision import memory
from edge_agent.vision.config import CameraConfig, MemoryConfig, VisionConfig
from edge_agent.vision.memory import M_ARENA_MAX, apply_memory_settings


class FakeMallopt:
    def __init__(self, result: int = 1) -> None:
        self.calls: list[tuple[int, int]] = []
        self.result = result

    def __call__(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return self.result


def test_defaults_suit_a_two_core_box() -> None:
    config = VisionConfig()
    assert config.memory == MemoryConfig(malloc_arena_max=2, opencv_threads=1)
    assert CameraConfig(id="east", source="rtsp://cam/1").decode_threads == 1


@pytest.mark.parametrize(
    ("section", "value"),
    [
        ({"memory": {"malloc_arena_max": 0}}, "memory.malloc_arena_max"),
        ({"memory": {"opencv_threads": -1}}, "memory.opencv_threads"),
        ({"memory": {"arenas": 2}}, "memory.arenas"),
        (
            {"cameras": [{"id": "e", "source": "rtsp://c/1", "decode_threads": -1}]},
            "decode_threads",
        ),
    ],
)
def test_bad_memory_settings_are_named(section: dict[str, object], value: str) -> None:
    with pytest.raises(ValidationError) as err:
        VisionConfig.model_validate(section)
    assert value in str(err.value)  # the field path, as edge-agent validate shows it


def test_apply_sets_the_arena_limit_and_opencv_threads() -> None:
    mallopt = FakeMallopt()
    threads: list[int] = []
    applied = apply_memory_settings(
        MemoryConfig(malloc_arena_max=3, opencv_threads=2),
        mallopt=mallopt,
        set_opencv_threads=threads.append,
    )
    assert mallopt.calls == [(M_ARENA_MAX, 3)]
    assert threads == [2]
    assert applied == {"malloc_arena_max": 3, "opencv_threads": 2}


def test_null_settings_are_left_alone() -> None:
    mallopt = FakeMallopt()
    threads: list[int] = []
    applied = apply_memory_settings(
        MemoryConfig(malloc_arena_max=None, opencv_threads=None),
        mallopt=mallopt,
        set_opencv_threads=threads.append,
    )
    assert (mallopt.calls, threads, applied) == ([], [], {})


def test_refused_setting_is_logged_and_not_reported(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=memory.__name__)
    applied = apply_memory_settings(
        MemoryConfig(opencv_threads=None), mallopt=FakeMallopt(result=0)
    )
    assert applied == {}
    assert "M_ARENA_MAX=2" in caplog.text


def test_without_glibc_the_arena_limit_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_glibc_mallopt", lambda: None)
    assert apply_memory_settings(MemoryConfig(opencv_threads=None)) == {}


def test_glibc_mallopt_is_found_and_accepts_the_default() -> None:
    func = memory._glibc_mallopt()
    if func is None:
        pytest.skip("not a glibc system")
    assert func(M_ARENA_MAX, 2) == 1


def test_opencv_threads_reach_opencv() -> None:
    cv2 = pytest.importorskip("cv2")
    before = cv2.getNumThreads()
    try:
        apply_memory_settings(MemoryConfig(malloc_arena_max=None, opencv_threads=1))
        assert cv2.getNumThreads() == 1
    finally:
        cv2.setNumThreads(before)


def test_release_free_memory_calls_malloc_trim_for_all_of_it() -> None:
    calls: list[int] = []

    def trim(pad: int) -> int:
        calls.append(pad)
        return 1

    assert memory.release_free_memory(trim) is True
    assert calls == [0]  # keep no padding at the top of the heap
    assert memory.release_free_memory(lambda pad: 0) is False  # nothing was released


def test_release_free_memory_without_glibc_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_glibc_malloc_trim", lambda: None)
    assert memory.release_free_memory() is False


def test_glibc_malloc_trim_releases_a_freed_block() -> None:
    if memory._glibc_malloc_trim() is None:
        pytest.skip("not a glibc system")
    # 16 MB in blocks below the mmap threshold: they come from the heap, and once freed
    # glibc keeps their pages until trimmed.
    blocks = [bytearray(4096) for _ in range(4096)]
    del blocks
    assert memory.release_free_memory() is True
