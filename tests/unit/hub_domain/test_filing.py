"""Filing decisions: new case fields, and the merge rule (code, open, radius, window)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from central_hub.domain.calendar import WorkCalendar
from central_hub.domain.catalogue import Catalogue
from central_hub.domain.errors import FilingError, UnknownCode
from central_hub.domain.filing import (
    EventFacts,
    FilingPlan,
    OpenCase,
    haversine_m,
    plan_filing,
    same_vehicle,
)
from central_hub.domain.grid import Grid
from central_hub.domain.workflow import Stage

SH = ZoneInfo("Asia/Shanghai")
MARKET = (28.6472, 121.2615)
PARKING = (28.6455, 121.2650)
# Thursday 2026-11-26 10:00 local
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=SH)
# about 1 m of latitude in degrees
M_LAT = 1 / 111_195


@pytest.fixture(scope="module")
def world() -> tuple[Catalogue, Grid, WorkCalendar]:
    return Catalogue.load(), Grid.load_sample(), WorkCalendar()


def plan(
    world: tuple[Catalogue, Grid, WorkCalendar],
    facts: EventFacts,
    cases: list[OpenCase] | None = None,
    now: datetime = T0,
) -> FilingPlan:
    cat, grid, cal = world
    return plan_filing(facts, cases or [], cat, grid, cal, now)


def ev(code: str = "0504", lat: float = MARKET[0], lon: float = MARKET[1], **kw: object) -> Any:
    return EventFacts(event_id="e1", code=code, lat=lat, lon=lon, **{"detected_at": T0, **kw})  # type: ignore[arg-type]


def case(
    case_id: int = 7,
    code: str = "0504",
    lat: float = MARKET[0],
    lon: float = MARKET[1],
    stage: Stage = Stage.DISPATCHED,
    last: datetime = T0 - timedelta(hours=1),
) -> OpenCase:
    return OpenCase(case_id, code, lat, lon, stage, last)


def test_haversine() -> None:
    assert haversine_m(*MARKET, *MARKET) == 0
    # 0.001 degree of latitude is about 111.2 m anywhere
    assert haversine_m(28.0, 121.0, 28.001, 121.0) == pytest.approx(111.19, abs=0.05)
    # Huangyan market to parking pole, by hand: dlat 0.0017 deg = 189.0 m,
    # dlon 0.0035 deg * cos(28.646 deg) = 0.0030714 deg = 341.5 m -> sqrt = 390.3 m
    assert haversine_m(*MARKET, *PARKING) == pytest.approx(390.3, abs=0.5)


def test_new_ai_case(world: tuple[Catalogue, Grid, WorkCalendar]) -> None:
    p = plan(world, ev())
    assert p.is_new_case
    assert p.merge_into is None
    assert p.code == "0504"
    assert p.major == "05"
    assert p.category_name == "街面秩序"
    assert p.line == "enforcement"
    assert p.title.startswith("店外经营")
    _, grid, _ = world
    cell = grid.locate(*MARKET)
    assert cell is not None
    assert p.grid_cell_id == cell.id
    assert p.squad_id == "zf-market-patrol"
    assert p.initial_stage is Stage.REPORTED
    assert p.verification_required
    assert p.reported_at == T0
    # 0504: 2 working hours from Thursday 10:00 -> 12:00
    assert p.deadline == datetime(2026, 11, 26, 12, 0, tzinfo=SH)
    assert p.source == "ai"


def test_a_cell_located_beforehand_is_the_one_filed(
    world: tuple[Catalogue, Grid, WorkCalendar],
) -> None:
    """A batch locates its reports at once and passes each its cell: the plan uses it."""
    cat, grid, cal = world
    parking = grid.locate(*PARKING)
    assert parking is not None
    assert parking != grid.locate(*MARKET)
    p = plan_filing(ev(code="0102"), [], cat, grid, cal, T0, cell=parking)
    assert (p.grid_cell_id, p.squad_id) == (parking.id, "hw-team-2")
    outside = plan_filing(ev(), [], cat, grid, cal, T0, cell=None)
    assert (outside.grid_cell_id, outside.squad_id) == (None, None)


def test_inspector_report_without_verification_starts_registered(
    world: tuple[Catalogue, Grid, WorkCalendar],
) -> None:
    # 0201 small ads: verification_required false in the packaged catalogue
    p = plan(world, ev(code="0201", source="inspector"))
    assert p.initial_stage is Stage.REGISTERED
    assert not p.verification_required
    # the same code from a citizen still needs verification
    assert plan(world, ev(code="0201", source="citizen")).initial_stage is Stage.REPORTED


def test_squad_follows_the_line(world: tuple[Catalogue, Grid, WorkCalendar]) -> None:
    p = plan(world, ev(code="0102", lat=PARKING[0], lon=PARKING[1]))
    assert p.line == "sanitation"
    assert p.squad_id == "hw-team-2"
    # emergency hours round the clock: road collapse 4h from 10:00 -> 14:00 (no lunch break)
    p = plan(world, ev(code="0401", source="citizen"))
    assert p.line == "municipal"
    assert p.squad_id == "sz-maintenance"
    assert p.deadline == datetime(2026, 11, 26, 14, 0, tzinfo=SH)


def test_outside_the_grid_is_still_planned(world: tuple[Catalogue, Grid, WorkCalendar]) -> None:
    p = plan(world, ev(lat=30.0, lon=120.0))
    assert p.is_new_case
    assert p.grid_cell_id is None
    assert p.squad_id is None


def test_merges_into_the_open_case_nearby(world: tuple[Catalogue, Grid, WorkCalendar]) -> None:
    # 0504 merge radius 15 m, window 8 h
    p = plan(world, ev(lat=MARKET[0] + 10 * M_LAT), [case()])
    assert not p.is_new_case
    assert p.merge_into == 7
    assert p.distance_m == pytest.approx(10, abs=0.1)
    assert p.deadline is None  # the case keeps its own; none is computed for a merge


@pytest.mark.parametrize(
    ("candidate", "why"),
    [
        (case(code="0505"), "other code"),
        (case(stage=Stage.CLOSED), "closed"),
        (case(stage=Stage.CANCELLED), "cancelled"),
        (case(lat=MARKET[0] + 16 * M_LAT), "16 m away, radius 15 m"),
        (case(last=T0 - timedelta(hours=8, minutes=1)), "outside the 8 h window"),
        (case(last=T0 + timedelta(hours=8, minutes=1)), "outside the window, after"),
        (OpenCase(7, "0504", None, None, Stage.DISPATCHED, T0), "case without a place"),
    ],
)
def test_does_not_merge(
    world: tuple[Catalogue, Grid, WorkCalendar], candidate: OpenCase, why: str
) -> None:
    p = plan(world, ev(), [candidate])
    assert p.is_new_case, why


def test_window_and_radius_edges_are_inclusive(
    world: tuple[Catalogue, Grid, WorkCalendar],
) -> None:
    p = plan(world, ev(), [case(last=T0 - timedelta(hours=8))])
    assert p.merge_into == 7
    # a late event (truck outbox) older than the case's last event still merges
    p = plan(world, ev(detected_at=T0 - timedelta(hours=3)), [case(last=T0)])
    assert p.merge_into == 7
    # open stages all merge, including handled and checking
    for stage in (Stage.REPORTED, Stage.HANDLED, Stage.CHECKING, Stage.RETURNED):
        assert plan(world, ev(), [case(stage=stage)]).merge_into == 7


def test_nearest_then_latest_then_smallest_id(world: tuple[Catalogue, Grid, WorkCalendar]) -> None:
    near = case(case_id=2, lat=MARKET[0] + 3 * M_LAT)
    far = case(case_id=1, lat=MARKET[0] + 9 * M_LAT)
    assert plan(world, ev(), [far, near]).merge_into == 2
    older = case(case_id=3, last=T0 - timedelta(hours=5))
    newer = case(case_id=4, last=T0 - timedelta(hours=1))
    assert plan(world, ev(), [older, newer]).merge_into == 4
    assert plan(world, ev(), [case(case_id=9), case(case_id=5)]).merge_into == 5


def test_future_detection_is_clamped_to_now(world: tuple[Catalogue, Grid, WorkCalendar]) -> None:
    p = plan(world, ev(detected_at=T0 + timedelta(hours=2)))
    assert p.reported_at == T0


def test_bad_facts_are_refused(world: tuple[Catalogue, Grid, WorkCalendar]) -> None:
    with pytest.raises(UnknownCode, match="9999"):
        plan(world, ev(code="9999"))
    with pytest.raises(FilingError, match=r"event\.lat"):
        plan(world, ev(lat=200.0))
    with pytest.raises(FilingError, match=r"event\.lon"):
        plan(world, ev(lon=float("nan")))
    with pytest.raises(FilingError, match="detected_at"):
        plan(world, ev(detected_at=datetime(2026, 11, 26, 10)))
    with pytest.raises(FilingError, match="now"):
        plan(world, ev(), now=datetime(2026, 11, 26, 10))
    with pytest.raises(FilingError, match=r"event\.source"):
        plan(world, ev(source="rumour"))


def test_from_wire_event() -> None:
    from edge_agent.protocol import Event, Plate, uuid7

    event = Event.model_validate(
        {
            "schema": "xh.event/1",
            "event_id": uuid7(),
            "device_id": "pole-01",
            "camera_id": "cam-1",
            "seq": 1,
            "kind": "shop_front_overflow",
            "code": "0504",
            "started_at": T0.astimezone(UTC).isoformat(),
            "detected_at": T0.astimezone(UTC).isoformat(),
            "dwell_s": 60,
            "confidence": 0.9,
            "objects": [{"label": "goods", "score": 0.9, "box": [0, 0, 1, 1], "track_id": 1}],
            "zone": "door",
            "location": {"lat": MARKET[0], "lon": MARKET[1], "source": "fixed"},
            "model": {"name": "m", "version": "1"},
        }
    )
    facts = EventFacts.from_event(event)
    assert facts.code == "0504"
    assert facts.source == "ai"
    assert facts.device_id == "pole-01"
    assert facts.detected_at == T0
    assert (facts.lat, facts.lon) == MARKET
    assert facts.plate is None
    plated = event.model_copy(update={"plate": Plate(text="浙J·12345", score=0.9)})
    assert EventFacts.from_event(plated).plate == "浙J·12345"


def test_unknown_case_stage_is_named(world: tuple[Catalogue, Grid, WorkCalendar]) -> None:
    with pytest.raises(FilingError, match=r"case 7\.stage"):
        plan(world, ev(), [OpenCase(7, "0504", *MARKET, "lost", T0)])


@pytest.mark.parametrize(
    ("event_plate", "case_plate", "merges"),
    [
        ("浙J·12345", "浙J·67890", False),  # two cars nose to tail: two cases
        ("浙J·A1234", "浙J·B5678", False),
        ("浙J·12345", "浙J·12345", True),
        ("浙j12345", "浙J·12345", True),  # separators and case do not make another car
        ("浙J·O1234", "浙J·01234", True),  # plates have no letter O: it is a 0
        ("浙J·12345", "浙J·12346", True),  # one character apart: one car misread once
        ("浙J·12345", "浙J·12356", False),  # two apart: two cars
        (None, "浙J·12345", True),  # unreadable: cannot tell cars apart, merges by place
        ("浙J·12345", None, True),
        ("not a plate", "浙J·12345", True),
        (None, None, True),
    ],
)
def test_parked_cars_merge_only_with_their_own_plate(
    world: tuple[Catalogue, Grid, WorkCalendar],
    event_plate: str | None,
    case_plate: str | None,
    merges: bool,
) -> None:
    # 0505: merge radius 15 m; the other car 5 m away
    near = OpenCase(9, "0505", PARKING[0] + 5 * M_LAT, PARKING[1], Stage.REGISTERED, T0, case_plate)
    p = plan(world, ev(code="0505", lat=PARKING[0], lon=PARKING[1], plate=event_plate), [near])
    assert (p.merge_into == 9) is merges
    assert same_vehicle(event_plate, case_plate) is merges
