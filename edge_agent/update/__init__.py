"""Model updates of the edge unit: download, check, unpack and switch model packages.

The hub rolls a model out with a signed ``model.install`` command whose params are
``{slot, url, token, sha256, size, name, version}``. The unit installs it in this order,
each step able to stop the install with a clear error and nothing half done:

1. **Remember it.** The params go to ``pending.json`` of the :class:`ModelStore`, so a unit
   powered off at any later step takes the install up again after its restart.
2. **Download with resume** (:func:`fetch_with_retries`): the archive collects in
   ``incoming/<sha256>.tar.part``; an interrupted download continues from the part's
   length with an HTTP ``Range`` request, retried with the agent's one backoff while the
   errors are worth retrying (connection lost, 5xx), given up at once when not (401, 404).
3. **sha256**: the whole archive must have the digest and size the hub announced; only
   then is the part renamed to the archive.
4. **Extract** (:meth:`ModelStore.extract`): regular files and folders only, no link, no
   absolute path or ``..``, bounded in count and size, into ``<slot>/<version>-<sha12>/``.
5. **Verify** the package with ``verify_package`` and the hub's model key
   (``hub.model_public_key``): every file as signed, nothing added. A package that fails
   is discarded (:meth:`ModelStore.discard`).
6. **Switch** the vision stage to the package (:func:`with_installed` gives the config
   with the slot's detector pointed at it). If the model cannot load, the stage goes back
   to what it ran and the package is discarded.
7. **Activate** (:meth:`ModelStore.activate`): the package becomes the slot's active one,
   the one before it the previous; older packages are removed, as are the archive and
   ``pending.json``.

``model.rollback`` swaps the active and previous package (:meth:`ModelStore.rollback`)
and switches the stage again. On every start the agent applies
:meth:`ModelStore.overrides` to its config, so installed models outlive a restart; a
damaged state file only costs its slot the override (the config's own model runs).
"""

from edge_agent.update.download import DownloadError, fetch_archive, fetch_with_retries
from edge_agent.update.overrides import with_installed
from edge_agent.update.store import ModelStore, StoreError

__all__ = [
    "DownloadError",
    "ModelStore",
    "StoreError",
    "fetch_archive",
    "fetch_with_retries",
    "with_installed",
]
