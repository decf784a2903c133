"""Point the vision config's detectors at installed model packages (pure).

The unit's config names each detector's ``model``; a package installed by the hub for a
slot (see :mod:`edge_agent.update.store`) takes its place while it is active. Everything
else of the detector (providers, thresholds, label map) stays as the config says.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from edge_agent.vision.config import DEFAULT_MODEL, DetectorConfig, VisionConfig

__all__ = ["with_installed"]


def _pointed(detector: DetectorConfig, model: Path) -> DetectorConfig:
    return detector.model_copy(update={"model": Path(model)})


def with_installed(
    vision: VisionConfig, installed: Mapping[str, Path]
) -> tuple[VisionConfig, list[str]]:
    """``vision`` with each slot of ``installed`` running that package, and unknown slots.

    A slot is a key of ``vision.detectors``, or ``"default"`` for a config that gives one
    ``detector:``. Slots the config does not have change nothing and come back, sorted,
    as the second value. The copy keeps the config's form (``detector`` or ``detectors``),
    so it validates as the original does.
    """
    known = vision.models
    unknown = sorted(slot for slot in installed if slot not in known)
    if vision.detectors:
        detectors = {
            name: _pointed(detector, installed[name]) if name in installed else detector
            for name, detector in vision.detectors.items()
        }
        return vision.model_copy(update={"detectors": detectors}), unknown
    if DEFAULT_MODEL in installed:
        detector = _pointed(vision.detector, installed[DEFAULT_MODEL])
        return vision.model_copy(update={"detector": detector}), unknown
    return vision, unknown
