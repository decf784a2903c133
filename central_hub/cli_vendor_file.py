"""``central-hub vendor-file keygen --out FILE``: the key that encrypts the vendor file's
identity numbers (:mod:`central_hub.adapters.id_cipher`); the hub finds it through
``XH_HUB_VENDOR_FILE_KEY_FILE``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from central_hub.adapters.id_cipher import write_key_file

__all__ = ["add_parsers", "run"]


def add_parsers(sub: Any) -> None:
    """Add ``vendor-file keygen`` to the CLI's subcommands."""
    p = sub.add_parser("vendor-file", help="the vendor file's encryption key")
    vsub = p.add_subparsers(dest="vendor_file_cmd", required=True)
    q = vsub.add_parser(
        "keygen", help="write a new key to FILE (mode 0600; never overwrites a file)"
    )
    q.add_argument("--out", type=Path, required=True, metavar="FILE")


def run(args: argparse.Namespace) -> str:
    """Carry out a ``vendor-file`` subcommand; the text to print."""
    cipher = write_key_file(args.out)
    print(
        f"keep a copy of {args.out} apart from the database's backups: without it the "
        "stored identity numbers cannot be read",
        file=sys.stderr,
    )
    return (
        f"wrote {args.out} (key id {cipher.key_id}); set XH_HUB_VENDOR_FILE_KEY_FILE={args.out}\n"
    )
