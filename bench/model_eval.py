"""Benchmark: held-out evaluation of the shipped street detector and plate reader.

Prints one JSON line: ``{"bench": "model_eval", "map50": .., "per_class": {..},
"fp_per_empty_image": .., "latency_ms_2t": .., "params": .., "plates": {..}}``. The
detector's figures and options are those of ``models/train/evaluate.py`` (e.g.
``--images 1000 --empty 200 --model PATH``). ``plates`` holds the plate reader's
exact-plate accuracy on rendered plates (``simulators.scenes.plates.plate_set``, seeds
no test uses) per condition and overall, how many it read wrongly (a plate that is not
the true one: worse than none), and its median ms per plate on one thread (detector,
rectification, recogniser); ``colour_only`` is the baseline in the same run, the same
recogniser with the plate found by colour alone (the reader before the text detector);
``prior_zhe_j`` the exact-plate accuracy on the same seeds with every plate ``浙J``, read
without and with the prior ``浙J``.
``--plates N`` sets the plates per condition (default 40, 8 conditions); ``--plates 0``
skips them, ``--plates-only`` skips the detector.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EVALUATE = ROOT / "models" / "train" / "evaluate.py"
#: First seed of the benchmark's plates (the tests use seeds below 10,000).
PLATE_SEED = 50_000


def plate_figures(per_condition: int, model: Path | None = None) -> dict[str, object]:
    """The plate reader's figures on ``per_condition`` rendered plates of every condition,
    with the colour-only baseline."""
    sys.path.insert(0, str(ROOT))
    from edge_agent.vision.plates import (
        REC_MODEL_FILE,
        OnnxPlateReader,
        PlatePrior,
        default_plate_model,
    )
    from simulators.scenes.plates import PLATE_CONDITIONS, PlateSample, plate_set

    folder = model or default_plate_model()
    samples = plate_set(per_condition, PLATE_SEED)

    def score(reader: OnnxPlateReader, samples: list[PlateSample]) -> dict[str, Any]:
        exact: Counter[str] = Counter()
        wrong = 0
        times = []
        reader.read(samples[0].image, samples[0].car_box)  # load the models first
        for s in samples:
            t = time.perf_counter()
            plate = reader.read(s.image, s.car_box)
            times.append((time.perf_counter() - t) * 1000)
            exact[s.condition] += plate is not None and plate.text == s.text
            wrong += plate is not None and plate.text != s.text
        per = {c: round(exact[c] / per_condition, 3) for c in PLATE_CONDITIONS}
        return {
            "exact": {**per, "overall": round(sum(exact.values()) / len(samples), 3)},
            "wrong": round(wrong / len(samples), 3),
            "ms_per_plate_1t": round(statistics.median(times), 1),
        }

    full = score(OnnxPlateReader(folder, threads=1), samples)
    colour = score(OnnxPlateReader(folder / REC_MODEL_FILE, threads=1), samples)
    # A city's prior: the same seeds, every plate 浙J (but the black 粤Z), read without
    # and with the prior 浙J.
    zhe_j = plate_set(per_condition, PLATE_SEED, "浙J")
    with_prior = OnnxPlateReader(folder, threads=1, prior=PlatePrior.parse("浙J"))
    prior = {
        "without": score(OnnxPlateReader(folder, threads=1), zhe_j)["exact"],
        "with": score(with_prior, zhe_j)["exact"],
    }
    return {**full, "colour_only": colour, "prior_zhe_j": prior, "plates": len(samples)}


def main(argv: list[str] | None = None) -> int:
    """Run the detector's evaluation and the plates', print one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__, add_help=False)
    ap.add_argument("--plates", type=int, default=40, help="rendered plates per condition")
    ap.add_argument("--plates-only", action="store_true", help="skip the detector")
    args, rest = ap.parse_known_args(argv)
    result: dict[str, object] = {"bench": "model_eval"}
    if not args.plates_only:
        # A module registered by name, not runpy's namespace: evaluate.py renders its
        # scenes in worker processes, which pickle its functions by module name.
        spec = importlib.util.spec_from_file_location("model_train_evaluate", EVALUATE)
        if spec is None or spec.loader is None:
            raise SystemExit(f"cannot load {EVALUATE}")
        evaluate = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = evaluate
        spec.loader.exec_module(evaluate)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = evaluate.main(rest)
        if code:
            return int(code)
        result.update(json.loads(out.getvalue().strip().splitlines()[-1]))
    if args.plates > 0:
        result["plates"] = plate_figures(args.plates)
    print(json.dumps(result, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
