"""``edge-agent run --config FILE``: load the config and run the :class:`Agent` until signalled.

Also ``python -m edge_agent.run_command --config FILE`` (the ``run`` subcommand on its
own). Exit status: 0 after a clean stop, 1 if the agent cannot start, 2 for a bad config.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent import protocol
from edge_agent.config import ConfigError, load_config
from edge_agent.link.errors import EdgeLinkError
from edge_agent.runner import Agent
from edge_agent.speaker.errors import SpeakerError

if TYPE_CHECKING:  # the vision package (OpenCV) loads only on units with cameras
    from edge_agent.vision.sources import SourceFactory

log = logging.getLogger(__name__)

__all__ = ["main", "register"]


async def _run_until_signalled(agent: Agent) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.request_stop)
    await agent.run()


#: Files the agent creates (outbox, model store, a pushed config) are its own alone.
PRIVATE_UMASK = 0o077


def _run_command(args: argparse.Namespace, source_factory: SourceFactory | None = None) -> int:
    os.umask(PRIVATE_UMASK)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    path = Path(args.config)
    try:
        config = load_config(path)
    except ConfigError as exc:
        log.error("%s: %d config error(s)", path, len(exc.errors))
        for line in exc.errors:
            log.error("  %s", line)
        return 2
    if config.vision.cameras:
        # Now, before any thread exists: glibc limits only the malloc arenas made later.
        from edge_agent.vision.memory import apply_memory_settings

        apply_memory_settings(config.vision.memory)
    try:
        agent = Agent(config, config_path=path, source_factory=source_factory)
        asyncio.run(_run_until_signalled(agent))
    except (EdgeLinkError, protocol.ProtocolError, SpeakerError) as exc:
        log.error("agent cannot start: %s", exc)
        return 1
    return 0


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="the device's YAML config file")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")


def register(subparsers: Any) -> None:
    """Add ``run --config FILE`` to the ``edge-agent`` command line."""
    parser = subparsers.add_parser("run", help="run the agent with a device config file")
    _add_run_arguments(parser)
    parser.set_defaults(func=_run_command)


def main(argv: Sequence[str] | None = None, *, source_factory: SourceFactory | None = None) -> int:
    """``python -m edge_agent.run_command --config FILE``: the ``run`` subcommand on its own.

    ``source_factory`` is passed to the :class:`Agent` (a simulator's launcher gives one).
    """
    parser = argparse.ArgumentParser(prog="edge_agent.run_command", description=__doc__)
    _add_run_arguments(parser)
    return _run_command(parser.parse_args(argv), source_factory)


if __name__ == "__main__":
    raise SystemExit(main())
