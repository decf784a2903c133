"""The static street: layout in metres and its rendering (road, kerbs, pavements, shops).

A :class:`StreetLayout` fixes where things are; :func:`render_street` draws it for one
camera. For the truck's rear camera the road moves: ``travel_m`` slides markings and
buildings along the street.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import cv2
import numpy as np

from simulators.scenes.camera import Camera, project_polygon
from simulators.scenes.painter import Color, Image, shade

_SHIFT = 3


@dataclass(frozen=True)
class StreetLayout:
    """Cross-section of the street and its painted features (all in metres).

    The road spans ``x`` in ``[-road_w/2, road_w/2]``; pavements lie outside it up to the
    façades. ``door_depth`` is the allowed strip in front of the left shops, ending at the
    painted door line. ``no_parking`` is ``(x0, x1, z0, z1)`` of a painted box, or None.
    """

    road_w: float = 9.0
    pave_left: float = 5.0
    pave_right: float = 4.0
    door_depth: float = 1.2
    no_parking: tuple[float, float, float, float] | None = None
    variant: int = 0
    buildings: bool = True

    @property
    def kerb_left(self) -> float:
        """x of the left kerb."""
        return -self.road_w / 2

    @property
    def kerb_right(self) -> float:
        """x of the right kerb."""
        return self.road_w / 2

    @property
    def facade_left(self) -> float:
        """x of the left shop fronts."""
        return -self.road_w / 2 - self.pave_left

    @property
    def facade_right(self) -> float:
        """x of the right shop fronts."""
        return self.road_w / 2 + self.pave_right

    @property
    def door_line_left(self) -> float:
        """x of the painted door line in front of the left shops."""
        return self.facade_left + self.door_depth


@dataclass(frozen=True)
class Lighting:
    """Time of day as colour gains and a gamma curve; ``night`` turns on lamps."""

    name: str
    gain: tuple[float, float, float]
    gamma: float
    night: bool
    sky_top: Color
    sky_low: Color


LIGHTINGS: dict[str, Lighting] = {
    "day": Lighting("day", (1.0, 1.0, 1.0), 1.0, False, (215, 160, 110), (240, 215, 190)),
    "morning": Lighting("morning", (0.9, 0.97, 1.05), 1.1, False, (200, 170, 140), (190, 215, 240)),
    "overcast": Lighting(
        "overcast", (0.88, 0.88, 0.86), 0.95, False, (185, 180, 175), (210, 205, 200)
    ),
    "dusk": Lighting("dusk", (0.7, 0.75, 0.95), 1.35, False, (140, 100, 90), (90, 150, 230)),
    "night": Lighting("night", (0.55, 0.5, 0.45), 1.9, True, (60, 35, 25), (90, 70, 60)),
}


def _fill(img: Image, pts: np.ndarray | None, color: Color) -> None:
    if pts is None:
        return
    cv2.fillPoly(img, [np.round(pts * (1 << _SHIFT)).astype(np.int32)], color, cv2.LINE_AA, _SHIFT)


def _ground(
    img: Image,
    cam: Camera,
    x0: float,
    x1: float,
    z0: float,
    z1: float,
    color: Color,
    y: float = 0.0,
) -> None:
    _fill(
        img,
        project_polygon(cam, np.array([(x0, y, z0), (x1, y, z0), (x1, y, z1), (x0, y, z1)])),
        color,
    )


def _wall(
    img: Image, cam: Camera, x: float, y0: float, y1: float, z0: float, z1: float, color: Color
) -> None:
    _fill(
        img,
        project_polygon(cam, np.array([(x, y0, z0), (x, y0, z1), (x, y1, z1), (x, y1, z0)])),
        color,
    )


SIGN_COLORS: tuple[Color, ...] = (
    (30, 30, 190),
    (160, 90, 20),
    (30, 150, 30),
    (20, 160, 230),
    (120, 40, 120),
    (40, 40, 40),
    (230, 230, 230),
)
WALL_COLORS: tuple[Color, ...] = (
    (200, 205, 210),
    (170, 185, 200),
    (150, 160, 175),
    (215, 215, 205),
    (140, 150, 150),
    (180, 190, 215),
)


def _facade(
    img: Image,
    cam: Camera,
    x: float,
    z_lo: float,
    z_hi: float,
    rng: random.Random,
    night: bool,
    offset: float,
) -> None:
    """Shop fronts and upper floors along the plane ``x``, from far to near."""
    spans = []
    z = z_lo - (offset % 40.0)
    while z < z_hi:
        w = rng.uniform(4.0, 9.0)
        spans.append((z, z + w, rng.random()))
        z += w
    for z0, z1, key in reversed(spans):
        if z1 < 0.5:
            continue
        r = random.Random(int(key * 1e9))
        height = r.uniform(6.0, 22.0)
        wall = r.choice(WALL_COLORS)
        _wall(img, cam, x, 0.0, height, z0, z1, wall)
        _wall(img, cam, x, 0.0, 3.9, z0, z1, shade(wall, 0.85))
        sign = r.choice(SIGN_COLORS)
        _wall(img, cam, x, 2.9, 3.7, z0 + 0.2, z1 - 0.2, sign)
        if z0 < 80:
            n_chars = r.randint(2, 5)
            cw = (z1 - z0 - 1.0) / (n_chars + 1)
            ink = (240, 240, 240) if sum(sign) < 450 else (30, 30, 30)
            for k in range(n_chars):
                zc = z0 + 0.5 + cw * (k + 0.7)
                _wall(img, cam, x, 3.05, 3.55, zc, zc + cw * 0.6, ink)
        door_lo, door_hi = z0 + r.uniform(0.3, 1.0), z1 - r.uniform(0.3, 1.0)
        inside = (
            (60, 150, 210)
            if night
            else r.choice(((60, 60, 60), (90, 80, 70), (120, 110, 100), (70, 60, 50)))
        )
        _wall(img, cam, x, 0.0, 2.6, door_lo, door_hi, inside)
        if z0 < 60:
            for k in range(1, 6):
                zz = door_lo + (door_hi - door_lo) * k / 6
                _wall(img, cam, x, 0.0, 2.6, zz - 0.03, zz + 0.03, shade(inside, 1.4))
        if z0 < 70:
            floors = int((height - 4.2) / 3.0)
            for f in range(floors):
                y0 = 4.6 + f * 3.0
                nwin = max(1, int((z1 - z0) / 2.2))
                for k in range(nwin):
                    za = z0 + (z1 - z0) * (k + 0.25) / nwin
                    zb = z0 + (z1 - z0) * (k + 0.75) / nwin
                    lit = night and r.random() < 0.45
                    col = (80, 200, 240) if lit else shade((110, 100, 90), r.uniform(0.7, 1.2))
                    _wall(img, cam, x, y0, y0 + 1.5, za, zb, col)


def _lamp(img: Image, cam: Camera, x: float, z: float, night: bool, lean: float) -> None:
    uv, depth = cam.project(np.array([(x, 0.0, z), (x, 7.0, z), (x + lean, 7.2, z)]))
    if depth.min() < 1.0:
        return
    s = cam.focal_px / depth[0]
    w = max(1, round(0.12 * s))
    p = np.round(uv).astype(int)
    cv2.line(img, tuple(p[0]), tuple(p[1]), (70, 70, 70), w, cv2.LINE_AA)
    cv2.line(img, tuple(p[1]), tuple(p[2]), (70, 70, 70), max(1, w // 2), cv2.LINE_AA)
    if night:
        cv2.circle(img, tuple(p[2]), max(2, round(0.5 * s)), (120, 200, 240), -1, cv2.LINE_AA)
        cv2.circle(img, tuple(p[2]), max(1, round(0.2 * s)), (230, 250, 255), -1, cv2.LINE_AA)
    else:
        cv2.circle(img, tuple(p[2]), max(1, round(0.2 * s)), (200, 200, 200), -1, cv2.LINE_AA)


def _tree(img: Image, cam: Camera, x: float, z: float, rng: random.Random) -> None:
    uv, depth = cam.project(np.array([(x, 0.0, z), (x, 2.5, z), (x, 4.2, z)]))
    if depth.min() < 1.5:
        return
    s = cam.focal_px / depth[0]
    p = np.round(uv).astype(int)
    cv2.line(img, tuple(p[0]), tuple(p[1]), (40, 60, 80), max(1, round(0.2 * s)), cv2.LINE_AA)
    for _ in range(5):
        cx = p[2][0] + rng.uniform(-0.9, 0.9) * s
        cy = p[2][1] + rng.uniform(-0.8, 0.6) * s
        g = rng.choice(((40, 110, 50), (50, 130, 60), (30, 90, 40)))
        cv2.circle(
            img,
            (round(cx), round(cy)),
            max(1, round(rng.uniform(0.9, 1.4) * s)),
            g,
            -1,
            cv2.LINE_AA,
        )


def render_street(
    cam: Camera, layout: StreetLayout, light: Lighting, *, travel_m: float = 0.0
) -> Image:
    """Draw the street (before lighting and weather) as a BGR image."""
    rng = random.Random(layout.variant * 1_000_003 + 5)
    w, h = cam.width, cam.height
    img = np.empty((h, w, 3), dtype=np.uint8)
    # sky gradient
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    top, low = np.array(light.sky_top, np.float32), np.array(light.sky_low, np.float32)
    img[:] = (top[None, None, :] * (1 - t[..., None]) + low[None, None, :] * t[..., None]).astype(
        np.uint8
    )
    asphalt = shade(rng.choice(((85, 85, 88), (100, 98, 95), (70, 72, 75), (115, 112, 110))), 1.0)
    tiles = rng.choice(((150, 160, 170), (130, 140, 160), (170, 170, 170), (120, 130, 140)))
    far = 400.0
    kl, kr = layout.kerb_left, layout.kerb_right
    fl, fr = layout.facade_left, layout.facade_right
    _ground(img, cam, fl - 50, fr + 50, 0.5, far, shade(tiles, 0.9))
    _ground(img, cam, kl, kr, 0.5, far, asphalt)
    _ground(img, cam, fl, kl, 0.5, far, tiles)
    _ground(img, cam, kr, fr, 0.5, far, shade(tiles, 1.05))
    # tile joints on the pavements, near part only
    joint = shade(tiles, 0.8)
    off = travel_m % 1.5
    for k in range(60):
        zj = 1.0 + k * 1.5 - off
        _ground(img, cam, fl, kl, zj, zj + 0.05, joint)
        _ground(img, cam, kr, fr, zj, zj + 0.05, joint)
    # kerbs (slightly raised light stone)
    _ground(img, cam, kl - 0.2, kl, 0.5, far, (175, 180, 185), y=0.15)
    _wall(img, cam, kl, 0.0, 0.15, 0.5, far, (150, 155, 160))
    _ground(img, cam, kr, kr + 0.2, 0.5, far, (175, 180, 185), y=0.15)
    _wall(img, cam, kr, 0.0, 0.15, 0.5, far, (150, 155, 160))
    # lane markings
    white = (225, 225, 225)
    _ground(img, cam, kl + 0.3, kl + 0.45, 0.5, far, white)
    _ground(img, cam, kr - 0.45, kr - 0.3, 0.5, far, white)
    off = travel_m % 9.0
    for k in range(45):
        z0 = 1.0 + k * 9.0 - off
        _ground(
            img, cam, -0.08, 0.08, z0, z0 + 4.0, (40, 200, 230) if layout.variant % 2 else white
        )
    if layout.no_parking is not None:
        x0, x1, z0, z1 = layout.no_parking
        yellow = (20, 200, 240)
        lw = 0.15
        _ground(img, cam, x0, x1, z0, z0 + lw, yellow)
        _ground(img, cam, x0, x1, z1 - lw, z1, yellow)
        _ground(img, cam, x0, x0 + lw, z0, z1, yellow)
        _ground(img, cam, x1 - lw, x1, z0, z1, yellow)
        n = int((z1 - z0) / 0.8)
        for k in range(n):
            za = z0 + (k + 0.5) * (z1 - z0) / n
            _fill(
                img,
                project_polygon(
                    cam,
                    np.array(
                        [
                            (x0, 0, za - 0.05),
                            (x0, 0, za + 0.08),
                            (x1, 0, za + 0.6),
                            (x1, 0, za + 0.47),
                        ]
                    ),
                ),
                yellow,
            )
    if layout.door_depth > 0:
        dl = layout.door_line_left
        for k in range(80):
            z0 = 0.6 + k * 1.0
            _ground(img, cam, dl - 0.06, dl + 0.06, z0, z0 + 0.6, (20, 200, 240))
    night = light.night
    if layout.buildings:
        _facade(img, cam, fl, 0.5, 220.0, random.Random(rng.random()), night, travel_m)
        _facade(img, cam, fr, 0.5, 220.0, random.Random(rng.random()), night, travel_m)
    # lamps and trees along the kerbs
    off = travel_m % 25.0
    for k in range(10, -1, -1):
        z = 4.0 + 25.0 * k - off
        if z > 1.0:
            _tree(img, cam, kl - 0.8, z + 12.0, random.Random(k * 31 + layout.variant))
            _tree(img, cam, kr + 0.8, z + 12.0, random.Random(k * 37 + layout.variant))
            _lamp(img, cam, kl - 0.4, z, night, 0.8)
            _lamp(img, cam, kr + 0.4, z, night, -0.8)
    return img
