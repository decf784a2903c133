"""A field set from ``central-hub dataset export`` in the trainer's layout.

The export holds the units' frames at their own sizes with YOLO labels normalised to each
frame; ``train.py`` reads 320x320 letterboxed images with labels normalised to that
square (``dataset.py``'s layout). This letterboxes each frame exactly as the unit does
(grey 114 bands, centred) and moves its boxes with it; hard negatives keep their empty
label files. Files are named ``field-<event id>``, so synthetic scenes generated into the
same root (``dataset.py``) sit beside them: a fine-tuning set mixes both.

    python models/train/field_data.py EXPORT_DIR DATA_ROOT
    python models/train/from_onnx.py models/street-detector street.pt
    python models/train/train.py --data DATA_ROOT --init street.pt --out runs/field
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import yaml
from dataset import INPUT

from simulators.scenes import LABELS, letterbox


def convert(export: Path, root: Path) -> dict[str, int]:
    """Write ``export``'s images and labels under ``root/{train,val}``; images per split."""
    names = yaml.safe_load((export / "data.yaml").read_text(encoding="utf-8"))["names"]
    classes = [names[k] for k in sorted(names, key=int)]
    if tuple(classes) != tuple(LABELS):
        raise ValueError(
            f"{export} was exported for the classes {classes}; the trainer's are {list(LABELS)}"
        )
    counts: dict[str, int] = {}
    for split in ("train", "val"):
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "labels").mkdir(parents=True, exist_ok=True)
        counts[split] = 0
        for path in sorted((export / "images" / split).glob("*.jpg")):
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is None:
                raise ValueError(f"{path} is not a readable JPEG")
            h, w = frame.shape[:2]
            square, scale, px, py = letterbox(frame, INPUT)
            lines = []
            label_file = export / "labels" / split / f"{path.stem}.txt"
            for row in label_file.read_text(encoding="utf-8").split("\n"):
                if not row.strip():
                    continue
                cls, cx, cy, bw, bh = row.split()
                x, y = float(cx) * w * scale + px, float(cy) * h * scale + py
                sw, sh = float(bw) * w * scale, float(bh) * h * scale
                lines.append(
                    f"{int(cls)} {x / INPUT:.6f} {y / INPUT:.6f} {sw / INPUT:.6f} {sh / INPUT:.6f}"
                )
            name = f"field-{path.stem}"
            cv2.imwrite(
                str(root / split / "images" / f"{name}.jpg"), square, [cv2.IMWRITE_JPEG_QUALITY, 95]
            )
            (root / split / "labels" / f"{name}.txt").write_text(
                "".join(f"{line}\n" for line in lines), encoding="utf-8"
            )
            counts[split] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export", type=Path, help="a folder `central-hub dataset export` wrote")
    ap.add_argument("root", type=Path, help="the trainer's data root (train/, val/)")
    args = ap.parse_args(argv)
    counts = convert(args.export, args.root)
    print(f"{counts['train']} train and {counts['val']} val field images in {args.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
