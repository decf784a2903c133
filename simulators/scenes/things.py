"""Street objects and how to draw them.

A :class:`Thing` is a labelled object standing on the ground at ``(x, z)`` metres.
:func:`draw_thing` draws it in perspective and returns its exact pixel box. Appearance
(colours, sizes, parts) comes only from ``variant``, so a thing looks the same in every
frame of a scenario and the same seed always gives the same pixels.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

from simulators.scenes.camera import Camera
from simulators.scenes.painter import Box, Color, Image, Painter, shade
from simulators.scenes.plates import plate_image

CAR_COLORS: tuple[Color, ...] = (
    (235, 235, 235),
    (30, 30, 30),
    (180, 180, 185),
    (120, 120, 125),
    (40, 40, 170),
    (150, 80, 20),
    (60, 90, 40),
    (200, 200, 210),
    (90, 60, 50),
    (20, 140, 200),
    (70, 50, 120),
)
BUS_COLORS: tuple[Color, ...] = ((60, 150, 40), (170, 110, 20), (230, 230, 230), (30, 120, 230))
SHIRT_COLORS: tuple[Color, ...] = (
    (40, 40, 200),
    (200, 80, 30),
    (230, 230, 230),
    (30, 30, 30),
    (60, 160, 60),
    (30, 180, 230),
    (140, 60, 140),
    (100, 100, 100),
    (180, 170, 60),
    (60, 60, 140),
)
SKIN: tuple[Color, ...] = ((140, 175, 215), (120, 160, 200), (100, 140, 185), (160, 190, 225))
BIN_COLORS: tuple[Color, ...] = ((50, 130, 40), (160, 90, 20), (90, 90, 90), (40, 40, 180))
BAG_COLORS: tuple[Color, ...] = (
    (25, 25, 25),
    (35, 35, 30),
    (40, 70, 30),
    (110, 60, 20),
    (200, 200, 200),
    (30, 30, 120),
)
MUCK_COLORS: tuple[Color, ...] = (
    (60, 90, 120),
    (80, 110, 140),
    (110, 130, 150),
    (90, 95, 100),
    (50, 70, 90),
    (120, 150, 170),
)


#: How far a thing reaches towards the camera from its ground point (half its length).
NEAR_REACH_M = {"car": 2.5, "bus": 6.0, "truck": 4.5}


@dataclass(frozen=True)
class Thing:
    """One object in the world.

    ``heading`` is +1 for a vehicle seen from behind (driving away), -1 seen from the front.
    ``phase`` animates walking people; ``plate`` is the car's plate text.
    """

    label: str
    x: float
    z: float
    variant: int
    heading: int = 1
    phase: float = 0.0
    plate: str | None = None


@dataclass(frozen=True)
class Drawn:
    """A thing as it came out on the image: exact pixel box and depth."""

    thing: Thing
    box: Box
    depth: float
    #: Share of the object's full extent that lies inside the frame.
    in_frame: float = 1.0


class _Ctx:
    """Per-thing drawing helpers: ground-anchored scale and 3D face projection."""

    def __init__(self, painter: Painter, cam: Camera, thing: Thing, night: bool) -> None:
        self.p = painter
        self.cam = cam
        self.t = thing
        self.night = night
        self.rng = random.Random(thing.variant * 7919 + 17)
        u, v, depth = cam.project_point(thing.x, 0.0, thing.z)
        self.u, self.v, self.depth = u, v, depth
        self.s = cam.focal_px / max(depth, 0.3)

    def at(self, dx: float, dy: float) -> tuple[float, float]:
        """Billboard point ``dx`` metres right and ``dy`` metres up from the foot point."""
        return (self.u + dx * self.s, self.v - dy * self.s)

    def world(self, pts: list[tuple[float, float, float]]) -> np.ndarray:
        """Project world offsets (relative to the thing's ground point) to pixels."""
        arr = np.array([(self.t.x + a, b, self.t.z + c) for a, b, c in pts], dtype=np.float64)
        uv, _ = self.cam.project(arr)
        return uv

    def cuboid(
        self,
        x0: float,
        x1: float,
        y0: float,
        y1: float,
        z0: float,
        z1: float,
        color: Color,
        *,
        near: Color | None = None,
        side: Color | None = None,
        top: Color | None = None,
    ) -> dict[str, np.ndarray]:
        """Draw the visible faces of an axis-aligned box (offsets in metres); return them."""
        faces: dict[str, np.ndarray] = {}
        cx, cy, cz = self.cam.x - self.t.x, self.cam.y, self.cam.z - self.t.z
        if cy > y1:
            faces["top"] = self.world([(x0, y1, z0), (x1, y1, z0), (x1, y1, z1), (x0, y1, z1)])
            self.p.poly(faces["top"], top or shade(color, 1.15))
        if cx < x0:
            faces["side"] = self.world([(x0, y0, z0), (x0, y0, z1), (x0, y1, z1), (x0, y1, z0)])
            self.p.poly(faces["side"], side or shade(color, 0.78))
        elif cx > x1:
            faces["side"] = self.world([(x1, y0, z0), (x1, y0, z1), (x1, y1, z1), (x1, y1, z0)])
            self.p.poly(faces["side"], side or shade(color, 0.78))
        if cz < z0:
            faces["near"] = self.world([(x0, y0, z0), (x1, y0, z0), (x1, y1, z0), (x0, y1, z0)])
            self.p.poly(faces["near"], near or color)
        return faces

    def glow(self, x: float, y: float, r: float, color: Color) -> None:
        """A light seen at night: a bright disc with a soft halo (not part of the box)."""
        halo = shade(color, 0.55)
        cv2_circle(self.p.image, x, y, r * 2.2, halo)
        cv2_circle(self.p.image, x, y, r, color)


def cv2_circle(img: Image, x: float, y: float, r: float, color: Color) -> None:
    """Untracked filled circle (lights, reflections)."""
    import cv2

    cv2.circle(img, (round(x * 8), round(y * 8)), max(1, round(r * 8)), color, -1, cv2.LINE_AA, 3)


def _quad_on(face: np.ndarray, a0: float, a1: float, b0: float, b1: float) -> np.ndarray:
    """Sub-quad of a projected face by bilinear fractions (a along edge 0-1, b along 0-3)."""
    p0, p1, p2, p3 = face

    def pt(a: float, b: float) -> np.ndarray:
        bottom = p0 + (p1 - p0) * a
        top_ = p3 + (p2 - p3) * a
        return np.asarray(bottom + (top_ - bottom) * b)

    return np.array([pt(a0, b0), pt(a1, b0), pt(a1, b1), pt(a0, b1)])


# --------------------------------------------------------------------------- people


def _person(c: _Ctx) -> None:
    r = c.rng
    h = r.uniform(1.5, 1.85)
    shirt = r.choice(SHIRT_COLORS)
    trousers = r.choice(((40, 40, 40), (90, 60, 30), (120, 110, 100), (60, 40, 20), shirt))
    skin = r.choice(SKIN)
    hair = r.choice(((20, 20, 20), (30, 30, 40), (60, 60, 70), (160, 160, 170)))
    sw = r.uniform(0.19, 0.24)
    swing = math.sin(c.t.phase) * 0.16
    hip = h * 0.48
    leg_w = 0.13
    c.p.line(c.at(-0.07, hip), c.at(-0.07 + swing, 0.04), trousers, leg_w * c.s)
    c.p.line(c.at(0.07, hip), c.at(0.07 - swing, 0.04), shade(trousers, 0.8), leg_w * c.s)
    c.p.rect(*c.at(-0.07 + swing - 0.07, 0.06), *c.at(-0.07 + swing + 0.08, 0.0), (30, 30, 30))
    c.p.rect(*c.at(0.07 - swing - 0.07, 0.06), *c.at(0.07 - swing + 0.08, 0.0), (30, 30, 30))
    if r.random() < 0.3:  # skirt or long coat
        c.p.poly(
            [
                c.at(-sw, h * 0.8),
                c.at(sw, h * 0.8),
                c.at(sw + 0.06, h * 0.38),
                c.at(-sw - 0.06, h * 0.38),
            ],
            shade(shirt, 0.85),
        )
    c.p.poly(
        [
            c.at(-sw, h * 0.8),
            c.at(sw, h * 0.8),
            c.at(sw * 0.8, hip - 0.02),
            c.at(-sw * 0.8, hip - 0.02),
        ],
        shirt,
    )
    arm = shade(shirt, 0.85)
    c.p.line(c.at(-sw, h * 0.79), c.at(-sw - 0.05 - swing * 0.6, h * 0.45), arm, 0.09 * c.s)
    c.p.line(c.at(sw, h * 0.79), c.at(sw + 0.05 + swing * 0.6, h * 0.45), arm, 0.09 * c.s)
    c.p.circle(*c.at(-sw - 0.05 - swing * 0.6, h * 0.44), 0.045 * c.s, skin)
    c.p.circle(*c.at(sw + 0.05 + swing * 0.6, h * 0.44), 0.045 * c.s, skin)
    c.p.rect(*c.at(-0.045, h * 0.86), *c.at(0.045, h * 0.79), skin)
    hx, hy = c.at(0.0, h * 0.92)
    c.p.ellipse(hx, hy, 0.095 * c.s, 0.115 * c.s, skin)
    c.p.ellipse(hx, hy - 0.05 * c.s, 0.1 * c.s, 0.07 * c.s, hair)
    if r.random() < 0.25:  # cap or hat
        c.p.ellipse(hx, hy - 0.08 * c.s, 0.13 * c.s, 0.04 * c.s, r.choice(SHIRT_COLORS))
    if r.random() < 0.3:  # shoulder bag
        c.p.rect(*c.at(sw - 0.02, h * 0.6), *c.at(sw + 0.14, h * 0.46), r.choice(BAG_COLORS))


# --------------------------------------------------------------------------- vehicles


def _plate_on(c: _Ctx, face_y: float, z_face: float, half_w: float, text: str, style: int) -> None:
    pts = c.world([(-half_w, face_y, z_face), (half_w, face_y + half_w * 0.66, z_face)])
    x1, y1 = pts[:, 0].min(), pts[:, 1].min()
    x2, y2 = pts[:, 0].max(), pts[:, 1].max()
    w, h = round(x2 - x1), round(y2 - y1)
    if w < 4 or h < 2:
        c.p.rect(x1, y1, x2, y2, (150, 60, 10) if style != 2 else (40, 200, 230))
        return
    c.p.paste(plate_image(text, w, h, style), round(x1), round(y1))


def _car(c: _Ctx) -> None:
    r = c.rng
    w, length, h = r.uniform(1.72, 1.9), r.uniform(4.1, 4.9), r.uniform(1.42, 1.75)
    color = r.choice(CAR_COLORS)
    glass = (70, 55, 45) if not c.night else (40, 30, 25)
    hw, hl = w / 2, length / 2
    back = c.t.heading > 0  # we see its rear
    # wheels peeking under the body
    for dx in (-hw + 0.1, hw - 0.38):
        c.p.poly(
            c.world(
                [
                    (dx, 0, -hl + 0.6),
                    (dx + 0.28, 0, -hl + 0.6),
                    (dx + 0.28, 0.35, -hl + 0.6),
                    (dx, 0.35, -hl + 0.6),
                ]
            ),
            (25, 25, 25),
        )
    body = c.cuboid(-hw, hw, 0.22, h * 0.6, -hl, hl, color)
    if "side" in body:
        for zc in (-hl + 0.8, hl - 0.85):
            wheel = c.world([(-hw if c.cam.x < c.t.x else hw, 0.32, zc)])[0]
            rad = 0.32 * c.s
            c.p.ellipse(wheel[0], wheel[1], rad * 0.55, rad, (25, 25, 25))
            c.p.ellipse(wheel[0], wheel[1], rad * 0.25, rad * 0.45, (150, 150, 150))
    zc0, zc1 = (-hl + 0.9, hl - 1.3) if back else (-hl + 1.3, hl - 0.8)
    cab = c.cuboid(-hw + 0.1, hw - 0.1, h * 0.6, h, zc0, zc1, color, near=glass, side=glass)
    if "side" in cab:
        pillar = _quad_on(cab["side"], 0.47, 0.53, 0.0, 1.0)
        c.p.poly(pillar, shade(color, 0.7))
    if "near" in body:
        near = body["near"]
        lamp: Color = (30, 30, 220) if back else (220, 235, 245)
        c.p.poly(_quad_on(near, 0.03, 0.2, 0.6, 0.85), lamp)
        c.p.poly(_quad_on(near, 0.8, 0.97, 0.6, 0.85), lamp)
        if not back:
            c.p.poly(_quad_on(near, 0.3, 0.7, 0.35, 0.6), (40, 40, 40))
        c.p.poly(_quad_on(near, 0.0, 1.0, 0.0, 0.12), shade(color, 0.6))
        if c.t.plate:
            style = 2 if (c.t.variant % 7 == 3) else 0
            _plate_on(c, 0.4 if back else 0.3, -hl, 0.29, c.t.plate, style)
        if c.night:
            for a in (0.11, 0.89):
                q = _quad_on(near, a, a, 0.72, 0.72)[0]
                c.glow(q[0], q[1], 0.09 * c.s, (60, 60, 255) if back else (230, 250, 255))


def _bus(c: _Ctx) -> None:
    r = c.rng
    w, length, h = 2.5, r.uniform(10.0, 12.0), r.uniform(3.0, 3.3)
    color = r.choice(BUS_COLORS)
    hw, hl = w / 2, length / 2
    for dx in (-hw + 0.15, hw - 0.5):
        c.p.poly(
            c.world(
                [
                    (dx, 0, -hl + 1.2),
                    (dx + 0.35, 0, -hl + 1.2),
                    (dx + 0.35, 0.5, -hl + 1.2),
                    (dx, 0.5, -hl + 1.2),
                ]
            ),
            (25, 25, 25),
        )
    body = c.cuboid(-hw, hw, 0.3, h, -hl, hl, color, top=(200, 200, 200))
    glass = (80, 60, 40) if not c.night else (90, 190, 220)
    if "side" in body:
        side = body["side"]
        c.p.poly(_quad_on(side, 0.02, 0.98, 0.38, 0.82), glass)
        for k in range(1, 8):
            a = k / 8
            c.p.poly(_quad_on(side, a - 0.006, a + 0.006, 0.38, 0.82), shade(color, 0.7))
        c.p.poly(_quad_on(side, 0.02, 0.98, 0.0, 0.12), shade(color, 0.55))
        for a in (0.15, 0.78):
            q = _quad_on(side, a, a + 0.09, 0.0, 0.18)
            c.p.poly(q, (25, 25, 25))
    if "near" in body:
        near = body["near"]
        c.p.poly(_quad_on(near, 0.06, 0.94, 0.45 if c.t.heading < 0 else 0.55, 0.9), glass)
        c.p.poly(_quad_on(near, 0.15, 0.85, 0.9, 0.97), (20, 20, 20))
        c.p.poly(_quad_on(near, 0.3, 0.7, 0.905, 0.965), (0, 140, 255))
        lamp: Color = (30, 30, 220) if c.t.heading > 0 else (220, 235, 245)
        c.p.poly(_quad_on(near, 0.04, 0.14, 0.1, 0.22), lamp)
        c.p.poly(_quad_on(near, 0.86, 0.96, 0.1, 0.22), lamp)
        if c.t.plate:
            _plate_on(c, 0.45, -hl, 0.25, c.t.plate, 0)


def _truck(c: _Ctx) -> None:
    r = c.rng
    w = 2.45
    hw = w / 2
    cab_l, box_l = 2.1, r.uniform(4.5, 6.5)
    length = cab_l + box_l + 0.2
    hl = length / 2
    cab_color = r.choice(
        ((30, 30, 200), (200, 120, 30), (40, 140, 40), (220, 220, 220), (20, 170, 230))
    )
    kind = r.randrange(3)  # 0 box van, 1 tipper with muck, 2 garbage compactor
    box_color = (210, 210, 210) if kind == 0 else (60, 80, 100) if kind == 1 else (60, 140, 60)
    back = c.t.heading > 0
    box_h = 3.4 if kind != 1 else 2.5
    for dx in (-hw + 0.15, hw - 0.5):
        c.p.poly(
            c.world(
                [
                    (dx, 0, -hl + 0.8),
                    (dx + 0.35, 0, -hl + 0.8),
                    (dx + 0.35, 0.6, -hl + 0.8),
                    (dx, 0.6, -hl + 0.8),
                ]
            ),
            (25, 25, 25),
        )
    if back:
        cab = c.cuboid(-hw + 0.05, hw - 0.05, 0.5, 2.9, hl - cab_l, hl, cab_color)
        box = c.cuboid(-hw, hw, 0.6, box_h, -hl, hl - cab_l - 0.2, box_color)
    else:
        box = c.cuboid(-hw, hw, 0.6, box_h, -hl + cab_l + 0.2, hl, box_color)
        cab = c.cuboid(-hw + 0.05, hw - 0.05, 0.5, 2.9, -hl, -hl + cab_l, cab_color)
    if kind == 1 and "top" in box:
        c.p.poly(_quad_on(box["top"], 0.05, 0.95, 0.05, 0.95), (70, 100, 130))
    if "side" in box:
        side = box["side"]
        c.p.poly(_quad_on(side, 0.0, 1.0, 0.0, 0.06), (40, 40, 40))
        for a in (0.12, 0.7, 0.82):
            c.p.poly(_quad_on(side, a, a + 0.07, -0.12, 0.12), (25, 25, 25))
        if kind == 0:
            c.p.poly(_quad_on(side, 0.2, 0.8, 0.45, 0.7), r.choice(SHIRT_COLORS))
    if back and "near" in box:
        near = box["near"]
        if kind == 0:
            c.p.poly(_quad_on(near, 0.495, 0.505, 0.05, 0.97), (120, 120, 120))
        else:
            c.p.poly(_quad_on(near, 0.05, 0.95, 0.1, 0.9), shade(box_color, 0.8))
        c.p.poly(_quad_on(near, 0.03, 0.12, 0.02, 0.1), (30, 30, 220))
        c.p.poly(_quad_on(near, 0.88, 0.97, 0.02, 0.1), (30, 30, 220))
        c.p.poly(_quad_on(near, 0.0, 1.0, -0.1, 0.0), (30, 30, 30))
        if c.t.plate:
            _plate_on(c, 0.45, -hl, 0.25, c.t.plate, 0)
    if not back and "near" in cab:
        near = cab["near"]
        c.p.poly(_quad_on(near, 0.06, 0.94, 0.55, 0.92), (70, 55, 45))
        c.p.poly(_quad_on(near, 0.25, 0.75, 0.12, 0.35), (40, 40, 40))
        c.p.poly(_quad_on(near, 0.03, 0.16, 0.15, 0.27), (220, 235, 245))
        c.p.poly(_quad_on(near, 0.84, 0.97, 0.15, 0.27), (220, 235, 245))
        if c.t.plate:
            _plate_on(c, 0.62, -hl, 0.25, c.t.plate, 0)
    if c.night and "near" in (box if back else cab):
        near = (box if back else cab)["near"]
        for a in (0.08, 0.92):
            q = _quad_on(near, a, a, 0.2, 0.2)[0]
            c.glow(q[0], q[1], 0.1 * c.s, (60, 60, 255) if back else (230, 250, 255))


# --------------------------------------------------------------------------- street life


def _stall(c: _Ctx) -> None:
    r = c.rng
    tw = r.uniform(1.2, 1.8)
    th = r.uniform(0.75, 0.9)
    td = r.uniform(0.6, 0.9)
    body = r.choice(
        ((180, 180, 180), (60, 100, 160), (40, 60, 120), (200, 200, 160), (50, 120, 50))
    )
    hw = tw / 2
    if r.random() < 0.5:  # tricycle cart: big wheels
        for dx in (-hw + 0.15, hw - 0.15):
            x, y = c.at(dx, 0.3)
            c.p.circle(x, y, 0.3 * c.s, (30, 30, 30))
            c.p.circle(x, y, 0.2 * c.s, (140, 140, 140))
    else:
        for dx in (-hw + 0.08, hw - 0.08):
            c.p.line(c.at(dx, 0.0), c.at(dx, th), (60, 60, 60), 0.06 * c.s)
    c.cuboid(-hw, hw, th * 0.45, th, -td / 2, td / 2, body)
    # goods on the counter: fruit, vegetables, snacks
    palette = r.choice(
        (
            ((40, 40, 220), (30, 160, 240), (40, 200, 80)),
            ((60, 180, 60), (40, 120, 40), (100, 220, 140)),
            ((80, 170, 230), (60, 130, 200), (200, 220, 240)),
            ((30, 90, 200), (30, 200, 230), (20, 20, 160)),
        )
    )
    n = r.randint(6, 14)
    for i in range(n):
        fx = -hw + 0.1 + (tw - 0.2) * (i + r.random() * 0.5) / n
        fy = th + r.uniform(0.03, 0.12)
        x, y = c.at(fx, fy)
        c.p.circle(x, y, r.uniform(0.05, 0.09) * c.s, palette[i % 3])
    # umbrella
    pole_h = r.uniform(2.0, 2.4)
    c.p.line(c.at(0.0, th), c.at(0.0, pole_h), (70, 70, 70), 0.04 * c.s)
    uw = r.uniform(1.0, 1.35)
    colors = r.choice(
        (
            ((40, 40, 210), (240, 240, 240)),
            ((200, 120, 30), (240, 240, 240)),
            ((30, 160, 230), (30, 30, 200)),
            ((60, 160, 60), (230, 230, 230)),
            ((40, 40, 210), (40, 40, 210)),
        )
    )
    seg = 6
    apex = c.at(0.0, pole_h + 0.35)
    for k in range(seg):
        a0, a1 = -uw + 2 * uw * k / seg, -uw + 2 * uw * (k + 1) / seg
        drop = 0.12
        c.p.poly(
            [
                apex,
                c.at(a0, pole_h - drop),
                c.at((a0 + a1) / 2, pole_h - drop * 0.6),
                c.at(a1, pole_h - drop),
            ],
            colors[k % 2],
        )
    if r.random() < 0.5:  # sign board hanging from the counter
        c.p.rect(*c.at(-hw * 0.6, th * 0.42), *c.at(hw * 0.6, th * 0.12), (230, 230, 230))
        c.p.rect(*c.at(-hw * 0.45, th * 0.34), *c.at(hw * 0.45, th * 0.2), (30, 30, 200))


def _goods(c: _Ctx) -> None:
    r = c.rng
    kind = r.randrange(3)
    cols = r.randint(1, 3)
    rows = r.randint(1, 3) if kind != 2 else 1
    iw = {0: 0.5, 1: r.uniform(0.4, 0.6), 2: 0.5}[kind]
    ih = {0: 0.3, 1: r.uniform(0.3, 0.45), 2: 0.35}[kind]
    total = cols * iw
    crate: Color = r.choice(((40, 40, 200), (160, 90, 30), (40, 170, 220), (60, 140, 60)))
    for col in range(cols):
        h_here = rows - (1 if (col == cols - 1 and rows > 1 and r.random() < 0.5) else 0)
        for row in range(h_here):
            x0 = -total / 2 + col * iw
            y0 = row * ih
            if kind == 0:  # plastic crates
                f = c.cuboid(x0, x0 + iw - 0.02, y0, y0 + ih - 0.01, -0.2, 0.2, crate)
                if "near" in f:
                    for a in (0.15, 0.45, 0.75):
                        c.p.poly(_quad_on(f["near"], a, a + 0.12, 0.3, 0.75), shade(crate, 0.55))
                if row == h_here - 1 and "top" in f:
                    c.p.poly(
                        _quad_on(f["top"], 0.1, 0.9, 0.1, 0.9),
                        r.choice(((40, 200, 80), (30, 160, 240), (40, 40, 200))),
                    )
            elif kind == 1:  # cardboard boxes
                brown = shade((70, 130, 180), r.uniform(0.85, 1.1))
                f = c.cuboid(x0, x0 + iw - 0.02, y0, y0 + ih - 0.01, -0.25, 0.25, brown)
                if "near" in f:
                    c.p.poly(_quad_on(f["near"], 0.0, 1.0, 0.45, 0.55), (190, 200, 205))
            else:  # baskets with produce
                basket = (60, 140, 190)
                bx0, by1 = c.at(x0 + 0.02, y0 + ih)
                bx1, by0 = c.at(x0 + iw - 0.02, y0)
                c.p.poly(
                    [(bx0, by1), (bx1, by1), (bx1 - 0.05 * c.s, by0), (bx0 + 0.05 * c.s, by0)],
                    basket,
                )
                for k in range(4):
                    yy = by1 + (by0 - by1) * (k + 0.5) / 4
                    c.p.line(
                        (bx0 + 0.03 * c.s, yy),
                        (bx1 - 0.03 * c.s, yy),
                        shade(basket, 0.7),
                        max(1.0, 0.015 * c.s),
                        track=False,
                    )
                produce = r.choice(((40, 40, 210), (40, 200, 80), (30, 160, 240), (60, 60, 140)))
                for k in range(4):
                    x, y = c.at(x0 + iw * (0.2 + 0.2 * k), y0 + ih + 0.03)
                    c.p.circle(x, y, 0.07 * c.s, produce)


def _bag(c: _Ctx, dx: float, dy: float, size: float, color: Color) -> None:
    x, y = c.at(dx, dy + size * 0.45)
    c.p.ellipse(x, y, size * 0.5 * c.s, size * 0.45 * c.s, color)
    c.p.ellipse(
        x - size * 0.15 * c.s,
        y - size * 0.15 * c.s,
        size * 0.12 * c.s,
        size * 0.08 * c.s,
        shade(color, 1.8 if sum(color) < 200 else 1.15),
    )
    kx, ky = c.at(dx, dy + size * 0.9)
    c.p.poly(
        [
            (kx - size * 0.12 * c.s, ky - size * 0.14 * c.s),
            (kx + size * 0.12 * c.s, ky - size * 0.14 * c.s),
            (kx, ky + size * 0.05 * c.s),
        ],
        shade(color, 0.8),
    )


def _garbage(c: _Ctx) -> None:
    r = c.rng
    n = r.randint(1, 6)
    width = 0.45 + 0.2 * n
    bags = []
    for _ in range(n):
        size = r.uniform(0.35, 0.6)
        bags.append(
            (
                r.uniform(-width / 2 + size / 2, width / 2 - size / 2),
                r.uniform(0.0, 0.25) if n > 2 else 0.0,
                size,
                r.choice(BAG_COLORS),
            )
        )
    bags.sort(key=lambda b: -b[1])
    for dx, dy, size, col in bags:
        _bag(c, dx, dy, size, col)
    for _ in range(r.randint(2, 8)):  # loose litter
        x, y = c.at(r.uniform(-width / 2 - 0.2, width / 2 + 0.2), r.uniform(0.0, 0.06))
        sz = r.uniform(0.04, 0.1) * c.s
        c.p.rect(x - sz, y - sz * 0.6, x + sz, y, r.choice(SHIRT_COLORS))


def _bin(c: _Ctx, overflow: bool) -> None:
    r = c.rng
    color = r.choice(BIN_COLORS)
    w, h = r.uniform(0.55, 0.7), r.uniform(0.95, 1.1)
    hw = w / 2
    c.p.circle(*c.at(-hw + 0.08, 0.08), 0.08 * c.s, (25, 25, 25))
    c.p.circle(*c.at(hw - 0.08, 0.08), 0.08 * c.s, (25, 25, 25))
    f = c.cuboid(-hw + 0.04, hw - 0.04, 0.05, h, -0.3, 0.3, color)
    if "near" in f:
        c.p.poly(_quad_on(f["near"], 0.25, 0.75, 0.5, 0.75), (235, 235, 235))
        c.p.poly(_quad_on(f["near"], 0.35, 0.65, 0.56, 0.68), shade(color, 0.8))
    if not overflow:
        c.cuboid(-hw, hw, h, h + 0.06, -0.33, 0.33, shade(color, 0.85))
        return
    lid = shade(color, 0.85)
    c.p.poly(c.world([(-hw, h, 0.3), (hw, h, 0.3), (hw, h + 0.6, 0.4), (-hw, h + 0.6, 0.4)]), lid)
    for _ in range(r.randint(3, 5)):
        size = r.uniform(0.3, 0.45)
        _bag(
            c,
            r.uniform(-hw * 0.7, hw * 0.7),
            h - 0.1 + r.uniform(0.0, 0.3),
            size,
            r.choice(BAG_COLORS),
        )
    for _ in range(r.randint(2, 6)):
        x, y = c.at(r.uniform(-hw - 0.2, hw + 0.2), r.uniform(0.0, 0.05))
        sz = r.uniform(0.04, 0.09) * c.s
        c.p.rect(x - sz, y - sz * 0.6, x + sz, y, r.choice(SHIRT_COLORS))


def _clothes(c: _Ctx) -> None:
    r = c.rng
    span = r.uniform(1.6, 3.0)
    top = r.uniform(1.8, 2.3)
    hs = span / 2
    pole: Color = (90, 90, 90)
    c.p.line(c.at(-hs, 0.0), c.at(-hs, top + 0.05), pole, 0.05 * c.s)
    c.p.line(c.at(hs, 0.0), c.at(hs, top + 0.05), pole, 0.05 * c.s)
    c.p.line(c.at(-hs, top), c.at(hs, top), (50, 50, 50), max(1.0, 0.015 * c.s))
    n = r.randint(2, 5)
    for k in range(n):
        cx = -hs + span * (k + 0.5) / n + r.uniform(-0.08, 0.08)
        col = r.choice((*SHIRT_COLORS, (200, 150, 230), (160, 230, 250)))
        kind = r.randrange(3)
        if kind == 0:  # shirt
            sw = r.uniform(0.22, 0.3)
            c.p.poly(
                [
                    c.at(cx - sw, top),
                    c.at(cx + sw, top),
                    c.at(cx + sw * 1.4, top - 0.15),
                    c.at(cx + sw * 0.8, top - 0.2),
                    c.at(cx + sw * 0.8, top - 0.7),
                    c.at(cx - sw * 0.8, top - 0.7),
                    c.at(cx - sw * 0.8, top - 0.2),
                    c.at(cx - sw * 1.4, top - 0.15),
                ],
                col,
            )
        elif kind == 1:  # trousers
            c.p.poly(
                [
                    c.at(cx - 0.18, top),
                    c.at(cx + 0.18, top),
                    c.at(cx + 0.2, top - 0.95),
                    c.at(cx + 0.03, top - 0.95),
                    c.at(cx, top - 0.3),
                    c.at(cx - 0.03, top - 0.95),
                    c.at(cx - 0.2, top - 0.95),
                ],
                col,
            )
        else:  # towel / sheet
            c.p.rect(*c.at(cx - 0.2, top), *c.at(cx + 0.2, top - r.uniform(0.5, 0.9)), col)
            c.p.rect(*c.at(cx - 0.2, top - 0.1), *c.at(cx + 0.2, top - 0.14), shade(col, 0.7))


def _debris(c: _Ctx) -> None:
    r = c.rng
    rad = r.uniform(0.35, 1.0)
    col = r.choice(MUCK_COLORS)
    n = 14
    ring = []
    for k in range(n):
        a = 2 * math.pi * k / n
        rr = rad * r.uniform(0.6, 1.0)
        ring.append((rr * math.cos(a) * 1.3, 0.0, rr * math.sin(a)))
    c.p.poly(c.world(ring), shade(col, 0.8))
    mound = [(x * 0.6, 0.0, z * 0.6) for x, _, z in ring]
    mound_top = [(x * 0.3, rad * 0.25, z * 0.3) for x, _, z in ring]
    m1, m2 = c.world(mound), c.world(mound_top)
    hull = np.vstack([m1, m2])
    import cv2

    c.p.poly(cv2.convexHull(hull.astype(np.float32)).reshape(-1, 2), col)
    for _ in range(r.randint(4, 10)):  # stones and brick bits
        x = r.uniform(-rad, rad) * 1.2
        z = r.uniform(-rad, rad) * 0.9
        size = r.uniform(0.06, 0.16)
        stone = r.choice(((80, 80, 90), (60, 70, 150), (150, 150, 150), (40, 50, 60)))
        pts = c.world(
            [
                (x - size, 0.0, z),
                (x + size, 0.0, z),
                (x + size * 0.7, size, z),
                (x - size * 0.6, size * 0.9, z),
            ]
        )
        c.p.poly(pts, stone)


_DRAWERS = {
    "person": _person,
    "car": _car,
    "bus": _bus,
    "truck": _truck,
    "stall": _stall,
    "goods": _goods,
    "garbage": _garbage,
    "bin": lambda c: _bin(c, False),
    "bin_overflow": lambda c: _bin(c, True),
    "clothes": _clothes,
    "debris": _debris,
}


def draw_thing(image: Image, cam: Camera, thing: Thing, *, night: bool = False) -> Drawn | None:
    """Draw ``thing`` on ``image``; return its exact box, or None if it is not visible."""
    ctx = _Ctx(Painter(image), cam, thing, night)
    if ctx.depth < 1.0:
        return None
    reach = NEAR_REACH_M.get(thing.label, 0.0)
    if reach and cam.project_point(thing.x, 0.0, thing.z - reach)[2] < 1.0:
        return None  # its near end would be behind the camera
    _DRAWERS[thing.label](ctx)
    box = ctx.p.box()
    raw = ctx.p.raw_box()
    if box is None or raw is None:
        return None
    full = max((raw[2] - raw[0]) * (raw[3] - raw[1]), 1e-6)
    inside = (box[2] - box[0]) * (box[3] - box[1]) / full
    return Drawn(thing, box, ctx.depth, min(1.0, inside))


def thing_depth(cam: Camera, thing: Thing) -> float:
    """Distance used to order drawing (far things first)."""
    return cam.project_point(thing.x, 0.0, thing.z)[2]


def draw_all(
    image: Image, cam: Camera, things: list[Thing] | tuple[Thing, ...], *, night: bool = False
) -> list[Drawn]:
    """Draw things far to near (so nearer ones occlude) and return those that showed."""
    out = []
    for th in sorted(things, key=lambda t: -thing_depth(cam, t)):
        d = draw_thing(image, cam, th, night=night)
        if d is not None:
            out.append(d)
    return out


def visible_fraction(drawn: list[Drawn], grid: int = 8) -> list[float]:
    """Per drawn thing (in draw order), the share of its box not covered by later boxes."""
    fracs = []
    for i, d in enumerate(drawn):
        x1, y1, x2, y2 = d.box
        xs = x1 + (np.arange(grid) + 0.5) * (x2 - x1) / grid
        ys = y1 + (np.arange(grid) + 0.5) * (y2 - y1) / grid
        gx, gy = np.meshgrid(xs, ys)
        covered = np.zeros_like(gx, dtype=bool)
        for e in drawn[i + 1 :]:
            a1, b1, a2, b2 = e.box
            covered |= (gx >= a1) & (gx <= a2) & (gy >= b1) & (gy <= b2)
        fracs.append(1.0 - float(covered.mean()))
    return fracs
