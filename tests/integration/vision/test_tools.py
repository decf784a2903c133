"""``edge-agent replay`` and ``edge-agent draw-zones`` through the tools' parsers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from edge_agent import protocol
from edge_agent.vision import tools

from .conftest import PAVEMENT


def run_tool(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    tools.register(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


def write_config(path: Path, model: Path | None, source: str, **camera: object) -> Path:
    cam: dict[str, object] = {
        "id": "cam1",
        "source": source,
        "detect_fps": 5,
        "location": {"lat": 28.6455, "lon": 121.265},
        "zones": [
            {"name": "pavement", "polygon": PAVEMENT},
            {"name": "door", "polygon": [[0.1, 0.1], [0.4, 0.1], [0.4, 0.3], [0.1, 0.3]]},
        ],
        "rules": [{"name": "vendor", "kind": "vendor", "zone": "pavement", "dwell_s": 1.0}],
    }
    cam.update(camera)
    vision: dict[str, object] = {"cameras": [cam]}
    if model is not None:
        vision["detector"] = {"model": str(model)}
    path.write_text(yaml.safe_dump({"vision": vision}, allow_unicode=True))
    return path


def test_replay_prints_events_as_json_lines(
    tmp_path: Path, stall_model: Path, gray_clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "agent.yaml", stall_model, "rtsp://10.0.0.9/live")
    code = run_tool(
        [
            "replay",
            "--config",
            str(config),
            "--video",
            str(gray_clip),
            "--start",
            "2026-05-01T09:00:00+08:00",
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    lines = out.out.strip().splitlines()
    assert len(lines) == 1
    event = protocol.decode(protocol.Event, lines[0])
    assert event.code == "0501"
    assert event.started_at.isoformat() == "2026-05-01T01:00:00+00:00"
    assert event.dwell_s >= 1.0
    assert json.loads(lines[0])["snapshot"]["jpeg_b64"]
    assert "1 event(s)" in out.err


def test_replay_reports_a_missing_video_and_a_bad_model(
    tmp_path: Path, stall_model: Path, gray_clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "agent.yaml", stall_model, "0")
    assert run_tool(["replay", "--config", str(config), "--video", str(tmp_path / "x.mp4")]) == 2
    assert "x.mp4 does not exist" in capsys.readouterr().err
    (stall_model / "model.onnx").write_bytes(b"garbage")
    assert run_tool(["replay", "--config", str(config), "--video", str(gray_clip)]) == 2
    assert "is corrupt" in capsys.readouterr().err


def test_invalid_zone_is_reported_with_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(
        tmp_path / "agent.yaml",
        None,
        "0",
        zones=[{"name": "pavement", "polygon": [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]}],
    )
    assert run_tool(["draw-zones", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "vision.cameras.0.zones.0.polygon" in err
    assert "self-intersecting" in err


def test_draw_zones_from_a_frame_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = tmp_path / "frame.png"
    cv2.imwrite(str(frame), np.zeros((360, 640, 3), np.uint8))
    config = write_config(tmp_path / "agent.yaml", None, "rtsp://10.0.0.9/live")
    out = tmp_path / "zones.png"
    code = run_tool(
        ["draw-zones", "--config", str(config), "--frame", str(frame), "--out", str(out)]
    )
    assert code == 0, capsys.readouterr().err
    image = cv2.imread(str(out))
    assert image.shape == (360, 640, 3)
    assert image[300, 320].any()  # inside 'pavement': tinted
    assert not image[5, 620].any()  # outside every zone: untouched black


def test_draw_zones_grabs_a_frame_from_the_camera_source(
    tmp_path: Path, gray_clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "agent.yaml", None, str(gray_clip))
    out = tmp_path / "zones.png"
    assert run_tool(["draw-zones", "--config", str(config), "--out", str(out)]) == 0
    assert cv2.imread(str(out)).shape == (240, 320, 3)
    assert "2 zone(s) of camera cam1" in capsys.readouterr().out
    assert run_tool(["draw-zones", "--config", str(config), "--camera", "nope"]) == 2
    assert "no camera 'nope'" in capsys.readouterr().err


def test_unreachable_camera_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge_agent.vision import sources

    monkeypatch.setattr(sources, "OPEN_TIMEOUT_S", 1.0)
    config = write_config(tmp_path / "agent.yaml", None, "http://127.0.0.1:9/stream.mjpg")
    assert run_tool(["draw-zones", "--config", str(config)]) == 2
    assert "camera cam1: cannot open url http://127.0.0.1:9/stream.mjpg" in capsys.readouterr().err


def test_draw_zones_from_a_video_and_the_shipped_example(
    tmp_path: Path, gray_clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    example = (
        Path(__file__).resolve().parents[3] / "firmware_config" / "zones" / "parking-pole.yaml"
    )
    out = tmp_path / "zones.png"
    code = run_tool(
        ["draw-zones", "--config", str(example), "--video", str(gray_clip), "--out", str(out)]
    )
    assert code == 0, capsys.readouterr().err
    assert cv2.imread(str(out)).shape == (240, 320, 3)
    assert "3 zone(s) of camera parking-mast" in capsys.readouterr().out
