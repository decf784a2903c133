"""``edge-agent`` command line.

Each subcommand lives in the module that owns its stage; a module contributes its
subcommands through ``register(subparsers)`` and sets ``func`` on its parser. Modules are
imported only when the CLI runs, so ``import edge_agent`` stays light.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

#: Modules that contribute subcommands, in help order.
SUBCOMMAND_MODULES = (
    "edge_agent.run_command",  # run
    "edge_agent.config",  # validate
    "edge_agent.vision.tools",  # replay, draw-zones
    "edge_agent.vision.eval_tool",  # eval
)


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every available subcommand registered."""
    parser = argparse.ArgumentParser(prog="edge-agent", description="xiuhua edge agent")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``edge-agent`` script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    return func(args)


if __name__ == "__main__":
    raise SystemExit(main())
