"""``xiuhua``: the demo launcher (``xiuhua demo``, which ``make demo`` runs).

``xiuhua demo [--duration SECONDS] [--speed FACTOR] [--broker auto|mosquitto|embedded|nats]
[--sound auto|wav|card] [--runs-dir DIR] [--api-port PORT]`` runs the closed loop: a
broker on a free port, the hub on SQLite with the sample district, two pole units and a
truck unit fed by scripted scenes through the real edge pipeline. It prints a live status
table and the API's address, and runs until Ctrl-C or ``--duration``; everything it
starts is stopped on the way out. Logs (the demo's own, the hub's, each unit's, the
broker's) go to ``runs/demo-<time>/logs/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xiuhua", description="xiuhua demo launcher")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="run the closed-loop demo (Ctrl-C stops it)")
    demo.add_argument("--duration", type=float, default=None, help="stop after SECONDS")
    demo.add_argument(
        "--speed", type=float, default=1.0, help="scenario seconds per wall second (0.1-30)"
    )
    demo.add_argument(
        "--broker",
        choices=["auto", "mosquitto", "embedded", "nats"],
        default="auto",
        help="auto: Mosquitto from PATH if installed, else the embedded Python broker;"
        " nats: nats-server's MQTT gateway (one hub worker: no $share groups there)",
    )
    demo.add_argument(
        "--sound",
        choices=["auto", "wav", "card"],
        default="auto",
        help="loudspeakers: WAV files in the run folder, or a real sound card (auto: if any)",
    )
    demo.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where run folders go")
    demo.add_argument("--api-port", type=int, default=None, help="hub API port (default: free)")
    return parser


async def _demo(args: argparse.Namespace) -> int:
    from simulators.demo.orchestrator import Demo, DemoOptions

    demo = Demo(
        DemoOptions(
            duration=args.duration,
            speed=args.speed,
            runs_dir=args.runs_dir,
            broker=args.broker,
            sound=args.sound,
            api_port=args.api_port,
            log_to_run_dir=True,
        )
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, demo.request_stop)
    return await demo.run(sys.stdout)


def _quiet_terminal() -> None:
    # The terminal shows the status table only: log records go to logs/demo.log in the
    # run folder (the demo adds that handler); errors that stop the demo are printed.
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(logging.NullHandler())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``xiuhua`` script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command != "demo":
        parser.print_help(sys.stderr)
        return 2
    from simulators.demo.orchestrator import DemoError
    from simulators.demo.plan import DemoPlanError

    _quiet_terminal()
    try:
        return asyncio.run(_demo(args))
    except DemoPlanError as exc:
        print(f"xiuhua demo: {exc}", file=sys.stderr)
        return 2
    except DemoError as exc:
        print(f"xiuhua demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
