"""Several models per box: rates per camera, held results, merged labels, rule labels."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from pydantic import ValidationError

from edge_agent.protocol import ModelRef
from edge_agent.vision.config import CameraConfig, VisionConfig
from edge_agent.vision.frames import Detection, Frame
from edge_agent.vision.model_set import ModelSet, RatePlan, merge, tile_regions, untile
from edge_agent.vision.rules import RuleEngine
from edge_agent.vision.tracker import Tracker

T0 = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
CAR = (0.4, 0.4, 0.6, 0.7)


class FixedDetector:
    """Returns the same detections for every frame and counts the frames it saw."""

    def __init__(self, name: str, dets: Sequence[Detection]) -> None:
        self._dets = list(dets)
        self._ref = ModelRef(name=name, version="1")
        self.frames: list[Frame] = []

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(sorted({d.label for d in self._dets}))

    @property
    def model_ref(self) -> ModelRef:
        return self._ref

    @property
    def batch_size(self) -> int | None:
        return None

    def detect(self, frames: Sequence[Frame]) -> list[list[Detection]]:
        self.frames.extend(frames)
        return [list(self._dets) for _ in frames]

    def close(self) -> None:
        pass


def frame(camera: str, t: float) -> Frame:
    return Frame(camera, int(t * 100), T0 + timedelta(seconds=t), np.zeros((4, 4, 3), np.uint8))


def test_rate_plan_runs_two_of_five_frames_per_second_on_average() -> None:
    plan = RatePlan({"street": None, "general": 2.0}, frame_interval_s=0.2)
    last: float | None = None
    runs = 0
    for k in range(50):  # 10 s at 5 fps
        now = k * 0.2
        if plan.due("general", last, now):
            last = plan.next_run("general", last, now)
            runs += 1
        assert plan.due("street", 0.0, now)  # no rate: every frame
    assert runs == 20


def test_rate_plan_restarts_after_a_gap_instead_of_catching_up() -> None:
    plan = RatePlan({"general": 2.0}, frame_interval_s=0.2)
    assert plan.next_run("general", 0.0, 10.0) == 10.0  # ten seconds without frames
    assert not plan.due("general", 10.0, 10.2)


def test_merge_renames_tags_and_keeps_the_better_of_two_models() -> None:
    street = [Detection("car", 0.6, CAR), Detection("stall", 0.8, (0.0, 0.5, 0.2, 0.9))]
    general = [
        Detection("car", 0.9, (0.41, 0.41, 0.6, 0.7)),
        Detection("dining_table", 0.7, (0.0, 0.5, 0.2, 0.9)),
    ]
    out = merge({"street": street, "general": general}, {"general": {"dining_table": "stall"}})
    cars = [d for d in out if d.label == "car"]
    assert [(d.model, d.score) for d in cars] == [("general", 0.9)]
    # A stall from each model overlaps: one stays, the better one.
    stalls = [d for d in out if d.label == "stall"]
    assert [(d.model, d.score) for d in stalls] == [("street", 0.8)]


def test_merge_keeps_two_boxes_of_one_model() -> None:
    # Two cars side by side from one model are two cars (NMS already ran in the model).
    dets = [Detection("car", 0.9, CAR), Detection("car", 0.8, (0.41, 0.4, 0.61, 0.7))]
    assert len(merge({"general": dets}, {})) == 2


def test_model_set_runs_each_model_at_its_rate_and_holds_results_between() -> None:
    street = FixedDetector("street-detector", [Detection("stall", 0.8, (0.0, 0.5, 0.2, 0.9))])
    general = FixedDetector("general-detector", [Detection("car", 0.9, CAR)])
    plans = {"east": RatePlan({"street": None, "general": 2.0}, 0.2)}
    models = ModelSet({"street": street, "general": general}, plans)
    results = [models.detect([frame("east", k * 0.2)])[0] for k in range(25)]  # 5 s
    assert len(street.frames) == 25
    assert len(general.frames) == 10
    # Every frame sees the car: fresh on 10, held on the 15 between.
    assert all(any(d.label == "car" and d.model == "general" for d in r) for r in results)
    assert models.runs[("east", "general")] == 10
    assert models.model_refs()["general"].name == "general-detector"


class BrokenAfterFirst(FixedDetector):
    """Fails every inference after its first."""

    def detect(self, frames: Sequence[Frame]) -> list[list[Detection]]:
        if self.frames:
            raise RuntimeError("inference failed")
        return super().detect(frames)


@pytest.mark.logs_exceptions("edge_agent.vision.model_set")
def test_a_failing_model_does_not_blind_the_others_and_its_result_ages_out() -> None:
    general = BrokenAfterFirst("general-detector", [Detection("car", 0.9, CAR)])
    street = FixedDetector("street-detector", [Detection("stall", 0.8, (0.0, 0.5, 0.2, 0.9))])
    models = ModelSet(
        {"street": street, "general": general},
        {"east": RatePlan({"street": None, "general": 2.0}, 0.2)},
    )
    seen = []
    for k in range(15):  # 3 s at 5 fps; the general model fails from 0.4 s on
        labels = {d.label for d in models.detect([frame("east", k * 0.2)])[0]}
        assert "stall" in labels
        seen.append("car" in labels)
    # Held for two periods (1 s) plus a frame after the last good run, then gone.
    assert seen[:6] == [True] * 6
    assert not any(seen[8:])
    assert models.errors["general"] >= 4


def test_camera_without_a_plan_runs_every_model_on_every_frame() -> None:
    a = FixedDetector("a", [Detection("car", 0.9, CAR)])
    b = FixedDetector("b", [Detection("person", 0.9, (0.1, 0.1, 0.2, 0.4))])
    models = ModelSet({"a": a, "b": b}, {})
    out = models.detect([frame("west", 0.0), frame("west", 0.1)])
    assert len(a.frames) == len(b.frames) == 2
    assert {d.label for d in out[1]} == {"car", "person"}


def _camera(labels: list[str]) -> CameraConfig:
    return CameraConfig.model_validate(
        {
            "id": "east",
            "source": "clip.mp4",
            "zones": [{"name": "box", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
            "rules": [
                {"name": "p", "kind": "parking", "zone": "box", "labels": labels, "dwell_s": 1}
            ],
        }
    )


@pytest.mark.parametrize(
    ("labels", "fires_for"),
    [(["car"], {"street", "general"}), (["general:car"], {"general"})],
)
def test_rule_labels_name_a_model_or_any(labels: list[str], fires_for: set[str]) -> None:
    fired = set()
    for model in ("street", "general"):
        camera = _camera(labels)
        engine = RuleEngine(camera, tz=UTC)
        tracker = Tracker()
        for k in range(5):
            ts = T0 + timedelta(seconds=k)
            tracks = tracker.update([Detection("car", 0.9, CAR, model)], ts)
            for violation in engine.evaluate(tracks, ts):
                assert violation.objects[0].model == model
                fired.add(model)
    assert fired == fires_for


def _vision(**extra: object) -> dict[str, object]:
    camera = {
        "id": "east",
        "source": "clip.mp4",
        "detect_fps": 5,
        "models": [{"name": "street"}, {"name": "general", "fps": 2}],
        "zones": [{"name": "box", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
        "rules": [{"name": "p", "kind": "parking", "zone": "box", "labels": ["general:car"]}],
    }
    return {
        "detectors": {"street": {}, "general": {"model": "models/general-detector"}},
        "cameras": [camera],
        **extra,
    }


def test_config_names_models_rates_and_qualified_labels() -> None:
    config = VisionConfig.model_validate(_vision())
    assert config.camera_models(config.cameras[0]) == (("street", None), ("general", 2.0))
    assert sorted(config.models) == ["general", "street"]
    single = VisionConfig.model_validate({})
    assert list(single.models) == ["default"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"detector": {"model": "models/other"}}, "either .detector."),
        ({"models": [{"name": "night"}]}, "not one of the box's detectors"),
        ({"models": [{"name": "general", "fps": 10}]}, "faster than the camera's detect_fps"),
        ({"models": [{"name": "street"}]}, "does not run a model 'general'"),
        ({"models": [{"name": "street"}, {"name": "street"}]}, "models repeat"),
    ],
)
def test_config_mistakes_are_named(change: dict[str, object], message: str) -> None:
    data = _vision()
    if "detector" in change:
        data["detector"] = change["detector"]
    else:
        camera = dict(data["cameras"][0])  # type: ignore[index]
        camera.update(change)
        data["cameras"] = [camera]
    with pytest.raises(ValidationError, match=message):
        VisionConfig.model_validate(data)


def test_a_dumped_two_model_config_validates_again() -> None:
    config = VisionConfig.model_validate(_vision())
    again = VisionConfig.model_validate_json(config.model_dump_json())
    assert again.models == config.models


def test_tile_regions_cover_the_frame_with_overlap() -> None:
    assert tile_regions(1) == [(0.0, 0.0, 1.0, 1.0)]
    regions = tile_regions(2, overlap=0.2)
    assert len(regions) == 5
    tiles = regions[1:]
    assert tiles[0][:2] == (0.0, 0.0)
    assert max(r[2] for r in tiles) == pytest.approx(1.0)
    assert max(r[3] for r in tiles) == pytest.approx(1.0)
    # Neighbours overlap by a fifth of a tile.
    width = tiles[0][2] - tiles[0][0]
    assert tiles[0][2] - tiles[1][0] == pytest.approx(0.2 * width)


def test_untile_maps_boxes_back_and_keeps_an_object_once() -> None:
    regions = [(0.0, 0.0, 1.0, 1.0), (0.0, 0.0, 0.5, 0.5), (0.5, 0.5, 1.0, 1.0)]
    whole = [Detection("car", 0.5, (0.1, 0.1, 0.3, 0.3))]
    top_left = [Detection("car", 0.8, (0.2, 0.2, 0.6, 0.6))]  # the same car, in the tile
    bottom_right = [Detection("person", 0.7, (0.0, 0.0, 0.2, 0.4))]  # only the tile sees it
    out = untile([whole, top_left, bottom_right], regions)
    assert [(d.label, d.score) for d in out] == [("car", 0.8), ("person", 0.7)]
    assert out[0].box == pytest.approx((0.1, 0.1, 0.3, 0.3))
    assert out[1].box == pytest.approx((0.5, 0.5, 0.6, 0.7))


def test_a_tiled_camera_sends_its_tiles_and_gets_one_result() -> None:
    image = np.arange(100 * 200 * 3, dtype=np.uint8).reshape(100, 200, 3)
    general = FixedDetector("general-detector", [Detection("car", 0.9, CAR)])
    models = ModelSet(
        {"general": general}, {"east": RatePlan({"general": None}, 0.2, {"general": 2})}
    )
    [dets] = models.detect([Frame("east", 0, T0, image)])
    assert len(general.frames) == 5  # the whole frame and four tiles
    assert general.frames[0].image.shape == (100, 200, 3)
    assert all(f.image.shape[0] < 100 and f.image.shape[1] < 200 for f in general.frames[1:])
    # Every tile reports "its" car in the middle: five different places, five cars, all
    # mapped inside the frame; the whole frame's car is kept.
    assert any(d.box == pytest.approx(CAR) for d in dets)
    assert all(0.0 <= v <= 1.0 for d in dets for v in d.box)
