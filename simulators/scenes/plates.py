"""Chinese-style licence plates: text generation and cached rendering with a CJK font.

Plate text looks like ``浙J·A12345``: a province character, a city letter, a dot and
five alphanumerics. Glyphs are drawn once with PIL (the font is slow) and cached; whole
plates are cached per (text, size) so a parked car costs nothing per frame.

:func:`plate_sample` and :func:`plate_set` render a harder, seeded set for the plate
reader's tests and ``make eval-model``: a car front in a frame whose plate is blue, yellow,
green (new energy, eight characters), white (police) or black (Hong Kong / Macao), clean
or tilted in perspective, blurred (focus or motion), with glare, at night (dark and
noisy) or dirty, JPEG-compressed like camera footage.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from simulators.scenes.painter import Image

#: Debian's fonts-wqy-microhei; XH_CJK_FONT points elsewhere (a machine without the package).
FONT_PATH = Path(os.environ.get("XH_CJK_FONT", "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"))

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤川琼青藏宁"
CITY_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXY"  # no I or O on plates
SERIAL = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
DIGITS = "0123456789"

#: Plate colours (background BGR, text BGR): blue for ordinary cars, green for new-energy.
PLATE_STYLES: tuple[tuple[tuple[int, int, int], tuple[int, int, int]], ...] = (
    ((150, 60, 10), (245, 245, 245)),
    ((150, 60, 10), (245, 245, 245)),
    ((120, 200, 90), (20, 20, 20)),
)


def random_plate(rng: random.Random, province: str | None = None) -> str:
    """A plate text such as ``浙J·A12345`` (province, letter, dot, five characters)."""
    prov = province or rng.choice(PROVINCES)
    letter = rng.choice(CITY_LETTERS)
    tail = [rng.choice(SERIAL)] + [rng.choice(DIGITS if i < 2 else SERIAL) for i in range(4)]
    return f"{prov}{letter}·{''.join(tail)}"


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_PATH), size)


@lru_cache(maxsize=512)
def _glyph(char: str, size: int) -> np.ndarray:
    """Alpha mask (uint8, 0..255) of one character at a pixel height of ``size``."""
    font = _font(size)
    canvas = PILImage.new("L", (size * 2, size * 2), 0)
    ImageDraw.Draw(canvas).text((size // 2, size // 2), char, fill=255, font=font)
    arr = np.asarray(canvas)
    ys, xs = np.nonzero(arr > 0)
    if len(xs) == 0:
        return np.zeros((size, max(1, size // 3)), dtype=np.uint8)
    return np.ascontiguousarray(arr[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])


@lru_cache(maxsize=64)
def _plate_master(text: str, style: int) -> Image:
    """A crisp 440x140 plate image (the real plate's millimetres as pixels)."""
    bg, fg = PLATE_STYLES[style % len(PLATE_STYLES)]
    w, h = 440, 140
    plate = np.empty((h, w, 3), dtype=np.uint8)
    plate[:] = bg
    cv2.rectangle(plate, (5, 5), (w - 6, h - 6), fg, 3, cv2.LINE_AA)
    _draw_characters(plate, text, lambda ch: fg, full_height_chinese=False)
    cv2.circle(plate, (int(20 + 2 * _slot(plate, text) + 7), 140 // 2), 6, fg, -1, cv2.LINE_AA)
    return plate


def _slot(plate: Image, text: str) -> float:
    """The pitch of one character on ``plate`` (the dot's position derives from it)."""
    return float(plate.shape[1] - 40) / len([c for c in text if c != "·"]) - 2.5


def _draw_characters(
    plate: Image,
    text: str,
    colour_of: Callable[[str], tuple[int, int, int]],
    *,
    full_height_chinese: bool,
) -> None:
    """Draw ``text`` (its dot skipped) onto ``plate`` in even slots, each character in
    ``colour_of(char)``. With ``full_height_chinese`` a Chinese character fills its slot
    at the full 90 mm height, condensed as plate type condenses it to 45 x 90 mm."""
    h, w = plate.shape[:2]
    chars = [c for c in text if c != "·"]
    slot = (w - 40) / len(chars)
    for i, ch in enumerate(chars):
        g = _glyph(ch, 90)
        gh, gw = g.shape
        if full_height_chinese and "\u4e00" <= ch <= "\u9fff":
            gw2, gh2 = int(slot - 8), 88
        else:
            scale = min((slot - 6) / gw, 90 / gh)
            gw2, gh2 = max(1, int(gw * scale)), max(1, int(gh * scale))
        g2 = cv2.resize(g, (gw2, gh2), interpolation=cv2.INTER_AREA)
        gap = 14 if i >= 2 else 0  # space where the dot sits
        x0 = int(20 + gap + i * (slot - 2.5) + (slot - 2.5 - gw2) / 2)
        y0 = (h - gh2) // 2
        region = plate[y0 : y0 + gh2, x0 : x0 + gw2]
        alpha = (g2.astype(np.float32) / 255.0)[..., None]
        ink = np.array(colour_of(ch), np.float32)
        region[:] = (region * (1 - alpha) + ink * alpha).astype(np.uint8)


@lru_cache(maxsize=256)
def plate_image(text: str, width: int, height: int, style: int = 0) -> Image:
    """The plate resized to ``width`` x ``height`` pixels (cached; treat as read-only)."""
    master = _plate_master(text, style)
    interp = cv2.INTER_AREA if width < master.shape[1] else cv2.INTER_LINEAR
    return np.asarray(
        cv2.resize(master, (max(2, width), max(2, height)), interpolation=interp), dtype=np.uint8
    )


# --------------------------------------------------------------------------- harder plates
# A seeded set of plates on car fronts under the conditions real photos bring (tilt, blur,
# glare, night, dirt) and in every plate colour, for testing and evaluating the reader.
# Separate from ``plate_image`` above so the street scenes (and the detector's training
# data) render exactly as before.

#: Conditions of :func:`plate_sample`; ``white`` and ``black`` are plate colours, clean.
PLATE_CONDITIONS = ("clean", "tilt", "blur", "glare", "night", "dirt", "white", "black")
#: Plate kinds: background BGR, text BGR, master width in pixels (height is 140).
PLATE_KINDS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int], int]] = {
    "blue": ((160, 70, 15), (245, 245, 245), 440),  # ordinary cars
    "yellow": ((20, 185, 235), (20, 20, 20), 440),  # large vehicles
    "green": ((120, 205, 120), (20, 20, 20), 480),  # new energy, eight characters
    "white": ((235, 235, 235), (20, 20, 20), 440),  # police: the last character red
    "black": ((25, 25, 25), (240, 240, 240), 440),  # Hong Kong / Macao cars
}
_RED = (30, 30, 210)
_SUFFIXES = "警港澳"
CAR_BODY_COLORS = (
    (40, 40, 45),
    (235, 235, 235),
    (190, 190, 195),
    (130, 130, 135),
    (40, 40, 160),
    (150, 90, 30),
    (60, 120, 60),
    (30, 150, 210),
)


def plate_text(rng: random.Random, kind: str, province: str | None = None) -> str:
    """A plate text in the format of ``kind``: ``浙J·A12345`` (blue, yellow), ``浙J·D12345``
    (green, new energy: D or F, then five), ``浙A·1234警`` (white, police) or
    ``粤Z·A123港`` (black, Hong Kong / Macao)."""
    if kind == "black":
        serial = rng.choice(SERIAL) + "".join(rng.choice(DIGITS) for _ in range(3))
        return f"粤Z·{serial}{rng.choice('港澳')}"
    prov = province or rng.choice(PROVINCES)
    letter = rng.choice(CITY_LETTERS)
    if kind == "white":
        return f"{prov}{letter}·{''.join(rng.choice(DIGITS) for _ in range(4))}警"
    if kind == "green":
        serial = (
            rng.choice("DF") + rng.choice(SERIAL) + "".join(rng.choice(DIGITS) for _ in range(4))
        )
        return f"{prov}{letter}·{serial}"
    tail = [rng.choice(SERIAL)] + [rng.choice(DIGITS if i < 2 else SERIAL) for i in range(4)]
    return f"{prov}{letter}·{''.join(tail)}"


@lru_cache(maxsize=64)
def kind_plate(text: str, kind: str) -> Image:
    """A crisp plate of ``kind`` (see :data:`PLATE_KINDS`) at 140 pixels high."""
    bg, fg, w = PLATE_KINDS[kind]
    h = 140
    plate = np.empty((h, w, 3), dtype=np.uint8)
    plate[:] = bg
    if kind == "green":  # new-energy plates fade from white-green at the top to green
        ramp = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
        top = np.array((235, 245, 235), np.float32)
        plate[:] = (top * (1 - ramp) + np.array(bg, np.float32) * ramp).astype(np.uint8)
    cv2.rectangle(plate, (5, 5), (w - 6, h - 6), fg, 3, cv2.LINE_AA)
    _draw_characters(
        plate,
        text,
        lambda ch: _RED if (kind == "white" and ch in _SUFFIXES) else fg,
        full_height_chinese=True,
    )
    cv2.circle(plate, (int(20 + 2 * _slot(plate, text) + 7), h // 2), 6, fg, -1, cv2.LINE_AA)
    return plate


@dataclass(frozen=True)
class PlateSample:
    """A frame with one car whose plate reads ``text``.

    ``car_box`` is the car's normalised ``(x1, y1, x2, y2)`` box (what the detector gives
    the reader); ``plate_quad`` the plate's four corners in pixels (top-left, top-right,
    bottom-right, bottom-left).
    """

    image: Image
    car_box: tuple[float, float, float, float]
    plate_quad: tuple[tuple[float, float], ...]
    text: str
    condition: str
    kind: str


def _car_front(rng: random.Random, frame: Image, box: tuple[int, int, int, int]) -> None:
    """Paint a plain car front (body, windscreen, lights, grille, bumper) into ``box``."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    body = rng.choice(CAR_BODY_COLORS)
    cv2.rectangle(frame, (x1, y1 + h // 5), (x2, y2), body, -1)
    roof = (x1 + w // 6, y1, x2 - w // 6, y1 + h // 5)
    cv2.rectangle(frame, roof[:2], roof[2:], body, -1)
    glass = np.array(
        [
            (x1 + w // 10, y1 + h * 9 // 20),
            (x1 + w // 5, y1 + h // 12),
            (x2 - w // 5, y1 + h // 12),
            (x2 - w // 10, y1 + h * 9 // 20),
        ],
        np.int32,
    )
    cv2.fillPoly(frame, [glass], (70, 55, 45))
    lamp = (230, 230, 220)
    cv2.rectangle(frame, (x1 + w // 20, y1 + h // 2), (x1 + w // 4, y1 + h * 3 // 5), lamp, -1)
    cv2.rectangle(frame, (x2 - w // 4, y1 + h // 2), (x2 - w // 20, y1 + h * 3 // 5), lamp, -1)
    grille = tuple(max(0, c - 50) for c in body)
    cv2.rectangle(frame, (x1 + w // 3, y1 + h // 2), (x2 - w // 3, y1 + h * 5 // 8), grille, -1)
    cv2.line(frame, (x1, y1 + h * 17 // 20), (x2, y1 + h * 17 // 20), grille, 2)


def plate_sample(seed: int, condition: str, prefix: str | None = None) -> PlateSample:
    """One seeded plate sample under ``condition`` (one of :data:`PLATE_CONDITIONS`);
    the same ``(seed, condition, prefix)`` always gives the same pixels. ``prefix`` (such
    as ``浙J``) replaces the province and city letter of all but black (粤Z) plates."""
    if condition not in PLATE_CONDITIONS:
        raise ValueError(f"unknown plate condition {condition!r}; one of {PLATE_CONDITIONS}")
    rng = random.Random(f"plate/{condition}/{seed}")
    if condition in ("white", "black"):
        kind = condition
    else:
        kind = rng.choices(("blue", "yellow", "green"), weights=(6, 2, 2))[0]
    text = plate_text(rng, kind)
    if prefix is not None and kind != "black":
        text = prefix + text[len(prefix) :]
    fh, fw = 360, 480
    frame = np.empty((fh, fw, 3), dtype=np.uint8)
    frame[:] = (rng.randint(70, 140), rng.randint(80, 140), rng.randint(80, 140))
    car_w = rng.randint(200, 340)
    car_h = int(car_w * rng.uniform(0.75, 0.9))
    cx1 = rng.randint(10, fw - car_w - 10)
    cy1 = rng.randint(5, fh - car_h - 5)
    _car_front(rng, frame, (cx1, cy1, cx1 + car_w, cy1 + car_h))
    master = kind_plate(text, kind)
    mh, mw = master.shape[:2]
    pw = car_w * rng.uniform(0.30, 0.42)
    ph = pw * mh / mw
    pcx = cx1 + car_w / 2 + rng.uniform(-0.05, 0.05) * car_w
    pcy = cy1 + car_h * rng.uniform(0.7, 0.76)
    quad = np.array(
        [(-pw / 2, -ph / 2), (pw / 2, -ph / 2), (pw / 2, ph / 2), (-pw / 2, ph / 2)], np.float32
    )
    if condition == "tilt":
        # Roll, then yaw as foreshortening of one side: a camera off the car's axis.
        angle = np.deg2rad(rng.uniform(-14.0, 14.0))
        squeeze = rng.uniform(0.7, 0.9)
        side = rng.choice((0, 1))
        for i in (1, 2) if side else (0, 3):
            quad[i, 1] *= squeeze
        quad[:, 0] *= rng.uniform(0.8, 0.95)
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        quad = (quad @ rot.T.astype(np.float32)).astype(np.float32)
    quad += rng.uniform(-1.0, 1.0)
    quad += np.array([pcx, pcy], np.float32)
    src = np.array([(0, 0), (mw, 0), (mw, mh), (0, mh)], np.float32)
    warp = cv2.getPerspectiveTransform(src, quad)
    warped = cv2.warpPerspective(master, warp, (fw, fh), flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.full((mh, mw), 255, np.uint8), warp, (fw, fh))
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    out = frame.astype(np.float32) * (1 - alpha) + warped.astype(np.float32) * alpha
    nrng = np.random.default_rng(rng.randrange(1 << 30))
    if condition == "dirt":
        blots = np.zeros((fh, fw), np.float32)
        for _ in range(rng.randint(5, 10)):
            c = (int(pcx + rng.uniform(-0.5, 0.5) * pw), int(pcy + rng.uniform(-0.5, 0.5) * ph))
            axes = (
                max(1, int(pw * rng.uniform(0.03, 0.1))),
                max(1, int(ph * rng.uniform(0.08, 0.2))),
            )
            cv2.ellipse(blots, c, axes, rng.uniform(0, 180), 0, 360, rng.uniform(0.4, 0.75), -1)
        blots = cv2.GaussianBlur(blots, (0, 0), max(1.0, ph / 12))[..., None] * alpha
        out = out * (1 - blots) + np.array((40, 60, 80), np.float32) * blots
        out *= 1 - 0.25 * alpha * nrng.random((fh, fw, 1), dtype=np.float32)  # grime
    if condition == "glare":
        gx, gy = pcx + rng.uniform(-0.45, 0.45) * pw, pcy + rng.uniform(-0.3, 0.3) * ph
        yy, xx = np.mgrid[0:fh, 0:fw].astype(np.float32)
        r2 = ((xx - gx) / (pw * rng.uniform(0.12, 0.22))) ** 2 + ((yy - gy) / ph) ** 2
        out += rng.uniform(140, 200) * np.exp(-r2)[..., None]
    if condition == "blur":
        if rng.random() < 0.5:
            sigma = ph * rng.uniform(0.04, 0.07)
            out = cv2.GaussianBlur(out, (0, 0), sigma)
        else:  # motion blur along a random direction
            k = max(3, int(ph * rng.uniform(0.15, 0.25)) | 1)
            stroke = np.zeros((k, k), np.float32)
            stroke[k // 2, :] = 1.0 / k
            rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), rng.uniform(0, 180), 1.0)
            kernel = np.asarray(cv2.warpAffine(stroke, rot, (k, k)), np.float32)
            kernel /= max(float(kernel.sum()), 1e-6)
            out = cv2.filter2D(out, -1, kernel)
    if condition == "night":
        out *= rng.uniform(0.22, 0.35)
        out += nrng.normal(0.0, rng.uniform(5.0, 9.0), out.shape).astype(np.float32)
    else:
        out += nrng.normal(0.0, 2.5, out.shape).astype(np.float32)
    image = np.clip(out, 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(60, 90)])
    if ok:
        image = np.asarray(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), dtype=np.uint8)
    car_box = (cx1 / fw, cy1 / fh, (cx1 + car_w) / fw, (cy1 + car_h) / fh)
    corners = tuple((float(x), float(y)) for x, y in quad)
    return PlateSample(image, car_box, corners, text, condition, kind)


def plate_set(
    per_condition: int, first_seed: int = 0, prefix: str | None = None
) -> list[PlateSample]:
    """``per_condition`` samples of every condition in :data:`PLATE_CONDITIONS`, seeded
    ``first_seed`` on (``prefix`` as in :func:`plate_sample`)."""
    return [
        plate_sample(first_seed + i, condition, prefix)
        for condition in PLATE_CONDITIONS
        for i in range(per_condition)
    ]
