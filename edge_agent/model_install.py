"""A model package pushed by the hub: fetch it, check it, swap it in, or refuse it.

The hub's ``model.install`` command (params :class:`InstallParams`) names a slot (one of
the unit's detectors, ``default`` for a config with a single ``detector:``), the package
archive's URL, sha256 and size, and a one-time token. :class:`ModelInstaller` then:

1. notes the install as pending in the model store, so a unit that loses power part way
   resumes it when it starts again (:meth:`ModelInstaller.resume`);
2. downloads the archive, resuming a partial file with HTTP ``Range``
   (:func:`edge_agent.update.download.fetch_with_retries`), and checks its sha256;
3. extracts it safely and checks the package against the hub's model key
   (``hub.model_public_key``; a unit without one installs nothing), then loads it once
   with onnxruntime: a package that is unsigned, mis-signed, altered or unloadable is
   ``rejected`` with the reason, and the unit keeps its model;
4. restarts the vision stage on it (the config-apply switch: rolled back if the stage
   cannot start or crashes within the probe) and only then makes it the slot's active
   model; the one it replaces stays as the slot's previous model.

``model.rollback`` makes the previous model active again (or, with none, the config's
own model), through the same switch. The status's ``model`` names what runs.

With ``shadow: {cameras: [...]}`` in its params the checked package runs beside the slot's
model instead, only to be compared (``vision.shadow``: its would-be events go to the hub
marked ``shadow``); ``model.shadow_stop`` ends that.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_agent import protocol
from edge_agent.config import AgentConfig
from edge_agent.link.commands import CommandFailed, CommandRefused
from edge_agent.update.download import DownloadError, fetch_with_retries
from edge_agent.update.store import ModelStore, StoreError

log = logging.getLogger(__name__)

__all__ = [
    "INSTALL_TIMEOUT_S",
    "InstallParams",
    "ModelInstaller",
    "download_client",
    "install_params",
]

#: The longest a model install may take, download included (a slow cellular link).
INSTALL_TIMEOUT_S = 3600.0

_SHA = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class InstallParams:
    """A ``model.install`` command's params, checked."""

    slot: str
    url: str
    token: str
    sha256: str
    size: int
    name: str
    version: str
    #: Run it as the slot's shadow on these cameras (empty: all running the slot) rather
    #: than in the slot's place; None: install it in the slot's place.
    shadow_cameras: tuple[str, ...] | None = None


def install_params(params: Mapping[str, Any]) -> InstallParams:
    """The checked params of ``model.install``; :class:`CommandFailed` names what is wrong."""
    problems = []
    for key in ("slot", "url", "token", "name", "version"):
        if not isinstance(params.get(key), str) or not params[key]:
            problems.append(f"{key} (a non-empty string)")
    sha, size = params.get("sha256"), params.get("size")
    if not isinstance(sha, str) or not _SHA.match(sha):
        problems.append("sha256 (64 lowercase hex digits)")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        problems.append("size (bytes, > 0)")
    url = params.get("url")
    if isinstance(url, str) and not url.startswith(("http://", "https://")):
        problems.append("url (http:// or https://)")
    shadow = params.get("shadow")
    cameras: tuple[str, ...] | None = None
    if shadow is not None:
        listed = shadow.get("cameras") if isinstance(shadow, dict) else None
        if not isinstance(listed, list) or not all(isinstance(c, str) for c in listed):
            problems.append("shadow ({cameras: [camera ids]}, or absent)")
        else:
            cameras = tuple(listed)
    if problems:
        raise CommandFailed("model.install params need " + ", ".join(problems))
    return InstallParams(
        slot=str(params["slot"]),
        url=str(params["url"]),
        token=str(params["token"]),
        sha256=str(sha),
        size=int(str(size)),
        name=str(params["name"]),
        version=str(params["version"]),
        shadow_cameras=cameras,
    )


#: Switch the vision stage to ``config`` with ``staged`` slot -> model dir overrides on
#: top of the store's; return the problem, or None when it runs.
Switch = Callable[[AgentConfig, Mapping[str, Path]], Awaitable[str | None]]
#: Loads a package once (signature checked against the key) or raises why it cannot.
Probe = Callable[[Path, AgentConfig, str], None]


def download_client(cfg: AgentConfig, url: str) -> httpx.AsyncClient | None:
    """The HTTP client for a package at ``url``: for ``https`` it trusts the city's CA
    (``mqtt.tls.ca``, which signs the hub's API certificate too) besides the system's;
    None (a default client) otherwise."""
    tls = cfg.mqtt.tls
    if not url.startswith("https:") or tls is None:
        return None
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=str(tls.ca))
    return httpx.AsyncClient(verify=context)


class ModelInstaller:
    """Runs ``model.install`` and ``model.rollback`` for one agent (see the module doc)."""

    def __init__(
        self,
        store: ModelStore,
        *,
        current: Callable[[], AgentConfig],
        switch: Switch,
        probe: Probe,
        status_changed: Callable[[], None],
    ) -> None:
        self.store = store
        self.current = current
        self.switch = switch
        self.probe = probe
        self.status_changed = status_changed
        self._lock = asyncio.Lock()

    def _key(self) -> Ed25519PublicKey:
        key = self.current().hub.model_public_key
        if not key:
            raise CommandRefused(
                "this unit has no hub.model_public_key: it installs only packages the hub "
                "signed (set it with `central-hub model key`)"
            )
        return protocol.load_public_key(key)

    def _check_slot(self, slot: str) -> None:
        slots = sorted(self.current().vision.models)
        if not self.current().vision.cameras:
            raise CommandFailed("this unit has no cameras configured; it runs no model")
        if slot not in slots:
            raise CommandFailed(f"no detector {slot!r} on this unit; its detectors: {slots}")

    async def install_command(self, command: protocol.Command) -> str:
        """The ``model.install`` executor."""
        params = install_params(command.params)
        self._check_slot(params.slot)
        self._key()
        await asyncio.to_thread(
            self.store.save_pending, {**command.params, "cmd_id": command.cmd_id}
        )
        return await self.install(params)

    async def install(self, params: InstallParams) -> str:
        """Fetch, check and swap in one package (see the module doc); the ack's detail."""
        async with self._lock:
            try:
                return await self._install(params)
            finally:
                await asyncio.to_thread(self.store.clear_pending)

    async def _install(self, params: InstallParams) -> str:
        self._key()  # before a byte is fetched: this unit must be able to check it
        archive = self.store.archive_path(params.sha256)
        client = download_client(self.current(), params.url)
        try:
            await fetch_with_retries(
                params.url,
                params.token,
                archive,
                sha256=params.sha256,
                size=params.size,
                client=client,
            )
        except DownloadError as exc:
            if "sha256" in exc.problem:  # not the archive the signed command names
                raise CommandRefused(f"package refused, model kept: {exc}") from exc
            raise CommandFailed(f"{exc}; the unit keeps its model") from exc
        finally:
            if client is not None:
                await client.aclose()
        try:
            directory = await asyncio.to_thread(
                self.store.extract,
                params.slot,
                archive,
                sha256=params.sha256,
                version=params.version,
            )
        except StoreError as exc:
            raise CommandRefused(f"package refused: {exc}") from exc
        finally:
            await asyncio.to_thread(self.store.clear_incoming, None)
        cfg = self.current()
        try:
            await asyncio.to_thread(self.probe, directory, cfg, params.slot)
        except Exception as exc:  # any reason a model cannot load: refuse it, keep ours
            await asyncio.to_thread(self.store.discard, params.slot, directory)
            raise CommandRefused(f"package refused, model kept: {exc}") from exc
        if params.shadow_cameras is not None:
            return await self._shadow(params, directory)
        problem = await self.switch(cfg, {params.slot: directory})
        if problem is not None:
            await asyncio.to_thread(self.store.discard, params.slot, directory)
            raise CommandFailed(f"the new model did not run ({problem}); the old one runs again")
        await asyncio.to_thread(self.store.activate, params.slot, directory)
        self.status_changed()
        log.info("installed %s %s in slot %s", params.name, params.version, params.slot)
        return f"installed {params.name} {params.version} in slot {params.slot}"

    async def _shadow(self, params: InstallParams, directory: Path) -> str:
        """Run a checked package beside its slot's model, only to compare."""
        cfg = self.current()
        cameras = params.shadow_cameras or ()
        running = [
            c.id for c in cfg.vision.cameras if params.slot in dict(cfg.vision.camera_models(c))
        ]
        unknown = sorted(set(cameras) - set(running))
        if unknown:
            await asyncio.to_thread(self.store.discard, params.slot, directory)
            raise CommandFailed(
                f"shadow cameras {unknown} do not run slot {params.slot!r} here; these do: "
                f"{running}"
            )
        await asyncio.to_thread(self.store.set_shadow, params.slot, directory, cameras)
        problem = await self.switch(cfg, {})
        if problem is not None:
            await asyncio.to_thread(self.store.clear_shadow, params.slot)
            raise CommandFailed(f"the shadow model did not run ({problem}); it was stopped")
        self.status_changed()
        on = ", ".join(cameras) if cameras else "every camera running it"
        log.info("shadowing slot %s with %s %s", params.slot, params.name, params.version)
        return f"shadowing slot {params.slot} with {params.name} {params.version} on {on}"

    async def stop_shadow_command(self, command: protocol.Command) -> str:
        """The ``model.shadow_stop`` executor: the slot's shadow model stops."""
        slot = command.params.get("slot")
        if not isinstance(slot, str) or not slot:
            raise CommandFailed("model.shadow_stop params need slot (a non-empty string)")
        async with self._lock:
            if not await asyncio.to_thread(self.store.clear_shadow, slot):
                return f"slot {slot} had no shadow model"
            problem = await self.switch(self.current(), {})
            if problem is not None:
                raise CommandFailed(f"the stages did not restart without the shadow: {problem}")
            return f"slot {slot} shadow stopped"

    async def rollback_command(self, command: protocol.Command) -> str:
        """The ``model.rollback`` executor: the slot's previous model runs again."""
        slot = command.params.get("slot")
        if not isinstance(slot, str) or not slot:
            raise CommandFailed("model.rollback params need slot (a non-empty string)")
        async with self._lock:
            try:
                return await self._rollback(slot)
            except StoreError as exc:
                raise CommandFailed(f"cannot roll back slot {slot!r}: {exc}") from exc

    async def _rollback(self, slot: str) -> str:
        active = await asyncio.to_thread(self.store.active, slot)
        previous = await asyncio.to_thread(self.store.previous, slot)
        if active is None and previous is None:
            raise CommandFailed(f"slot {slot!r} has no installed model to roll back")
        if previous is not None:
            await asyncio.to_thread(self.store.rollback, slot)
            said = f"slot {slot} back to {previous.name}"
        else:
            await asyncio.to_thread(self.store.deactivate, slot)
            said = f"slot {slot} back to the config's own model"
        problem = await self.switch(self.current(), {})
        if problem is not None:  # undo: the model that ran before the rollback runs on
            if previous is not None:
                await asyncio.to_thread(self.store.rollback, slot)
            elif active is not None:
                await asyncio.to_thread(self.store.activate, slot, active)
            raise CommandFailed(f"the earlier model did not run ({problem}); kept the current")
        self.status_changed()
        return said

    def pending(self) -> tuple[str, InstallParams] | None:
        """An install a power cut interrupted: its command id and params."""
        saved = self.store.pending()
        if not saved or not isinstance(saved.get("cmd_id"), str):
            return None
        try:
            return str(saved["cmd_id"]), install_params(saved)
        except CommandFailed as exc:
            log.warning("dropping a pending install that cannot resume: %s", exc)
            self.store.clear_pending()
            return None
