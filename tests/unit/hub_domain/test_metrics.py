"""Metrics against a table computed by hand, with period, clock and subtree filters."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from central_hub.domain.errors import MetricsError
from central_hub.domain.metrics import (
    AuditFact,
    CaseFacts,
    Metrics,
    compute_metrics,
    daily_counts,
    overdue,
)
from central_hub.domain.workflow import Role, Stage, allowed_actions, transition

SH = ZoneInfo("Asia/Shanghai")


def d(day: int, hour: int = 0, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SH)


P_START, P_END = d(1), d(1, month=12)
NOW = d(3, 12, month=12)
WEST = {"sq-w", "W1", "W2"}

# The story (all November 2026, Asia/Shanghai):
# C1 ai W1: verified, dispatched 2nd 09:30, handled 11:30, closed 14:00; due 16:00 -> on time
# C2 ai W1: dispatched 3rd 09:30, handled 11:00, returned 11:40, re-dispatched 11:50,
#           handled 14:30, closed 15:30; due 12:00 -> late, one rework
# C3 citizen W2: verification started, then cancelled (not a case)
# C4 inspector E1: filed registered, dispatched 5th 10:00, handled 10th 10:00, closed 10th
#           15:00; due 20th -> on time
# C5 ai E1: dispatched 10th 09:30, due 11:00, never handled -> overdue unhandled
# C6 ai W2: reported 20th, nobody touched it, due 13:00 -> overdue unhandled
# C7 citizen E1: dispatched 25th, handled 16:00, checking from 26th; due 25th 17:00
# C8 ai W1: reported 30th 20:00, dispatched 20:30; handled 1 Dec 09:00 (after the period);
#           due 1 Dec 10:00 (after the period)
# C9 ai W1: reported 31 Oct (before the period), closed 1 Nov
# C10 ai, no cell: reported 15th, verifying since 09:05, due 12:00 -> overdue unhandled
CASES = [
    CaseFacts(1, "ai", "0102", "W1", d(2, 9), d(2, 16)),
    CaseFacts(2, "ai", "0504", "W1", d(3, 9), d(3, 12)),
    CaseFacts(3, "citizen", "0507", "W2", d(4, 10), d(4, 17)),
    CaseFacts(4, "inspector", "0101", "E1", d(5, 9), d(20, 9), Stage.REGISTERED),
    CaseFacts(5, "ai", "0505", "E1", d(10, 9), d(10, 11)),
    CaseFacts(6, "ai", "0102", "W2", d(20, 9), d(20, 13)),
    CaseFacts(7, "citizen", "0507", "E1", d(25, 9), d(25, 17)),
    CaseFacts(8, "ai", "0102", "W1", d(30, 20), d(1, 10, month=12)),
    CaseFacts(9, "ai", "0102", "W1", d(31, 10, month=10), d(31, 16, month=10)),
    CaseFacts(10, "ai", "0510", None, d(15, 9), d(15, 12)),
]

R, V, G, D, H, K, C, X, T = (
    "reported",
    "verifying",
    "registered",
    "dispatched",
    "handled",
    "checking",
    "closed",
    "cancelled",
    "returned",
)


def a(case_id: int, at: datetime, frm: str | None, to: str, action: str) -> AuditFact:
    role = {"dispatch": "dispatcher", "handle": "handler"}.get(action, "operator")
    return AuditFact(case_id, at, frm, to, action, f"{role}-1", role)


def verified(case_id: int, day: int, month: int = 11, hour: int = 9) -> list[AuditFact]:
    return [
        a(case_id, d(day, hour, 5, month), R, V, "start_verify"),
        a(case_id, d(day, hour, 15, month), V, G, "verify"),
    ]


AUDITS = [
    *verified(1, 2),
    a(1, d(2, 9, 30), G, D, "dispatch"),
    a(1, d(2, 11, 30), D, H, "handle"),
    a(1, d(2, 12), H, K, "check"),
    a(1, d(2, 14), K, C, "approve"),
    *verified(2, 3),
    a(2, d(3, 9, 30), G, D, "dispatch"),
    a(2, d(3, 11), D, H, "handle"),
    a(2, d(3, 11, 30), H, K, "check"),
    a(2, d(3, 11, 40), K, T, "return_for_rework"),
    a(2, d(3, 11, 50), T, D, "dispatch"),
    a(2, d(3, 14, 30), D, H, "handle"),
    a(2, d(3, 15), H, K, "check"),
    a(2, d(3, 15, 30), K, C, "approve"),
    a(3, d(4, 10, 5), R, V, "start_verify"),
    a(3, d(4, 10, 30), V, X, "cancel"),
    a(4, d(5, 9), None, G, "file"),
    a(4, d(5, 10), G, D, "dispatch"),
    a(4, d(10, 10), D, H, "handle"),
    a(4, d(10, 11), H, K, "check"),
    a(4, d(10, 15), K, C, "approve"),
    *verified(5, 10),
    a(5, d(10, 9, 30), G, D, "dispatch"),
    *verified(7, 25),
    a(7, d(25, 9, 30), G, D, "dispatch"),
    a(7, d(25, 16), D, H, "handle"),
    a(7, d(26, 9), H, K, "check"),
    *verified(8, 30, hour=20),
    a(8, d(30, 20, 30), G, D, "dispatch"),
    a(8, d(1, 9, month=12), D, H, "handle"),
    *verified(9, 31, month=10, hour=10),
    a(9, d(31, 11, month=10), G, D, "dispatch"),
    a(9, d(31, 15, month=10), D, H, "handle"),
    a(9, d(31, 15, 30, month=10), H, K, "check"),
    a(9, d(1, 9), K, C, "approve"),
    a(10, d(15, 9, 5), R, V, "start_verify"),
]


def test_november_whole_district() -> None:
    m = compute_metrics(CASES, AUDITS, period_start=P_START, period_end=P_END, now=NOW)
    assert m.as_of == P_END
    # cohort: C1-C8 and C10 (C9 was reported in October)
    assert m.reported == 9
    # ai: C1 C2 C5 C6 C8 C10
    assert m.from_ai == 6
    assert m.recognition_share == pytest.approx(6 / 9)
    # citizens: C3 (cancelled) and C7 (registered)
    assert (m.from_citizens, m.citizen_registered) == (2, 1)
    assert m.citizen_registration_share == pytest.approx(0.5)
    # registered: C1 C2 C4 C5 C7 C8; cancelled: C3; undecided: C6 C10
    assert m.registered == 6
    assert m.cancelled == 1
    assert m.accepted == 7
    assert m.awaiting_decision == 2
    assert m.registration_rate == pytest.approx(6 / 7)
    # dispatched: the same six
    assert m.dispatched == 6
    assert m.dispatch_rate == pytest.approx(1.0)
    # handled as of 1 Dec: C1 C2 C4 closed, C7 checking (C8's handling came after)
    assert m.handled == 4
    assert m.disposal_rate == pytest.approx(4 / 9)
    # due to close: C1 C2 C4 (closed), C5 C7 (deadline passed); C8 due only in December
    assert m.closed == 3
    assert m.due_to_close == 5
    assert m.closure_rate == pytest.approx(3 / 5)
    # on time: C1 (14:00 <= 16:00), C4; C2 closed 15:30 after 12:00
    assert m.closed_on_time == 2
    assert m.on_time_closure_rate == pytest.approx(2 / 5)
    # rework: C2
    assert m.returned == 1
    assert m.rework_rate == pytest.approx(1 / 5)
    # overdue unhandled: C5 (dispatched), C6 (reported), C10 (verifying)
    assert m.overdue_unhandled == 3
    # handling of closed cases, first dispatch to last handling: C1 2 h, C2 5 h, C4 120 h
    assert m.avg_handling_hours == pytest.approx(127 / 3)


def test_november_west_subtree() -> None:
    m = compute_metrics(
        CASES, AUDITS, period_start=P_START, period_end=P_END, now=NOW, cell_ids=WEST
    )
    # cohort: C1 C2 C3 C6 C8 (C10 has no cell, so it is outside every subtree)
    assert m.reported == 5
    assert m.from_ai == 4
    assert m.recognition_share == pytest.approx(0.8)
    assert (m.from_citizens, m.citizen_registered, m.citizen_registration_share) == (1, 0, 0.0)
    assert (m.registered, m.cancelled, m.accepted, m.awaiting_decision) == (3, 1, 4, 1)
    assert m.registration_rate == pytest.approx(0.75)
    assert m.dispatched == 3
    assert m.dispatch_rate == pytest.approx(1.0)
    assert m.handled == 2
    assert m.disposal_rate == pytest.approx(0.4)
    assert (m.closed, m.due_to_close, m.closed_on_time, m.returned) == (2, 2, 1, 1)
    assert m.closure_rate == pytest.approx(1.0)
    assert m.on_time_closure_rate == pytest.approx(0.5)
    assert m.rework_rate == pytest.approx(0.5)
    assert m.overdue_unhandled == 1
    assert m.avg_handling_hours == pytest.approx(3.5)


def test_shorter_period() -> None:
    m = compute_metrics(CASES, AUDITS, period_start=P_START, period_end=d(5), now=NOW)
    # C1 C2 C3
    assert (m.reported, m.registered, m.cancelled, m.closed, m.due_to_close) == (3, 2, 1, 2, 2)
    assert m.closure_rate == pytest.approx(1.0)
    assert m.on_time_closure_rate == pytest.approx(0.5)


def test_clock_in_the_middle_of_a_rework() -> None:
    # 3 Nov 11:45: C2 was returned at 11:40 and is not yet re-dispatched
    m = compute_metrics(CASES, AUDITS, period_start=P_START, period_end=P_END, now=d(3, 11, 45))
    assert m.as_of == d(3, 11, 45)
    assert m.reported == 2
    assert m.handled == 1  # C1 only: C2's handling was rejected
    assert m.due_to_close == 1  # C2's deadline (12:00) has not passed yet
    assert m.returned == 0  # rework counts among due cases only
    assert m.overdue_unhandled == 0
    # 3 Nov 12:30: C2 re-dispatched and past its deadline
    m = compute_metrics(CASES, AUDITS, period_start=P_START, period_end=P_END, now=d(3, 12, 30))
    assert (m.due_to_close, m.closed, m.returned, m.overdue_unhandled) == (2, 1, 1, 1)
    assert m.closure_rate == pytest.approx(0.5)
    assert m.rework_rate == pytest.approx(0.5)


def test_empty_period_has_no_rates() -> None:
    m = compute_metrics(
        CASES, AUDITS, period_start=d(1, month=6), period_end=d(2, month=6), now=NOW
    )
    assert m.reported == 0
    assert m.registration_rate is None
    assert m.disposal_rate is None
    assert m.avg_handling_hours is None


def test_bad_periods_and_naive_times() -> None:
    with pytest.raises(MetricsError, match="not after"):
        compute_metrics(CASES, AUDITS, period_start=P_END, period_end=P_START, now=NOW)
    with pytest.raises(MetricsError, match="period_start"):
        compute_metrics(
            CASES, AUDITS, period_start=datetime(2026, 11, 1), period_end=P_END, now=NOW
        )
    with pytest.raises(MetricsError, match="reported_at"):
        compute_metrics(
            [CaseFacts(1, "ai", "0102", "W1", datetime(2026, 11, 2), None)],
            [],
            period_start=P_START,
            period_end=P_END,
            now=NOW,
        )


def test_daily_counts_are_flows() -> None:
    days = daily_counts(CASES, AUDITS, period_start=P_START, period_end=P_END, now=NOW)
    assert len(days) == 30
    by_day = {row.day.day: row for row in days}
    # 1 Nov: only C9's closure (it was reported in October)
    assert (by_day[1].reported, by_day[1].closed) == (0, 1)
    # 2 Nov: C1 all the way
    row = by_day[2]
    assert (row.reported, row.registered, row.dispatched, row.handled, row.closed) == (
        1,
        1,
        1,
        1,
        1,
    )
    # 3 Nov: C2 dispatched twice, handled twice, returned once
    row = by_day[3]
    assert (row.dispatched, row.handled, row.returned, row.closed) == (2, 2, 1, 1)
    assert by_day[4].cancelled == 1
    assert by_day[5].registered == 1  # C4's filing entry
    # 30 Nov: C8 reported, registered and dispatched; its handling is in December
    assert (by_day[30].reported, by_day[30].dispatched, by_day[30].handled) == (1, 1, 0)
    assert sum(r.reported for r in days) == 9
    west = daily_counts(
        CASES, AUDITS, period_start=P_START, period_end=P_END, now=NOW, cell_ids=WEST
    )
    assert sum(r.reported for r in west) == 5
    assert {r.day.day: r for r in west}[10].dispatched == 0  # C5 is in the east


def test_daily_counts_stop_at_now() -> None:
    days = daily_counts(CASES, AUDITS, period_start=P_START, period_end=P_END, now=d(3, 10))
    assert [r.day.day for r in days] == [1, 2, 3]
    assert days[-1].dispatched == 1  # C2's first dispatch at 09:30, not the one at 11:50


def test_daily_counts_at_midnight_count_what_happens_at_now() -> None:
    # A case reported at the very instant "now" is, on a day boundary: counted, on its day
    # (hypothesis found the day missing from the table).
    case = CaseFacts(1, "ai", "0102", "W1", d(6), None)
    days = daily_counts([case], [], period_start=P_START, period_end=P_END, now=d(6))
    assert [r.day.day for r in days] == [1, 2, 3, 4, 5, 6]
    assert days[-1].reported == 1


def test_overdue_on_a_given_clock() -> None:
    current = {1: C, 2: C, 3: X, 4: C, 5: D, 6: R, 7: K, 8: H, 9: C, 10: V}
    pairs = [(case, Stage(current[int(case.case_id)])) for case in CASES]
    late = overdue(pairs, NOW)
    assert [o.case_id for o in late] == [5, 10, 6, 7, 8]
    assert [o.unhandled for o in late] == [True, True, True, False, False]
    assert late[0].overdue_by == NOW - d(10, 11)
    assert late[0].stage is Stage.DISPATCHED
    # earlier clock: on 20 Nov 12:00 only C5 and C10 are late (C6 is due 13:00)
    early = overdue(pairs, d(20, 12))
    assert [o.case_id for o in early] == [5, 10]
    assert overdue(pairs, d(1)) == []
    assert overdue(pairs, NOW + timedelta(days=365))[-1].case_id == 8


def test_unknown_stages_are_named() -> None:
    bad = [*AUDITS, a(1, d(2, 15), C, "reopened", "reopen")]
    with pytest.raises(MetricsError, match="'reopened' is not a workflow stage"):
        compute_metrics(CASES, bad, period_start=P_START, period_end=P_END, now=NOW)
    with pytest.raises(MetricsError, match=r"case 1\.stage"):
        overdue([(CASES[0], "lost")], NOW)


# ------------------------------------------------------------------ properties


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[CaseFacts], list[AuditFact]]:
    """Random cases walked through the real state machine with random timings."""
    cases: list[CaseFacts] = []
    audits: list[AuditFact] = []
    for case_id in range(draw(st.integers(0, 12))):
        reported = P_START + timedelta(minutes=draw(st.integers(-3 * 1440, 33 * 1440)))
        limit = draw(st.one_of(st.none(), st.integers(30, 10 * 1440)))
        cases.append(
            CaseFacts(
                case_id,
                draw(st.sampled_from(["ai", "citizen", "inspector", "referral"])),
                "0102",
                draw(st.sampled_from(["W1", "W2", "E1", None])),
                reported,
                None if limit is None else reported + timedelta(minutes=limit),
            )
        )
        stage, at = Stage.REPORTED, reported
        for _ in range(draw(st.integers(0, 12))):
            options = allowed_actions(stage, Role.ADMIN)
            if not options:
                break
            action = draw(st.sampled_from(options))
            at += timedelta(minutes=draw(st.integers(0, 3 * 1440)))
            new = transition(stage, action, Role.ADMIN)
            audits.append(AuditFact(case_id, at, stage, new, action, "x", "admin"))
            stage = new
    return cases, audits


ADDITIVE = (
    "reported",
    "accepted",
    "registered",
    "cancelled",
    "dispatched",
    "handled",
    "closed",
    "due_to_close",
    "closed_on_time",
    "returned",
    "from_ai",
    "from_citizens",
    "citizen_registered",
    "overdue_unhandled",
)


@settings(max_examples=150, deadline=None)
@given(history=histories(), now_minutes=st.integers(-1440, 40 * 1440))
def test_metric_invariants(
    history: tuple[list[CaseFacts], list[AuditFact]], now_minutes: int
) -> None:
    cases, audits = history
    now = P_START + timedelta(minutes=now_minutes)

    def nov(subset: list[CaseFacts], cells: set[str] | None = None) -> Metrics:
        return compute_metrics(
            subset, audits, period_start=P_START, period_end=P_END, now=now, cell_ids=cells
        )

    m = nov(cases)
    assert m.accepted + m.awaiting_decision == m.reported
    assert m.registered <= m.accepted
    assert m.cancelled <= m.accepted
    assert m.dispatched <= m.registered
    assert m.handled <= m.dispatched
    assert m.closed <= m.due_to_close <= m.dispatched
    assert m.closed_on_time <= m.closed
    assert m.returned <= m.due_to_close
    assert m.from_ai <= m.reported
    assert m.citizen_registered <= m.from_citizens <= m.reported
    assert m.from_ai + m.from_citizens <= m.reported
    assert m.overdue_unhandled <= m.reported
    for rate in (
        m.registration_rate,
        m.dispatch_rate,
        m.closure_rate,
        m.on_time_closure_rate,
        m.rework_rate,
        m.disposal_rate,
        m.recognition_share,
        m.citizen_registration_share,
    ):
        assert rate is None or 0 <= rate <= 1
    assert m.avg_handling_hours is None or m.avg_handling_hours >= 0
    # the subtrees and the cases without a cell partition the district
    parts = [nov(cases, WEST), nov(cases, {"E1"}), nov([c for c in cases if not c.grid_cell_id])]
    for name in ADDITIVE:
        assert sum(getattr(p, name) for p in parts) == getattr(m, name), name
    if now > P_START:
        days = daily_counts(cases, audits, period_start=P_START, period_end=P_END, now=now)
        assert sum(r.reported for r in days) == m.reported
