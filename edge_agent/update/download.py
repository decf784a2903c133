"""Download a model archive from the hub, resuming where an interrupted download stopped.

The bytes go to ``<dest>.part`` first. A unit that lost power or its link half way keeps
that file, and the next try asks only for the rest (``Range: bytes=<len>-``). When the
last byte is in, the file's size and sha256 are checked, it is synced to disk and renamed
to ``dest`` in one step, so ``dest`` only ever holds a whole, checked archive.

:class:`DownloadError` says whether trying again can help (``retry``): a dropped
connection, a timeout or a 5xx can; a refused token, a missing package or a digest that
does not match cannot. :func:`fetch_with_retries` tries again with the agent's one
:class:`~edge_agent.backoff.Backoff`. httpx stays in this module.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from edge_agent.backoff import Backoff

__all__ = ["DownloadError", "fetch_archive", "fetch_with_retries", "part_path"]

log = logging.getLogger(__name__)

#: Statuses a later try may get past: the hub busy, restarting or behind a proxy timing out.
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_UNSATISFIED_RANGE = re.compile(r"^bytes \*/(\d+)$")
_HASH_CHUNK = 1 << 20


class DownloadError(Exception):
    """A download that failed; ``retry`` says whether trying again can succeed."""

    def __init__(self, url: str, problem: str, *, retry: bool) -> None:
        super().__init__(f"download of {url} failed: {problem}")
        self.url = url
        self.problem = problem
        self.retry = retry


def part_path(dest: Path) -> Path:
    """Where the bytes of ``dest`` collect until the download is whole and checked."""
    return dest.with_suffix(dest.suffix + ".part")


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _sha256_synced(path: Path) -> str:
    """The file's sha256, after its bytes are flushed to the disk (an fsync)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while data := fh.read(_HASH_CHUNK):
            digest.update(data)
        os.fsync(fh.fileno())
    return digest.hexdigest()


def _sync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` survive a power cut."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _finish(url: str, part: Path, dest: Path, *, size: int, sha256: str, resumed: bool) -> Path:
    """Check the whole part, sync it and rename it to ``dest`` (blocking)."""
    got = _size_of(part)
    if got != size:
        # Bigger is refused while writing; smaller is a body that ended early: keep it.
        raise DownloadError(url, f"the body ended after {got} of {size} bytes", retry=True)
    digest = _sha256_synced(part)
    if digest != sha256:
        part.unlink(missing_ok=True)
        # A part carried over from before may have been damaged by the power cut that
        # interrupted it; one fetched whole just now is the wrong file.
        raise DownloadError(
            url,
            f"sha256 {digest[:12]}... of the {size} bytes is not the expected {sha256[:12]}...",
            retry=resumed,
        )
    os.replace(part, dest)
    _sync_directory(dest.parent)
    return dest


def _resume_offset(dest: Path, *, size: int, sha256: str) -> int | None:
    """Bytes of ``dest`` already in its part, or None when ``dest`` is whole (blocking)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        if _size_of(dest) == size and _sha256_synced(dest) == sha256:
            return None
        dest.unlink()
    part = part_path(dest)
    offset = _size_of(part)
    if offset > size:
        log.warning("%s holds more than the %d bytes expected; starting over", part, size)
        part.unlink()
        offset = 0
    return offset


def _body_start(url: str, response: httpx.Response, part: Path, *, offset: int, size: int) -> int:
    """Where in the archive the response's body starts; raise for a response we cannot use."""
    status = response.status_code
    if status == 206:
        match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
        if match is None or int(match.group(1)) != offset:
            part.unlink(missing_ok=True)
            raise DownloadError(
                url,
                f"asked for bytes from {offset}, the server sent the range "
                f"{response.headers.get('content-range')!r}; starting over",
                retry=True,
            )
        total = match.group(3)
        if total != "*" and int(total) != size:
            raise DownloadError(
                url, f"the server has {total} bytes, the package has {size}", retry=False
            )
        start = offset
    elif status == 200:
        start = 0  # the server ignored the Range header: the whole body again
    elif status == 416:
        part.unlink(missing_ok=True)
        match = _UNSATISFIED_RANGE.match(response.headers.get("content-range", ""))
        total = int(match.group(1)) if match else None
        if total is not None and total != size:
            raise DownloadError(
                url,
                f"HTTP 416: the server has {total} bytes, the package has {size}",
                retry=False,
            )
        raise DownloadError(
            url, f"HTTP 416: the server refused bytes from {offset}; starting over", retry=True
        )
    else:
        raise DownloadError(
            url, f"HTTP {status} {response.reason_phrase}", retry=status in _RETRY_STATUSES
        )
    length = response.headers.get("content-length")
    if length is not None and length.isdigit() and start + int(length) > size:
        part.unlink(missing_ok=True)
        raise DownloadError(
            url,
            f"the body of {length} bytes from byte {start} is larger than the {size} bytes "
            "of the package",
            retry=False,
        )
    return start


async def _write_body(
    url: str, response: httpx.Response, part: Path, *, start: int, size: int, chunk: int
) -> None:
    """Append the body to the part (truncating it first when the body starts at 0)."""
    written = start
    buffer = bytearray()
    try:
        fh = await asyncio.to_thread(part.open, "ab" if start else "wb")
        try:
            try:
                # Bytes as they arrive, written ``chunk`` at a time; httpx's own chunking
                # would drop the last partial chunk when the connection breaks.
                async for data in response.aiter_bytes():
                    if written + len(buffer) + len(data) > size:
                        raise DownloadError(
                            url,
                            f"the body runs past the {size} bytes of the package; refused",
                            retry=False,
                        )
                    buffer += data
                    if len(buffer) >= chunk:
                        await asyncio.to_thread(fh.write, bytes(buffer))
                        written += len(buffer)
                        buffer.clear()
            except httpx.RequestError:
                # Keep what did arrive: the next try resumes after it.
                await asyncio.to_thread(fh.write, bytes(buffer))
                raise
            await asyncio.to_thread(fh.write, bytes(buffer))
        finally:
            await asyncio.to_thread(fh.close)
    except DownloadError:
        await asyncio.to_thread(part.unlink, missing_ok=True)
        raise
    except OSError as exc:
        raise DownloadError(url, f"cannot write {part}: {exc}", retry=False) from exc


async def _get(
    client: httpx.AsyncClient,
    url: str,
    token: str,
    part: Path,
    *,
    offset: int,
    size: int,
    chunk: int,
    timeout_s: float,
) -> int:
    """One GET into the part; returns where the body started (0 when it was whole)."""
    headers = {
        "Authorization": f"Bearer {token}",
        # Ranges count bytes of the archive, not of a compressed transfer.
        "Accept-Encoding": "identity",
    }
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        async with client.stream("GET", url, headers=headers, timeout=timeout_s) as response:
            start = _body_start(url, response, part, offset=offset, size=size)
            await _write_body(url, response, part, start=start, size=size, chunk=chunk)
            return start
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise DownloadError(url, f"not a URL we can fetch: {exc}", retry=False) from exc
    except httpx.RequestError as exc:
        raise DownloadError(url, f"{type(exc).__name__}: {exc}", retry=True) from exc


async def fetch_archive(
    url: str,
    token: str,
    dest: Path,
    *,
    sha256: str,
    size: int,
    client: httpx.AsyncClient | None = None,
    chunk: int = 1 << 16,
    timeout_s: float = 30.0,
) -> Path:
    """Download ``url`` to ``dest``, resuming from ``dest``'s ``.part``; return ``dest``.

    ``token`` goes as a bearer token and never into an error or a log. The body may not
    exceed ``size`` bytes; the whole must have ``sha256``. A ``dest`` that already holds
    exactly that archive is returned as it is. Raises :class:`DownloadError`.
    """
    sha256 = sha256.lower()
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    offset = await asyncio.to_thread(_resume_offset, dest, size=size, sha256=sha256)
    if offset is None:
        return dest
    part = part_path(dest)
    resumed = offset > 0
    if offset < size:
        http = client if client is not None else httpx.AsyncClient()
        try:
            start = await _get(
                http, url, token, part, offset=offset, size=size, chunk=chunk, timeout_s=timeout_s
            )
        finally:
            if client is None:
                await http.aclose()
        resumed = start > 0
    return await asyncio.to_thread(
        _finish, url, part, dest, size=size, sha256=sha256, resumed=resumed
    )


async def fetch_with_retries(
    url: str,
    token: str,
    dest: Path,
    *,
    sha256: str,
    size: int,
    client: httpx.AsyncClient | None = None,
    chunk: int = 1 << 16,
    timeout_s: float = 30.0,
    attempts: int = 5,
    backoff: Backoff | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Path:
    """:func:`fetch_archive`, tried again after errors with ``retry`` set.

    Each try resumes from the part. ``attempts`` bounds the tries in a row that got no
    new bytes: a try that moved the part on resets the count and the ``backoff`` (default
    1 s doubling to 60 s), so a slow, flaky link still gets a large model through.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    delays = backoff if backoff is not None else Backoff(initial=1.0, cap=60.0)
    part = part_path(dest)
    http = client if client is not None else httpx.AsyncClient()
    try:
        fruitless = 0
        while True:
            before = _size_of(part)
            try:
                return await fetch_archive(
                    url,
                    token,
                    dest,
                    sha256=sha256,
                    size=size,
                    client=http,
                    chunk=chunk,
                    timeout_s=timeout_s,
                )
            except DownloadError as exc:
                if not exc.retry:
                    raise
                if _size_of(part) > before:
                    fruitless = 0
                    delays.reset()
                else:
                    fruitless += 1
                if fruitless >= attempts:
                    raise
                delay = delays.next()
                log.warning("%s; trying again in %.1f s", exc, delay)
                await sleep(delay)
    finally:
        if client is None:
            await http.aclose()
