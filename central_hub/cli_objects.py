"""``central-hub objects import FILE`` and ``central-hub vehicles import FILE``: load a
city's service objects or vehicles from CSV or XLSX (:mod:`central_hub.services.
service_objects`, :mod:`central_hub.services.vehicles`).

Each bad row is printed to stderr as ``FILE: row N, column C: reason``; the good rows are
stored all the same (a file whose header is wrong stores nothing), and the exit status
is 1 when any row was bad, so a script can tell.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from central_hub.errors import HubError
from central_hub.hub import build_hub
from central_hub.services.service_objects import ImportReport, ServiceObjects
from central_hub.services.vehicles import VehicleRegistry
from central_hub.settings import HubSettings

__all__ = ["add_parsers", "run"]

#: Who an import from the command line is by, in the audit trail.
CLI_ACTOR = "cli"


def add_parsers(sub: Any) -> None:
    """Add ``objects import FILE`` and ``vehicles import FILE`` to the CLI's subcommands."""
    p = sub.add_parser("objects", help="the service-object registry (shops, companies, ...)")
    osub = p.add_subparsers(dest="objects_cmd", required=True)
    q = osub.add_parser(
        "import", help="import a CSV or XLSX of objects; re-importing updates by name+address"
    )
    q.add_argument("file", type=Path)
    p = sub.add_parser("vehicles", help="the vehicle registry (plates to owners)")
    vsub = p.add_subparsers(dest="vehicles_cmd", required=True)
    q = vsub.add_parser("import", help="import a CSV or XLSX of plates, owners and phones")
    q.add_argument("file", type=Path)


def describe(report: ImportReport) -> str:
    """The summary line of an import."""
    return (
        f"{report.file}: {report.rows} rows: {report.created} created, {report.updated} "
        f"updated, {report.unchanged} unchanged, {report.bad_rows} bad"
    )


async def run(settings: HubSettings, args: argparse.Namespace) -> int:
    """Carry out ``objects import`` or ``vehicles import``; the exit status."""
    path: Path = args.file
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise HubError(f"{path}: cannot read it: {exc}") from exc
    hub = await build_hub(settings, mqtt=False)
    try:
        if args.cmd == "objects":
            report = await ServiceObjects.of_hub(hub).import_file(data, path.name, CLI_ACTOR)
        else:
            report = await VehicleRegistry(hub.engine, hub.clock).import_file(
                data, path.name, CLI_ACTOR
            )
    finally:
        await hub.close()
    for problem in report.problems:
        print(
            f"{path}: row {problem.row}, column {problem.column}: {problem.reason}", file=sys.stderr
        )
    print(describe(report))
    if (
        report.problems
        and report.created + report.updated + report.unchanged == 0
        and any(p.row == 1 for p in report.problems)
    ):
        return 2
    return 1 if report.problems else 0
