"""The optimised metrics agree with a plain transcription of their definitions.

``compute_metrics`` and ``daily_counts`` replay trails in a single pass (the entries that
count are a prefix of the sorted trail; flows need no grouping). The reference below is
the straightforward version they replaced: filter, then replay each case's entries one by
one. Both must give identical figures on random histories, including same-instant
entries, entries after ``now`` and the period's end, mixed time zones, and audit entries
given as :class:`AuditFact` or :class:`AuditRow`, mixed.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from central_hub.domain.metrics import (
    Audit,
    AuditFact,
    AuditRow,
    CaseFacts,
    compute_metrics,
    daily_counts,
)
from central_hub.domain.workflow import UNHANDLED_STAGES, Role, Stage, allowed_actions, transition

SH = ZoneInfo("Asia/Shanghai")
P_START = datetime(2026, 11, 1, tzinfo=SH)
P_END = datetime(2026, 12, 1, tzinfo=SH)
FLOW = ("registered", "dispatched", "handled", "closed", "returned", "cancelled")


def reference_metrics(
    cases: list[CaseFacts],
    audits: list[Audit],
    start: datetime,
    end: datetime,
    now: datetime,
    cells: set[str] | None,
) -> dict[str, Any]:
    """The counts of compute_metrics, replayed naively (rates follow from them)."""
    as_of = min(now, end)
    n: dict[str, Any] = defaultdict(int)
    hours = []
    for case in cases:
        if not (start <= case.reported_at < end and case.reported_at <= now):
            continue
        if cells is not None and case.grid_cell_id not in cells:
            continue
        trail = sorted(
            (e for e in audits if e.case_id == case.case_id and e.at <= now and e.at < end),
            key=lambda e: e.at,
        )
        stage = Stage(case.initial_stage)
        reached = {stage}
        first_dispatch = last_handle = closed_at = None
        returns = 0
        for e in trail:
            if e.from_stage is not None:
                reached.add(Stage(e.from_stage))
            stage = Stage(e.to_stage)
            reached.add(stage)
            if e.action == "dispatch" and first_dispatch is None:
                first_dispatch = e.at
            if e.action == "handle":
                last_handle = e.at
            if e.action == "return_for_rework":
                returns += 1
            if stage is Stage.CLOSED:
                closed_at = e.at
        n["reported"] += 1
        n["from_ai"] += case.source == "ai"
        n["registered"] += Stage.REGISTERED in reached
        n["cancelled"] += Stage.CANCELLED in reached
        n["from_citizens"] += case.source == "citizen"
        n["citizen_registered"] += case.source == "citizen" and Stage.REGISTERED in reached
        n["accepted"] += Stage.REGISTERED in reached or Stage.CANCELLED in reached
        dispatched = Stage.DISPATCHED in reached
        n["dispatched"] += dispatched
        n["closed"] += closed_at is not None
        n["handled"] += stage in (Stage.HANDLED, Stage.CHECKING, Stage.CLOSED)
        past = case.deadline is not None and case.deadline <= now and case.deadline < end
        if dispatched and (closed_at is not None or past):
            n["due_to_close"] += 1
            if closed_at is not None and (case.deadline is None or closed_at <= case.deadline):
                n["closed_on_time"] += 1
            n["returned"] += returns > 0
        if stage in UNHANDLED_STAGES and case.deadline is not None and case.deadline < as_of:
            n["overdue_unhandled"] += 1
        if closed_at is not None and first_dispatch is not None and last_handle is not None:
            hours.append((last_handle - first_dispatch).total_seconds() / 3600)
    n["avg_handling_hours"] = sum(hours) / len(hours) if hours else None
    return dict(n)


def reference_daily(
    cases: list[CaseFacts],
    audits: list[Audit],
    start: datetime,
    now: datetime,
    cells: set[str] | None,
) -> dict[date, dict[str, int]]:
    """Non-zero flows per local day (Asia/Shanghai), counted entry by entry."""
    keep = {c.case_id for c in cases if cells is None or c.grid_cell_id in cells}
    days: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def counts(at: datetime) -> bool:
        return start <= at < P_END and at <= now

    for c in cases:
        if c.case_id in keep and counts(c.reported_at):
            days[c.reported_at.astimezone(SH).date()]["reported"] += 1
    for e in audits:
        if e.case_id in keep and counts(e.at) and e.to_stage in FLOW:
            days[e.at.astimezone(SH).date()][str(e.to_stage)] += 1
    return {d: dict(v) for d, v in days.items()}


ZONES = [UTC, SH, ZoneInfo("Europe/Berlin")]


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[CaseFacts], list[Audit]]:
    """Random cases walked through the state machine; ties and mixed zones included."""
    cases: list[CaseFacts] = []
    audits: list[AuditFact] = []
    for case_id in range(draw(st.integers(0, 15))):
        reported = P_START + timedelta(minutes=draw(st.integers(-3 * 1440, 33 * 1440)))
        reported = reported.astimezone(draw(st.sampled_from(ZONES)))
        limit = draw(st.one_of(st.none(), st.integers(0, 10 * 1440)))
        stage = draw(st.sampled_from([Stage.REPORTED, Stage.REGISTERED]))
        cases.append(
            CaseFacts(
                case_id,
                draw(st.sampled_from(["ai", "citizen", "inspector", "referral"])),
                "0102",
                draw(st.sampled_from(["W1", "W2", "E1", None])),
                reported,
                None if limit is None else reported + timedelta(minutes=limit),
                stage,
            )
        )
        at = reported
        for _ in range(draw(st.integers(0, 12))):
            options = allowed_actions(stage, Role.ADMIN)
            if not options:
                break
            action = draw(st.sampled_from(options))
            at += timedelta(minutes=draw(st.sampled_from([0, 0, 1, 30, 600, 2 * 1440])))
            new = transition(stage, action, Role.ADMIN)
            zone = draw(st.sampled_from(ZONES))
            audits.append(AuditFact(case_id, at.astimezone(zone), stage, new, action, "x", "a"))
            stage = new
    # the service reads entries in id order, not per case, and passes AuditRow tuples
    shuffled = draw(st.permutations(audits))
    rows = draw(st.lists(st.booleans(), min_size=len(shuffled), max_size=len(shuffled)))
    mixed: list[Audit] = [
        AuditRow(e.case_id, e.at, e.from_stage, e.to_stage, e.action) if row else e
        for e, row in zip(shuffled, rows, strict=True)
    ]
    return cases, mixed


@settings(max_examples=300, deadline=None)
@given(
    history=histories(),
    now_minutes=st.integers(-1440, 40 * 1440),
    start_day=st.integers(0, 28),
    cells=st.sampled_from([None, {"W1", "W2"}, {"E1"}]),
)
def test_compute_metrics_matches_the_reference(
    history: tuple[list[CaseFacts], list[Audit]],
    now_minutes: int,
    start_day: int,
    cells: set[str] | None,
) -> None:
    cases, audits = history
    now = P_START + timedelta(minutes=now_minutes)
    start = P_START + timedelta(days=start_day)
    got = dataclasses.asdict(
        compute_metrics(
            cases, audits, period_start=start, period_end=P_END, now=now, cell_ids=cells
        )
    )
    want = reference_metrics(cases, audits, start, P_END, now, cells)
    for name, value in want.items():
        assert got[name] == value, name
    for name in ("reported", "accepted", "dispatched", "due_to_close", "closed"):
        assert got[name] == want.get(name, 0), name
    for name in ("from_citizens", "citizen_registered"):
        assert got[name] == want.get(name, 0), name
    citizens = want.get("from_citizens", 0)
    share = want.get("citizen_registered", 0) / citizens if citizens else None
    assert got["citizen_registration_share"] == share
    if now > start:
        days = daily_counts(
            cases, audits, period_start=start, period_end=P_END, now=now, cell_ids=cells
        )
        nonzero = {
            row.day: {k: v for k, v in dataclasses.asdict(row).items() if k != "day" and v}
            for row in days
        }
        assert {d: v for d, v in nonzero.items() if v} == reference_daily(
            cases, audits, start, now, cells
        )
