"""A unit with a moving camera for live-view tests and bench/live.py.

Writes a short looping clip (a bright square crossing a textured street, so consecutive
frames differ), a constant detector that sees a stall in every frame, and an agent
config that runs them at 5 fps against a broker, trusting ``hub_public_key``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["LABELS", "moving_clip", "write_live_unit"]

LABELS = ("person", "car", "stall", "goods")


def moving_clip(path: Path, frames: int = 20, size: tuple[int, int] = (640, 360)) -> Path:
    """A paced MJPG clip of ``frames`` frames at 5 fps in which a square moves right."""
    import cv2
    import numpy as np

    width, height = size
    # A street-like texture (a gradient, stripes and grain): a 640 px frame weighs about
    # 20-30 kB as a JPEG, as a city camera's does, not the 5 kB of a flat picture.
    yy, xx = np.mgrid[0:height, 0:width]
    ground = 40 + 60 * xx / width + 30 * np.sin(yy / 17.0)
    grain = np.random.default_rng(1).normal(0, 8, (height, width, 3))
    street = np.clip(ground[..., None] + grain, 0, 255).astype(np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 5.0, size)
    for i in range(frames):
        frame = street.copy()
        x = int((width - 80) * i / max(1, frames - 1))
        frame[height // 3 : height // 3 + 80, x : x + 80] = (40, 200, 240)
        writer.write(frame)
    writer.release()
    return path


def _stall_model(folder: Path) -> Path:
    import numpy as np

    from edge_agent.vision.testing import write_constant_model

    out = np.zeros((1, 4 + len(LABELS), 20), np.float32)
    out[0, :4, 0] = (100, 200, 60, 40)
    out[0, 4 + LABELS.index("stall"), 0] = 0.9
    return Path(write_constant_model(folder, out, LABELS))


def write_live_unit(
    folder: Path,
    *,
    device_id: str,
    mqtt_port: int,
    hub_public_key: str,
    camera_id: str = "mast",
    live: dict[str, Any] | None = None,
) -> Path:
    """Write the clip, the model and the agent config under ``folder``; return the config."""
    folder.mkdir(parents=True, exist_ok=True)
    clip = moving_clip(folder / "street.avi")
    model = _stall_model(folder / "model")
    config: dict[str, Any] = {
        "device": {"id": device_id, "kind": "pole", "location": {"lat": 28.6472, "lon": 121.2615}},
        "mqtt": {
            "host": "127.0.0.1",
            "port": mqtt_port,
            "keepalive": 5,
            "backoff_initial_s": 0.2,
            "backoff_cap_s": 1.0,
        },
        "hub": {"public_key": hub_public_key},
        "outbox": {"path": str(folder / "state" / "outbox.db")},
        "telemetry": {"interval_s": 0.5},
        "live": live or {},
        "vision": {
            "detector": {"model": str(model), "intra_threads": 1},
            "cameras": [
                {
                    "id": camera_id,
                    "source": str(clip),
                    "detect_fps": 5,
                    "zones": [
                        {"name": "pavement", "polygon": [[0, 0.4], [1, 0.4], [1, 1], [0, 1]]}
                    ],
                    "rules": [
                        {"name": "vendor", "kind": "vendor", "zone": "pavement", "dwell_s": 60.0}
                    ],
                }
            ],
        },
    }
    path = folder / f"{device_id}.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path
