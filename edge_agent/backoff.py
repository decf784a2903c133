"""Capped, jittered exponential backoff for reconnecting the broker, a camera, a stage (pure).

The one backoff of the agent: pass the random source in (``uniform``) for repeatable tests.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """Delays that double from ``initial`` up to ``cap`` seconds, each jittered down.

    The n-th delay is drawn uniformly from ``[d/2, d]`` with ``d = min(cap, initial * 2**n)``,
    so a fleet that lost its broker at the same moment does not return in lockstep, and
    no delay is ever shorter than ``initial / 2``: there is no busy loop.
    """

    initial: float = 0.5
    cap: float = 60.0
    uniform: Callable[[float, float], float] = field(default=random.uniform)
    attempts: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.cap:
            raise ValueError(f"backoff needs 0 < initial <= cap, got {self.initial}, {self.cap}")

    def next(self) -> float:
        """The delay before the next attempt; counts the attempt."""
        ceiling = min(self.cap, self.initial * (2 ** min(self.attempts, 32)))
        self.attempts += 1
        return self.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """Start again from ``initial`` (after a successful connection)."""
        self.attempts = 0
