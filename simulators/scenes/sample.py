"""Random labelled street images for training and evaluation.

:func:`render_sample` composes one scene from a seed: a pole or truck-rear camera with
random height and angles, a random street, a random set of objects in plausible places,
random time of day and weather. It returns the image and the exact boxes of what is
visible. :func:`letterbox` turns it into the detector's square input.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import cv2
import numpy as np

from simulators.scenes.camera import Camera
from simulators.scenes.effects import (
    add_noise,
    add_rain,
    apply_lighting,
    blur,
    jpeg,
    noise_layers,
    rain_layer,
)
from simulators.scenes.painter import Box, Image
from simulators.scenes.plates import random_plate
from simulators.scenes.street import LIGHTINGS, StreetLayout, render_street
from simulators.scenes.things import Thing, draw_all, visible_fraction

#: Boxes smaller than this (pixels, longest side, at the 320 network input) are not labelled.
MIN_SIDE_320 = 7.0
#: Objects less visible than this share of their box are not labelled.
MIN_VISIBLE = 0.4
#: Objects mostly outside the frame (less than this share inside) are not labelled.
MIN_IN_FRAME = 0.3

#: Typical height in metres, used to keep objects large enough to be seen at all.
NOMINAL_SIZE_M = {
    "person": 1.7,
    "car": 1.5,
    "bus": 3.1,
    "truck": 3.0,
    "stall": 2.2,
    "goods": 0.7,
    "garbage": 0.6,
    "bin": 1.0,
    "bin_overflow": 1.4,
    "clothes": 2.0,
    "debris": 1.2,
}


@dataclass(frozen=True)
class Sample:
    """One rendered image with its labels (pixel boxes x1, y1, x2, y2)."""

    image: Image
    labels: tuple[tuple[str, Box], ...]
    camera: str


def random_camera(
    rng: random.Random, kind: str, width: int, height: int, layout: StreetLayout
) -> Camera:
    """A pole camera over one pavement, or a truck's rear camera over its lane."""
    if kind == "truck":
        return Camera.looking(
            width,
            height,
            hfov_deg=rng.uniform(60, 85),
            x=rng.uniform(-2.5, 2.5),
            height_m=rng.uniform(1.8, 3.2),
            pitch_deg=rng.uniform(10, 28),
            yaw_deg=rng.uniform(-6, 6),
            z=-rng.uniform(0.0, 1.0),
        )
    side = rng.choice((-1, 1))
    x = (
        layout.kerb_right + rng.uniform(-0.5, 1.5)
        if side > 0
        else layout.kerb_left - rng.uniform(-0.5, 1.5)
    )
    yaw = -side * rng.uniform(2, 18)
    return Camera.looking(
        width,
        height,
        hfov_deg=rng.uniform(48, 75),
        x=x,
        height_m=rng.uniform(3.5, 9.0),
        pitch_deg=rng.uniform(8, 26),
        yaw_deg=yaw,
        z=-rng.uniform(0.0, 3.0),
    )


def random_layout(rng: random.Random, truck: bool) -> StreetLayout:
    """A street cross-section."""
    road = rng.uniform(6.5, 13.0)
    npz = None
    if not truck and rng.random() < 0.3:
        z0 = rng.uniform(6.0, 25.0)
        npz = (-road / 2, -road / 2 + 2.4, z0, z0 + rng.uniform(5.0, 8.0))
    return StreetLayout(
        road_w=road,
        pave_left=rng.uniform(3.0, 7.0),
        pave_right=rng.uniform(2.5, 6.0),
        door_depth=rng.uniform(0.8, 1.6) if rng.random() < 0.6 else 0.0,
        no_parking=npz,
        variant=rng.randrange(1 << 30),
        buildings=rng.random() < 0.95,
    )


def _place(
    rng: random.Random, label: str, lay: StreetLayout, cam: Camera, truck: bool
) -> Thing | None:
    kl, kr, fl, fr = lay.kerb_left, lay.kerb_right, lay.facade_left, lay.facade_right

    def pavement() -> float:
        if rng.random() < 0.5:
            return rng.uniform(fl + 0.4, kl - 0.4)
        return rng.uniform(kr + 0.4, fr - 0.4)

    def road() -> float:
        return rng.uniform(kl + 1.2, kr - 1.2)

    if label == "person":
        x = pavement() if rng.random() < 0.8 else rng.uniform(kl + 0.3, kr - 0.3)
    elif label in ("car", "bus", "truck"):
        x = road() if rng.random() < 0.75 else (kl + 1.1 if rng.random() < 0.5 else kr - 1.1)
    elif label == "stall":
        x = pavement()
    elif label == "goods":
        x = rng.uniform(fl + 0.4, kl - 0.3) if rng.random() < 0.6 else pavement()
    elif label in ("garbage", "bin", "bin_overflow"):
        x = pavement() if rng.random() < 0.85 else rng.choice((kl + 0.4, kr - 0.4))
    elif label == "clothes":
        x = pavement()
    else:  # debris
        x = rng.uniform(kl + 0.6, kr - 0.6)
    far = 70.0 if truck else 90.0
    lo = 3.0 if truck else 4.0
    z = lo + (far - lo) * rng.random() ** 1.6
    if label in ("bus", "truck"):
        z = max(z, 9.0)
    elif label == "car":
        z = max(z, 5.0)
    scale = cam.scale_at(x, z)
    size_320 = NOMINAL_SIZE_M[label] * scale * 320.0 / cam.width
    if size_320 < MIN_SIDE_320 * 1.8:
        return None
    heading = 1 if (x > 0) == (rng.random() < 0.8) else -1
    plate = random_plate(rng) if label in ("car", "bus", "truck") else None
    return Thing(
        label,
        x,
        z,
        rng.randrange(1 << 30),
        heading=heading,
        phase=rng.uniform(0, 2 * math.pi),
        plate=plate,
    )


def _population(rng: random.Random, truck: bool) -> dict[str, int]:
    return {
        "person": rng.choice((0, 0, 1, 2, 3, 4, 6)),
        "car": rng.choice((0, 0, 1, 1, 2, 3, 4)),
        "bus": 1 if rng.random() < 0.2 else 0,
        "truck": 1 if rng.random() < 0.22 else 0,
        "stall": rng.choice((0, 0, 1, 1, 2)),
        "goods": rng.choice((0, 0, 1, 1, 2)),
        "garbage": rng.choice((0, 0, 1, 1, 2)),
        "bin": rng.choice((0, 0, 1, 1, 2)),
        "bin_overflow": rng.choice((0, 0, 0, 1, 1)),
        "clothes": rng.choice((0, 0, 0, 1)),
        "debris": rng.choice((0, 0, 0, 1, 2)) + (rng.choice((0, 1, 2)) if truck else 0),
    }


def render_sample(seed: int, width: int = 640, height: int = 360, *, empty: bool = False) -> Sample:
    """Render one random labelled scene; same arguments give byte-identical output."""
    rng = random.Random(seed)
    truck = rng.random() < 0.2
    layout = random_layout(rng, truck)
    cam = random_camera(rng, "truck" if truck else "pole", width, height, layout)
    light = LIGHTINGS[
        rng.choices(
            ("day", "morning", "overcast", "dusk", "night"), (0.45, 0.12, 0.15, 0.13, 0.15)
        )[0]
    ]
    img = render_street(cam, layout, light, travel_m=rng.uniform(0, 100))
    things: list[Thing] = []
    if not empty:
        for label, n in _population(rng, truck).items():
            for _ in range(n):
                for _try in range(4):
                    th = _place(rng, label, layout, cam, truck)
                    if th is not None:
                        things.append(th)
                        break
    drawn = draw_all(img, cam, things, night=light.night)
    vis = visible_fraction(drawn)
    s320 = 320.0 / width
    labels = []
    for d, v in zip(drawn, vis, strict=True):
        x1, y1, x2, y2 = d.box
        if (
            v < MIN_VISIBLE
            or d.in_frame < MIN_IN_FRAME
            or max(x2 - x1, y2 - y1) * s320 < MIN_SIDE_320
        ):
            continue
        labels.append((d.thing.label, d.box))
    img = apply_lighting(img, light)
    if rng.random() < 0.15:
        img = add_rain(img, rain_layer(width, height, rng, rng.uniform(0.5, 2.0)))
    if rng.random() < 0.5:
        img = add_noise(
            img, noise_layers(width, height, rng.randrange(1 << 30), rng.uniform(2.0, 8.0))
        )
    if rng.random() < 0.25:
        img = blur(img, rng)
    if rng.random() < 0.5:
        img = jpeg(img, rng.randint(35, 90))
    return Sample(img, tuple(labels), "truck" if truck else "pole")


def letterbox(img: Image, size: int = 320) -> tuple[Image, float, int, int]:
    """Resize keeping aspect into a ``size`` square padded with gray 114, centred.

    Returns the square image, the scale and the x/y padding (new = old * scale + pad).
    """
    h, w = img.shape[:2]
    scale = min(size / w, size / h)
    nw, nh = round(w * scale), round(h * scale)
    resized = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    out = np.full((size, size, 3), 114, dtype=np.uint8)
    px, py = (size - nw) // 2, (size - nh) // 2
    out[py : py + nh, px : px + nw] = resized
    return out, scale, px, py
