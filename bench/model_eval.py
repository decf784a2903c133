"""Benchmark: held-out evaluation of the shipped street detector.

Prints one JSON line: ``{"bench": "model_eval", "map50": .., "per_class": {..},
"fp_per_empty_image": .., "latency_ms_2t": .., "params": ..}``. Options are those of
``models/train/evaluate.py`` (e.g. ``--images 1000 --empty 200 --model PATH``).
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

EVALUATE = Path(__file__).resolve().parents[1] / "models" / "train" / "evaluate.py"

if __name__ == "__main__":
    sys.argv[0] = str(EVALUATE)
    runpy.run_path(str(EVALUATE), run_name="__main__")
