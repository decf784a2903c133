"""QR plates: the plate secret, and sheets of plates for the sign maker.

The secret that signs plate links is a random 32-byte file of its own,
``data_dir/plate_secret`` (0600), made on first use. It is deliberately not derived from
the hub's signing key: that key is rotated (``central-hub keys``), and a plate screwed to
a wall must keep working for years. Losing the file voids every printed plate, so it
belongs in the same safe place as the hub's keys.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from central_hub.adapters.plate_sheet import PlateFace, render_pages, save_pdf
from central_hub.domain.qr_plates import PlatePoint, plate_url
from central_hub.errors import HubError
from central_hub.settings import HubSettings

__all__ = [
    "PLATE_SECRET_BYTES",
    "SheetReport",
    "load_or_create_plate_secret",
    "plate_faces",
    "plate_secret_path",
    "write_sheet",
]

log = logging.getLogger(__name__)

PLATE_SECRET_BYTES = 32


def plate_secret_path(settings: HubSettings) -> Path:
    """Where the hub keeps the secret its plate links are signed with."""
    return settings.data_dir / "plate_secret"


def load_or_create_plate_secret(path: Path) -> bytes:
    """The plate secret at ``path``; 32 random bytes written there (0600) when absent.

    Two processes that start at once agree on one secret: each writes its own to a
    temporary file and links it into place, and the one that finds the name taken reads
    the winner's. A file of the wrong length is refused, never replaced (that would void
    every printed plate).
    """
    try:
        secret = path.read_bytes()
    except FileNotFoundError:
        try:
            secret = _create(path)
        except OSError as exc:
            raise HubError(f"{path}: cannot create the plate secret: {exc.strerror}") from exc
    except OSError as exc:
        raise HubError(f"{path}: cannot read the plate secret: {exc.strerror}") from exc
    if len(secret) != PLATE_SECRET_BYTES:
        raise HubError(
            f"{path}: not a plate secret ({len(secret)} bytes, {PLATE_SECRET_BYTES} expected); "
            "restore it from a backup: a new one would void every printed plate"
        )
    return secret


def _create(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(PLATE_SECRET_BYTES)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(secret)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(partial, path)
        except FileExistsError:
            return path.read_bytes()  # another process made it first: use theirs
    finally:
        partial.unlink(missing_ok=True)
    log.info("created the plate secret at %s", path)
    return secret


def plate_faces(
    points: Sequence[PlatePoint], secret: bytes, base_url: str
) -> tuple[PlateFace, ...]:
    """What each plate shows, with its signed link under ``base_url``."""
    return tuple(
        PlateFace(
            point_id=point.id,
            street=point.street,
            url=plate_url(base_url, point.id, secret),
            lat=point.lat,
            lon=point.lon,
            name=point.name,
        )
        for point in points
    )


@dataclass(frozen=True)
class SheetReport:
    """What ``write_sheet`` printed: plates, pages, and the first plate's link."""

    plates: int
    pages: int
    out: Path
    first_url: str

    def summary(self) -> str:
        """One line for the operator."""
        return (
            f"{self.out}: {self.plates} plates on {self.pages} A4 pages "
            f"(first link {self.first_url})"
        )


def write_sheet(
    points: Sequence[PlatePoint],
    out: Path,
    *,
    secret: bytes,
    base_url: str,
    per_page: int,
    font: Path,
    dpi: int = 600,
) -> SheetReport:
    """Draw every plate on A4 pages and save them as one PDF at ``out``."""
    faces = plate_faces(points, secret, base_url)
    pages = render_pages(faces, per_page=per_page, font=font, dpi=dpi)
    save_pdf(pages, out, dpi=dpi)
    return SheetReport(plates=len(faces), pages=len(pages), out=out, first_url=faces[0].url)
