"""The model store: safe extraction, active/previous switching, state and pending files."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import tarfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from edge_agent.update.store import ModelStore, StoreError, package_dirname

SHA_A = "a" * 64
SHA_B = "b" * 64
SHA_C = "c" * 64
PACKAGE = {"manifest.yaml": b"name: street\n", "model.onnx": b"\x08\x07onnx", "LICENSE": b"MIT\n"}


def make_tar(path: Path, files: dict[str, bytes], extra: Sequence[tarfile.TarInfo] = ()) -> Path:
    """An uncompressed tar of ``files`` (name -> bytes) and ``extra`` bare headers."""
    with tarfile.open(path, "w:") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    return path


def installed(store: ModelStore, tmp_path: Path, slot: str, sha: str, version: str) -> Path:
    archive = make_tar(tmp_path / f"{sha}.tar", {**PACKAGE, "VERSION": version.encode()})
    return store.extract(slot, archive, sha256=sha, version=version)


def test_extract_unpacks_into_a_named_folder(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    archive = make_tar(tmp_path / "p.tar", PACKAGE)
    got = store.extract("street", archive, sha256=SHA_A, version="1.3.0")
    assert got == tmp_path / "models" / "street" / f"1.3.0-{SHA_A[:12]}"
    assert {p.name: p.read_bytes() for p in got.iterdir()} == PACKAGE
    assert [p.name for p in got.parent.iterdir()] == [got.name], "no temporary folder left"
    # the same archive again is the folder already there (the archive is not even read)
    assert store.extract("street", tmp_path / "gone.tar", sha256=SHA_A, version="1.3.0") == got


def test_versions_are_sanitised_into_folder_names() -> None:
    assert package_dirname("1.3.0", SHA_A) == f"1.3.0-{SHA_A[:12]}"
    assert package_dirname("../../etc v2", SHA_A) == f"_.._etc_v2-{SHA_A[:12]}"
    assert package_dirname("..", SHA_A) == f"v-{SHA_A[:12]}"
    with pytest.raises(StoreError, match="not a sha256"):
        package_dirname("1", "../x")


def test_slot_names_are_checked(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    archive = make_tar(tmp_path / "p.tar", PACKAGE)
    for slot in ("incoming", "../x", "Street", ""):
        with pytest.raises(StoreError, match="not a slot name"):
            store.extract(slot, archive, sha256=SHA_A, version="1")


def _info(name: str, kind: bytes, **attrs: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


@pytest.mark.parametrize(
    ("extra", "files", "message"),
    [
        ([], {"../evil": b"x"}, "'../evil' points outside"),
        ([], {"sub/../../evil": b"x"}, "points outside"),
        ([], {"/etc/evil": b"x"}, "'/etc/evil' points outside"),
        ([_info("link", tarfile.SYMTYPE, linkname="/etc/passwd")], {}, "'link' is not a regular"),
        ([_info("hard", tarfile.LNKTYPE, linkname="model.onnx")], {}, "'hard' is not a regular"),
        ([_info("tty", tarfile.CHRTYPE, devmajor=5, devminor=0)], {}, "'tty' is not a regular"),
        ([_info("fifo", tarfile.FIFOTYPE)], {}, "'fifo' is not a regular"),
        ([], {f"f{i}": b"" for i in range(65)}, "more than 64 members"),
    ],
)
def test_dangerous_archives_are_refused(
    tmp_path: Path, extra: list[tarfile.TarInfo], files: dict[str, bytes], message: str
) -> None:
    store = ModelStore(tmp_path / "models")
    archive = make_tar(tmp_path / "bad.tar", {**PACKAGE, **files}, extra)
    with pytest.raises(StoreError, match=re.escape(message)):
        store.extract("street", archive, sha256=SHA_A, version="1")
    assert not (tmp_path / "evil").exists()
    assert list((tmp_path / "models" / "street").iterdir()) == [], "nothing half unpacked"


def test_too_many_bytes_and_not_a_tar_are_refused(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models", max_bytes=20)
    archive = make_tar(tmp_path / "big.tar", PACKAGE)
    with pytest.raises(StoreError, match="more than 20 bytes"):
        store.extract("street", archive, sha256=SHA_A, version="1")
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(StoreError, match=re.escape("cannot unpack archive junk.tar")):
        store.extract("street", junk, sha256=SHA_A, version="1")


def test_activate_rollback_deactivate_and_prune(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    a = installed(store, tmp_path, "street", SHA_A, "1.0")
    assert store.active("street") is None
    store.activate("street", a)
    assert (store.active("street"), store.previous("street")) == (a, None)
    with pytest.raises(StoreError, match="slot street has no previous model"):
        store.rollback("street")

    b = installed(store, tmp_path, "street", SHA_B, "2.0")
    store.activate("street", b)
    assert (store.active("street"), store.previous("street")) == (b, a)
    store.activate("street", b)  # again: previous stays the one before
    assert store.previous("street") == a

    assert store.rollback("street") == a
    assert (store.active("street"), store.previous("street")) == (a, b)
    assert store.rollback("street") == b

    c = installed(store, tmp_path, "street", SHA_C, "3.0")
    store.activate("street", c)
    assert (store.active("street"), store.previous("street")) == (c, b)
    assert not a.exists(), "older packages are pruned"
    assert sorted(p.name for p in c.parent.iterdir()) == sorted([b.name, c.name, "state.json"])

    store.deactivate("street")
    assert (store.active("street"), store.previous("street")) == (None, c)
    assert store.overrides() == {}
    assert store.rollback("street") == c


def test_discard_removes_a_staged_package_only(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    a = installed(store, tmp_path, "street", SHA_A, "1.0")
    store.activate("street", a)
    b = installed(store, tmp_path, "street", SHA_B, "2.0")
    store.discard("street", b)
    assert not b.exists()
    with pytest.raises(StoreError, match="active, previous or shadow"):
        store.discard("street", a)
    with pytest.raises(StoreError, match="not a package folder of slot street"):
        store.activate("street", tmp_path)


def test_state_json_is_written_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ModelStore(tmp_path / "models")
    a = installed(store, tmp_path, "street", SHA_A, "1.0")
    store.activate("street", a)
    state = tmp_path / "models" / "street" / "state.json"
    assert json.loads(state.read_text()) == {"active": a.name, "previous": None}
    b = installed(store, tmp_path, "street", SHA_B, "2.0")

    def power_cut(src: object, dst: object) -> None:
        raise OSError("power cut before the rename")

    monkeypatch.setattr(os, "replace", power_cut)
    with pytest.raises(OSError, match="power cut"):
        store.activate("street", b)
    monkeypatch.undo()
    assert json.loads(state.read_text()) == {"active": a.name, "previous": None}
    assert sorted(p.name for p in state.parent.iterdir()) == sorted([a.name, b.name, state.name])


def test_a_damaged_state_costs_only_its_slot(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ModelStore(tmp_path / "models")
    a = installed(store, tmp_path, "street", SHA_A, "1.0")
    store.activate("street", a)
    g = installed(store, tmp_path, "general", SHA_B, "1.0")
    store.activate("general", g)
    assert store.overrides() == {"street": a, "general": g}

    state = tmp_path / "models" / "general" / "state.json"
    for damage in ("{not json", '["a list"]', '{"active": "../../etc"}'):
        state.write_text(damage)
        with caplog.at_level(logging.WARNING, logger="edge_agent.update.store"):
            caplog.clear()
            assert store.overrides() == {"street": a}
        assert str(state) in caplog.text
        with pytest.raises(StoreError, match=re.escape(str(state))):
            store.active("general")

    # a new install replaces the damaged file
    store.activate("general", g)
    assert store.overrides() == {"street": a, "general": g}


def test_a_state_naming_a_missing_package_is_no_override(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ModelStore(tmp_path / "models")
    a = installed(store, tmp_path, "street", SHA_A, "1.0")
    store.activate("street", a)
    for path in a.iterdir():
        path.unlink()
    a.rmdir()
    with caplog.at_level(logging.WARNING):
        assert store.overrides() == {}
    assert "missing" in caplog.text


def test_pending_is_saved_loaded_and_cleared(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    assert store.pending() is None
    params = {"slot": "street", "sha256": SHA_A, "size": 10, "token": "t", "version": "1.3.0"}
    store.save_pending(params)
    assert store.pending() == params
    assert store.pending_path.stat().st_mode & 0o777 == 0o600, "it holds the download token"
    store.clear_pending()
    assert store.pending() is None
    store.clear_pending()  # nothing to clear is fine


def test_damaged_pending_is_no_install(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = ModelStore(tmp_path)
    store.pending_path.write_text("{cut off")
    with caplog.at_level(logging.WARNING):
        assert store.pending() is None
    assert "pending.json" in caplog.text


def test_clear_incoming_keeps_only_the_named_archive(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    store.clear_incoming(keep=SHA_A)  # no folder yet: nothing to do
    store.incoming.mkdir()
    keep = store.archive_path(SHA_A)
    for path in (keep, Path(f"{keep}.part"), store.archive_path(SHA_B), store.incoming / "x"):
        path.write_bytes(b"x")
    store.clear_incoming(keep=SHA_A)
    assert sorted(p.name for p in store.incoming.iterdir()) == [keep.name, f"{keep.name}.part"]
    store.clear_incoming(None)
    assert list(store.incoming.iterdir()) == []
    assert keep.parent == tmp_path / "incoming"


def test_a_signed_package_survives_the_round_trip(tmp_path: Path) -> None:
    """What ``tar -C pkg -cf a.tar .`` makes of a signed package unpacks and verifies."""
    import numpy as np

    from edge_agent.protocol import generate_signing_key
    from edge_agent.vision.package import sign_package, verify_package
    from edge_agent.vision.testing import write_constant_model

    key = generate_signing_key()
    out = np.zeros((1, 6, 8), dtype=np.float32)
    package = write_constant_model(tmp_path / "pkg", out, ("person", "car"), size=64)
    (package / "MODEL_CARD.md").write_text("a test model\n")
    sign_package(package, key)
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w:") as tar:
        tar.add(package, arcname=".")
    store = ModelStore(tmp_path / "models")
    got = store.extract("default", archive, sha256=SHA_A, version="1.0")
    assert sorted(verify_package(got, key.public_key())) == ["MODEL_CARD.md", "model.onnx"]


def test_a_shadow_lives_beside_the_slot_and_survives_pruning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ModelStore(tmp_path / "models")
    one = installed(store, tmp_path, "street", "a" * 64, "1.0.0")
    store.activate("street", one)
    candidate = installed(store, tmp_path, "street", "b" * 64, "2.0.0")
    store.set_shadow("street", candidate, ["mast"])
    assert store.shadows() == {"street": (candidate, ("mast",))}
    assert store.overrides() == {"street": one}  # the slot still runs its model
    with pytest.raises(StoreError, match="shadow"):
        store.discard("street", candidate)
    three = installed(store, tmp_path, "street", "c" * 64, "3.0.0")
    store.activate("street", three)  # prunes what is neither active, previous nor shadow
    assert candidate.is_dir()
    newer = installed(store, tmp_path, "street", "d" * 64, "4.0.0")
    store.set_shadow("street", newer, [])
    assert not candidate.exists()  # the shadow it replaced is gone
    assert store.shadows() == {"street": (newer, ())}
    assert store.clear_shadow("street") is True
    assert not newer.exists()
    assert store.shadows() == {}
    assert store.clear_shadow("street") is False
    (store.slot_dir("street") / "shadow.json").write_text("{not json", encoding="utf-8")
    assert store.shadows() == {}
    assert "runs no shadow model" in caplog.text
