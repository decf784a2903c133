"""The unit's model store: installed model packages per slot, and which one runs.

Layout under ``root``::

    root/incoming/<sha256>.tar(.part)    archives being downloaded
    root/pending.json                    the install in progress (resumed after a restart)
    root/<slot>/<version>-<sha256[:12]>/ an extracted package
    root/<slot>/state.json               {"active": dirname|null, "previous": dirname|null}

A slot is a detector name of the vision config (``default`` for a config with one
``detector:``). Every state and pending file is written whole (temporary file, fsync,
rename), so a power cut leaves the old one or the new one. A state file that cannot be
read does not stop the unit: :meth:`ModelStore.overrides` warns and the slot runs the
config's own model.

Every method is blocking file work: call it off the event loop (``asyncio.to_thread``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = [
    "INCOMING",
    "MAX_ARCHIVE_BYTES",
    "MAX_ARCHIVE_MEMBERS",
    "PENDING_NAME",
    "STATE_NAME",
    "ModelStore",
    "StoreError",
]

log = logging.getLogger(__name__)

#: Folder of the store that holds archives being downloaded (so no slot may be so named).
INCOMING = "incoming"
#: The install in progress, at the store's root.
PENDING_NAME = "pending.json"
#: Which package of a slot runs, and which ran before it.
STATE_NAME = "state.json"
#: A slot's shadow candidate: ``{"dir": name, "cameras": [...]}`` (see ``ShadowConfig``).
SHADOW_NAME = "shadow.json"
#: Most members an archive may hold: a package is a manifest, a model, a card, licences.
MAX_ARCHIVE_MEMBERS = 64
#: Most bytes an archive's files may add up to.
MAX_ARCHIVE_BYTES = 2 << 30

_SLOT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DIRNAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class StoreError(Exception):
    """The model store refused an archive or an operation, or found its files damaged."""


def _check_slot(slot: str) -> str:
    if not _SLOT.fullmatch(slot) or slot == INCOMING:
        raise StoreError(f"{slot!r} is not a slot name (a detector name, not {INCOMING!r})")
    return slot


def _check_sha256(sha256: str) -> str:
    value = sha256.lower()
    if not _SHA256.fullmatch(value):
        raise StoreError(f"{sha256!r} is not a sha256 (64 hex digits)")
    return value


def package_dirname(version: str, sha256: str) -> str:
    """``<version>-<sha256[:12]>``, the version cut to ``[A-Za-z0-9._-]`` and 64 characters."""
    safe = _UNSAFE.sub("_", version)[:64].lstrip(".") or "v"
    return f"{safe}-{_check_sha256(sha256)[:12]}"


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, data: Mapping[str, Any], *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` whole or not at all: temporary file, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(dict(data), fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _sync_directory(path.parent)


def _sync_tree(directory: Path) -> None:
    """fsync every file and folder under ``directory`` (a freshly extracted package)."""
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            with path.open("rb") as fh:
                os.fsync(fh.fileno())
        elif path.is_dir():
            _sync_directory(path)
    _sync_directory(directory)


class ModelStore:
    """Installed model packages under ``root``, per slot, with the active and previous one."""

    def __init__(
        self,
        root: Path,
        *,
        max_members: int = MAX_ARCHIVE_MEMBERS,
        max_bytes: int = MAX_ARCHIVE_BYTES,
    ) -> None:
        self.root = Path(root)
        self.max_members = max_members
        self.max_bytes = max_bytes

    # ------------------------------------------------------------------ paths

    @property
    def incoming(self) -> Path:
        """The folder of archives being downloaded."""
        return self.root / INCOMING

    def archive_path(self, sha256: str) -> Path:
        """Where the archive of digest ``sha256`` is downloaded to."""
        return self.incoming / f"{_check_sha256(sha256)}.tar"

    def slot_dir(self, slot: str) -> Path:
        """The folder of a slot's packages and its ``state.json``."""
        return self.root / _check_slot(slot)

    # ------------------------------------------------------------------ extract

    def _checked_members(self, tar: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
        members: list[tarfile.TarInfo] = []
        total = 0
        for member in tar:  # one header at a time: a huge member list is never read whole
            where = f"archive {archive.name}: member {member.name!r}"
            if len(members) >= self.max_members:
                raise StoreError(
                    f"archive {archive.name} holds more than {self.max_members} members"
                )
            if not (member.isreg() or member.isdir()):
                raise StoreError(f"{where} is not a regular file or directory")
            name = PurePosixPath(member.name)
            if name.is_absolute() or member.name.startswith("/") or ".." in name.parts:
                raise StoreError(f"{where} points outside the package")
            total += member.size if member.isreg() else 0
            if total > self.max_bytes:
                raise StoreError(
                    f"archive {archive.name} unpacks to more than {self.max_bytes} bytes"
                )
            members.append(member)
        return members

    def extract(self, slot: str, archive: Path, *, sha256: str, version: str) -> Path:
        """Unpack ``archive`` into ``root/<slot>/<version>-<sha256[:12]>/``; return that dir.

        The archive is checked member by member first (regular files and folders only, no
        absolute path or ``..``, at most ``max_members`` and ``max_bytes``) and unpacked
        with tarfile's ``data`` filter into a temporary folder that is renamed into place,
        so the directory is whole or absent. A package already there is returned as it is.
        The package's signature is not checked here (``verify_package`` is the caller's).
        """
        slot_dir = self.slot_dir(slot)
        target = slot_dir / package_dirname(version, sha256)
        if target.is_dir():
            return target
        slot_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=slot_dir, prefix=".extract-"))
        try:
            tmp.chmod(0o755)  # mkdtemp's 0700 would hide the model from other users
            try:
                with tarfile.open(archive, "r:") as tar:
                    members = self._checked_members(tar, archive)
                    tar.extractall(tmp, members=members, filter="data")
            except (tarfile.TarError, OSError) as exc:
                raise StoreError(f"cannot unpack archive {archive.name}: {exc}") from exc
            _sync_tree(tmp)
            tmp.rename(target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _sync_directory(slot_dir)
        return target

    # ------------------------------------------------------------------ state

    def _state_path(self, slot: str) -> Path:
        return self.slot_dir(slot) / STATE_NAME

    def _read_state(self, slot: str) -> tuple[str | None, str | None]:
        """``(active, previous)`` dir names; StoreError naming the file when it is damaged."""
        path = self._state_path(slot)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None, None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StoreError(f"cannot read {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise StoreError(f"{path} is not a JSON object")
        names: list[str | None] = []
        for key in ("active", "previous"):
            value = data.get(key)
            if value is not None and not (isinstance(value, str) and _DIRNAME.fullmatch(value)):
                raise StoreError(f"{path}: {key} {value!r} is not a package folder name")
            names.append(value)
        return names[0], names[1]

    def _state_or_empty(self, slot: str) -> tuple[str | None, str | None]:
        """The state, or none at all (with a warning) when the file is damaged."""
        try:
            return self._read_state(slot)
        except StoreError as exc:
            log.warning("%s; the slot is taken to have no installed model", exc)
            return None, None

    def _write_state(self, slot: str, active: str | None, previous: str | None) -> None:
        _write_json_atomic(self._state_path(slot), {"active": active, "previous": previous})

    def _existing(self, slot: str, name: str | None) -> Path | None:
        if name is None:
            return None
        path = self.slot_dir(slot) / name
        if not path.is_dir():
            log.warning("%s names %s, which is missing", self._state_path(slot), path)
            return None
        return path

    def _child(self, slot: str, directory: Path) -> str:
        """The name of ``directory`` if it is a package folder of ``slot``."""
        directory = Path(directory)
        slot_dir = self.slot_dir(slot)
        if (
            directory.parent.resolve() != slot_dir.resolve()
            or not _DIRNAME.fullmatch(directory.name)
            or not directory.is_dir()
        ):
            raise StoreError(f"{directory} is not a package folder of slot {slot}")
        return directory.name

    def active(self, slot: str) -> Path | None:
        """The package ``slot`` runs, or None for the config's own model."""
        return self._existing(slot, self._read_state(slot)[0])

    def previous(self, slot: str) -> Path | None:
        """The package ``slot`` ran before the active one, or None."""
        return self._existing(slot, self._read_state(slot)[1])

    def activate(self, slot: str, directory: Path) -> None:
        """Make ``directory`` (from :meth:`extract`) the slot's package.

        The old active one becomes the previous; every other package of the slot is
        removed. A damaged state file is replaced (with a warning).
        """
        name = self._child(slot, directory)
        active, previous = self._state_or_empty(slot)
        if active != name:
            previous = active
        self._write_state(slot, name, previous)
        self._prune(slot, keep={name, previous})

    def rollback(self, slot: str) -> Path:
        """Run the previous package again; the active one becomes the previous. Returns it."""
        active, previous = self._read_state(slot)
        if previous is None:
            raise StoreError(f"slot {slot} has no previous model")
        path = self._existing(slot, previous)
        if path is None:
            raise StoreError(f"slot {slot}: the previous model {previous} is missing")
        self._write_state(slot, previous, active)
        return path

    def deactivate(self, slot: str) -> None:
        """Go back to the config's own model; the active package becomes the previous."""
        active, previous = self._state_or_empty(slot)
        self._write_state(slot, None, active if active is not None else previous)

    def discard(self, slot: str, directory: Path) -> None:
        """Remove a package that was extracted but never activated (it failed its checks)."""
        name = self._child(slot, directory)
        shadow = self._shadow_or_none(slot)
        if name in self._state_or_empty(slot) or (shadow is not None and shadow[0] == name):
            raise StoreError(f"slot {slot}: {name} is the active, previous or shadow model; kept")
        shutil.rmtree(self.slot_dir(slot) / name)

    # ------------------------------------------------------------------ shadow

    def _shadow_path(self, slot: str) -> Path:
        return self.slot_dir(slot) / SHADOW_NAME

    def _shadow_or_none(self, slot: str) -> tuple[str, tuple[str, ...]] | None:
        """``(dir name, cameras)`` of the slot's shadow; None (warned when damaged)."""
        path = self._shadow_path(slot)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            log.warning("cannot read %s (%s); the slot runs no shadow model", path, exc)
            return None
        name, cameras = (
            (data.get("dir"), data.get("cameras")) if isinstance(data, dict) else (None, None)
        )
        if not (isinstance(name, str) and _DIRNAME.fullmatch(name)) or not (
            isinstance(cameras, list) and all(isinstance(c, str) for c in cameras)
        ):
            log.warning("%s is not a shadow entry; the slot runs no shadow model", path)
            return None
        return name, tuple(cameras)

    def set_shadow(self, slot: str, directory: Path, cameras: Sequence[str]) -> None:
        """Run ``directory`` (from :meth:`extract`) beside the slot's model, only to compare
        (on ``cameras``; none: every camera running the slot); replaces an earlier shadow."""
        name = self._child(slot, directory)
        old = self._shadow_or_none(slot)
        _write_json_atomic(self._shadow_path(slot), {"dir": name, "cameras": list(cameras)})
        if old is not None and old[0] != name and old[0] not in self._state_or_empty(slot):
            shutil.rmtree(self.slot_dir(slot) / old[0], ignore_errors=True)

    def clear_shadow(self, slot: str) -> bool:
        """Stop the slot's shadow model (its folder goes unless the slot runs it); True if
        there was one."""
        old = self._shadow_or_none(slot)
        self._shadow_path(slot).unlink(missing_ok=True)
        if old is None:
            return False
        if old[0] not in self._state_or_empty(slot):
            shutil.rmtree(self.slot_dir(slot) / old[0], ignore_errors=True)
        return True

    def shadows(self) -> dict[str, tuple[Path, tuple[str, ...]]]:
        """Slot -> (shadow package, cameras), for every slot with a shadow whose folder is there."""
        found: dict[str, tuple[Path, tuple[str, ...]]] = {}
        if not self.root.is_dir():
            return found
        for path in sorted(self.root.iterdir()):
            slot = path.name
            if slot == INCOMING or not _SLOT.fullmatch(slot) or not path.is_dir():
                continue
            entry = self._shadow_or_none(slot)
            if entry is not None and (path / entry[0]).is_dir():
                found[slot] = (path / entry[0], entry[1])
        return found

    def _prune(self, slot: str, *, keep: set[str | None]) -> None:
        shadow = self._shadow_or_none(slot)
        if shadow is not None:
            keep = keep | {shadow[0]}
        for path in self.slot_dir(slot).iterdir():
            if path.name in (STATE_NAME, SHADOW_NAME) or path.name in keep:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def overrides(self) -> dict[str, Path]:
        """Slot -> active package, for every slot that runs an installed package.

        A slot whose state file is damaged, or names a missing package, is left out with
        a warning: it runs the config's own model.
        """
        found: dict[str, Path] = {}
        if not self.root.is_dir():
            return found
        for path in sorted(self.root.iterdir()):
            slot = path.name
            if slot == INCOMING or not _SLOT.fullmatch(slot) or not path.is_dir():
                continue
            active = self._existing(slot, self._state_or_empty(slot)[0])
            if active is not None:
                found[slot] = active
        return found

    # ------------------------------------------------------------------ pending

    @property
    def pending_path(self) -> Path:
        """The file of the install in progress."""
        return self.root / PENDING_NAME

    def save_pending(self, params: Mapping[str, Any]) -> None:
        """Remember the install in progress (its command params, token included: mode 0600)."""
        _write_json_atomic(self.pending_path, params, mode=0o600)

    def pending(self) -> dict[str, Any] | None:
        """The install in progress, or None (also, with a warning, when the file is damaged)."""
        try:
            data = json.loads(self.pending_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            log.warning("cannot read %s (%s); no install to resume", self.pending_path, exc)
            return None
        if not isinstance(data, dict):
            log.warning("%s is not a JSON object; no install to resume", self.pending_path)
            return None
        return data

    def clear_pending(self) -> None:
        """Forget the install in progress."""
        self.pending_path.unlink(missing_ok=True)

    def clear_incoming(self, keep: str | None = None) -> None:
        """Remove downloaded archives and parts, but those of digest ``keep``."""
        if not self.incoming.is_dir():
            return
        kept: set[str] = set()
        if keep is not None:
            archive = self.archive_path(keep).name
            kept = {archive, f"{archive}.part"}
        for path in self.incoming.iterdir():
            if path.name in kept:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
