"""The rule engine (pure): zones, dwell, score, schedule and cooldown decide violations.

For every rule and every track of its labels whose box's bottom-centre lies in the
rule's zone with at least ``min_score``, the engine keeps how long the track has been
there (frame time, so replays behave like live). Brief absences (occlusion, flicker at a
zone edge) up to the grace period do not reset that dwell. When the dwell reaches the
rule's ``dwell_s`` inside its schedule, a :class:`Violation` is raised:

* per-object kinds (vendor, parking) raise one per track; a new track on the spot of a
  violation raised within the cooldown is taken for the same object and stays silent;
* the other kinds raise one per zone for everything that qualifies there, then stay
  silent for ``cooldown_s``; objects that qualify meanwhile are folded into that event.

During an exemption (a convenience service day, :mod:`edge_agent.vision.exemptions`) a
rule raises nothing, as outside its schedule: dwell still counts, so a stall still there
when the window ends is reported at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from edge_agent.vision.config import CameraConfig, RuleConfig, Schedule
from edge_agent.vision.exemptions import Exemption, active_exemption
from edge_agent.vision.frames import Box
from edge_agent.vision.geometry import Polygon, box_iou
from edge_agent.vision.tracker import TrackedObject

__all__ = ["RuleEngine", "Violation", "ViolationObject"]

#: A new track overlapping a recent violation's box this much is the same object.
SAME_SPOT_IOU = 0.3
#: A stationary object whose bottom-centre moved more than this share of its box's width
#: (sideways) or height (up or down) from where its stay began has moved: the stay
#: restarts there. Half a box tolerates a half-hidden stall and detector jitter.
MOVE_SHARE = 0.5
#: A stay counts only if its object was seen in at least this share of the frames since
#: it began: a stall hidden by a bus for 20 s of 300 s is still seen in 90% of them, but
#: different cars passing the same spot, sampled at a low frame rate, are not a parked car.
MIN_SEEN_SHARE = 0.5
#: A smaller box at least this much inside the stay's first box is the object partly hidden.
HIDDEN_INSIDE = 0.8
#: Evidence frames are kept only once a stay has lasted this share of the rule's dwell:
#: objects merely passing through a zone then pin no frames in memory.
EVIDENCE_FROM = 0.5


@dataclass(frozen=True, slots=True)
class ViolationObject:
    """An object of a violation, as seen in its best frame."""

    track_id: int
    label: str
    score: float
    box: Box
    model: str = ""


@dataclass(frozen=True)
class Violation:
    """A rule broken: what, where, since when, and the best evidence seen.

    ``evidence`` is whatever the caller passed to :meth:`RuleEngine.evaluate` with the
    frame where the main object scored best (the pipeline passes the frame itself).
    """

    camera_id: str
    rule: RuleConfig
    started_at: datetime
    detected_at: datetime
    dwell_s: float
    confidence: float
    objects: tuple[ViolationObject, ...]
    evidence: object = field(repr=False)
    evidence_ts: datetime


def _moved(anchor: Box, box: Box) -> bool:
    """True when ``box``'s bottom-centre left ``anchor``'s by more than :data:`MOVE_SHARE`
    of the anchor's width (sideways) or height (up or down), unless ``box`` lies mostly
    inside ``anchor``: that is the same object partly hidden (a car in front of a stall
    hides its bottom and lifts its box's bottom edge)."""
    w = max(anchor[2] - anchor[0], 1e-6)
    h = max(anchor[3] - anchor[1], 1e-6)
    dx = abs((box[0] + box[2]) - (anchor[0] + anchor[2])) / 2.0
    dy = abs(box[3] - anchor[3])
    if dx <= MOVE_SHARE * w and dy <= MOVE_SHARE * h:
        return False
    iw = min(anchor[2], box[2]) - max(anchor[0], box[0])
    ih = min(anchor[3], box[3]) - max(anchor[1], box[1])
    area = max((box[2] - box[0]) * (box[3] - box[1]), 1e-12)
    inside = max(iw, 0.0) * max(ih, 0.0) / area
    return inside < HIDDEN_INSIDE


@dataclass(slots=True)
class _Presence:
    """One track's stay in one rule's zone."""

    since: datetime
    last_in: datetime
    score_sum: float
    count: int
    best: ViolationObject
    best_payload: object
    best_ts: datetime
    anchor: Box
    fired: bool = False
    frames: int = 0  # frames of this camera since the stay began, seen or not

    @property
    def seen_share(self) -> float:
        return self.count / max(self.frames, 1)

    @property
    def dwell_s(self) -> float:
        return (self.last_in - self.since).total_seconds()

    @property
    def mean_score(self) -> float:
        return self.score_sum / self.count


@dataclass
class _RuleState:
    rule: RuleConfig
    polygon: Polygon
    schedule: Schedule | None
    labels: frozenset[str]
    presence: dict[int, _Presence] = field(default_factory=dict)
    last_fired: datetime | None = None
    fired_spots: list[tuple[Box, datetime]] = field(default_factory=list)


class RuleEngine:
    """Evaluates one camera's rules over its tracks, frame after frame."""

    def __init__(
        self,
        camera: CameraConfig,
        *,
        tz: tzinfo,
        grace_s: float | None = None,
        exemptions: Iterable[Exemption] = (),
    ) -> None:
        self.camera_id = camera.id
        self._tz = tz
        #: This camera's exemptions (service days); other cameras' are dropped here.
        self.exemptions = tuple(e for e in exemptions if e.camera == camera.id)
        self._grace_s = camera.track_grace_s if grace_s is None else grace_s
        self._rules = [
            _RuleState(
                rule=rule,
                polygon=Polygon.of(camera.zone(rule.zone).polygon),
                schedule=rule.parsed_schedule,
                labels=frozenset(rule.labels),
            )
            for rule in camera.rules
        ]

    def _in_schedule(self, state: _RuleState, ts: datetime) -> bool:
        if state.schedule is None:
            return True
        return state.schedule.contains(ts.astimezone(self._tz).time().replace(tzinfo=None))

    def evaluate(
        self, tracks: Sequence[TrackedObject], ts: datetime, evidence: object = None
    ) -> list[Violation]:
        """Feed the tracks of the frame taken at ``ts``; return the violations it completes."""
        out: list[Violation] = []
        for state in self._rules:
            self._observe(state, tracks, ts, evidence)
            if (
                state.presence
                and self._in_schedule(state, ts)
                and self.exemption(state.rule, ts) is None
            ):
                out.extend(self._fire(state, ts))
        return out

    def exemption(self, rule: RuleConfig, ts: datetime) -> Exemption | None:
        """The exemption that keeps ``rule`` silent at ``ts``, or None."""
        if not self.exemptions:
            return None
        return active_exemption(self.exemptions, self.camera_id, rule, ts)

    def exempted(self, ts: datetime) -> dict[str, Exemption]:
        """The rules exempted at ``ts`` (by rule name), with the exemption of each."""
        out = {}
        for state in self._rules:
            found = self.exemption(state.rule, ts)
            if found is not None:
                out[state.rule.name] = found
        return out

    def _observe(
        self, state: _RuleState, tracks: Sequence[TrackedObject], ts: datetime, evidence: object
    ) -> None:
        rule = state.rule
        live = set()
        for track in tracks:
            live.add(track.track_id)
            if not track.seen or not (
                track.label in state.labels or f"{track.model}:{track.label}" in state.labels
            ):
                continue
            if track.score < rule.min_score or not state.polygon.contains_box(track.box):
                continue
            view = ViolationObject(track.track_id, track.label, track.score, track.box, track.model)
            pres = state.presence.get(track.track_id)
            if pres is None or (ts - pres.last_in).total_seconds() > self._grace_s:
                keep = evidence if rule.dwell_s == 0 else None
                state.presence[track.track_id] = _Presence(
                    ts,
                    ts,
                    track.score,
                    1,
                    view,
                    keep,
                    ts,
                    track.box,
                    fired=pres.fired if pres else False,
                )
                continue
            if rule.stationary and _moved(pres.anchor, track.box):
                pres.since, pres.anchor = ts, track.box  # it moved on: its stay starts again
                pres.score_sum, pres.count, pres.frames = 0.0, 0, 0
                pres.best, pres.best_ts = view, ts
                pres.best_payload = evidence if rule.dwell_s == 0 else None
            pres.last_in = ts
            pres.score_sum += track.score
            pres.count += 1
            if pres.dwell_s >= rule.dwell_s * EVIDENCE_FROM and (
                pres.best_payload is None or track.score > pres.best.score + 0.01
            ):
                pres.best, pres.best_payload, pres.best_ts = view, evidence, ts
        for tid in [
            tid
            for tid, pres in state.presence.items()
            if tid not in live or (ts - pres.last_in).total_seconds() > self._grace_s
        ]:
            del state.presence[tid]
        for pres in state.presence.values():
            pres.frames += 1
        if rule.cooldown_s:
            state.fired_spots = [
                (box, at)
                for box, at in state.fired_spots
                if (ts - at).total_seconds() < rule.cooldown_s
            ]

    def _ready(self, state: _RuleState, ts: datetime) -> list[tuple[int, _Presence]]:
        return [
            (tid, p)
            for tid, p in state.presence.items()
            if not p.fired
            and p.last_in == ts
            and p.dwell_s >= state.rule.dwell_s
            and p.seen_share >= MIN_SEEN_SHARE
        ]

    def _fire(self, state: _RuleState, ts: datetime) -> list[Violation]:
        rule = state.rule
        ready = self._ready(state, ts)
        if not ready:
            return []
        if rule.per_object:
            out = []
            for _tid, pres in ready:
                pres.fired = True
                if any(
                    box_iou(pres.best.box, box) >= SAME_SPOT_IOU for box, _ in state.fired_spots
                ):
                    continue  # the same object under a new track id: already reported
                state.fired_spots.append((pres.best.box, ts))
                out.append(self._violation(state, [pres], ts))
            return out
        for _tid, pres in ready:
            pres.fired = True
        if state.last_fired is not None and (
            (ts - state.last_fired).total_seconds() < rule.cooldown_s
        ):
            return []
        state.last_fired = ts
        return [self._violation(state, [p for _, p in ready], ts)]

    def _violation(self, state: _RuleState, group: list[_Presence], ts: datetime) -> Violation:
        main = max(group, key=lambda p: (p.dwell_s, p.best.score))
        return Violation(
            camera_id=self.camera_id,
            rule=state.rule,
            started_at=min(p.since for p in group),
            detected_at=ts,
            dwell_s=max(p.dwell_s for p in group),
            confidence=max(p.mean_score for p in group),
            objects=tuple(p.best for p in sorted(group, key=lambda p: p is not main)),
            evidence=main.best_payload,
            evidence_ts=main.best_ts,
        )
