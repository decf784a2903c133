"""``python -m simulators.broker``: run the embedded MQTT broker until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from simulators.broker.access import AccessFileError, load_acl, load_passwords
from simulators.broker.server import Broker, BrokerSettings

__all__ = ["main"]


async def _run(settings: BrokerSettings) -> None:
    broker = Broker(settings)
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    print(f"embedded broker listening on {settings.host}:{broker.port}", flush=True)
    try:
        await stop.wait()
    finally:
        await broker.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the flags and run the broker; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m simulators.broker", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="TCP port (never assume 1883)")
    parser.add_argument("--password-file", type=Path, help="Mosquitto password file")
    parser.add_argument("--acl-file", type=Path, help="Mosquitto ACL file")
    parser.add_argument(
        "--allow-anonymous",
        action="store_true",
        help="accept clients without a username (default: only with no password file)",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        passwords = load_passwords(args.password_file) if args.password_file else None
        acl = load_acl(args.acl_file) if args.acl_file else None
    except AccessFileError as exc:
        print(f"embedded broker: {exc}", file=sys.stderr)
        return 2
    settings = BrokerSettings(
        host=args.host,
        port=args.port,
        passwords=passwords,
        acl=acl,
        allow_anonymous=args.allow_anonymous or passwords is None,
    )
    try:
        asyncio.run(_run(settings))
    except OSError as exc:
        print(f"embedded broker: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
