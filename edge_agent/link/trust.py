"""The hub keys this unit trusts, and how a rotation changes them.

The config's ``hub.public_key`` is trusted from the start. A ``keys.trust`` command,
signed by a key trusted now, adds the hub's next key and sets when the keys trusted
before it stop being trusted (``previous_until``): during that overlap commands and
desired configs signed by either key verify, so the hub can switch keys at any moment
inside it. What was added and what retires when is kept in a small JSON file beside the
outbox (written atomically, 0600), so a restart or a power cut changes nothing; a
retired key stays retired even though the config file still names it.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_agent import protocol
from edge_agent.link.commands import CommandFailed, CommandRefused

log = logging.getLogger(__name__)

__all__ = ["TrustStore"]


class TrustStore:
    """See the module docstring; the clock is passed in."""

    def __init__(
        self, path: Path, configured: Callable[[], str], clock: Callable[[], datetime]
    ) -> None:
        self.path = path
        self._configured = configured
        self.clock = clock
        self._added: list[str] = []
        self._retire: dict[str, datetime] = {}
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            # A damaged file must not lock the hub out: fall back to the configured key.
            log.error(
                "cannot read the trusted keys in %s (%s); trusting the config's", self.path, exc
            )
            return
        self._added = [str(k) for k in data.get("added", [])]
        self._retire = {
            str(k): datetime.fromisoformat(v) for k, v in data.get("retire", {}).items()
        }

    def _save(self, added: list[str], retire: dict[str, datetime]) -> None:
        data: dict[str, Any] = {
            "added": added,
            "retire": {k: v.isoformat() for k, v in retire.items()},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".keys-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def trusted(self) -> list[str]:
        """The keys (base64) trusted now: the configured one and those added, less those
        whose time is up."""
        now = self.clock()
        configured = protocol.public_key_b64(protocol.load_public_key(self._configured()))
        out: list[str] = []
        for key in [configured, *self._added]:
            until = self._retire.get(key)
            if (until is None or now < until) and key not in out:
                out.append(key)
        return out

    def keys(self) -> list[Ed25519PublicKey]:
        """:meth:`trusted` as keys, to verify with."""
        return [protocol.load_public_key(k) for k in self.trusted()]

    async def trust(self, command: protocol.Command) -> str:
        """The ``keys.trust`` executor (the command verified with a key trusted now)."""
        try:
            new, until = protocol.parse_trust_params(command.params, self.clock())
        except protocol.ProtocolError as exc:
            raise CommandRefused(str(exc)) from exc
        retire = dict(self._retire)
        for key in self.trusted():
            if key != new:
                # Keep the earliest end if an overlap was already set.
                retire[key] = min(until, retire.get(key, until))
        retire.pop(new, None)
        added = [*self._added, new] if new not in self._added else list(self._added)
        try:
            self._save(added, retire)  # kept on disk first: a failed save changes nothing
        except OSError as exc:
            raise CommandFailed(f"cannot keep the trusted keys in {self.path}: {exc}") from exc
        self._added, self._retire = added, retire
        log.info("now trusting hub key %s; the others until %s", new[:12], until.isoformat())
        return f"trusting {new[:12]}…; previous keys until {until.isoformat()}"
