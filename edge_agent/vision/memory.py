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
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable

from edge_agent.vision.config import MemoryConfig

__all__ = ["M_ARENA_MAX", "apply_memory_settings"]

logger = logging.getLogger(__name__)

#: ``mallopt``'s parameter number for the arena limit, from glibc's ``malloc.h``.
M_ARENA_MAX = -8

Mallopt = Callable[[int, int], int]


def _glibc_mallopt() -> Mallopt | None:
    """glibc's ``mallopt``, or None on a C library without it (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        func = libc.mallopt
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_int]
    func.restype = ctypes.c_int
    return func


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
