"""The vision pipeline: frames → detector → tracker → rules → evidence → events.

:class:`CameraPipeline` is one camera's pure chain (tracker and rule engine);
:class:`EventFactory` turns a violation into the wire :class:`protocol.Event`;
:class:`VisionService` runs every camera of a box in threads around one shared detector
and hands events to the agent's asyncio loop; :func:`replay` runs one camera offline.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
import zoneinfo
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_agent import protocol
from edge_agent.vision.capture import CaptureLoop, FrameBoard
from edge_agent.vision.config import CameraConfig, VisionConfig
from edge_agent.vision.detector import Detector
from edge_agent.vision.errors import ModelError, UnknownCamera, VisionError
from edge_agent.vision.evidence import clean_frame, encode_jpeg, snapshot
from edge_agent.vision.exemptions import Exemption
from edge_agent.vision.frames import Box, Detection, Frame
from edge_agent.vision.geometry import Polygon
from edge_agent.vision.memory import release_free_memory
from edge_agent.vision.model_set import ModelSet, RatePlan
from edge_agent.vision.plates import PlateReader, make_plate_reader
from edge_agent.vision.recheck import RecheckResult, decide
from edge_agent.vision.rules import RuleEngine, Violation
from edge_agent.vision.sources import Source, SourceFactory, make_source
from edge_agent.vision.tracker import TrackedObject, Tracker

__all__ = [
    "CameraPipeline",
    "EventFactory",
    "VisionService",
    "VisionStats",
    "load_detector",
    "replay",
]

logger = logging.getLogger(__name__)

EventSink = Callable[[protocol.Event], Awaitable[None]]
ShoutSink = Callable[[str], Awaitable[None]]
LocationFn = Callable[[], protocol.Location | None]

#: Sink retry delays: first, and the cap it doubles up to (tests set them small).
SINK_RETRY_S = 0.5
SINK_RETRY_CAP_S = 30.0
#: How long a snapshot request waits for a camera's next frame.
SNAPSHOT_WAIT_S = 5.0
#: A recheck (``spot.recheck``) looks at this many fresh frames of the camera, waiting at
#: most ``RECHECK_WAIT_S`` for them (at 5 fps, a second).
RECHECK_FRAMES = 5
RECHECK_WAIT_S = 20.0


def load_detector(
    config: VisionConfig,
    problems: list[str] | None = None,
    package_key: Ed25519PublicKey | None = None,
) -> Detector:
    """The detector of ``config``: its one ONNX model, or a :class:`ModelSet` of several
    (imports onnxruntime only now). With ``package_key`` (the hub's model key) every model
    must be a package signed by it (:mod:`edge_agent.vision.package`).

    A model that cannot load (missing, corrupt, a layout we cannot read) is left out with
    its reason appended to ``problems``, and the box runs the models it has; only when
    none loads is the :class:`ModelError` raised. What onnxruntime freed after loading
    goes back to the kernel at once: the box's resident memory should not keep the
    loading's high-water mark.
    """
    from edge_agent.vision.onnx_detector import OnnxDetector  # heavy: import on use

    models = config.models
    plans = {
        cam.id: RatePlan(
            dict(config.camera_models(cam)), 1.0 / cam.detect_fps, config.camera_tiles(cam)
        )
        for cam in config.cameras
        if cam.models
    }
    label_maps = {name: d.label_map for name, d in models.items() if d.label_map}
    if len(models) == 1 and not plans and not label_maps:
        detector: Detector = OnnxDetector(next(iter(models.values())), package_key=package_key)
        release_free_memory()
        return detector
    loaded: dict[str, Detector] = {}
    errors: list[str] = []
    for name, model_config in models.items():
        try:
            loaded[name] = OnnxDetector(model_config, spinning=False, package_key=package_key)
        except ModelError as exc:
            errors.append(f"model {name!r}: {exc}")
            logger.error("model %r cannot be used; the box runs without it: %s", name, exc)
    if not loaded:
        raise ModelError("no model of this box could be loaded: " + "; ".join(errors))
    if problems is not None:
        problems.extend(errors)
    release_free_memory()
    return ModelSet(loaded, plans, label_maps)


def load_shadow(
    config: VisionConfig,
    problems: list[str] | None = None,
    package_key: Ed25519PublicKey | None = None,
) -> ModelSet | None:
    """The shadow candidate of ``config`` (see :class:`ShadowConfig`) as a one-model set on
    the cameras it shadows, at its slot's rates, tiles and label map; None without one.
    A candidate that cannot load is left out with its reason in ``problems``."""
    from edge_agent.vision.onnx_detector import OnnxDetector  # heavy: import on use

    shadow = config.shadow
    cameras = set(config.shadow_cameras())
    if shadow is None or not cameras:
        return None
    base = config.models[shadow.slot]
    try:
        candidate = OnnxDetector(
            base.model_copy(update={"model": shadow.model}),
            spinning=False,
            package_key=package_key,
        )
    except ModelError as exc:
        if problems is not None:
            problems.append(f"shadow model for {shadow.slot!r}: {exc}")
        logger.error("shadow model cannot be used; the box runs without it: %s", exc)
        return None
    plans = {
        cam.id: RatePlan(
            {shadow.slot: dict(config.camera_models(cam))[shadow.slot]},
            1.0 / cam.detect_fps,
            {k: v for k, v in config.camera_tiles(cam).items() if k == shadow.slot},
        )
        for cam in config.cameras
        if cam.id in cameras
    }
    maps = {shadow.slot: base.label_map} if base.label_map else {}
    return ModelSet({shadow.slot: candidate}, plans, maps)


@dataclass(frozen=True)
class EvidenceFrame:
    """What the rule engine keeps of a frame: the frame and all its detections."""

    frame: Frame
    detections: tuple[Detection, ...]


class CameraPipeline:
    """One camera's tracker and rule engine; pure apart from holding its latest frame.

    ``exempted`` holds the rules an exemption (a service day) keeps silent at the latest
    frame, with the exemption's name; each change is logged, so a technician reading the
    unit's log (or its metrics) sees why a stall there is not reported.
    """

    def __init__(
        self, camera: CameraConfig, *, timezone: str, exemptions: Sequence[Exemption] = ()
    ) -> None:
        self.camera = camera
        self.tracker = Tracker(grace_s=camera.track_grace_s)
        self.rules = RuleEngine(camera, tz=zoneinfo.ZoneInfo(timezone), exemptions=exemptions)
        self.tracks: list[TrackedObject] = []
        self.exempted: dict[str, str] = {}

    def step(self, frame: Frame, detections: Sequence[Detection]) -> list[Violation]:
        """Track the frame's detections and return the violations they complete."""
        self.tracks = self.tracker.update(detections, frame.ts)
        if self.rules.exemptions:
            self._note_exemptions(frame.ts)
        return self.rules.evaluate(self.tracks, frame.ts, EvidenceFrame(frame, tuple(detections)))

    def _note_exemptions(self, ts: datetime) -> None:
        active = self.rules.exempted(ts)
        now = {rule: e.name for rule, e in active.items()}
        for rule, name in now.items():
            if self.exempted.get(rule) != name:
                logger.info(
                    "camera %s: rule %s exempted until %s by %s: it reports nothing meanwhile",
                    self.camera.id,
                    rule,
                    active[rule].end.isoformat(),
                    name,
                )
        for rule, name in self.exempted.items():
            if rule not in now:
                logger.info(
                    "camera %s: rule %s reports again (%s is over)", self.camera.id, rule, name
                )
        self.exempted = now


class EventFactory:
    """Builds wire events from violations: evidence JPEG, plate, location, ids."""

    def __init__(
        self,
        config: VisionConfig,
        *,
        device_id: str,
        next_seq: Callable[[], int],
        location: LocationFn,
        model: protocol.ModelRef,
        plate_reader: PlateReader | None = None,
        models: Mapping[str, protocol.ModelRef] | None = None,
        shadow_model: protocol.ModelRef | None = None,
    ) -> None:
        self._config = config
        self._shadow_model = shadow_model
        self._device_id = device_id
        self._next_seq = next_seq
        self._location = location
        self._model = model
        self._models = dict(models or {})
        self._plates = plate_reader

    @classmethod
    def refs_of(cls, detector: Detector) -> dict[str, protocol.ModelRef]:
        """Each model's reference by its name on the box (empty for a single model)."""
        return detector.model_refs() if isinstance(detector, ModelSet) else {}

    def location_for(self, camera: CameraConfig) -> protocol.Location | None:
        """The camera's surveyed place, or the unit's latest GPS fix for vehicle cameras."""
        if camera.location is not None:
            return protocol.Location(
                lat=camera.location.lat, lon=camera.location.lon, source="fixed"
            )
        return self._location()

    def build(
        self, violation: Violation, camera: CameraConfig, *, shadow: bool = False
    ) -> protocol.Event | None:
        """The event of ``violation``; None while a vehicle camera has no GPS fix yet.

        ``shadow``: raised by the shadow candidate: marked so, with its model, without the
        clean frame and outside the event sequence (``seq`` 0)."""
        location = self.location_for(camera)
        if location is None:
            return None
        rule = violation.rule
        evidence = violation.evidence
        plate = None
        snap = frame = None
        if isinstance(evidence, EvidenceFrame):
            image = evidence.frame.image
            if rule.read_plate and self._plates is not None and self._config.evidence.read_plates:
                try:
                    plate = self._plates.read(image, violation.objects[0].box)
                except Exception:  # an OCR failure must not lose the event
                    logger.exception("camera %s: plate reading failed", camera.id)
            marked = [(o.box, f"{o.label} #{o.track_id} {rule.code}") for o in violation.objects]
            snap = snapshot(
                image,
                marked,
                self._config.evidence,
                others=evidence.detections,
                blur_faces=camera.blur_faces,
                blur_plates=camera.blur_plates,
            )
            if self._config.evidence.keep_frame and not shadow:
                frame = clean_frame(image, self._config.evidence, evidence.detections)
        model = self._models.get(violation.objects[0].model, self._model)
        if shadow and self._shadow_model is not None:
            model = self._shadow_model
        return protocol.Event(
            event_id=protocol.uuid7(),
            device_id=self._device_id,
            camera_id=camera.id,
            seq=self._next_seq(),
            kind=rule.event_kind,
            code=rule.code,
            started_at=violation.started_at,
            detected_at=violation.detected_at,
            dwell_s=round(violation.dwell_s, 3),
            confidence=round(min(1.0, max(0.0, violation.confidence)), 4),
            objects=tuple(
                protocol.DetectedObject(
                    label=o.label,
                    score=round(min(1.0, max(0.0, o.score)), 4),
                    box=o.box,
                    track_id=o.track_id,
                )
                for o in violation.objects[:64]
            ),
            zone=rule.zone,
            location=location,
            snapshot=snap,
            frame=frame,
            # The model that saw the main object; the box's first model for a single one.
            model=model,
            plate=plate,
            shadow=shadow,
        )


def replay(
    config: VisionConfig,
    camera: CameraConfig,
    *,
    detector: Detector,
    source: Source | None = None,
    source_factory: SourceFactory = make_source,
    video: Path | None = None,
    device_id: str = "replay",
    location_at: Callable[[datetime], protocol.Location | None] = lambda ts: None,
    plate_reader: PlateReader | None = None,
    start_time: datetime | None = None,
    batch: int = 1,
) -> Iterator[protocol.Event]:
    """Run ``camera``'s pipeline offline over its source (or ``video``); yield its events.

    The source is ``source`` when given, else ``source_factory``'s for the camera (or
    for ``video`` in its place).

    Frames are processed as fast as they come, stamped with the video's or scenario's
    own clock, so dwell and cooldown behave as they would live. ``location_at(ts)`` gives
    a vehicle camera's position at a frame time (fixed cameras use their own).
    """
    src = source or source_factory(camera, replay=True, video=video, start_time=start_time)
    pipe = CameraPipeline(camera, timezone=config.timezone)
    seq = iter(range(1, 1 << 62))
    now: list[datetime] = []
    factory = EventFactory(
        config,
        device_id=device_id,
        next_seq=lambda: next(seq),
        location=lambda: location_at(now[-1]) if now else None,
        model=detector.model_ref,
        plate_reader=plate_reader,
        models=EventFactory.refs_of(detector),
    )
    src.open()
    try:
        done = False
        while not done:
            frames: list[Frame] = []
            while len(frames) < batch:
                frame = src.read()
                if frame is None:
                    done = True
                    break
                frames.append(frame)
            if not frames:
                break
            for frame, dets in zip(frames, detector.detect(frames), strict=True):
                now[:] = [frame.ts]
                for violation in pipe.step(frame, dets):
                    event = factory.build(violation, camera)
                    if event is None:
                        logger.warning("camera %s: event without a location dropped", camera.id)
                        continue
                    yield event
    finally:
        src.close()


@dataclass(frozen=True)
class ModelFigures:
    """One model of a :class:`ModelSet`: inputs run, seconds they took, failed runs."""

    frames: int
    seconds: float
    errors: int


@dataclass(frozen=True)
class VisionStats:
    """Figures for telemetry: processed fps, recent inference time (per frame), dropped
    frames, camera health; ``frames`` and ``events`` count everything since start."""

    fps: float
    inference_ms: float
    dropped_frames: int
    cameras: dict[str, protocol.CameraHealth] = field(default_factory=dict)
    frames: int = 0
    events: int = 0
    models: dict[str, ModelFigures] = field(default_factory=dict)
    #: Rules an exemption keeps silent now: ``camera/rule`` -> the service day's name.
    exempted: dict[str, str] = field(default_factory=dict)


@dataclass
class _Pending:
    camera: CameraConfig
    violation: Violation
    shadow: bool = False


@dataclass
class _Watch:
    """A recheck waiting for a camera's next frames and their detections."""

    need: int
    seen: list[tuple[Frame, list[Detection]]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)


class VisionService:
    """Runs every camera of a box around one shared detector.

    Capture, inference and evidence run in their own threads (blocking OpenCV and
    onnxruntime never touch the event loop); events come back to the loop and go to the
    ``sink`` in order. A violation of a vehicle camera with no GPS fix yet waits until
    ``location()`` gives one. ``source_factory`` makes each camera's source (the agent's
    own :func:`make_source` unless a simulator or a test passes another).
    """

    def __init__(
        self,
        config: VisionConfig,
        *,
        device_id: str,
        next_seq: Callable[[], int],
        location: LocationFn,
        clock: Callable[[], datetime] = protocol.utc_now,
        detector: Detector | None = None,
        plate_reader: PlateReader | None = None,
        loop_files: bool = True,
        on_problem: Callable[[], None] | None = None,
        source_factory: SourceFactory = make_source,
        package_key: Ed25519PublicKey | None = None,
        exemptions: Sequence[Exemption] = (),
    ) -> None:
        self._config = config
        self._package_key = package_key
        self._on_problem = on_problem
        self._device_id = device_id
        self._next_seq = next_seq
        self._location = location
        self._clock = clock
        self._detector = detector
        self._plate_reader = plate_reader
        self._loop_files = loop_files
        self._make_source = source_factory
        self._board = FrameBoard()
        self._loops: dict[str, CaptureLoop] = {}
        self._pipes = {
            c.id: CameraPipeline(c, timezone=config.timezone, exemptions=exemptions)
            for c in config.cameras
        }
        #: The shadow candidate's own tracker and rules on each camera it shadows.
        self._shadow_pipes = {
            c.id: CameraPipeline(c, timezone=config.timezone)
            for c in config.cameras
            if c.id in config.shadow_cameras()
        }
        self._shadow: ModelSet | None = None
        self.shadow_events = 0
        self._infer_ms: deque[float] = deque(maxlen=50)
        #: Rechecks waiting for frames, per camera (under ``_lock``).
        self._watches: dict[str, list[_Watch]] = {}
        #: Live views (``live.start``): each processed frame of a camera goes to its tap.
        self._live_taps: dict[str, Callable[[Frame, Sequence[Detection]], None]] = {}
        #: The plate reader ``run`` uses (rechecks read plates with it too).
        self._plates_in_use: PlateReader | None = plate_reader
        self._processed: deque[float] = deque(maxlen=512)
        self._frames = 0
        self._events = 0
        self._lock = threading.Lock()
        self.errors = 0
        #: Models that could not load (the box runs without them), for the unit's status.
        self.problems: list[str] = []

    # ------------------------------------------------------------------ public

    def stats(self) -> VisionStats:
        """Current figures; cheap, callable from the event loop."""
        now = time.monotonic()
        recent = [t for t in list(self._processed) if now - t <= 10.0]
        fps = 0.0
        if len(recent) >= 2:
            fps = (len(recent) - 1) / max(now - recent[0], 1e-6)
        ms = list(self._infer_ms)
        cameras = {}
        for cam in self._config.cameras:
            loop = self._loops.get(cam.id)
            if loop is None:
                cameras[cam.id] = protocol.CameraHealth(state="stopped", fps=0.0, dropped=0)
                continue
            view = loop.health()
            cameras[cam.id] = protocol.CameraHealth(
                state=view.state, fps=view.fps, dropped=self._board.dropped.get(cam.id, 0)
            )
        models = {}
        if isinstance(self._detector, ModelSet):
            ms_set = self._detector
            models = {
                name: ModelFigures(ms_set.inferred[name], ms_set.infer_s[name], ms_set.errors[name])
                for name in ms_set.model_refs()
            }
        return VisionStats(
            fps=round(fps, 2),
            inference_ms=round(sum(ms) / len(ms), 2) if ms else 0.0,
            dropped_frames=sum(self._board.dropped.values()),
            cameras=cameras,
            frames=self._frames,
            events=self._events,
            models=models,
            exempted={
                f"{camera_id}/{rule}": name
                for camera_id, pipe in self._pipes.items()
                for rule, name in dict(pipe.exempted).items()
            },
        )

    async def snapshot(self, camera_id: str) -> bytes:
        """The camera's latest frame as a JPEG (for ``snapshot.request``)."""
        try:
            self._config.camera(camera_id)
        except KeyError:
            raise UnknownCamera(f"no camera {camera_id!r} on this box") from None
        image = await asyncio.to_thread(self._board.next_image, camera_id, SNAPSHOT_WAIT_S)
        if image is None:
            raise VisionError(f"camera {camera_id!r} has given no frame for {SNAPSHOT_WAIT_S} s")
        jpeg, _, _ = await asyncio.to_thread(
            encode_jpeg, image, self._config.evidence.max_bytes, self._config.evidence.quality
        )
        return jpeg

    def live_tap(
        self, camera_id: str, tap: Callable[[Frame, Sequence[Detection]], None] | None
    ) -> None:
        """Hand each frame of ``camera_id`` the pipeline processes, with its detections,
        to ``tap`` (called on an inference thread: it must only store them), or stop."""
        with self._lock:
            if tap is None:
                self._live_taps.pop(camera_id, None)
            else:
                self._live_taps[camera_id] = tap

    def zones_of(self, camera_id: str) -> dict[str, tuple[tuple[float, float], ...]]:
        """The zones of ``camera_id`` (normalised polygons); KeyError for no such camera."""
        camera = self._config.camera(camera_id)
        return {z.name[:64]: tuple(z.polygon) for z in camera.zones}

    async def recheck(
        self, camera_id: str, zone: str, plate: str | None, box: Box | None
    ) -> tuple[RecheckResult, bytes]:
        """Is the parked car of a reminder still in ``zone``? (``spot.recheck``)

        Watches the camera's next :data:`RECHECK_FRAMES` frames as the running pipeline
        detects them (no second inference path), decides with
        :func:`edge_agent.vision.recheck.decide` using the zone's parking rule (labels,
        minimum score) and the unit's plate reader, and returns the answer with the last
        frame as a JPEG. Raises :class:`UnknownCamera` or :class:`VisionError` (no such
        parking zone, no frames in time).
        """
        try:
            camera = self._config.camera(camera_id)
        except KeyError:
            raise UnknownCamera(f"no camera {camera_id!r} on this box") from None
        polygon = next((z.polygon for z in camera.zones if z.name == zone), None)
        rule = next((r for r in camera.rules if r.zone == zone and r.read_plate), None)
        if polygon is None or rule is None:
            raise VisionError(f"camera {camera_id!r} has no parking rule on zone {zone!r}")
        watch = _Watch(need=RECHECK_FRAMES)
        with self._lock:
            self._watches.setdefault(camera_id, []).append(watch)
        try:
            await asyncio.to_thread(watch.done.wait, RECHECK_WAIT_S)
        finally:
            with self._lock:
                self._watches[camera_id].remove(watch)
        seen = list(watch.seen)
        if not seen:
            raise VisionError(f"camera {camera_id!r} gave no frame for {RECHECK_WAIT_S} s")
        reader = self._plates_in_use

        def read(index: int, detection: Detection) -> str | None:
            if reader is None:
                return None
            found = reader.read(seen[index][0].image, detection.box)
            return found.text if found is not None else None

        result = await asyncio.to_thread(
            decide,
            [dets for _, dets in seen],
            zone=Polygon.of(polygon),
            labels=frozenset(rule.labels),
            min_score=rule.min_score,
            plate=plate,
            original_box=box,
            read_plate=read,
        )
        jpeg, _, _ = await asyncio.to_thread(
            encode_jpeg,
            seen[-1][0].image,
            self._config.evidence.max_bytes,
            self._config.evidence.quality,
        )
        return result, jpeg

    async def run(self, sink: EventSink, shout: ShoutSink | None = None) -> None:
        """Run all cameras until cancelled (or until every finite source has ended)."""
        loop = asyncio.get_running_loop()
        if self._detector is None:
            self._detector = await asyncio.to_thread(
                load_detector, self._config, self.problems, self._package_key
            )
            if self._shadow_pipes:
                self._shadow = await asyncio.to_thread(
                    load_shadow, self._config, self.problems, self._package_key
                )
            if self.problems and self._on_problem is not None:
                self._on_problem()  # e.g. the unit's status turns degraded
        detector = self._detector
        plate_reader = self._plate_reader
        if (
            plate_reader is None
            and any(r.read_plate for c in self._config.cameras for r in c.rules)
            and self._config.evidence.read_plates
        ):
            plate_reader = await asyncio.to_thread(
                make_plate_reader,
                self._config.evidence.plate_model,
                self._config.evidence.plate_prior,
                self._config.evidence.plate_prior_weight,
            )
        self._plates_in_use = plate_reader
        factory = EventFactory(
            self._config,
            device_id=self._device_id,
            # The real counter is drawn on the event loop, in order, as events are handed
            # to the sink (the runner's counter is not meant for other threads).
            next_seq=lambda: 0,
            location=self._location,
            model=detector.model_ref,
            plate_reader=plate_reader,
            models=EventFactory.refs_of(detector),
            shadow_model=self._shadow.model_ref if self._shadow is not None else None,
        )
        out: asyncio.Queue[tuple[str | None, protocol.Event | None]] = asyncio.Queue()
        stop = threading.Event()
        threads: list[threading.Thread] = []
        for cam in self._config.cameras:
            source = self._make_source(cam, clock=self._clock, loop=self._loop_files)
            capture = CaptureLoop(source, self._board, stall_after_s=cam.stall_after_s, stop=stop)
            self._loops[cam.id] = capture
            threads.append(
                threading.Thread(target=capture.run, name=f"capture-{cam.id}", daemon=True)
            )
        evidence_q: queue.Queue[_Pending | None] = queue.Queue()

        def emit(shout_text: str | None, event: protocol.Event | None) -> None:
            loop.call_soon_threadsafe(out.put_nowait, (shout_text, event))

        workers = self._config.inference_workers
        remaining = [workers]
        for k in range(workers):
            threads.append(
                threading.Thread(
                    target=self._infer_loop,
                    args=(detector, stop, evidence_q, emit, remaining),
                    name=f"vision-infer-{k}",
                    daemon=True,
                )
            )
        threads.append(
            threading.Thread(
                target=self._evidence_loop,
                args=(factory, stop, evidence_q, emit),
                name="vision-evidence",
                daemon=True,
            )
        )
        for t in threads:
            t.start()
        try:
            await self._deliver(out, sink, shout)
        finally:
            stop.set()
            self._board.wake()
            evidence_q.put(None)
            await asyncio.to_thread(self._join, threads)

    # ------------------------------------------------------------------ threads

    @staticmethod
    def _join(threads: Sequence[threading.Thread]) -> None:
        for t in threads:
            t.join(timeout=10.0)
            if t.is_alive():
                logger.warning("thread %s did not stop within 10 s", t.name)

    def _infer_loop(
        self,
        detector: Detector,
        stop: threading.Event,
        evidence_q: queue.Queue[_Pending | None],
        emit: Callable[[str | None, protocol.Event | None], None],
        remaining: list[int],
    ) -> None:
        cameras = {c.id: c for c in self._config.cameras}
        # A model with a fixed batch of one runs a worker's frames one by one: taking more
        # at once would keep them (2.7 MB each at 720p) waiting in memory while the
        # board fills up behind them with those cameras' next frames.
        limit = min(self._config.max_batch, detector.batch_size or (1 << 16))
        while not stop.is_set():
            frames = self._board.take_all(timeout=0.2, limit=limit)
            if not frames:
                if self._loops and all(
                    lp.health().state == "stopped" for lp in self._loops.values()
                ):
                    break  # every finite source has ended
                continue
            try:
                self._process(detector, frames, cameras, evidence_q, emit)
            finally:
                self._board.done(frames)
                del frames  # free the images while waiting for the next batch
        with self._lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if last:
            evidence_q.put(None)  # the last worker out tells the evidence thread

    def _process(
        self,
        detector: Detector,
        frames: list[Frame],
        cameras: dict[str, CameraConfig],
        evidence_q: queue.Queue[_Pending | None],
        emit: Callable[[str | None, protocol.Event | None], None],
    ) -> None:
        start = time.perf_counter()
        try:
            results = detector.detect(frames)
        except Exception:  # a failing inference drops this batch, not the service
            self.errors += 1
            logger.exception("detector failed on a batch of %d frame(s)", len(frames))
            return
        self._infer_ms.append((time.perf_counter() - start) * 1000.0 / len(frames))
        now = time.monotonic()
        with self._lock:
            self._frames += len(frames)
        for frame, dets in zip(frames, results, strict=True):
            self._processed.append(now)
            if self._watches:
                self._feed_watches(frame, dets)
            tap = self._live_taps.get(frame.camera_id)
            if tap is not None:
                tap(frame, dets)
            camera = cameras[frame.camera_id]
            for violation in self._pipes[frame.camera_id].step(frame, dets):
                if violation.rule.shout:
                    emit(violation.rule.shout, None)
                evidence_q.put(_Pending(camera, violation))
        if self._shadow is not None:
            self._process_shadow(self._shadow, frames, results, cameras, evidence_q)

    def _feed_watches(self, frame: Frame, dets: list[Detection]) -> None:
        """Hand a camera's frame and its detections to the rechecks waiting for them."""
        with self._lock:
            for watch in self._watches.get(frame.camera_id, ()):
                if len(watch.seen) < watch.need:
                    watch.seen.append((frame, list(dets)))
                    if len(watch.seen) == watch.need:
                        watch.done.set()

    def _process_shadow(
        self,
        shadow: ModelSet,
        frames: list[Frame],
        results: list[list[Detection]],
        cameras: dict[str, CameraConfig],
        evidence_q: queue.Queue[_Pending | None],
    ) -> None:
        """The candidate on the shadowed cameras' frames, in place of its slot's model."""
        picked = [k for k, f in enumerate(frames) if f.camera_id in self._shadow_pipes]
        if not picked or self._config.shadow is None:
            return
        slot = self._config.shadow.slot
        try:
            found = shadow.detect([frames[k] for k in picked])
        except Exception:  # the candidate failing must not touch the real pipeline
            self.errors += 1
            logger.exception("shadow model failed on %d frame(s)", len(picked))
            return
        for k, candidate in zip(picked, found, strict=True):
            frame = frames[k]
            others = [d for d in results[k] if d.model not in ("", slot)]
            for violation in self._shadow_pipes[frame.camera_id].step(frame, others + candidate):
                evidence_q.put(_Pending(cameras[frame.camera_id], violation, shadow=True))

    def _evidence_loop(
        self,
        factory: EventFactory,
        stop: threading.Event,
        evidence_q: queue.Queue[_Pending | None],
        emit: Callable[[str | None, protocol.Event | None], None],
    ) -> None:
        waiting: list[_Pending] = []
        while True:
            try:
                item = evidence_q.get(timeout=1.0 if waiting else None)
            except queue.Empty:
                item = None
                if stop.is_set():
                    break
            else:
                if item is None:
                    break
                waiting.append(item)
            still: list[_Pending] = []
            for pending in waiting:
                try:
                    event = factory.build(pending.violation, pending.camera, shadow=pending.shadow)
                except Exception:  # keep going: one bad snapshot must not stop the others
                    self.errors += 1
                    logger.exception("camera %s: could not build an event", pending.camera.id)
                    continue
                if event is None:
                    still.append(pending)  # no GPS fix yet: keep it and try again
                elif event.shadow:
                    self.shadow_events += 1
                    emit(None, event)
                else:
                    self._events += 1
                    emit(None, event)
            waiting = still
        if waiting:
            logger.warning("%d event(s) never got a location before shutdown", len(waiting))
        emit(None, None)  # tells the loop side that no more events will come

    # ------------------------------------------------------------------ loop side

    async def _deliver(
        self,
        out: asyncio.Queue[tuple[str | None, protocol.Event | None]],
        sink: EventSink,
        shout: ShoutSink | None,
    ) -> None:
        while True:
            text, event = await out.get()
            if text is not None:
                if shout is not None:
                    try:
                        await shout(text)
                    except Exception:  # a speaker fault must not hold back events
                        logger.exception("local shout failed")
                continue
            if event is None:
                return  # the evidence thread has finished: every source has ended
            if not event.shadow:  # shadow events stay outside the unit's sequence
                event = event.model_copy(update={"seq": self._next_seq()})
            await self._send(sink, event)

    async def _send(self, sink: EventSink, event: protocol.Event) -> None:
        delay = SINK_RETRY_S
        while True:
            try:
                await sink(event)
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # the outbox failing must not lose the event: retry
                logger.exception("event sink failed; retrying in %.1f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2.0, SINK_RETRY_CAP_S)
