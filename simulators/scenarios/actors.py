"""Things that move along a timeline.

An :class:`Actor` is a labelled object with keyframes ``(t, x, z)``; it exists from its
first to its last keyframe and moves linearly between them. Its pose at any time is a pure
function of ``t``, so frames can be rendered in any order.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from simulators.scenes.things import Thing

#: Metres per full walking cycle (two steps).
STRIDE_M = 1.5


@dataclass(frozen=True)
class Actor:
    """A labelled object following keyframes ``(t, x, z)`` (seconds, metres)."""

    label: str
    variant: int
    keys: tuple[tuple[float, float, float], ...]
    heading: int = 1
    plate: str | None = None
    walking: bool = False
    #: For truck scenes: the world moves past the camera at this speed (m/s) along +z.
    drift: float = 0.0

    @property
    def start(self) -> float:
        """First moment the actor exists."""
        return self.keys[0][0]

    @property
    def end(self) -> float:
        """Last moment the actor exists."""
        return self.keys[-1][0]

    def position(self, t: float) -> tuple[float, float, float] | None:
        """``(x, z, distance walked)`` at ``t``, or None when it does not exist."""
        if t < self.start or t > self.end:
            return None
        walked = 0.0
        for (t0, x0, z0), (t1, x1, z1) in zip(self.keys, self.keys[1:], strict=False):
            seg = math.hypot(x1 - x0, z1 - z0)
            if t <= t1:
                f = 0.0 if t1 <= t0 else (t - t0) / (t1 - t0)
                return (x0 + (x1 - x0) * f, z0 + (z1 - z0) * f + self.drift * t, walked + seg * f)
            walked += seg
        _, x, z = self.keys[-1]
        return (x, z + self.drift * t, walked)

    def thing(self, t: float) -> Thing | None:
        """The drawable object at ``t``."""
        pos = self.position(t)
        if pos is None:
            return None
        x, z, walked = pos
        phase = (walked / STRIDE_M) * 2 * math.pi if self.walking else 0.0
        if self.walking and self.label == "person" and walked == 0.0:
            phase = math.sin(t * 0.7) * 0.15  # standing, shifting weight
        return Thing(
            self.label, x, z, self.variant, heading=self.heading, phase=phase, plate=self.plate
        )


def stay(label: str, variant: int, x: float, z: float, t0: float, t1: float, **kw: object) -> Actor:
    """An actor standing still at ``(x, z)`` from ``t0`` to ``t1``."""
    return Actor(label, variant, ((t0, x, z), (t1, x, z)), **kw)  # type: ignore[arg-type]


def walk(
    label: str, variant: int, path: list[tuple[float, float]], t0: float, speed: float, **kw: object
) -> Actor:
    """An actor moving along ``path`` (x, z points) at ``speed`` m/s from ``t0``."""
    keys = [(t0, path[0][0], path[0][1])]
    t = t0
    for (x0, z0), (x1, z1) in itertools.pairwise(path):
        t += math.hypot(x1 - x0, z1 - z0) / max(speed, 1e-6)
        keys.append((t, x1, z1))
    return Actor(label, variant, tuple(keys), **kw)  # type: ignore[arg-type]
