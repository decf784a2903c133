"""Signed model packages: a unit loads only what the hub's model key signed, as it was signed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

from edge_agent.protocol import generate_signing_key, load_public_key
from edge_agent.vision.config import DetectorConfig
from edge_agent.vision.errors import ModelError
from edge_agent.vision.onnx_detector import OnnxDetector
from edge_agent.vision.package import PackageError, sign_package, verify_package
from edge_agent.vision.testing import write_constant_model

LABELS = ("person", "car")
KEY = generate_signing_key()


def _package(folder: Path) -> Path:
    out = np.zeros((1, 4 + len(LABELS), 8), dtype=np.float32)
    model = write_constant_model(folder, out, LABELS, size=64)
    (model / "MODEL_CARD.md").write_text("a test model\n")
    return model


@pytest.fixture
def signed(tmp_path: Path) -> Path:
    model = _package(tmp_path / "pkg")
    listed = sign_package(model, KEY)
    assert sorted(listed) == ["MODEL_CARD.md", "model.onnx"]
    return model


def test_a_signed_package_verifies_and_loads(signed: Path) -> None:
    assert sorted(verify_package(signed, KEY.public_key())) == ["MODEL_CARD.md", "model.onnx"]
    detector = OnnxDetector(DetectorConfig(model=signed), package_key=KEY.public_key())
    assert detector.model_ref.name == "const-detector"


def _refused(model: Path, why: str) -> None:
    with pytest.raises(PackageError, match=re.escape(why)):
        verify_package(model, KEY.public_key())


def test_an_unsigned_package_is_refused(tmp_path: Path) -> None:
    _refused(_package(tmp_path / "pkg"), "is not signed")


def test_a_package_signed_by_another_key_is_refused(tmp_path: Path) -> None:
    model = _package(tmp_path / "pkg")
    sign_package(model, generate_signing_key())
    _refused(model, "does not verify with the hub's model key")


def test_every_change_after_signing_is_refused(signed: Path, tmp_path: Path) -> None:
    """The model's bytes, the manifest's values, a missing, an added or a renamed file."""
    cases: dict[str, tuple[str, Callable[[Path], object]]] = {
        "model": ("was changed after signing", lambda m: _flip_byte(m / "model.onnx")),
        "manifest": ("does not verify", lambda m: _edit_manifest(m, score=0.01)),
        "missing": (
            "MODEL_CARD.md is listed but missing",
            lambda m: (m / "MODEL_CARD.md").unlink(),
        ),
        "extra": ("extra.onnx not covered", lambda m: (m / "extra.onnx").write_bytes(b"x")),
        "file list": ("does not verify", lambda m: _edit_manifest(m, drop_card=True)),
    }
    for name, (why, change) in cases.items():
        copy = tmp_path / name
        shutil.copytree(signed, copy)
        change(copy)
        _refused(copy, why)


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _edit_manifest(model: Path, *, score: float | None = None, drop_card: bool = False) -> None:
    manifest = yaml.safe_load((model / "manifest.yaml").read_text())
    if score is not None:
        manifest["thresholds"]["score"] = score
    if drop_card:
        del manifest["package"]["files"]["MODEL_CARD.md"]
        (model / "MODEL_CARD.md").unlink()
    (model / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))


def test_a_unit_refuses_a_bad_package_before_loading_anything(
    signed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The detector checks the package first: onnxruntime never sees a refused model."""
    import onnxruntime as ort

    _flip_byte(signed / "model.onnx")

    def never(*_: object, **__: object) -> None:
        raise AssertionError("onnxruntime was asked to load a refused package")

    monkeypatch.setattr(ort, "InferenceSession", never)
    with pytest.raises(ModelError, match=r"model\.onnx was changed after signing"):
        OnnxDetector(DetectorConfig(model=signed), package_key=KEY.public_key())
    with pytest.raises(ModelError, match="a model package is a directory"):
        OnnxDetector(DetectorConfig(model=signed / "model.onnx"), package_key=KEY.public_key())


def test_the_hub_signs_and_verifies_packages_from_its_command_line(tmp_path: Path) -> None:
    """`central-hub model key|sign|verify`, with the key kept in the hub's data folder."""
    model = _package(tmp_path / "pkg")
    hub = [sys.executable, "-m", "central_hub.cli", "--data-dir", str(tmp_path / "hub"), "model"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*hub, *args], capture_output=True, text=True, timeout=60, check=False
        )

    missing = run("verify", str(model))
    assert missing.returncode == 1
    assert "no model-signing key" in missing.stderr
    key = run("key")
    assert key.returncode == 0, key.stderr
    public = load_public_key(key.stdout.strip())
    assert (tmp_path / "hub" / "model_key.pem").stat().st_mode & 0o077 == 0
    unsigned = run("verify", str(model))
    assert unsigned.returncode == 1
    assert "refused" in unsigned.stderr
    assert "is not signed" in unsigned.stderr
    signed = run("sign", str(model))
    assert signed.returncode == 0, signed.stderr
    assert "2 files" in signed.stdout
    assert run("verify", str(model)).returncode == 0
    assert sorted(verify_package(model, public)) == ["MODEL_CARD.md", "model.onnx"]
