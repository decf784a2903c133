"""Evidence images on disk, addressed by the SHA-256 of their bytes (never in table rows)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path

from central_hub.errors import NotFoundError, StorageError

log = logging.getLogger(__name__)

__all__ = ["EvidenceStore"]

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


class EvidenceStore:
    """A content-addressed folder: ``root/ab/cd/abcd....jpg``.

    Writing the same bytes twice stores one file. Writes are atomic (temporary file,
    fsync, rename), so a crash never leaves a half-written image under its final name.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_of(self, sha256: str) -> Path:
        """Where the image with this hash lives; raises NotFoundError for a malformed hash."""
        if not _SHA_RE.fullmatch(sha256):
            raise NotFoundError(f"not a SHA-256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / f"{sha256}.jpg"

    def put_sync(self, data: bytes) -> str:
        """Store ``data`` and return its SHA-256 (blocking; see :meth:`put`)."""
        sha = hashlib.sha256(data).hexdigest()
        path = self.path_of(sha)
        if path.exists():
            # Stored again: refresh its age, so a retention sweep that listed the kept
            # rows a moment ago does not take a file a new row is about to point at.
            try:
                os.utime(path)
            except FileNotFoundError:
                pass  # swept just now: write it anew below
            else:
                return sha
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StorageError(f"cannot write evidence {sha} under {self.root}: {exc}") from exc
        return sha

    async def put(self, data: bytes) -> str:
        """Store ``data`` off the event loop and return its SHA-256."""
        return await asyncio.to_thread(self.put_sync, data)

    def get_sync(self, sha256: str) -> bytes:
        """The stored bytes; raises NotFoundError when absent."""
        path = self.path_of(sha256)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"no evidence {sha256}") from None

    async def get(self, sha256: str) -> bytes:
        """The stored bytes, read off the event loop."""
        return await asyncio.to_thread(self.get_sync, sha256)
