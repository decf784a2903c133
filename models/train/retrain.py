"""From operators' verdicts to a candidate model package, in one run (issue #13).

Each step is one of the tools beside this file, run in its own process, so each can also
be run (or rerun) by hand; ``OUT`` keeps everything each step wrote:

1. ``central-hub dataset export`` of the decisions in ``[--since, --until)``, as the admin
   ``--by`` (faces blurred) -> ``OUT/export``;
2. ``--synthetic-train``/``--synthetic-val`` synthetic scenes (``dataset.py``) and the
   field frames letterboxed beside them (``field_data.py``) -> ``OUT/data``;
3. the current model's weights in PyTorch (``from_onnx.py``) -> ``OUT/init.pt``;
4. fine-tuning from them (``train.py --init``), at most ``--epochs`` or ``--max-minutes``,
   on the CPU or a CUDA machine -> ``OUT/train/model.onnx``;
5. the candidate and the current model scored on the same field validation split and the
   candidate packaged with both figures on its card (``candidate.py``) -> ``OUT/package``.

The package is not signed: a person reads its card, then ``central-hub model sign`` and
``central-hub model publish`` it, and starts a rollout. One JSON line: the candidate's
figures beside the current model's, the counts of each step and the seconds it took.

    python models/train/retrain.py --hub-data-dir var/hub --since 2026-11-01 \\
        --until 2026-12-01 --by admin --version 1.1.0 --out runs/retrain-1.1.0
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _run(argv: list[str], env: dict[str, str] | None = None) -> str:
    """Run a step; its stdout, or SystemExit with its stderr's tail."""
    done = subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise SystemExit(f"retrain: {' '.join(argv[:2])} failed:\n  " + "\n  ".join(tail))
    return done.stdout


def retrain(args: argparse.Namespace) -> dict[str, object]:
    """Run the five steps (see the module docstring); the figures."""
    out: Path = args.out
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"retrain: {out} is not empty: give a new folder")
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    t = time.monotonic()
    hub_env = {"XH_HUB_DATA_DIR": str(args.hub_data_dir)}
    if args.hub_db:
        hub_env["XH_HUB_DB_URL"] = args.hub_db
    exported = _run(
        [
            "-m",
            "central_hub.cli",
            "dataset",
            "export",
            "--since",
            args.since,
            "--until",
            args.until,
            "--out",
            str(out / "export"),
            "--by",
            args.by,
            "--model",
            str(args.current),
        ],
        hub_env,
    )
    seconds["export"] = time.monotonic() - t
    t = time.monotonic()
    data = out / "data"
    if args.synthetic_train or args.synthetic_val:
        _run(
            [
                str(HERE / "dataset.py"),
                str(data),
                "--train",
                str(args.synthetic_train),
                "--val",
                str(args.synthetic_val),
            ]
        )
    field = _run([str(HERE / "field_data.py"), str(out / "export"), str(data)])
    seconds["data"] = time.monotonic() - t
    t = time.monotonic()
    _run([str(HERE / "from_onnx.py"), str(args.current), str(out / "init.pt")])
    train = [
        str(HERE / "train.py"),
        "--data",
        str(data),
        "--out",
        str(out / "train"),
        "--init",
        str(out / "init.pt"),
        "--epochs",
        str(args.epochs),
        "--max-minutes",
        str(args.max_minutes),
        "--device",
        args.device,
    ]
    if args.batch:
        train += ["--batch", str(args.batch)]
    if args.lr:
        train += ["--lr", str(args.lr)]
    _run(train)
    seconds["train"] = time.monotonic() - t
    t = time.monotonic()
    scored = _run(
        [
            str(HERE / "candidate.py"),
            "--candidate",
            str(out / "train" / "model.onnx"),
            "--current",
            str(args.current),
            "--data",
            str(data),
            "--version",
            args.version,
            "--out",
            str(out / "package"),
        ]
    )
    seconds["score"] = time.monotonic() - t
    figures = json.loads(scored.strip().splitlines()[-1])
    return {
        "bench": "retrain",
        "version": args.version,
        "exported": exported.strip(),
        "field": field.strip(),
        "current": figures["current"],
        "candidate": figures["candidate"],
        "package": str(out / "package"),
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hub-data-dir", type=Path, required=True, help="the hub's data_dir")
    ap.add_argument("--hub-db", default=None, help="the hub's database URL, if not SQLite there")
    ap.add_argument("--since", required=True, help="decisions from (ISO date/time)")
    ap.add_argument("--until", required=True, help="decisions before (ISO date/time)")
    ap.add_argument("--by", required=True, help="the admin exporting (a hub user)")
    ap.add_argument("--current", type=Path, default=ROOT / "models" / "street-detector")
    ap.add_argument("--version", required=True, help="the candidate's version")
    ap.add_argument("--out", type=Path, required=True, help="a new folder")
    ap.add_argument("--synthetic-train", type=int, default=200)
    ap.add_argument("--synthetic-val", type=int, default=40)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--max-minutes", type=float, default=5.0)
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--lr", type=float, default=0.0)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    print(json.dumps(retrain(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
