"""``central-hub keys``: rotate the hub's command-signing key (:mod:`central_hub.services.keys`)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

from central_hub.cli_rollout import admin_name
from central_hub.errors import HubError
from central_hub.hub import build_hub
from central_hub.services.keys import (
    current_rotation,
    finish_rotation,
    rotation_status,
    send_trust,
    start_rotation,
)
from central_hub.settings import HubSettings

__all__ = ["add_parsers", "run"]


def add_parsers(sub: Any) -> None:
    """Add ``keys rotate|status|resend|finish`` to the CLI's subcommands."""
    p = sub.add_parser("keys", help="rotate the hub's command-signing key")
    ksub = p.add_subparsers(dest="keys_cmd", required=True)
    q = ksub.add_parser("rotate", help="make the next key; ask every unit to trust it")
    q.add_argument("--overlap-days", type=float, default=14.0, help="units trust both this long")
    q.add_argument("--by", required=True, help="the admin doing it (audited on each command)")
    ksub.add_parser("status", help="which units confirmed the next key")
    q = ksub.add_parser("resend", help="ask the units that have not confirmed again")
    q.add_argument("--by", required=True)
    q = ksub.add_parser("finish", help="make the next key current (stop the hub first)")
    q.add_argument("--force", action="store_true", help="even if some units did not confirm")
    q.add_argument(
        "--new-identity",
        action="store_true",
        help="new MQTT client ids and share group too (a leaked key; drain the old sessions)",
    )


async def run(settings: HubSettings, args: argparse.Namespace) -> str:
    """Carry out a ``keys`` subcommand; the text to print."""
    hub = await build_hub(settings, mqtt=False)
    now = datetime.now(UTC)
    try:
        if args.keys_cmd == "rotate":
            by = await admin_name(hub, args.by)
            rotation, queued = await start_rotation(
                settings, hub.commands, overlap=timedelta(days=args.overlap_days), now=now, by=by
            )
            return (
                f"next key {rotation.next_public_key}\n"
                f"asked {len(queued)} units to trust it; they trust the current one until "
                f"{rotation.previous_until.isoformat()}\n"
                "when `central-hub keys status` shows them all, stop the hub, run "
                "`central-hub keys finish` and start it again\n"
            )
        if args.keys_cmd == "resend":
            by = await admin_name(hub, args.by)
            under_way = current_rotation(settings)
            if under_way is None:
                raise HubError("no key rotation is under way")
            status = await rotation_status(settings, hub.commands)
            queued = await send_trust(hub.commands, under_way, status.waiting, by=by)
            return f"asked {len(queued)} units again\n"
        if args.keys_cmd == "status":
            status = await rotation_status(settings, hub.commands)
            lines = [
                f"next key {status.rotation.next_public_key} "
                f"(units drop the current one at {status.rotation.previous_until.isoformat()})",
                f"confirmed: {len(status.confirmed)}",
                f"waiting:   {len(status.waiting)} {' '.join(status.waiting[:20])}",
            ]
            lines += [f"refused by {d}: {why}" for d, why in sorted(status.refused.items())]
            return "\n".join(lines) + "\n"
        retired = await finish_rotation(
            settings, hub.commands, now=now, force=args.force, new_identity=args.new_identity
        )
        return (
            f"the next key is now the hub's key; the old one is kept at {retired}\n"
            "start the hub: it re-signs the units' desired configs with the new key\n"
        )
    finally:
        await hub.close()
