"""Settings defaults and checks; the content-addressed evidence store."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pydantic import ValidationError

from central_hub.adapters.evidence import EvidenceStore
from central_hub.errors import NotFoundError
from central_hub.settings import HubSettings


def test_settings_defaults_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XH_HUB_MQTT_PORT", "1999")
    s = HubSettings(data_dir=tmp_path)
    assert s.database_url == f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    assert s.evidence_path == tmp_path / "evidence"
    assert s.mqtt_port == 1999
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    assert HubSettings(mqtt_password_file=secret).mqtt_secret() == "s3cret"


def test_settings_refuse_two_passwords_and_unknown_fields(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not both"):
        HubSettings(mqtt_password="a", mqtt_password_file=tmp_path / "pw")
    with pytest.raises(ValidationError, match="mqtt_hots"):
        HubSettings(mqtt_hots="x")  # type: ignore[call-arg]


def test_evidence_is_stored_once_by_hash(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path)
    data = b"\xff\xd8 image"
    sha = store.put_sync(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert store.put_sync(data) == sha
    assert store.get_sync(sha) == data
    assert store.path_of(sha).parent.parent.name == sha[:2]
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [store.path_of(sha)]
    with pytest.raises(NotFoundError):
        store.get_sync("0" * 64)
    with pytest.raises(NotFoundError, match="not a SHA-256"):
        store.get_sync("../../etc/passwd")


def test_citizen_report_budgets_come_from_the_environment_and_are_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XH_HUB_OPEN311_KEY_BURST", "5000")
    monkeypatch.setenv("XH_HUB_REPORT_PAGE_PLATE_PER_MIN", "0.5")
    s = HubSettings()
    assert (s.open311_key_burst, s.open311_key_per_min) == (5000, 120.0)
    assert s.report_page_plate_per_min == 0.5
    monkeypatch.setenv("XH_HUB_OPEN311_ADDRESS_BURST", "0")
    with pytest.raises(ValidationError, match="open311_address_burst"):
        HubSettings()
