"""Backup and restore of a hub: every table, the evidence, the frames and the vendor file's
photos in one tar file.

The archive is portable across databases (an SQLite hub restores into PostgreSQL, which
is also how a district moves up): each table is a gzipped JSON-lines member written from
one consistent read (PostgreSQL: a REPEATABLE READ snapshot, which writers do not wait
for; SQLite: one transaction, which holds ingest back for the seconds the read takes),
then the evidence images, which are content-addressed and never change. A manifest
records the schema revision, the row count and SHA-256 of every member.

Restore checks the whole archive before it writes anything (format, members, hashes,
every image against its name), refuses a database that already holds data, migrates an
empty one to the archive's revision, inserts every table in one transaction, moves the
id sequences past the restored ids, and migrates on to the newest revision.

Layout of the archive::

    manifest.json            {"format", "created_at", "revision", "tables", "members", ...}
    db/<table>.jsonl.gz      first line the column names, then one JSON list per row
    evidence/ab/cd/<sha>.jpg the images, as the store keeps them
    frames/ab/cd/<sha>.jpg   the clean frames kept for retraining (admins only)
    vendor_photos/ab/cd/<sha>.jpg  the vendor file's photos of people
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import json
import re
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from central_hub.adapters.evidence import EvidenceStore
from central_hub.db.migrate import current_revision, migrate
from central_hub.db.schema import UTCDateTime, metadata
from central_hub.errors import HubError, StorageError

__all__ = ["FORMAT", "BackupError", "BackupReport", "backup", "restore"]

FORMAT = "xiuhua-hub-backup/1"
#: Rows read or inserted per statement.
CHUNK = 2_000
_EVIDENCE_RE = re.compile(
    r"^(evidence|frames|vendor_photos)/([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{64})\.jpg$"
)


class BackupError(HubError):
    """An archive that cannot be restored (names the member and what is wrong), or a
    database that cannot take it."""


@dataclass(frozen=True)
class BackupReport:
    """What a backup wrote or a restore read."""

    path: Path
    revision: str
    tables: dict[str, int]
    evidence_files: int
    evidence_bytes: int
    seconds: float

    def summary(self) -> str:
        """One line for a person."""
        rows = sum(self.tables.values())
        return (
            f"{self.path}: {rows} rows in {len(self.tables)} tables "
            f"({', '.join(f'{k} {v}' for k, v in self.tables.items() if v)}), "
            f"{self.evidence_files} images ({self.evidence_bytes / 1e6:.1f} MB), "
            f"schema {self.revision}, {self.seconds:.1f} s"
        )


# ---------------------------------------------------------------------- values


def _encode(column: sa.Column[Any], value: Any) -> Any:
    if value is None:
        return None
    if isinstance(column.type, UTCDateTime):
        assert isinstance(value, datetime)
        return value.isoformat()
    if isinstance(column.type, sa.LargeBinary):
        return base64.b64encode(value).decode("ascii")
    return value


def _decode(column: sa.Column[Any], value: Any) -> Any:
    if value is None:
        return None
    if isinstance(column.type, UTCDateTime):
        return datetime.fromisoformat(value)
    if isinstance(column.type, sa.LargeBinary):
        return base64.b64decode(value)
    return value


# ---------------------------------------------------------------------- backup


def _sha256_stream(stream: IO[bytes] | None) -> str:
    digest = hashlib.sha256()
    assert stream is not None
    while block := stream.read(1 << 20):
        digest.update(block)
    return digest.hexdigest()


def _sha256_file(path: Path) -> str:
    with path.open("rb") as fh:
        return _sha256_stream(fh)


async def _dump_table(conn: AsyncConnection, table: sa.Table, into: Path) -> int:
    """Write ``table`` as gzipped JSON lines in primary-key order, read in chunks by key."""
    pk = list(table.primary_key.columns)
    count = 0
    last: tuple[Any, ...] | None = None
    with gzip.open(into, "wt", encoding="utf-8") as out:
        out.write(json.dumps([c.name for c in table.columns]) + "\n")
        while True:
            query = sa.select(table).order_by(*pk).limit(CHUNK)
            if last is not None:
                query = query.where(sa.tuple_(*pk) > sa.tuple_(*last))
            chunk = (await conn.execute(query)).all()
            for row in chunk:
                values = [_encode(c, v) for c, v in zip(table.columns, row, strict=True)]
                out.write(json.dumps(values, ensure_ascii=False) + "\n")
            count += len(chunk)
            if len(chunk) < CHUNK:
                return count
            last = tuple(getattr(chunk[-1], c.name) for c in pk)


async def backup(
    engine: AsyncEngine,
    evidence: EvidenceStore,
    out: Path,
    frames: EvidenceStore | None = None,
    vendor_photos: EvidenceStore | None = None,
) -> BackupReport:
    """Write the database, the evidence store, the clean frames (``frames``) and the
    vendor file's photos (``vendor_photos``) to the tar file ``out`` (see module doc).

    The archive is written to ``out.partial`` and renamed when complete, so a crash or a
    full disk never leaves a file that looks like a backup. Tables are streamed, so memory
    does not grow with the database.
    """
    started = time.monotonic()
    revision = await current_revision(engine)
    if revision is None:
        raise BackupError("the database was never migrated: nothing to back up")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    members: dict[str, str] = {}
    counts: dict[str, int] = {}
    files = size = 0
    try:
        with (
            tarfile.open(partial, "w") as tar,
            tempfile.TemporaryDirectory(dir=out.parent, prefix=".backup-") as scratch,
        ):
            async with engine.connect() as raw:
                conn = raw
                if raw.dialect.name == "postgresql":  # a snapshot writers do not wait for
                    conn = await raw.execution_options(isolation_level="REPEATABLE READ")
                async with conn.begin():
                    for table in metadata.sorted_tables:
                        dumped = Path(scratch) / f"{table.name}.jsonl.gz"
                        counts[table.name] = await _dump_table(conn, table, dumped)
                        name = f"db/{table.name}.jsonl.gz"
                        members[name] = _sha256_file(dumped)
                        tar.add(dumped, arcname=name)
                        dumped.unlink()
            stores = [("evidence", evidence)] + ([("frames", frames)] if frames else [])
            stores += [("vendor_photos", vendor_photos)] if vendor_photos else []
            for prefix, store in stores:
                for path in sorted(store.root.glob("*/*/*.jpg")):
                    name = f"{prefix}/{path.relative_to(store.root).as_posix()}"
                    if not _EVIDENCE_RE.match(name):
                        continue
                    members[name] = _sha256_file(path)
                    tar.add(path, arcname=name)
                    files += 1
                    size += path.stat().st_size
            manifest = {
                "format": FORMAT,
                "created_at": datetime.now().astimezone().isoformat(),
                "revision": revision,
                "tables": counts,
                "evidence_files": files,
                "evidence_bytes": size,
                "members": members,
            }
            body = json.dumps(manifest, indent=1).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size, info.mtime = len(body), int(time.time())
            tar.addfile(info, io.BytesIO(body))
        partial.replace(out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise StorageError(f"cannot write the backup {out}: {exc}") from exc
    return BackupReport(out, revision, counts, files, size, time.monotonic() - started)


# ---------------------------------------------------------------------- restore


def _check_archive(path: Path, tar: tarfile.TarFile) -> dict[str, Any]:
    """The manifest, once every member is there and intact; BackupError names a problem."""
    infos = {}
    for info in tar.getmembers():
        if not info.isfile():
            raise BackupError(f"{path}: {info.name}: only plain files belong in a backup")
        infos[info.name] = info
    if "manifest.json" not in infos:
        raise BackupError(f"{path}: no manifest.json: not a xiuhua hub backup")
    try:
        manifest = json.loads(_read(tar, infos.pop("manifest.json")))
    except ValueError as exc:
        raise BackupError(f"{path}: manifest.json is not JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else None
        raise BackupError(f"{path}: format {got!r}, this hub reads {FORMAT!r}")
    expected: dict[str, str] = manifest.get("members", {})
    if set(infos) != set(expected):
        missing = sorted(set(expected) - set(infos))
        extra = sorted(set(infos) - set(expected))
        raise BackupError(f"{path}: members missing {missing[:3]} or not listed {extra[:3]}")
    for name, info in infos.items():
        digest = _sha256_stream(tar.extractfile(info))
        found = _EVIDENCE_RE.match(name)
        if digest != expected[name]:
            raise BackupError(f"{path}: {name} is damaged (its SHA-256 is not the manifest's)")
        if found is None and not (name.startswith("db/") and name.endswith(".jsonl.gz")):
            raise BackupError(f"{path}: {name}: not a member a backup has")
        if found is not None and found.group(4) != expected[name]:
            raise BackupError(f"{path}: {name} does not hold the image its name says")
    return manifest


@contextlib.contextmanager
def _open_archive(path: Path) -> Iterator[tarfile.TarFile]:
    try:
        tar = tarfile.open(path, "r:")  # noqa: SIM115 - closed by this context manager
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"{path}: not a readable backup archive: {exc}") from exc
    try:
        yield tar
    finally:
        tar.close()


def _read(tar: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(info)
    assert handle is not None
    return handle.read()


def _table_rows(tar: tarfile.TarFile, name: str) -> Iterator[list[Any]]:
    """The header, then each row, of a table member."""
    handle = tar.extractfile(name)
    assert handle is not None
    with gzip.open(handle, "rt", encoding="utf-8") as lines:
        for line in lines:
            yield json.loads(line)


async def _filled_tables(conn: AsyncConnection) -> list[str]:
    filled = []
    for table in metadata.sorted_tables:
        if await conn.scalar(sa.select(sa.literal(1)).select_from(table).limit(1)):
            filled.append(table.name)
    return filled


async def restore(
    engine: AsyncEngine,
    evidence: EvidenceStore,
    archive: Path,
    frames: EvidenceStore | None = None,
    vendor_photos: EvidenceStore | None = None,
) -> BackupReport:
    """Restore ``archive`` into an empty database, evidence store and frames store (see
    module doc); an archive's clean frames need ``frames``, its people's photos
    ``vendor_photos``."""
    started = time.monotonic()
    with _open_archive(archive) as tar:
        try:
            manifest = _check_archive(archive, tar)
        except (OSError, tarfile.TarError) as exc:
            raise BackupError(f"{archive}: cannot be read to the end: {exc}") from exc
        revision = str(manifest["revision"])
        current = await current_revision(engine)
        if current is not None and current != revision:
            raise BackupError(
                f"the database is at schema {current} and the backup at {revision}: restore "
                "into a new database, which is migrated to the backup's schema first"
            )
        if current is None:
            await migrate(engine, revision)
        async with engine.connect() as probe:
            filled = await _filled_tables(probe)
        if filled:
            raise BackupError(
                f"the database already holds data ({', '.join(filled)}): restore into an empty one"
            )
        has_frames = any(n.startswith("frames/") for n in manifest["members"])
        if has_frames and frames is None:
            raise BackupError(f"{archive} holds clean frames: give restore a frames store")
        if vendor_photos is None and any(
            n.startswith("vendor_photos/") for n in manifest["members"]
        ):
            raise BackupError(f"{archive} holds vendor file photos: give restore their store")
        stores = {"evidence": evidence, "frames": frames, "vendor_photos": vendor_photos}
        images = 0
        size = 0
        for name in manifest["members"]:
            found = _EVIDENCE_RE.match(name)
            if found is not None:
                blob = _read(tar, tar.getmember(name))
                store = stores[found.group(1)]
                assert store is not None  # checked above
                store.put_sync(blob)
                images += 1
                size += len(blob)
        counts: dict[str, int] = {}
        async with engine.begin() as conn:
            for table in metadata.sorted_tables:
                counts[table.name] = await _load_table(conn, tar, archive, table)
            if conn.dialect.name == "postgresql":
                await _advance_sequences(conn)
    await migrate(engine)
    return BackupReport(archive, revision, counts, images, size, time.monotonic() - started)


async def _load_table(
    conn: AsyncConnection, tar: tarfile.TarFile, archive: Path, table: sa.Table
) -> int:
    name = f"db/{table.name}.jsonl.gz"
    try:
        tar.getmember(name)
    except KeyError:
        return 0
    rows = _table_rows(tar, name)
    names = next(rows)
    unknown = [n for n in names if n not in table.c]
    if unknown:
        raise BackupError(f"{archive}: table {table.name} has columns this schema lacks: {unknown}")
    columns = [table.c[n] for n in names]
    count = 0
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append({c.name: _decode(c, v) for c, v in zip(columns, row, strict=True)})
        if len(chunk) == CHUNK:
            await conn.execute(table.insert(), chunk)
            count += len(chunk)
            chunk = []
    if chunk:
        await conn.execute(table.insert(), chunk)
        count += len(chunk)
    return count


async def _advance_sequences(conn: AsyncConnection) -> None:
    """Move each serial id's sequence past the restored ids (PostgreSQL)."""
    for table in metadata.sorted_tables:
        for column in table.primary_key.columns:
            if not (isinstance(column.type, sa.Integer) and column.autoincrement is True):
                continue
            await conn.execute(
                sa.text(
                    "SELECT setval(pg_get_serial_sequence(:table, :column), "
                    f'COALESCE((SELECT max("{column.name}") FROM "{table.name}"), 0) + 1, false)'
                ),
                {"table": table.name, "column": column.name},
            )
