"""``xiuhua``: the demo launcher.

The closed-loop demo (broker, hub, two pole units and a truck unit fed by scripted
scenes) is the subject of its own issue and is not built yet; until then this command
says so plainly instead of pretending.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``xiuhua`` script."""
    parser = argparse.ArgumentParser(prog="xiuhua", description="xiuhua demo launcher")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="run the closed-loop demo")
    demo.add_argument("--duration", type=float, default=None, help="stop after SECONDS")
    demo.add_argument("--speed", type=float, default=1.0, help="scenario time per wall second")
    args = parser.parse_args(argv)
    if args.command != "demo":
        parser.print_help(sys.stderr)
        return 2
    sys.stderr.write(
        "xiuhua demo: not built yet. The closed-loop demo (broker, hub, pole and truck "
        "units) lands with the demo issue; see README.md for what works today.\n"
    )
    return 3


if __name__ == "__main__":
    raise SystemExit(main())
