"""Model packages the hub serves: published once (signature checked), kept as tar archives.

``central-hub model publish DIR`` checks a signed package directory against the hub's
model key (the unit will check it again), packs it into one uncompressed tar (files in
name order, times and owners zeroed, so the same package always gives the same archive
and the same sha256) and records it in ``model_packages``. Units fetch the archive over
HTTP with a one-time token of their rollout (``GET /api/v1/packages/{sha256}``, with
``Range`` so an interrupted download resumes); :func:`parse_range` reads that header.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.db.schema import model_packages
from central_hub.errors import InvalidInputError, NotFoundError
from edge_agent.vision.manifest import MANIFEST_NAME, read_manifest_file
from edge_agent.vision.package import PackageError, verify_package

__all__ = ["PackageStore", "PackageView", "RangeError", "pack_archive", "parse_range"]

_SHA = re.compile(r"^[0-9a-f]{64}$")


class RangeError(InvalidInputError):
    """A ``Range`` header the hub cannot satisfy (answered 416)."""


class PackageView(BaseModel):
    """A published package."""

    model_config = ConfigDict(frozen=True)

    sha256: str
    name: str
    version: str
    size: int
    labels: list[str]
    created_at: datetime
    created_by: str


def pack_archive(directory: Path) -> bytes:
    """The package directory as a tar archive, the same bytes for the same files."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            info = tarfile.TarInfo(path.relative_to(directory).as_posix())
            info.size = path.stat().st_size
            info.mode, info.mtime, info.uid, info.gid = 0o644, 0, 0, 0
            info.uname = info.gname = ""
            with path.open("rb") as fh:
                tar.addfile(info, fh)
    return buffer.getvalue()


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` (end exclusive) of a ``bytes=N-`` or ``bytes=N-M`` header; None
    without one. One range only (a resuming download asks for the rest)."""
    if not header:
        return None
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if match is None or (not match[1] and not match[2]):
        raise RangeError(f"Range {header!r}: expected one range, bytes=START- or bytes=START-END")
    if not match[1]:  # a suffix: the last N bytes
        length = int(match[2])
        return max(0, size - length), size
    start = int(match[1])
    end = min(size, int(match[2]) + 1) if match[2] else size
    if start >= size or end <= start:
        raise RangeError(f"Range {header!r} is outside the package's {size} bytes")
    return start, end


class PackageStore:
    """The published packages: rows in ``model_packages``, archives under ``root``."""

    def __init__(self, engine: AsyncEngine, root: Path, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.root = root
        self.clock = clock

    def path(self, sha256: str) -> Path:
        """Where the archive of ``sha256`` lies (whether or not it exists)."""
        if not _SHA.match(sha256):
            raise NotFoundError(f"no package {sha256!r} (a package is named by its sha256)")
        return self.root / f"{sha256}.tar"

    async def publish(self, directory: Path, key: Ed25519PublicKey, *, by: str) -> PackageView:
        """Check ``directory`` against the model key, pack and record it (idempotent)."""
        try:
            verify_package(directory, key)
        except PackageError as exc:
            raise InvalidInputError(f"not published: {exc}") from exc
        manifest: dict[str, Any] = read_manifest_file(directory / MANIFEST_NAME, PackageError)
        name, version = str(manifest.get("name") or ""), str(manifest.get("version") or "")
        if not name or not version:
            raise InvalidInputError(f"not published: {directory}'s manifest needs name and version")
        labels = [str(x) for x in manifest.get("labels") or []]
        data = pack_archive(directory)
        sha = hashlib.sha256(data).hexdigest()
        target = self.path(sha)
        if not target.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".tmp")
            with tmp.open("wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        async with self.engine.begin() as conn:
            known = (
                await conn.execute(
                    sa.select(model_packages.c.sha256).where(model_packages.c.sha256 == sha)
                )
            ).first()
            if known is None:
                await conn.execute(
                    model_packages.insert().values(
                        sha256=sha,
                        name=name[:64],
                        version=version[:64],
                        size=len(data),
                        labels=labels,
                        created_at=self.clock(),
                        created_by=by,
                    )
                )
        return await self.get(sha)

    async def get(self, sha256: str) -> PackageView:
        """One published package; NotFoundError when unknown."""
        self.path(sha256)
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(model_packages.select().where(model_packages.c.sha256 == sha256))
            ).first()
        if row is None:
            raise NotFoundError(f"no published package {sha256}")
        return PackageView.model_validate(row._mapping)

    async def all(self) -> list[PackageView]:
        """Every published package, newest first."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    model_packages.select().order_by(model_packages.c.created_at.desc())
                )
            ).all()
        return [PackageView.model_validate(r._mapping) for r in rows]
