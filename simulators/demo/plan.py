"""What the demo runs (pure): its devices, their scenes and rules, and their agent configs.

Two pole units and one truck unit, each fed by a scripted scene through the real edge
pipeline:

* ``pole-market-01`` watches the market street (``market_street``): a vendor's stall on
  the pavement (0501), goods past a shop's door line (0504), an overflowing bin (2103);
  its loudspeaker shouts locally when a rule fires.
* ``pole-parking-01`` watches a no-parking box (``parking_street``): a parked car, with
  its plate read by OCR (0505).
* ``truck-07`` is a garbage truck's rear camera (``truck_debris``) driving a GPS route and
  dropping muck (2101), located by its GPS fix.

``--speed`` scales scenario time; the detect rate in frames per *wall* second stays
modest (three cameras, the hub and the broker share two cores), so a pole camera samples
its scene every ``speed / POLE_WALL_FPS`` scenario seconds. The truck's scene moves (debris
recedes behind the truck), so its tracker needs at least :data:`TRUCK_MIN_SCENE_FPS`
samples per scenario second: the truck's scene runs at most :data:`TRUCK_MAX_SPEED` times
real time. Dwell times are the demo's own (a minute, not five), so every case shows up
within the first two minutes of scene time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "GENERAL_RATE_DIVISOR",
    "PARKING_WAIT_SCENE_S",
    "POLE_WALL_FPS",
    "TRUCK_MAX_SPEED",
    "TRUCK_MIN_SCENE_FPS",
    "TRUCK_WALL_FPS",
    "CameraPlan",
    "DemoDevice",
    "DemoPlanError",
    "agent_config",
    "demo_devices",
    "demo_vehicles",
    "route_csv",
    "scene_rate",
]

#: Frames per wall second each pole camera runs the detector on.
POLE_WALL_FPS = 2.0
#: Frames per wall second of the truck's rear camera.
TRUCK_WALL_FPS = 4.5
#: The truck's tracker loses receding debris below this many samples per scene second.
TRUCK_MIN_SCENE_FPS = 1.5
#: Fastest the truck's scene may run (``TRUCK_WALL_FPS / TRUCK_MIN_SCENE_FPS``).
TRUCK_MAX_SPEED = TRUCK_WALL_FPS / TRUCK_MIN_SCENE_FPS
#: A pole's general model runs on every this-many-th frame of its camera.
GENERAL_RATE_DIVISOR = 2.0
#: The move-your-car loop's wait between reminder and recheck, in scene seconds: the
#: parking scene's first car has left by then and its second has not (the bureau's wait
#: is ten minutes; the hub's ``parking_wait_s`` is this divided by ``--speed``).
PARKING_WAIT_SCENE_S = 150.0
#: Largest ``--speed`` accepted: beyond it a pole camera samples its scene too rarely
#: for a one-minute dwell rule.
MAX_SPEED = 30.0


class DemoPlanError(ValueError):
    """Demo options that cannot work (a speed out of range ...)."""


@dataclass(frozen=True)
class CameraPlan:
    """One camera of a demo device: its scene, frame size and rules."""

    camera_id: str
    scenario: str
    width: int
    height: int
    rules: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class DemoDevice:
    """A demo unit: id, kind, camera, speaker phrases (poles) and what it should raise."""

    device_id: str
    kind: Literal["pole", "truck"]
    camera: CameraPlan
    phrases: dict[str, str] = field(default_factory=dict)
    expected_codes: tuple[str, ...] = ()


def demo_devices() -> tuple[DemoDevice, ...]:
    """The three demo units (see the module docstring)."""
    market = DemoDevice(
        "pole-market-01",
        "pole",
        CameraPlan(
            "market-mast",
            "market_street",
            960,
            540,
            (
                {
                    "name": "vendor",
                    "kind": "vendor",
                    "zone": "pavement",
                    "dwell_s": 60,
                    "cooldown_s": 120,
                    "shout": "no-vending",
                },
                {
                    "name": "shop-front",
                    "kind": "shop_front",
                    "zone": "shop_front",
                    "dwell_s": 60,
                    "cooldown_s": 120,
                    "shout": "keep-door-clear",
                },
                {
                    "name": "bin",
                    "kind": "bin_overflow",
                    "zone": "pavement",
                    "dwell_s": 30,
                    "cooldown_s": 300,
                },
            ),
        ),
        phrases={
            "no-vending": "请勿占道经营，请将摊位移入店内。",
            "keep-door-clear": "请勿越门经营，谢谢配合。",
        },
        expected_codes=("0501", "0504"),
    )
    parking = DemoDevice(
        "pole-parking-01",
        "pole",
        CameraPlan(
            "parking-mast",
            "parking_street",
            1280,  # the plate reader needs full-size frames
            720,
            (
                {
                    "name": "no-parking",
                    "kind": "parking",
                    "zone": "no_parking",
                    "dwell_s": 60,
                    "cooldown_s": 120,
                    "shout": "no-parking",
                },
            ),
        ),
        phrases={"no-parking": "此处禁止停车，请尽快驶离。"},
        expected_codes=("0505",),
    )
    truck = DemoDevice(
        "truck-07",
        "truck",
        CameraPlan(
            "rear",
            "truck_debris",
            960,
            540,
            ({"name": "spillage", "kind": "spillage", "zone": "road"},),
        ),
        expected_codes=("2101",),
    )
    return (market, parking, truck)


def demo_vehicles(devices: tuple[DemoDevice, ...]) -> list[dict[str, str]]:
    """The vehicle registry the demo starts with: the owners of the cars its parking
    scenes park (read from the scenes' ground truth, as a city imports its registry), each
    with a made-up phone the stand-in SMS gateway takes."""
    from simulators import scenarios  # the scene builder: only when a demo starts

    plates: list[str] = []
    for device in devices:
        if not any(rule.get("kind") == "parking" for rule in device.camera.rules):
            continue
        scene = scenarios.load(device.camera.scenario, seed=0, width=320, height=180, fps=1.0)
        plates += [v.plate for v in scene.truth if v.plate]
    return [
        {"plate": plate, "owner_name": f"车主{n}", "phone": f"1380000{n:04d}"}
        for n, plate in enumerate(dict.fromkeys(plates), start=1)
    ]


def scene_rate(kind: str, speed: float) -> tuple[float, float]:
    """``(scene_speed, detect_fps)`` of a camera on a ``kind`` unit at demo ``speed``.

    ``detect_fps`` is in frames per scenario second (what the scenario source renders);
    times ``scene_speed`` it gives frames per wall second.
    """
    if not (math.isfinite(speed) and 0.1 <= speed <= MAX_SPEED):
        raise DemoPlanError(f"--speed must be between 0.1 and {MAX_SPEED:g}, got {speed:g}")
    if kind == "truck":
        scene_speed = min(speed, TRUCK_MAX_SPEED)
        return scene_speed, min(30.0, TRUCK_WALL_FPS / scene_speed)
    return speed, min(30.0, POLE_WALL_FPS / speed)


def route_csv(route: tuple[tuple[float, float, float], ...]) -> str:
    """A scenario's route (``(t, lat, lon)`` once a second) as a ``lat,lon`` route file."""
    lines = ["# truck route from the truck_debris scene, one fix per scene second"]
    lines += [f"{lat:.6f},{lon:.6f}" for _, lat, lon in route]
    return "\n".join(lines) + "\n"


def agent_config(
    provisioned: dict[str, Any],
    device: DemoDevice,
    *,
    camera: dict[str, Any],
    location: tuple[float, float] | None,
    state_dir: Path,
    model_dir: Path,
    speaker_backend: str,
    route_file: Path | None,
    route_interval_s: float,
    general_model_dir: Path | None = None,
) -> dict[str, Any]:
    """The demo agent's whole config: what provisioning wrote, plus the site's sections.

    ``camera`` is the camera section (a :class:`CameraConfig` dumped to JSON types).
    Provisioning owns ``device``/``mqtt``/``hub``; the demo adds the pole's surveyed
    position and a short reconnect backoff (the demo restarts its broker).

    With ``general_model_dir`` a pole runs two models, as a real pole does: the street
    model on every frame and the general (COCO) model at half the camera's rate. Rules
    ask for plain labels (``car``), which either model may report: on the demo's drawn
    scenes the general model, trained on photos, finds few cars, the street model most.
    """
    config = {k: dict(v) if isinstance(v, dict) else v for k, v in provisioned.items()}
    config["config_version"] = 1
    if location is not None:
        config["device"]["location"] = {"lat": location[0], "lon": location[1]}
    config["mqtt"] = {**config["mqtt"], "keepalive": 10, "backoff_cap_s": 3.0}
    config["outbox"] = {"path": str(state_dir / "outbox.db"), "synchronous": "NORMAL"}
    if device.kind == "pole":
        config["speaker"] = {
            "backend": speaker_backend,
            "wav_dir": str(state_dir / "speaker"),
            "phrases": dict(device.phrases),
            "tts_cache": str(state_dir / "tts-cache"),
        }
    else:
        config["speaker"] = {"backend": "null"}
    if route_file is not None:
        config["gps"] = {
            "source": "route",
            "route_file": str(route_file),
            "route_interval_s": route_interval_s,
            "track_batch": 30,
            "track_interval_s": 10.0,
        }
    config["telemetry"] = {"interval_s": 5.0}
    street = {"model": str(model_dir), "providers": ["cpu"], "intra_threads": 1}
    if general_model_dir is None or device.kind != "pole":
        # Named like the poles' street model, so one rollout reaches every unit's slot.
        config["vision"] = {"detectors": {"street": street}, "cameras": [camera]}
        return config
    general = {"model": str(general_model_dir), "providers": ["cpu"], "intra_threads": 1}
    models = [
        {"name": "street"},
        {"name": "general", "fps": camera.get("detect_fps", 5.0) / GENERAL_RATE_DIVISOR},
    ]
    config["vision"] = {
        "detectors": {"street": street, "general": general},
        "cameras": [{**camera, "models": models}],
    }
    return config
