"""Installed packages replace the config's model paths, in both config forms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_agent.update.overrides import with_installed
from edge_agent.vision.config import VisionConfig


def _two_models() -> dict[str, Any]:
    camera = {
        "id": "cam1",
        "source": "clip.mp4",
        "models": [{"name": "street"}, {"name": "general", "fps": 2}],
        "zones": [{"name": "box", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
        "rules": [{"name": "p", "kind": "parking", "zone": "box", "labels": ["general:car"]}],
    }
    return {
        "detectors": {
            "street": {"providers": ["cuda", "cpu"], "score_threshold": 0.5},
            "general": {"model": "models/general-detector"},
        },
        "cameras": [camera],
    }


def _revalidated(config: VisionConfig) -> VisionConfig:
    return VisionConfig.model_validate_json(config.model_dump_json())


def test_named_detectors_take_their_installed_packages() -> None:
    vision = VisionConfig.model_validate(_two_models())
    package = Path("/var/lib/xiuhua/models/street/1.3.0-0123456789ab")
    got, unknown = with_installed(vision, {"street": package, "night": Path("/x")})
    assert unknown == ["night"]
    assert got.models["street"].model == package
    assert got.models["street"].providers == ("cuda", "cpu"), "the rest of the detector stays"
    assert got.models["street"].score_threshold == 0.5
    assert got.models["general"] == vision.models["general"]
    assert got.detector == vision.detector, "the form stays: no 'detector' beside 'detectors'"
    assert _revalidated(got) == got
    assert vision.models["street"].model == Path("models/street-detector"), "a copy"


def test_a_single_detector_is_the_default_slot() -> None:
    vision = VisionConfig.model_validate({"detector": {"model": "models/mine", "workers": 2}})
    package = Path("/m/default/2.0-0123456789ab")
    got, unknown = with_installed(vision, {"default": package, "street": Path("/s")})
    assert unknown == ["street"]
    assert got.detector.model == package
    assert got.detector.workers == 2
    assert got.detectors == {}
    assert list(got.models) == ["default"]
    assert _revalidated(got) == got


def test_default_is_unknown_to_a_config_with_named_detectors() -> None:
    vision = VisionConfig.model_validate(_two_models())
    got, unknown = with_installed(vision, {"default": Path("/d")})
    assert unknown == ["default"]
    assert got == vision
    assert _revalidated(got) == got


def test_nothing_installed_changes_nothing() -> None:
    vision = VisionConfig.model_validate({})
    assert with_installed(vision, {}) == (vision, [])
