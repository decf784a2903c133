"""``central-hub open311 key add|list|revoke``: api_keys of the trusted clients that file
citizens' reports through Open311 (:mod:`central_hub.services.citizen_reports`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from central_hub.hub import build_hub
from central_hub.services.citizen_reports import Open311Keys
from central_hub.settings import HubSettings

__all__ = ["add_parsers", "run"]


def add_parsers(sub: Any) -> None:
    """Add ``open311 key add|list|revoke`` to the CLI's subcommands."""
    p = sub.add_parser("open311", help="api_keys of the clients that file citizens' reports")
    osub = p.add_subparsers(dest="open311_cmd", required=True)
    k = osub.add_parser("key", help="add, list or revoke a trusted client's api_key")
    ksub = k.add_subparsers(dest="key_cmd", required=True)
    q = ksub.add_parser("add", help="make a key for client NAME and print it (shown once)")
    q.add_argument("name")
    ksub.add_parser("list", help="list the keys (never the keys themselves)")
    q = ksub.add_parser("revoke", help="stop client NAME's key working")
    q.add_argument("name")


async def run(settings: HubSettings, args: argparse.Namespace) -> str:
    """Carry out an ``open311`` subcommand; the text to print."""
    hub = await build_hub(settings, mqtt=False)
    try:
        keys = Open311Keys(hub.engine, hub.clock)
        if args.key_cmd == "add":
            key, secret = await keys.add(args.name)
            print(f"open311 key {key.name}; shown once, stored hashed:", file=sys.stderr)
            return f"{secret}\n"
        if args.key_cmd == "revoke":
            await keys.revoke(args.name)
            return f"revoked {args.name}\n"
        lines = [
            "\t".join(
                [
                    k.name,
                    k.created_at.isoformat(timespec="seconds"),
                    f"revoked {k.revoked_at.isoformat(timespec='seconds')}"
                    if k.revoked_at
                    else "active",
                ]
            )
            for k in await keys.all()
        ]
        return "".join(f"{line}\n" for line in lines)
    finally:
        await hub.close()
