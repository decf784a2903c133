"""Dataset generation (YOLO text format) and loading into memory.

Layout written under ``root``::

    root/train/images/000000.jpg   320x320 letterboxed scene (gray 114 bands)
    root/train/labels/000000.txt   one line per object: class cx cy w h (normalised to 320)
    root/val/...

Each image is a full 16:9 scene rendered at 640x360, 960x540 or 1280x720 and letterboxed
to 320x320 exactly as the edge agent letterboxes camera frames.
"""

from __future__ import annotations

import os
import random
import sys
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from simulators.scenes import LABEL_INDEX, letterbox, render_sample

INPUT = 320
SIZES = ((640, 360), (960, 540), (1280, 720))
SIZE_WEIGHTS = (0.6, 0.25, 0.15)
#: Seed bases: training, validation and the held-out evaluation never share a seed.
SEED_TRAIN = 1_000_000
SEED_VAL = 2_000_000
SEED_HELDOUT = 7_000_000
SEED_EMPTY = 9_000_000


def render_letterboxed(seed: int, empty: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One training image (BGR 320x320) and its labels ``[K, 5]``: class, x1, y1, x2, y2 px."""
    size_rng = random.Random(seed ^ 0x5EED)
    w, h = size_rng.choices(SIZES, SIZE_WEIGHTS)[0]
    sample = render_sample(seed, w, h, empty=empty)
    img, scale, px, py = letterbox(sample.image, INPUT)
    rows = [
        (
            LABEL_INDEX[lab],
            b[0] * scale + px,
            b[1] * scale + py,
            b[2] * scale + px,
            b[3] * scale + py,
        )
        for lab, b in sample.labels
    ]
    return img, np.array(rows, dtype=np.float32).reshape(-1, 5)


def _write_one(job: tuple[str, int, int, bool]) -> int:
    root, index, seed, empty = job
    img, lab = render_letterboxed(seed, empty)
    base = Path(root)
    cv2.imwrite(str(base / "images" / f"{index:06d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    lines = []
    for c, x1, y1, x2, y2 in lab:
        cx, cy = (x1 + x2) / 2 / INPUT, (y1 + y2) / 2 / INPUT
        bw, bh = (x2 - x1) / INPUT, (y2 - y1) / INPUT
        lines.append(f"{int(c)} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
    (base / "labels" / f"{index:06d}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    return len(lines)


def generate_split(
    root: Path, n: int, seed_base: int, workers: int, empty_frac: float = 0.05, desc: str = "render"
) -> int:
    """Render ``n`` images into ``root/images`` and ``root/labels``; return the object count."""
    from tqdm import tqdm

    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    n_empty = int(n * empty_frac)
    jobs = [(str(root), i, seed_base + i, i < n_empty) for i in range(n)]
    total = 0
    if workers <= 1:
        for job in tqdm(jobs, desc=desc, mininterval=2.0):
            total += _write_one(job)
        return total
    with get_context("fork").Pool(workers) as pool:
        for count in tqdm(
            pool.imap_unordered(_write_one, jobs, chunksize=16), total=n, desc=desc, mininterval=2.0
        ):
            total += count
    return total


def read_labels(path: Path) -> np.ndarray:
    """A YOLO label file to ``[K, 5]``: class, x1, y1, x2, y2 in 320-input pixels."""
    rows = []
    text = path.read_text() if path.exists() else ""
    for line in text.splitlines():
        if not line.strip():
            continue
        c, cx, cy, w, h = (float(v) for v in line.split())
        rows.append(
            (
                c,
                (cx - w / 2) * INPUT,
                (cy - h / 2) * INPUT,
                (cx + w / 2) * INPUT,
                (cy + h / 2) * INPUT,
            )
        )
    return np.array(rows, dtype=np.float32).reshape(-1, 5)


def _load_one(path: str) -> tuple[np.ndarray, np.ndarray]:
    p = Path(path)
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(path)
    lab = read_labels(p.parent.parent / "labels" / (p.stem + ".txt"))
    return np.ascontiguousarray(img[:, :, ::-1]), lab  # RGB for the network


def load_split(root: Path, workers: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """All images of a split as one RGB uint8 array ``[N, 320, 320, 3]`` plus labels."""
    files = sorted(str(p) for p in (root / "images").glob("*.jpg"))
    workers = workers or min(16, os.cpu_count() or 1)
    if workers > 1 and len(files) > 64:
        with get_context("fork").Pool(workers) as pool:
            items = pool.map(_load_one, files, chunksize=64)
    else:
        items = [_load_one(f) for f in files]
    images = np.stack([i[0] for i in items]) if items else np.zeros((0, INPUT, INPUT, 3), np.uint8)
    return images, [i[1] for i in items]


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python models/train/dataset.py OUT --train N --val N [--workers K]``."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("out", type=Path)
    ap.add_argument("--train", type=int, default=4000)
    ap.add_argument("--val", type=int, default=500)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)
    n_tr = generate_split(args.out / "train", args.train, SEED_TRAIN, args.workers, desc="train")
    n_va = generate_split(args.out / "val", args.val, SEED_VAL, args.workers, desc="val")
    print(
        f"dataset: {args.train} train images ({n_tr} objects), {args.val} val ({n_va})", flush=True
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
