"""The vendor file's key: AES-GCM round trip, a wrong key or an altered row refused
loudly, the keyed hash, and the key file (0600, never overwritten, errors naming the
setting)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from central_hub.adapters.id_cipher import IdCipher, KeyMismatch, load_key_file, write_key_file
from central_hub.cli import main
from central_hub.domain.workflow import Role
from central_hub.errors import HubError, SettingsError
from central_hub.settings import HubSettings

NUMBER = "11010519491231002X"


def test_a_number_round_trips_and_each_ciphertext_is_fresh() -> None:
    cipher = IdCipher(bytes(range(32)))
    one, two = cipher.encrypt(NUMBER), cipher.encrypt(NUMBER)
    assert one != two  # a new nonce each time
    assert NUMBER.encode() not in one
    assert cipher.decrypt(one) == cipher.decrypt(two) == NUMBER


def test_another_key_or_an_altered_row_is_an_error_never_a_garbage_value() -> None:
    cipher, other = IdCipher(bytes(range(32))), IdCipher(bytes(32))
    blob = cipher.encrypt(NUMBER)
    with pytest.raises(KeyMismatch, match="XH_HUB_VENDOR_FILE_KEY_FILE"):
        other.decrypt(blob)
    altered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(KeyMismatch):
        cipher.decrypt(altered)
    with pytest.raises(KeyMismatch):
        cipher.decrypt(b"short")


def test_the_keyed_hash_finds_a_number_only_with_the_same_key() -> None:
    cipher, other = IdCipher(bytes(range(32))), IdCipher(bytes(32))
    assert cipher.lookup_hash(NUMBER) == IdCipher(bytes(range(32))).lookup_hash(NUMBER)
    assert cipher.lookup_hash(NUMBER) != other.lookup_hash(NUMBER)
    assert cipher.lookup_hash(NUMBER) != cipher.lookup_hash("110105194912310029")
    assert cipher.key_id != other.key_id
    assert len(cipher.key_id) == 16
    cipher.check_key_ids({cipher.key_id})
    with pytest.raises(SettingsError, match="stored with another key"):
        cipher.check_key_ids({cipher.key_id, other.key_id})


def test_keygen_writes_a_0600_key_file_and_never_overwrites_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys" / "vendor.key"
    assert (
        main(["--data-dir", str(tmp_path / "hub"), "vendor-file", "keygen", "--out", str(path)])
        == 0
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_key_file(path)
    assert loaded.key_id in capsys.readouterr().out
    before = path.read_bytes()
    assert (
        main(["--data-dir", str(tmp_path / "hub"), "vendor-file", "keygen", "--out", str(path)])
        == 1
    )
    assert "never overwritten" in capsys.readouterr().err
    assert path.read_bytes() == before
    with pytest.raises(HubError, match="never overwritten"):
        write_key_file(path)


def test_a_missing_or_bad_key_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"XH_HUB_VENDOR_FILE_KEY_FILE.*no such file"):
        load_key_file(tmp_path / "none.key")
    bad = tmp_path / "bad.key"
    bad.write_text("not hex at all\n")
    with pytest.raises(SettingsError, match=r"XH_HUB_VENDOR_FILE_KEY_FILE.*does not hold a key"):
        load_key_file(bad)
    bad.write_text("ab" * 16)  # 16 bytes, not 32
    with pytest.raises(SettingsError, match="does not hold a key"):
        load_key_file(bad)


def test_the_citys_roles_are_checked_and_named(monkeypatch: pytest.MonkeyPatch) -> None:
    assert HubSettings().vendor_file_role_set == {Role.HANDLER, Role.ADMIN}
    monkeypatch.setenv("XH_HUB_VENDOR_FILE_ROLES", " operator , admin ")
    assert HubSettings().vendor_file_role_set == {Role.OPERATOR, Role.ADMIN}
    for bad in ("inspector", "admin,boss", " , "):
        monkeypatch.setenv("XH_HUB_VENDOR_FILE_ROLES", bad)
        with pytest.raises(ValidationError, match="vendor_file_roles") as err:
            HubSettings()
        assert "is not a role" in str(err.value)
