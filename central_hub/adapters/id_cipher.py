"""The vendor file's key: identity numbers encrypted at rest (AES-GCM) and found by a
keyed hash (HMAC-SHA256), both keyed from one 32-byte key file.

The key file (``central-hub vendor-file keygen --out FILE``, mode 0600) holds 64 hex
digits. Three keys are derived from it with HKDF-SHA256, one per purpose: the AES-256-GCM
key that encrypts an identity number, the HMAC key whose digest of the number lets an
officer find a person without decrypting every row, and a key id stored on every person
row, so a hub started with another key is refused before it shows anything
(:meth:`IdCipher.check_rows`). A ciphertext that does not decrypt (wrong key, altered
row) raises :class:`KeyMismatch`, never a garbage value.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from central_hub.errors import HubError, SettingsError

__all__ = [
    "KEY_SETTING",
    "IdCipher",
    "KeyMismatch",
    "load_key_file",
    "write_key_file",
]

#: The setting (and its variable) that names the key file, for error messages.
KEY_SETTING = "vendor_file_key_file (XH_HUB_VENDOR_FILE_KEY_FILE)"
_NONCE = 12
#: Bound into every ciphertext: a value copied from another column does not decrypt.
_AAD = b"xiuhua vendor-file id-number v1"


class KeyMismatch(HubError):
    """A stored identity number does not decrypt with this key (wrong key or altered row)."""


def _derive(key: bytes, purpose: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"xiuhua vendor-file", info=purpose
    ).derive(key)


class IdCipher:
    """Encrypts, decrypts and hashes identity numbers with one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the vendor file's key must be 32 bytes")
        self._aead = AESGCM(_derive(key, b"aes-gcm"))
        self._mac_key = _derive(key, b"hmac")
        #: 16 hex digits naming this key (stored on each row; not secret, not the key).
        self.key_id = _derive(key, b"key-id").hex()[:16]

    def encrypt(self, number: str) -> bytes:
        """A fresh nonce and the AES-GCM ciphertext of ``number`` (with its tag)."""
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, number.encode("ascii"), _AAD)

    def decrypt(self, blob: bytes) -> str:
        """The number in ``blob``; :class:`KeyMismatch` when it does not authenticate."""
        try:
            plain = self._aead.decrypt(blob[:_NONCE], blob[_NONCE:], _AAD)
        except (InvalidTag, ValueError) as exc:
            raise KeyMismatch(
                f"a stored identity number does not decrypt with the key of {KEY_SETTING}: "
                "wrong key file, or the row was altered"
            ) from exc
        return plain.decode("ascii")

    def lookup_hash(self, number: str) -> str:
        """The keyed hash of a (checked) number: equal numbers, equal hashes."""
        return hmac.new(self._mac_key, number.encode("ascii"), hashlib.sha256).hexdigest()

    def check_key_ids(self, stored: set[str]) -> None:
        """Raise :class:`SettingsError` naming the setting when rows were written with
        another key (``stored``: the distinct key ids of the person rows)."""
        others = stored - {self.key_id}
        if others:
            raise SettingsError(
                f"{KEY_SETTING}: the vendor file's people were stored with another key "
                f"(key id {sorted(others)[0]}, this file's is {self.key_id}); set it to "
                "the key file they were written with"
            )


def load_key_file(path: Path) -> IdCipher:
    """The cipher of the key file at ``path``; SettingsError naming the setting when it
    is missing, unreadable or not 64 hex digits."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError as exc:
        raise SettingsError(f"{KEY_SETTING}: no such file {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{KEY_SETTING}: cannot read {path}: {exc}") from exc
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise SettingsError(
            f"{KEY_SETTING}: {path} does not hold a key (64 hex digits, as "
            "`central-hub vendor-file keygen` writes)"
        )
    return IdCipher(key)


def write_key_file(path: Path) -> IdCipher:
    """Write a new random key to ``path`` (mode 0600; refuses to overwrite a file)."""
    key = secrets.token_bytes(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise HubError(
            f"{path} exists: the vendor file's key is never overwritten (its people "
            "would no longer decrypt); pick another path"
        ) from exc
    except OSError as exc:
        raise HubError(f"cannot write the key file {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key.hex() + "\n")
    return IdCipher(key)
