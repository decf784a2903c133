"""``central-hub model publish`` and ``central-hub rollout create|list|show|abort``.

Campaigns are written to the database; the running hub's rollout worker starts their
units and its command dispatcher sends the commands, so these work beside ``serve``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

from central_hub.domain.rollout import Policy
from central_hub.domain.workflow import Role
from central_hub.errors import HubError, InvalidInputError
from central_hub.hub import Hub, build_hub, load_or_create_key
from central_hub.services.rollouts import RolloutView, Target
from central_hub.settings import HubSettings

__all__ = ["add_parsers", "admin_name", "run"]


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_parsers(sub: Any, model_sub: Any) -> None:
    """Add ``model publish`` to ``model_sub`` and the ``rollout`` command to ``sub``."""
    q = model_sub.add_parser("publish", help="check a signed package and serve it to units")
    q.add_argument("directory", type=Path)
    q.add_argument("--by", required=True, help="the admin publishing (a hub user)")

    p = sub.add_parser("rollout", help="roll a model package or a config out to devices")
    rsub = p.add_subparsers(dest="rollout_cmd", required=True)
    q = rsub.add_parser("create", help="start a campaign: canary first, then the rest")
    what = q.add_mutually_exclusive_group(required=True)
    what.add_argument("--package", help="sha256 of a published package")
    what.add_argument("--config", type=Path, help="a YAML file of config sections to push")
    q.add_argument("--slot", help="model campaigns: the units' detector name (e.g. street)")
    q.add_argument(
        "--shadow",
        nargs="?",
        const="",
        default=None,
        metavar="CAMERAS",
        help="run the package beside the slot's model, only to compare, on these cameras "
        "(a,b; none given: every camera running the slot)",
    )
    q.add_argument("--devices", type=_csv, default=[], help="ids: a,b,c")
    q.add_argument("--kinds", type=_csv, default=[], help="pole,truck")
    q.add_argument("--areas", type=_csv, default=[], help="grid cell ids at any level")
    q.add_argument("--canary", type=int, default=1)
    q.add_argument("--rate", type=float, default=10.0, help="units started a minute")
    q.add_argument("--max-failed", type=float, default=0.2, help="share of units, 0-1")
    q.add_argument("--max-false-alarms", type=float, default=None, help="canary, 0-1")
    q.add_argument("--min-verdicts", type=int, default=5)
    q.add_argument("--soak", type=float, default=0.0, help="seconds to watch the canary")
    q.add_argument("--unit-timeout", type=float, default=1800.0, help="seconds")
    q.add_argument("--by", required=True, help="the admin starting it (a hub user)")
    rsub.add_parser("list", help="campaigns, newest first")
    q = rsub.add_parser("show", help="a campaign and each unit")
    q.add_argument("id", type=int)
    q = rsub.add_parser("abort", help="start no more units (--rollback: undo the done ones)")
    q.add_argument("id", type=int)
    q.add_argument("--rollback", action="store_true")
    q.add_argument("--by", required=True)


async def admin_name(hub: Hub, name: str) -> str:
    user = next((u for u in await hub.users.all() if u.name == name), None)
    if user is None or user.disabled or user.role is not Role.ADMIN:
        raise HubError(f"{name!r} is not an enabled admin: only admins publish and roll out")
    return user.name


def summary(view: RolloutView, *, units: bool = False) -> str:
    """A campaign in a few lines (with ``units``, one line per unit)."""
    what = f"model {view.package_sha256 and view.package_sha256[:12]} -> slot {view.slot}"
    if view.shadow is not None:
        what += " (shadow)"
    if view.kind == "config":
        what = "config"
    counts: dict[str, int] = {}
    for unit in view.units:
        counts[unit.state.value] = counts.get(unit.state.value, 0) + 1
    text = (
        f"rollout {view.id}: {what}; {view.phase.value}"
        + (f" ({view.reason})" if view.reason else "")
        + f"; {len(view.units)} units: "
        + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        + "\n"
    )
    if units:
        for u in view.units:
            mark = " canary" if u.canary else ""
            detail = f"  {u.detail}" if u.detail else ""
            text += f"  {u.device_id}{mark}: {u.state.value}{detail}\n"
    return text


async def run(settings: HubSettings, args: argparse.Namespace) -> str:
    """Carry out ``model publish`` or a ``rollout`` subcommand."""
    hub = await build_hub(settings, mqtt=False)
    try:
        if args.cmd == "model":
            by = await admin_name(hub, args.by)
            path = settings.model_key_path
            if not path.exists():
                raise HubError(f"no model-signing key at {path}: run `central-hub model key`")
            key = load_or_create_key(path, create=False).public_key()
            pkg = await hub.packages.publish(args.directory, key, by=by)
            return f"published {pkg.name} {pkg.version}: {pkg.sha256} ({pkg.size} bytes)\n"
        if args.rollout_cmd == "list":
            return "".join(summary(v) for v in await hub.rollouts.all()) or "no campaigns\n"
        if args.rollout_cmd == "show":
            return summary(await hub.rollouts.get(args.id), units=True)
        by = await admin_name(hub, args.by)
        if args.rollout_cmd == "abort":
            return summary(await hub.rollouts.abort(args.id, by=by, rollback=args.rollback))
        config = None
        if args.config is not None:
            try:
                config = yaml.safe_load(args.config.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                raise InvalidInputError(f"cannot read {args.config}: {exc}") from exc
            if not isinstance(config, dict):
                raise InvalidInputError(f"{args.config}: expected a mapping of config sections")
            json.dumps(config)  # what the command carries must be JSON
        policy = Policy(
            canary=args.canary,
            rate_per_min=args.rate,
            max_failed_share=args.max_failed,
            max_false_alarm_rate=args.max_false_alarms,
            min_verdicts=args.min_verdicts,
            soak_s=args.soak,
            unit_timeout_s=args.unit_timeout,
        )
        view = await hub.rollouts.create(
            target=Target(devices=args.devices, kinds=args.kinds, areas=args.areas),
            policy=policy,
            by=by,
            package_sha256=args.package,
            slot=args.slot,
            config=config,
            shadow_cameras=None if args.shadow is None else _csv(args.shadow),
        )
        return summary(view, units=True)
    finally:
        await hub.close()
