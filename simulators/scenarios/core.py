"""Scenario data types and the frame renderer.

A :class:`Scenario` is a fixed camera over a fixed street, a cast of :class:`Actor`s with
timelines, and the ground truth of the violations the script contains. Frames are rendered
on demand: ``frame_at(i)`` depends only on the scenario's seed and ``i``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from simulators.scenarios.actors import Actor
from simulators.scenes.camera import Camera, clip_to_rect, project_polygon
from simulators.scenes.effects import add_noise, add_rain, apply_lighting, noise_layers, rain_layer
from simulators.scenes.painter import Image
from simulators.scenes.street import Lighting, StreetLayout, render_street
from simulators.scenes.things import draw_all, visible_fraction

#: Objects whose box is less visible than this share (occluded) are left out of the truth.
MIN_VISIBLE = 0.4
#: Objects mostly outside the frame are left out too.
MIN_IN_FRAME = 0.3
_NOISE_FRAMES = 4


@dataclass(frozen=True)
class TruthObject:
    """An object visible in a frame: label and normalised box x1, y1, x2, y2."""

    label: str
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class TruthViolation:
    """A violation the scenario contains: event code, kind, interval, zone, plate."""

    code: str
    kind: str
    start_s: float
    end_s: float
    zone: str
    plate: str | None = None


@dataclass(frozen=True)
class ScenarioFrame:
    """One rendered frame with its timestamp and the visible objects."""

    index: int
    t: float
    ts: datetime
    image: npt.NDArray[np.uint8]
    objects: tuple[TruthObject, ...]


@dataclass(frozen=True)
class Stage:
    """Where a scenario happens: camera, street, light and weather."""

    camera: Camera
    layout: StreetLayout
    light: Lighting
    rain: float = 0.0
    noise_sigma: float = 3.0
    #: Truck scenes: metres the road moves past the camera per second (0 = fixed pole).
    speed: float = 0.0


def ground_zone(
    cam: Camera, x0: float, x1: float, z0: float, z1: float
) -> list[tuple[float, float]]:
    """A ground rectangle as a normalised image polygon (clipped to the frame)."""
    poly = project_polygon(
        cam, np.array([(x0, 0.0, z0), (x1, 0.0, z0), (x1, 0.0, z1), (x0, 0.0, z1)])
    )
    if poly is None:
        return []
    clipped = clip_to_rect(poly, cam.width, cam.height)
    return [(round(float(u) / cam.width, 5), round(float(v) / cam.height, 5)) for u, v in clipped]


@dataclass
class Scenario:
    """A scripted scene rendered frame by frame (see the module docs of each scenario)."""

    name: str
    camera: str
    fps: float
    duration_s: float
    width: int
    height: int
    start_time: datetime
    zones: dict[str, list[tuple[float, float]]]
    truth: tuple[TruthViolation, ...]
    route: tuple[tuple[float, float, float], ...]
    stage: Stage
    actors: tuple[Actor, ...]
    seed: int = 0
    site: str | None = None
    description: str = ""
    _background: Image | None = field(default=None, repr=False)
    _noise: list[tuple[Image, Image]] = field(default_factory=list, repr=False)
    _rain: list[Image] = field(default_factory=list, repr=False)
    _ready: bool = field(default=False, repr=False)

    def frame_count(self) -> int:
        """Number of frames over the whole duration."""
        return round(self.duration_s * self.fps)

    def _prepare(self) -> None:
        if self._ready:
            return
        self._ready = True
        st = self.stage
        if st.speed == 0.0:
            self._background = render_street(st.camera, st.layout, st.light)
        if st.noise_sigma > 0:
            self._noise = [
                noise_layers(self.width, self.height, self.seed * 100 + k, st.noise_sigma)
                for k in range(_NOISE_FRAMES)
            ]
        if st.rain > 0:
            rng = random.Random(self.seed * 31 + 7)
            self._rain = [
                rain_layer(self.width, self.height, rng, st.rain) for _ in range(_NOISE_FRAMES)
            ]

    def frame_at(self, index: int) -> ScenarioFrame:
        """Render frame ``index`` (0-based); deterministic for a given seed."""
        if not 0 <= index < self.frame_count():
            raise IndexError(f"frame {index} outside 0..{self.frame_count() - 1}")
        self._prepare()
        st = self.stage
        t = index / self.fps
        if st.speed:
            img = render_street(st.camera, st.layout, st.light, travel_m=st.speed * t)
        else:
            assert self._background is not None
            img = self._background.copy()
        things = [th for a in self.actors if (th := a.thing(t)) is not None]
        drawn = draw_all(img, st.camera, things, night=st.light.night)
        vis = visible_fraction(drawn)
        objects = tuple(
            TruthObject(
                d.thing.label,
                (
                    round(float(d.box[0]) / self.width, 5),
                    round(float(d.box[1]) / self.height, 5),
                    round(float(d.box[2]) / self.width, 5),
                    round(float(d.box[3]) / self.height, 5),
                ),
            )
            for d, v in zip(drawn, vis, strict=True)
            if v >= MIN_VISIBLE
            and d.in_frame >= MIN_IN_FRAME
            and d.box[2] - d.box[0] >= 3
            and d.box[3] - d.box[1] >= 3
        )
        img = apply_lighting(img, st.light)
        if self._rain:
            img = add_rain(img, self._rain[index % len(self._rain)])
        if self._noise:
            img = add_noise(img, self._noise[index % len(self._noise)])
        ts = self.start_time + timedelta(seconds=t)
        return ScenarioFrame(index, t, ts, img, objects)

    def frames(self) -> Iterator[ScenarioFrame]:
        """All frames in order."""
        for i in range(self.frame_count()):
            yield self.frame_at(i)

    def truth_at(self, t: float) -> tuple[TruthViolation, ...]:
        """Violations in progress at ``t`` seconds."""
        return tuple(v for v in self.truth if v.start_s <= t <= v.end_s)
