"""Chinese-style licence plates: text generation and cached rendering with a CJK font.

Plate text looks like ``浙J·A12345``: a province character, a city letter, a dot and
five alphanumerics. Glyphs are drawn once with PIL (the font is slow) and cached; whole
plates are cached per (text, size) so a parked car costs nothing per frame.
"""

from __future__ import annotations

import os
import random
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
    chars = [c for c in text if c != "·"]
    glyph_h = 90
    slot = (w - 40) / len(chars)
    for i, ch in enumerate(chars):
        g = _glyph(ch, glyph_h)
        gh, gw = g.shape
        scale = min((slot - 6) / gw, 90 / gh)
        gw2, gh2 = max(1, int(gw * scale)), max(1, int(gh * scale))
        g2 = cv2.resize(g, (gw2, gh2), interpolation=cv2.INTER_AREA)
        gap = 14 if i >= 2 else 0  # space where the dot sits
        x0 = int(20 + gap + i * (slot - 2.5) + (slot - 2.5 - gw2) / 2)
        y0 = (h - gh2) // 2
        region = plate[y0 : y0 + gh2, x0 : x0 + gw2]
        alpha = (g2.astype(np.float32) / 255.0)[..., None]
        region[:] = (region * (1 - alpha) + np.array(fg, np.float32) * alpha).astype(np.uint8)
    cv2.circle(plate, (int(20 + 2 * (slot - 2.5) + 7), h // 2), 6, fg, -1, cv2.LINE_AA)
    return plate


@lru_cache(maxsize=256)
def plate_image(text: str, width: int, height: int, style: int = 0) -> Image:
    """The plate resized to ``width`` x ``height`` pixels (cached; treat as read-only)."""
    master = _plate_master(text, style)
    interp = cv2.INTER_AREA if width < master.shape[1] else cv2.INTER_LINEAR
    return np.asarray(
        cv2.resize(master, (max(2, width), max(2, height)), interpolation=interp), dtype=np.uint8
    )
