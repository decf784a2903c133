"""``edge-agent eval`` end to end: real photos and synthetic scenes through the real models.

Two folders in YOLO format are built here: three photos scikit-image ships in its wheel
(an astronaut, a cat, a motorcycle; boxes drawn by eye) scored against the COCO general
detector, and 30 held-out synthetic street scenes with exact boxes scored against the
shipped street detector.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import pytest
import skimage.data

from edge_agent import cli
from simulators.scenes import LABELS, render_sample

ROOT = Path(__file__).resolve().parents[3]
GENERAL = ROOT / "models" / "general-detector"
STREET = ROOT / "models" / "street-detector"
#: Seeds of the synthetic scenes: the held-out range training never used.
HELDOUT_SEED = 7_000_000

#: Photo in skimage/data -> YOLO label lines (class cx cy w h), boxes judged by eye.
PHOTOS = {
    "astronaut": ["0 0.38 0.515 0.68 0.97", "3 0.81 0.28 0.22 0.56"],  # person, rocket
    "chelsea": ["1 0.48 0.50 0.96 1.00"],  # cat (fills the frame)
    "motorcycle_left": ["2 0.525 0.525 0.81 0.75"],  # red motorcycle in a garage
}
#: "dining table" has no instance: it checks name matching (model label dining_table).
PHOTO_NAMES = ["person", "cat", "motorcycle", "rocket", "dining table"]


def run_eval(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``python -m edge_agent.cli eval ...`` as a technician would run it."""
    return subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "eval", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=240,
        check=False,
    )


def one_json_line(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    out: dict[str, Any] = json.loads(lines[0])
    return out


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three real photos from scikit-image's wheel, labelled; data.yaml as a mapping."""
    source = Path(skimage.data.__file__).parent  # the PNGs ship inside: no download
    root = tmp_path_factory.mktemp("photos")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    for stem, lines in PHOTOS.items():
        shutil.copy(source / f"{stem}.png", root / "images" / f"{stem}.png")
        (root / "labels" / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    names = "\n".join(f"  {i}: {name}" for i, name in enumerate(PHOTO_NAMES))
    (root / "data.yaml").write_text(f"path: .\nval: images\nnc: 5\nnames:\n{names}\n")
    return root


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 held-out synthetic scenes with exact boxes, plus one empty image with no label
    file; the class list as classes.txt."""
    root = tmp_path_factory.mktemp("scenes")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    for i in range(30):
        sample = render_sample(HELDOUT_SEED + i, 640, 360)
        h, w = sample.image.shape[:2]
        cv2.imwrite(str(root / "images" / f"{i:03d}.jpg"), sample.image)
        lines = []
        for label, (x1, y1, x2, y2) in sample.labels:
            cx, cy, bw, bh = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h
            lines.append(f"{LABELS.index(label)} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
        (root / "labels" / f"{i:03d}.txt").write_text("\n".join(lines))
    empty = render_sample(HELDOUT_SEED + 999, 640, 360, empty=True)
    cv2.imwrite(str(root / "images" / "empty.png"), empty.image)
    (root / "classes.txt").write_text("\n".join(LABELS) + "\n")
    return root


@pytest.fixture
def general_model() -> Path:
    assert (GENERAL / "model.onnx").is_file(), f"{GENERAL} is shipped with the checkout"
    return GENERAL


def test_general_detector_finds_the_photos_objects(photos: Path, general_model: Path) -> None:
    out = one_json_line(run_eval("--model", general_model, "--data", photos))
    assert out["model"]["name"] == "general-detector"
    assert (out["images"], out["ground_truth"], out["iou"]) == (3, 3, 0.5)
    assert out["unmatched_classes"] == ["rocket"]
    assert set(out["classes"]) == {"person", "cat", "motorcycle", "dining_table"}
    for label in ("person", "cat", "motorcycle"):
        figures = out["classes"][label]
        assert figures["ground_truth"] == 1
        assert figures["recall"] == 1.0, (label, figures)
        assert figures["ap50"] >= 0.99, (label, figures)
    assert out["classes"]["dining_table"]["ap50"] is None  # no ground truth: not in mAP
    assert out["map50"] >= 0.99
    assert out["score_threshold"] == 0.35  # the manifest's, for precision and recall
    assert out["ap_score_threshold"] == 0.05
    assert out["ms_per_image"] > 0


def test_labels_option_limits_scoring(photos: Path, general_model: Path) -> None:
    out = one_json_line(
        run_eval("--model", general_model, "--data", photos, "--labels", "Cat,dining-table")
    )
    assert set(out["classes"]) == {"cat", "dining_table"}
    assert out["ground_truth"] == 1


def test_street_detector_on_synthetic_scenes(scenes: Path) -> None:
    out = one_json_line(run_eval("--model", STREET, "--data", scenes, "--threads", "1"))
    assert out["model"]["name"] == "street-detector"
    assert out["images"] == 31
    assert out["unmatched_classes"] == []
    assert set(out["classes"]) == set(LABELS)
    car = out["classes"]["car"]
    assert car["ground_truth"] > 10
    assert car["ap50"] > 0.5, car
    assert out["map50"] > 0.5, out
    assert out["ground_truth"] == sum(c["ground_truth"] for c in out["classes"].values())
    assert 0 < out["precision"] <= 1
    assert 0 < out["recall"] <= 1


def test_street_detector_misses_the_photos(photos: Path) -> None:
    """The synthetic-trained detector knows only `person` of the photos' classes."""
    out = one_json_line(run_eval("--model", STREET, "--data", photos))
    assert set(out["classes"]) == {"person"}
    assert out["unmatched_classes"] == ["cat", "motorcycle", "rocket", "dining table"]


def test_broken_label_file_exits_2_naming_file_and_line(photos: Path, tmp_path: Path) -> None:
    data = tmp_path / "broken"
    shutil.copytree(photos, data)
    (data / "labels" / "chelsea.txt").write_text("1 0.48 0.50 0.96 1.00\n1 0.5 0.5 0.9\n")
    result = run_eval("--model", STREET, "--data", data)
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"{data / 'labels' / 'chelsea.txt'}:2: expected 5 fields" in result.stderr


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda d: shutil.rmtree(d / "images"), "no images folder"),
        (lambda d: (d / "data.yaml").unlink(), "no class list"),
        (
            lambda d: (d / "labels" / "chelsea.txt").write_text("7 0.5 0.5 0.2 0.2\n"),
            "out of range",
        ),
        (lambda d: (d / "images" / "astronaut.png").write_bytes(b"not a png"), "cannot read"),
    ],
)
def test_dataset_errors_exit_2(
    photos: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    break_it: Callable[[Path], object],
    message: str,
) -> None:
    data = tmp_path / "data"
    shutil.copytree(photos, data)
    break_it(data)
    assert cli.main(["eval", "--model", str(STREET), "--data", str(data)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("edge-agent eval: ")
    assert message in captured.err


def test_unknown_labels_and_missing_model_exit_2(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["eval", "--model", str(STREET), "--data", str(photos), "--labels", "cat"]
    assert cli.main(argv) == 2
    assert "--labels: cat not among" in capsys.readouterr().err
    assert cli.main(["eval", "--model", str(tmp_path / "nope"), "--data", str(photos)]) == 2
    assert str(tmp_path / "nope") in capsys.readouterr().err
