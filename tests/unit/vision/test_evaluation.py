"""The pure core of ``edge-agent eval``: AP/PR arithmetic, matching and the file parsers."""

from __future__ import annotations

import re

import pytest

from edge_agent.vision.evaluation import (
    DatasetError,
    TruthBox,
    average_precision,
    evaluate,
    match_classes,
    match_image,
    normalise_label,
    parse_classes_txt,
    parse_data_yaml,
    parse_yolo_labels,
    yolo_box,
)
from edge_agent.vision.frames import Box, Detection
from edge_agent.vision.geometry import box_iou

LEFT: Box = (0.0, 0.0, 0.4, 0.4)
RIGHT: Box = (0.6, 0.6, 1.0, 1.0)


def det(label: str, score: float, box: Box) -> Detection:
    return Detection(label, score, box)


# --------------------------------------------------------------------------- AP


def test_perfect_detector_has_ap_one() -> None:
    assert average_precision([(0.9, True), (0.8, True), (0.7, True)], 3) == pytest.approx(1.0)


def test_false_positive_ranked_first_halves_ap() -> None:
    # precision 0 at recall 0, then 1/2 at recall 1: the envelope is 0.5 everywhere
    assert average_precision([(0.9, False), (0.8, True)], 1) == pytest.approx(0.5)


def test_false_positive_ranked_last_costs_nothing() -> None:
    assert average_precision([(0.9, True), (0.1, False)], 1) == pytest.approx(1.0)


def test_missed_object_caps_ap_at_found_fraction() -> None:
    assert average_precision([(0.9, True)], 2) == pytest.approx(0.5)


def test_all_point_interpolation_takes_best_precision_to_the_right() -> None:
    # recall .5 @ p 1, recall .5 @ p .5, recall 1 @ p 2/3 -> 0.5 * 1 + 0.5 * 2/3
    hits = [(0.9, True), (0.8, False), (0.7, True)]
    assert average_precision(hits, 2) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_ap_ranks_by_score_not_by_order_given() -> None:
    assert average_precision([(0.2, False), (0.9, True)], 1) == pytest.approx(1.0)


def test_ap_without_truth_is_none_and_without_detections_zero() -> None:
    assert average_precision([(0.9, False)], 0) is None
    assert average_precision([], 3) == 0.0


# --------------------------------------------------------------------------- matching


def test_iou_just_at_and_below_half() -> None:
    truth = (0.0, 0.0, 0.5, 1.0)  # area 0.5
    assert box_iou(truth, (0.0, 0.0, 0.25, 1.0)) == pytest.approx(0.5)
    assert box_iou(truth, (0.0, 0.0, 0.24, 1.0)) == pytest.approx(0.48)
    assert box_iou(LEFT, RIGHT) == 0.0


@pytest.mark.parametrize(
    ("box", "hit"),
    [
        ((0.0, 0.0, 0.26, 1.0), True),  # IoU 0.52
        ((0.0, 0.0, 0.25, 1.0), True),  # IoU 0.50: counts (>=)
        ((0.0, 0.0, 0.24, 1.0), False),  # IoU 0.48
    ],
)
def test_match_threshold_is_inclusive(box: Box, hit: bool) -> None:
    truths = [TruthBox("car", (0.0, 0.0, 0.5, 1.0))]
    assert match_image([det("car", 0.9, box)], truths) == [(det("car", 0.9, box), hit)]


def test_duplicate_detection_is_a_false_positive_and_best_score_wins() -> None:
    truths = [TruthBox("car", LEFT)]
    matched = match_image([det("car", 0.5, LEFT), det("car", 0.9, LEFT)], truths)
    assert [(d.score, hit) for d, hit in matched] == [(0.9, True), (0.5, False)]


def test_wrong_label_does_not_match() -> None:
    matched = match_image([det("person", 0.9, LEFT)], [TruthBox("car", LEFT)])
    assert matched[0][1] is False


def test_detection_takes_the_truth_it_overlaps_most() -> None:
    near = (0.0, 0.0, 0.4, 0.42)
    truths = [TruthBox("car", (0.0, 0.0, 0.4, 0.6)), TruthBox("car", near)]
    # the first, better scoring detection takes `near`; the second still finds the other
    dets = [det("car", 0.9, LEFT), det("car", 0.8, (0.0, 0.0, 0.4, 0.55))]
    assert [hit for _, hit in match_image(dets, truths)] == [True, True]


# --------------------------------------------------------------------------- evaluate


def test_two_classes_map_and_micro_precision_recall() -> None:
    images = [
        ([det("car", 0.9, LEFT), det("person", 0.8, RIGHT)], [TruthBox("car", LEFT)]),
        ([det("person", 0.7, LEFT)], [TruthBox("person", LEFT), TruthBox("person", RIGHT)]),
    ]
    report = evaluate(images, ["car", "person"], score_threshold=0.5)
    by = {c.label: c for c in report.classes}
    assert by["car"].ap50 == pytest.approx(1.0)
    # person: FP @0.8 (image 1), TP @0.7 (image 2), one of two missed
    assert by["person"].ap50 == pytest.approx(0.5 * 0.5)
    assert report.map50 == pytest.approx((1.0 + 0.25) / 2)
    assert (by["person"].detections, by["person"].true_positives) == (2, 1)
    assert by["person"].precision == pytest.approx(0.5)
    assert by["person"].recall == pytest.approx(0.5)
    assert report.precision == pytest.approx(2 / 3)
    assert report.recall == pytest.approx(2 / 3)
    assert (report.images, report.truths, report.detections) == (2, 3, 3)


def test_threshold_limits_precision_recall_but_not_ap() -> None:
    images = [
        ([det("car", 0.9, LEFT), det("car", 0.2, RIGHT)], [TruthBox("car", LEFT)]),
        ([det("car", 0.1, RIGHT)], [TruthBox("car", RIGHT)]),
    ]
    report = evaluate(images, ["car"], score_threshold=0.35)
    car = report.classes[0]
    assert (car.detections, car.true_positives) == (1, 1)
    assert car.precision == pytest.approx(1.0)
    assert car.recall == pytest.approx(0.5)
    # the curve: TP .9, FP .2, TP .1 -> 0.5 * 1 + 0.5 * 2/3
    assert car.ap50 == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_class_without_truth_stays_out_of_map_and_other_labels_are_ignored() -> None:
    images: list[tuple[list[Detection], list[TruthBox]]] = [
        ([det("car", 0.9, LEFT), det("bus", 0.9, RIGHT), det("dog", 0.9, RIGHT)], []),
        ([], [TruthBox("car", LEFT), TruthBox("dog", RIGHT)]),
    ]
    report = evaluate(images, ["car", "bus"], score_threshold=0.5)
    by = {c.label: c for c in report.classes}
    assert by["bus"].ap50 is None
    assert by["bus"].recall is None
    assert by["bus"].precision == 0.0
    assert report.map50 == pytest.approx(0.0)  # car: one FP, one missed
    assert report.truths == 1  # the dog is not scored
    out = report.as_json()
    assert set(out["classes"]) == {"car", "bus"}
    assert out["classes"]["bus"]["ap50"] is None


def test_no_truth_at_all_gives_null_map() -> None:
    report = evaluate([([], [])], ["car"], score_threshold=0.5)
    assert report.map50 is None
    assert report.as_json()["map50"] is None


# --------------------------------------------------------------------------- parsers


def test_parse_yolo_labels_reads_boxes_and_skips_blank_lines() -> None:
    rows = parse_yolo_labels(
        "0 0.5 0.5 0.2 0.4\n\n2 0.1 0.1 0.4 0.4\n", source="a.txt", num_classes=3
    )
    assert rows[0][0] == 0
    assert rows[0][1] == pytest.approx((0.4, 0.3, 0.6, 0.7))
    assert rows[1][0] == 2
    assert rows[1][1] == pytest.approx(yolo_box(0.1, 0.1, 0.4, 0.4))
    assert rows[1][1][:2] == (0.0, 0.0)  # clipped at the image edge
    assert parse_yolo_labels("", source="a.txt", num_classes=3) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 0.5 0.5 0.2 0.4\n0 0.5 0.5 0.2\n", "labels/x.txt:2: expected 5 fields"),
        ("0 0.5 0.5 0.2 0.4 0.9\n", "labels/x.txt:1: expected 5 fields"),
        ("car 0.5 0.5 0.2 0.4\n", "labels/x.txt:1: not numbers"),
        ("0 0.5 half 0.2 0.4\n", "labels/x.txt:1: not numbers"),
        ("\n3 0.5 0.5 0.2 0.4\n", "labels/x.txt:2: class id 3 is out of range"),
        ("-1 0.5 0.5 0.2 0.4\n", "labels/x.txt:1: class id -1 is out of range"),
        ("1.5 0.5 0.5 0.2 0.4\n", "labels/x.txt:1: class id '1.5' is not a whole number"),
        ("0 320 240 50 80\n", "labels/x.txt:1: coordinates must be normalised"),
        ("0 0.5 0.5 0 0.4\n", "labels/x.txt:1: box width and height must be positive"),
        ("0 nan 0.5 0.2 0.4\n", "labels/x.txt:1: coordinates must be finite"),
    ],
)
def test_parse_yolo_labels_errors_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(DatasetError, match=re.escape(message)):
        parse_yolo_labels(text, source="labels/x.txt", num_classes=3)


def test_parse_data_yaml_list_and_mapping() -> None:
    assert parse_data_yaml("nc: 2\nnames: [person, dining table]\n", source="d") == (
        "person",
        "dining table",
    )
    text = "path: .\ntrain: images\nnames:\n  1: car\n  0: person\n"
    assert parse_data_yaml(text, source="d") == ("person", "car")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train: images\n", "d.yaml: no 'names:'"),
        ("names: [a, b]\nnc: 3\n", "d.yaml: nc is 3 but 'names' lists 2"),
        ("names:\n  0: a\n  2: b\n", "d.yaml: 'names' ids must run 0..1"),
        ("names: []\n", "d.yaml: 'names' must be a non-empty list"),
        ("names: [a, ''\n", "d.yaml: not valid YAML"),
        ("names: [a, '']\n", "d.yaml: class 1 has no name"),
    ],
)
def test_parse_data_yaml_errors(text: str, message: str) -> None:
    with pytest.raises(DatasetError, match=re.escape(message)):
        parse_data_yaml(text, source="d.yaml")


def test_parse_classes_txt() -> None:
    assert parse_classes_txt("person\ncar\n\n", source="c.txt") == ("person", "car")
    with pytest.raises(DatasetError, match=re.escape("c.txt:2: blank class name")):
        parse_classes_txt("person\n\ncar\n", source="c.txt")
    with pytest.raises(DatasetError, match=re.escape("c.txt: no class names")):
        parse_classes_txt("\n", source="c.txt")


# --------------------------------------------------------------------------- classes


def test_normalise_label() -> None:
    assert normalise_label("Dining Table") == "dining_table"
    assert normalise_label("dining-table") == "dining_table"
    assert normalise_label(" traffic  light ") == "traffic_light"
    assert normalise_label("bin_overflow") == "bin_overflow"


def test_match_classes_by_normalised_name() -> None:
    match = match_classes(["person", "dining table", "Rocket", "Traffic-Light"], [
        "person", "traffic_light", "dining_table", "car"])  # fmt: skip
    assert dict(match.labels) == {0: "person", 1: "dining_table", 3: "traffic_light"}
    assert match.unmatched == ("Rocket",)
