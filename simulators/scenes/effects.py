"""Image-level variation: lighting curve, rain, sensor noise, blur and JPEG artefacts.

Each effect takes an explicit ``random.Random`` or a precomputed layer, never global state,
so results are reproducible from a seed.
"""

from __future__ import annotations

import random
from functools import lru_cache

import cv2
import numpy as np

from simulators.scenes.painter import Image
from simulators.scenes.street import Lighting


@lru_cache(maxsize=16)
def _lut(gain: tuple[float, float, float], gamma: float) -> Image:
    x = np.arange(256, dtype=np.float64) / 255.0
    curve = np.power(x, gamma)
    lut = np.stack([np.clip(curve * g * 255.0, 0, 255) for g in gain], axis=1)
    return lut.astype(np.uint8).reshape(256, 1, 3)


def apply_lighting(img: Image, light: Lighting) -> Image:
    """Apply the time-of-day colour curve (a single LUT pass)."""
    if light.gamma == 1.0 and light.gain == (1.0, 1.0, 1.0):
        return img
    out: Image = np.asarray(cv2.LUT(img, _lut(light.gain, light.gamma)), dtype=np.uint8)
    return out


def rain_layer(width: int, height: int, rng: random.Random, density: float) -> Image:
    """A layer of rain streaks to add onto a frame (uint8, mostly zero)."""
    layer = np.zeros((height, width, 3), dtype=np.uint8)
    n = int(density * width * height / 900)
    slant = rng.uniform(-0.3, 0.3)
    for _ in range(n):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        ln = rng.uniform(0.02, 0.06) * height
        v = rng.randint(40, 90)
        cv2.line(
            layer,
            (round(x), round(y)),
            (round(x + slant * ln), round(y + ln)),
            (v, v, v),
            1,
            cv2.LINE_AA,
        )
    return layer


def add_rain(img: Image, layer: Image) -> Image:
    """Rain: slightly hazy, darker frame with streaks."""
    hazy = cv2.addWeighted(img, 0.85, np.full_like(img, 120), 0.15, -8)
    out: Image = np.asarray(cv2.add(hazy, layer), dtype=np.uint8)
    return out


def noise_layers(width: int, height: int, seed: int, sigma: float) -> tuple[Image, Image]:
    """Positive and negative parts of Gaussian sensor noise, for cheap per-frame reuse."""
    gen = np.random.default_rng(seed)
    n = gen.standard_normal(size=(height, width, 3), dtype=np.float32) * np.float32(sigma)
    pos = np.clip(n, 0, 255).astype(np.uint8)
    neg = np.clip(-n, 0, 255).astype(np.uint8)
    return pos, neg


def add_noise(img: Image, layers: tuple[Image, Image]) -> Image:
    """Add precomputed noise (saturating)."""
    out: Image = np.asarray(cv2.subtract(cv2.add(img, layers[0]), layers[1]), dtype=np.uint8)
    return out


def blur(img: Image, rng: random.Random) -> Image:
    """Defocus or motion blur of a small random size."""
    if rng.random() < 0.5:
        k = rng.choice((3, 5))
        out: Image = np.asarray(cv2.GaussianBlur(img, (k, k), 0), dtype=np.uint8)
        return out
    k = rng.choice((3, 5, 7))
    kernel = np.zeros((k, k), np.float32)
    if rng.random() < 0.5:
        kernel[k // 2, :] = 1.0 / k
    else:
        kernel[:, k // 2] = 1.0 / k
    return np.asarray(cv2.filter2D(img, -1, kernel), dtype=np.uint8)


def jpeg(img: Image, quality: int) -> Image:
    """Round-trip through JPEG at ``quality``."""
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        return img
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if decoded is None:
        return img
    out: Image = np.asarray(decoded, dtype=np.uint8)
    return out
