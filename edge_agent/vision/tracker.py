"""A small multi-object tracker: stable ids across frames, with a grace period.

Matching is greedy, per label, on an affinity that prefers, in order: a good IoU; a box
mostly contained in the other (a stall half hidden by a passing bus still matches); a
nearby centre with a similar size (a moving object seen at a low frame rate). A track
that goes unmatched survives ``grace_s`` seconds of frame time before it is dropped, so
a stationary stall stays one object while people and buses pass in front of it. A
detection left over after matching that mostly overlaps a track of its label is a
second box on the same object (the detector's NMS let it through), not a new object.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from edge_agent.vision.frames import Box, Detection

__all__ = ["TrackedObject", "Tracker"]


@dataclass(frozen=True, slots=True)
class TrackedObject:
    """A track as of the latest frame; ``seen`` is False while it is in its grace period."""

    track_id: int
    label: str
    score: float
    box: Box
    first_seen: datetime
    last_seen: datetime
    seen: bool
    hits: int
    model: str = ""


@dataclass(slots=True)
class _Track:
    track_id: int
    label: str
    score: float
    box: Box
    first_seen: datetime
    last_seen: datetime
    hits: int
    model: str = ""


def _affinity(a: Box, b: Box, iou_min: float, contain_min: float, centre_max: float) -> float:
    """How well box ``a`` (a track) matches box ``b`` (a detection); 0 means no match."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    area_a = max((a[2] - a[0]) * (a[3] - a[1]), 1e-12)
    area_b = max((b[2] - b[0]) * (b[3] - b[1]), 1e-12)
    if iw > 0 and ih > 0:
        inter = iw * ih
        iou = inter / (area_a + area_b - inter)
        if iou >= iou_min:
            return 2.0 + iou
        contain = inter / min(area_a, area_b)
        if contain >= contain_min:
            return 1.0 + contain * 0.5
    ratio = area_a / area_b
    if not 0.25 <= ratio <= 4.0:
        return 0.0
    diag = math.sqrt((a[2] - a[0]) ** 2 + (a[3] - a[1]) ** 2)
    dx = (a[0] + a[2] - b[0] - b[2]) / 2.0
    dy = (a[1] + a[3] - b[1] - b[3]) / 2.0
    dist = math.hypot(dx, dy) / max(diag, 1e-9)
    if dist <= centre_max:
        return 0.5 * (1.0 - dist / centre_max) + 1e-6
    return 0.0


def _duplicate(a: Box, b: Box, overlap: float) -> bool:
    """True when ``a`` and ``b`` overlap by ``overlap`` of the smaller one's area."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return False
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih >= overlap * max(smaller, 1e-12)


class Tracker:
    """Assigns stable ids to detections of one camera. Pure: time comes from the frames."""

    def __init__(
        self,
        *,
        grace_s: float = 30.0,
        iou_min: float = 0.3,
        contain_min: float = 0.6,
        centre_max: float = 1.0,
        duplicate_overlap: float = 0.7,
    ) -> None:
        self.grace_s = grace_s
        self.duplicate_overlap = duplicate_overlap
        self.iou_min = iou_min
        self.contain_min = contain_min
        self.centre_max = centre_max
        self._tracks: dict[int, _Track] = {}
        self._next_id = 1

    def __len__(self) -> int:
        return len(self._tracks)

    def update(self, detections: Sequence[Detection], ts: datetime) -> list[TrackedObject]:
        """Match ``detections`` of the frame taken at ``ts``; return every live track."""
        pairs: list[tuple[float, int, int]] = []
        tracks = list(self._tracks.values())
        for ti, track in enumerate(tracks):
            for di, det in enumerate(detections):
                if det.label != track.label:
                    continue
                aff = _affinity(track.box, det.box, self.iou_min, self.contain_min, self.centre_max)
                if aff > 0.0:
                    pairs.append((aff, ti, di))
        pairs.sort(key=lambda p: -p[0])
        used_t: set[int] = set()
        used_d: set[int] = set()
        seen: set[int] = set()
        for _, ti, di in pairs:
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            track, det = tracks[ti], detections[di]
            track.box = det.box
            track.score = det.score
            track.model = det.model
            track.last_seen = ts
            track.hits += 1
            seen.add(track.track_id)
        for di, det in enumerate(detections):
            if di in used_d:
                continue
            if any(
                t.label == det.label and _duplicate(t.box, det.box, self.duplicate_overlap)
                for t in tracks
            ):
                continue  # a second box on an object already tracked: not a new object
            track = _Track(self._next_id, det.label, det.score, det.box, ts, ts, 1, det.model)
            self._next_id += 1
            self._tracks[track.track_id] = track
            seen.add(track.track_id)
        for tid in [
            t.track_id
            for t in self._tracks.values()
            if (ts - t.last_seen).total_seconds() > self.grace_s
        ]:
            del self._tracks[tid]
        return [
            TrackedObject(
                t.track_id,
                t.label,
                t.score,
                t.box,
                t.first_seen,
                t.last_seen,
                t.track_id in seen,
                t.hits,
                t.model,
            )
            for t in self._tracks.values()
        ]
