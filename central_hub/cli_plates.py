"""``central-hub plates``: check a city's QR plate points and print them on A4 sheets
(:mod:`central_hub.services.qr_plates`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from central_hub.adapters.plate_sheet import LAYOUTS, find_cjk_font
from central_hub.domain.errors import PlateError
from central_hub.domain.grid import Grid
from central_hub.domain.qr_plates import (
    SAMPLE_POINTS_PATH,
    PlatePoint,
    check_base_url,
    load_points,
    points_outside,
)
from central_hub.services.city_data import grid_source
from central_hub.services.qr_plates import (
    load_or_create_plate_secret,
    plate_secret_path,
    write_sheet,
)
from central_hub.settings import HubSettings

__all__ = ["add_parsers", "run"]


def add_parsers(sub: Any) -> None:
    """Add ``plates generate|check`` to the CLI's subcommands."""
    p = sub.add_parser("plates", help="QR plates citizens scan to report a problem")
    psub = p.add_subparsers(dest="plates_cmd", required=True)
    points_help = "the plates' points (GeoJSON; default: the sample's 200 plates)"
    q = psub.add_parser("generate", help="print the plates on A4 pages (PDF) for the sign maker")
    q.add_argument("--points", type=Path, default=SAMPLE_POINTS_PATH, help=points_help)
    q.add_argument("--out", type=Path, required=True, help="the PDF to write")
    q.add_argument(
        "--base-url", help="the hub's address as phones reach it (default: the public_url setting)"
    )
    q.add_argument("--per-page", type=int, default=8, choices=sorted(LAYOUTS))
    q.add_argument("--font", type=Path, help="a font with Chinese glyphs (default: XH_CJK_FONT)")
    q = psub.add_parser("check", help="check a points file and report every problem")
    q.add_argument("--points", type=Path, default=SAMPLE_POINTS_PATH, help=points_help)


def _checked(settings: HubSettings, path: Path) -> tuple[PlatePoint, ...]:
    """The file's plates, each standing in a street cell of the hub's grid."""
    points = load_points(path)
    outside = points_outside(points, Grid.load(grid_source(settings)))
    if outside:
        said = outside[0] if len(outside) == 1 else f"{len(outside)} plates outside the grid"
        raise PlateError(f"{path}: {said}", tuple(outside))
    return points


def run(settings: HubSettings, args: argparse.Namespace) -> int:
    """Carry out a ``plates`` subcommand; the exit status (problems are listed on stderr)."""
    try:
        points = _checked(settings, args.points)
    except PlateError as exc:
        if len(exc.problems) > 1:
            where = str(exc).split(": ", 1)[0]
            print(f"central-hub: {where}: {len(exc.problems)} problems", file=sys.stderr)
            for problem in exc.problems:
                print(f"  {problem}", file=sys.stderr)
        else:
            print(f"central-hub: {exc}", file=sys.stderr)
        return 1
    if args.plates_cmd == "check":
        streets = sorted({p.street for p in points})
        print(f"{args.points}: valid; {len(points)} plates on {len(streets)} streets")
        return 0
    base_url = check_base_url(args.base_url or settings.api_url)
    font = find_cjk_font(args.font)
    secret = load_or_create_plate_secret(plate_secret_path(settings))
    report = write_sheet(
        points,
        args.out,
        secret=secret,
        base_url=base_url,
        per_page=args.per_page,
        font=font,
    )
    print(report.summary())
    return 0
