"""Is the car still there? The pure decision behind a ``spot.recheck`` command.

After a move-your-car reminder the hub asks the unit that saw the car to look again at
the same camera and zone. The unit watches a few fresh frames and answers ``still_there``
or ``cleared``; a wrong ``still_there`` would register an owner who did move for
enforcement, so the car must be *the same car*:

* a car in the zone whose plate reads as the reminded plate is the same car;
* a car in the zone whose plate cannot be read now is the same car only when its box
  overlaps the box of the original event (same spot, :data:`SAME_SPOT_IOU`); another
  car parked elsewhere in a long kerb zone is not;
* a car in the zone whose plate reads as another plate is another car.

A parked car is seen in most frames, while a detector flickers in a few: the car counts
as still there when it is seen in at least :data:`MIN_SEEN_SHARE` of the frames looked
at. Without a plate (the event had none) the same-spot rule alone decides.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edge_agent.vision.frames import Box, Detection
from edge_agent.vision.geometry import Polygon, box_iou

__all__ = [
    "MIN_SEEN_SHARE",
    "SAME_SPOT_IOU",
    "Outcome",
    "RecheckResult",
    "decide",
    "normalise_plate",
]

#: A box overlapping the original event's box this much is on the same spot.
SAME_SPOT_IOU = 0.3
#: The car must be seen in at least this share of the frames looked at.
MIN_SEEN_SHARE = 0.5


class Outcome(enum.StrEnum):
    """The unit's answer."""

    CLEARED = "cleared"
    STILL_THERE = "still_there"


@dataclass(frozen=True, slots=True)
class RecheckResult:
    """The answer, the frames it rests on, and the box of the car when it is there."""

    outcome: Outcome
    frames: int
    seen: int
    box: Box | None = None
    plate: str | None = None


def normalise_plate(text: str) -> str:
    """A plate as compared: upper case, without spaces, dots or dashes."""
    return "".join(ch for ch in text.upper() if ch not in " .-·")


def _same_car(
    detection: Detection,
    read: str | None,
    plate: str | None,
    original: Box | None,
) -> bool:
    if plate and read:
        return normalise_plate(read) == normalise_plate(plate)
    # No plate to compare (none reminded, or unreadable now): the spot decides.
    return original is not None and box_iou(detection.box, original) >= SAME_SPOT_IOU


def decide(
    frames: Sequence[Sequence[Detection]],
    *,
    zone: Polygon,
    labels: frozenset[str],
    min_score: float,
    plate: str | None,
    original_box: Box | None,
    read_plate: Callable[[int, Detection], str | None],
) -> RecheckResult:
    """Decide from the detections of ``frames`` (oldest first).

    ``read_plate(frame_index, detection)`` reads the plate of a candidate car in that
    frame (None when unreadable); it is only called for cars in the zone, so a unit reads
    a handful of plates, not one per detection.
    """
    if not frames:
        raise ValueError("a recheck needs at least one frame")
    seen = 0
    last: tuple[Box, str | None] | None = None
    for index, detections in enumerate(frames):
        for detection in detections:
            if detection.label not in labels or detection.score < min_score:
                continue
            if not zone.contains_box(detection.box):
                continue
            read = read_plate(index, detection) if plate else None
            if _same_car(detection, read, plate, original_box):
                seen += 1
                last = (detection.box, read)
                break
    there = seen >= MIN_SEEN_SHARE * len(frames)
    if there and last is not None:
        return RecheckResult(Outcome.STILL_THERE, len(frames), seen, last[0], last[1])
    return RecheckResult(Outcome.CLEARED, len(frames), seen)
