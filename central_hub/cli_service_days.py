"""``central-hub service-days check|plan``: check a city's service days, and show what
the hub would push to each unit (:mod:`central_hub.domain.service_days`).

The running hub (``serve``) pushes the calendar it was started with to the units, at start
and every hour; after editing the file, check it, then restart the hub.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from central_hub.domain.catalogue import Catalogue
from central_hub.domain.errors import ServiceDayError
from central_hub.domain.grid import Grid
from central_hub.domain.service_days import DEFAULT_SERVICE_DAYS_PATH, ServiceDays
from central_hub.hub import build_hub
from central_hub.services.city_data import grid_source, load_service_days
from central_hub.settings import HubSettings

__all__ = ["add_parsers", "run"]


def add_parsers(sub: Any) -> None:
    """Add ``service-days check|plan`` to the CLI's subcommands."""
    p = sub.add_parser("service-days", help="convenience service days: rules suspended at a place")
    ssub = p.add_subparsers(dest="service_days_cmd", required=True)
    q = ssub.add_parser(
        "check", help="check a service-days file against the hub's catalogue and grid"
    )
    q.add_argument(
        "file",
        type=Path,
        nargs="?",
        help="the YAML file (default: the service_days_path setting, else the packaged sample)",
    )
    q.add_argument("--days", type=int, default=120, help="list the windows of this many days")
    ssub.add_parser("plan", help="what the hub would push to each registered unit now")


def _check(settings: HubSettings, path: Path, days: int) -> int:
    try:
        cal = load_service_days(
            path, Catalogue.load(settings.catalogue_path), Grid.load(grid_source(settings))
        )
    except ServiceDayError as exc:
        if exc.problems:
            where = str(exc).split(": ", 1)[0]
            print(f"central-hub: {where}: {len(exc.problems)} problem(s)", file=sys.stderr)
            for problem in exc.problems:
                print(f"  {problem}", file=sys.stderr)
        else:
            print(f"central-hub: {exc}", file=sys.stderr)
        return 1
    windows = sum(len(d.windows) for d in cal.days)
    print(f"{path}: valid; {len(cal.days)} service days, {windows} windows ({cal.tz})")
    _print_upcoming(cal, datetime.now(UTC), days)
    return 0


def _print_upcoming(cal: ServiceDays, now: datetime, days: int) -> None:
    upcoming = cal.upcoming(now, days)
    if not upcoming:
        print(f"  none in the next {days} days")
    for s in upcoming:
        start, end = s.window.start.astimezone(cal.zone), s.window.end.astimezone(cal.zone)
        print(
            f"  {start:%Y-%m-%d %H:%M}-{end:%H:%M} {s.service_day.name}: "
            f"{s.service_day.what()} at {s.service_day.places()}"
        )


async def _plan(settings: HubSettings) -> int:
    hub = await build_hub(settings, mqtt=False)
    try:
        outcomes = await hub.service_days.push(dry_run=True)
    finally:
        await hub.close()
    if not outcomes:
        print("no units registered")
    for o in outcomes:
        state = "would push" if o.note else "up to date"
        print(f"{o.device_id}: {o.exemptions} exemption(s), {state}")
    return 0


def run(settings: HubSettings, args: argparse.Namespace) -> int:
    """Carry out a ``service-days`` subcommand; the exit status."""
    if args.service_days_cmd == "check":
        path = args.file or settings.service_days_path or DEFAULT_SERVICE_DAYS_PATH
        return _check(settings, path, args.days)
    return asyncio.run(_plan(settings))
