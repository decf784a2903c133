"""The detector's class list, shared by the renderer, the dataset and the shipped manifest."""

from __future__ import annotations

#: Class names in model output order (class index = position). Fixed: other code depends on it.
LABELS: tuple[str, ...] = (
    "person",
    "car",
    "bus",
    "truck",
    "stall",
    "goods",
    "garbage",
    "bin",
    "bin_overflow",
    "clothes",
    "debris",
)

LABEL_INDEX: dict[str, int] = {name: i for i, name in enumerate(LABELS)}
