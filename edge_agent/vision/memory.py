"""Process-wide memory settings of a vision box, applied once when the agent starts.

A box with eight 720p cameras runs a dozen threads that each allocate and free frames of
2.7 MB. With glibc's defaults every thread that allocates gets its own malloc arena (up
to eight per core), each keeping its own freed frames resident. Two arenas cut the
agent's resident memory by about 30 MB at eight cameras, at no measured CPU cost
(``bench/edge_pipeline.py``). OpenCV's own worker pool is held to one thread: resizing a
720p frame is as fast on one, and the inference workers already use the cores.

:func:`apply_memory_settings` must run before the process starts its threads: glibc
only limits arenas created after the call. The systemd unit also sets
``MALLOC_ARENA_MAX`` so the limit holds from the first allocation.
:func:`release_free_memory` hands freed heap pages back to the kernel; the vision
service calls it once, after loading the detector.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable
from typing import Any, cast

from edge_agent.vision.config import MemoryConfig

__all__ = ["M_ARENA_MAX", "M_MMAP_THRESHOLD", "apply_memory_settings", "release_free_memory"]

logger = logging.getLogger(__name__)

#: ``mallopt``'s parameter numbers, from glibc's ``malloc.h``.
M_ARENA_MAX = -8
M_MMAP_THRESHOLD = -3

Mallopt = Callable[[int, int], int]
MallocTrim = Callable[[int], int]


def _libc_function(name: str) -> Any:
    """A function of the C library, or None where there is no such function."""
    libname = ctypes.util.find_library("c")
    if libname is None:
        return None
    try:
        return getattr(ctypes.CDLL(libname), name)
    except (OSError, AttributeError):
        return None


def _glibc_mallopt() -> Mallopt | None:
    """glibc's ``mallopt``, or None on a C library without it (musl, macOS)."""
    func = _libc_function("mallopt")
    if func is None:
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_int]
    func.restype = ctypes.c_int
    return cast(Mallopt, func)


def _glibc_malloc_trim() -> MallocTrim | None:
    """glibc's ``malloc_trim``, or None on a C library without it."""
    func = _libc_function("malloc_trim")
    if func is None:
        return None
    func.argtypes = [ctypes.c_size_t]
    func.restype = ctypes.c_int
    return cast(MallocTrim, func)


def release_free_memory(trim: MallocTrim | None = None) -> bool:
    """Hand the pages of freed heap memory back to the kernel (glibc's ``malloc_trim``).

    Called once after the detector has loaded: onnxruntime frees what it used to parse
    and optimise the model (about 12 MB here), but glibc keeps those pages resident in
    its heaps until told otherwise. True when memory was released; False where there is
    no ``malloc_trim`` or nothing to release.
    """
    func = trim if trim is not None else _glibc_malloc_trim()
    return func is not None and func(0) == 1


def _set_opencv_threads(threads: int) -> None:
    import cv2  # heavy: only boxes with cameras import it, and only now

    cv2.setNumThreads(threads)


def apply_memory_settings(
    config: MemoryConfig,
    *,
    mallopt: Mallopt | None = None,
    set_opencv_threads: Callable[[int], None] = _set_opencv_threads,
) -> dict[str, int]:
    """Apply ``config`` to this process; return the settings that took effect.

    ``mallopt`` defaults to glibc's; where there is none, the arena limit is skipped
    with a log line (the agent still runs, with the C library's default).
    """
    applied: dict[str, int] = {}
    if config.malloc_arena_max is not None:
        func = mallopt if mallopt is not None else _glibc_mallopt()
        if func is None:
            logger.info("no glibc mallopt here: malloc arenas left at their default")
        elif func(M_ARENA_MAX, config.malloc_arena_max) == 1:  # 1 on success
            applied["malloc_arena_max"] = config.malloc_arena_max
        else:
            logger.warning("mallopt refused M_ARENA_MAX=%d", config.malloc_arena_max)
    if config.opencv_threads is not None:
        set_opencv_threads(config.opencv_threads)
        applied["opencv_threads"] = config.opencv_threads
    logger.info("memory settings: %s", applied)
    return applied
