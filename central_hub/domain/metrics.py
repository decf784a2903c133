"""The evaluation metrics of DOMAIN.md, computed from cases and their audit trail.

Everything is a pure function of plain facts: the service loads :class:`CaseFacts` and
audit entries (:class:`AuditFact`, or the lighter :class:`AuditRow` tuples it builds by
the tens of thousands) and passes a clock in. Each metric is defined here once; the
service only chooses which rows to read, never computes a figure itself.

Definitions (for a period ``[period_start, period_end)`` and an optional set of grid
cells, usually ``Grid.subtree(cell_id)``):

* **as of**: ``min(now, period_end)``; only audit entries at or before ``now`` and before
  ``period_end`` count, so last month's figures do not change when a case is closed today.
* **reported** (上报数): the cases reported in the period (``reported_at`` in it) whose
  cell is in the set (cases without a cell count only when no set is given). This is the
  cohort every other count is taken from. Merged duplicate reports are not cases.
* **accepted** (受理数): reported cases that have been decided, i.e. registered or
  cancelled (不予立案) as of the end; ``awaiting_decision`` are the rest.
* **registered**, **dispatched**, **closed**, **cancelled**: reported cases that reached
  that stage as of the end (a case that moved on still counts).
* **handled** (处置数): reported cases whose handling stands as of the end: the stage is
  ``handled``, ``checking`` or ``closed`` (a case returned for rework and not yet handled
  again does not count).
* **due to close** (应结案数): dispatched cases that are closed as of the end, or whose
  deadline has passed by then. A case without a deadline is due only once closed.
* **closed within limit**: due cases closed at or before their deadline (or with none).
* **returned** (返工数): due cases returned for rework at least once (cases, not returns).
* **from AI**: reported cases whose source is ``ai``.
* **from citizens**: reported cases a citizen's report opened (source ``citizen``; later
  citizen reports merged into a case are not cases); **citizen registered**: those of
  them registered as of the end.
* **overdue unhandled**: reported cases that, as of the end, are still in an unhandled
  stage (reported, verifying, registered, dispatched, returned) past their deadline.
* **average handling time**: over closed cases, hours from the first dispatch to the last
  recorded handling (so rework time counts).

Rates: registration = registered / accepted; dispatch = dispatched / registered; closure
= closed / due to close; on-time closure = closed within limit / due to close; rework =
returned / due to close; disposal (处置率) = handled / reported; recognition share = from
AI / reported; citizen registration share = citizen registered / from citizens (the
source's 950 registered of ~1,000 citizen reports). A rate whose denominator is 0 is None.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from operator import attrgetter
from typing import Literal, NamedTuple
from zoneinfo import ZoneInfo

from central_hub.domain.errors import MetricsError
from central_hub.domain.workflow import UNHANDLED_STAGES, Action, Stage, is_open

__all__ = [
    "Audit",
    "AuditFact",
    "AuditRow",
    "CaseFacts",
    "DailyCounts",
    "Metrics",
    "OverdueCase",
    "compute_metrics",
    "daily_counts",
    "overdue",
]

CaseSourceName = Literal["ai", "citizen", "inspector", "referral"]


@dataclass(frozen=True)
class CaseFacts:
    """What metrics need to know about a case.

    ``initial_stage`` is the stage the case was filed in (``reported``, or ``registered``
    for reports that need no verification); the audit trail tells the rest.
    """

    case_id: int | str
    source: CaseSourceName
    code: str
    grid_cell_id: str | None
    reported_at: datetime
    deadline: datetime | None
    initial_stage: Stage = Stage.REPORTED


@dataclass(frozen=True)
class AuditFact:
    """One audited transition: who (``actor`` in ``role``) moved the case when and how.

    ``from_stage`` is None for the entry that records the filing itself; ``action`` is an
    :class:`~central_hub.domain.workflow.Action` value (or a service's own word such as
    ``file`` or ``merge``, which metrics ignore).
    """

    case_id: int | str
    at: datetime
    from_stage: Stage | str | None
    to_stage: Stage | str
    action: str
    actor: str
    role: str


class AuditRow(NamedTuple):
    """The fields of an :class:`AuditFact` that metrics read, as a plain tuple.

    What a service builds when it reads tens of thousands of entries: a tuple costs a
    third of a frozen dataclass to create. Every function here takes either.
    """

    case_id: int | str
    at: datetime
    from_stage: Stage | str | None
    to_stage: Stage | str
    action: str


#: An audit entry as the metrics read it.
Audit = AuditFact | AuditRow


@dataclass(frozen=True)
class Metrics:
    """The figures for one period and cell set; see the module doc for definitions."""

    period_start: datetime
    period_end: datetime
    as_of: datetime
    reported: int
    accepted: int
    awaiting_decision: int
    registered: int
    cancelled: int
    dispatched: int
    handled: int
    closed: int
    due_to_close: int
    closed_on_time: int
    returned: int
    from_ai: int
    from_citizens: int
    citizen_registered: int
    overdue_unhandled: int
    avg_handling_hours: float | None
    registration_rate: float | None
    dispatch_rate: float | None
    closure_rate: float | None
    on_time_closure_rate: float | None
    rework_rate: float | None
    disposal_rate: float | None
    recognition_share: float | None
    citizen_registration_share: float | None


@dataclass(frozen=True)
class DailyCounts:
    """What happened on one local day: cases reported, and transitions into stages."""

    day: date
    reported: int
    registered: int
    dispatched: int
    handled: int
    closed: int
    returned: int
    cancelled: int


@dataclass(frozen=True)
class OverdueCase:
    """A case past its deadline and not closed; ``unhandled`` when nobody handled it yet."""

    case_id: int | str
    stage: Stage
    deadline: datetime
    overdue_by: timedelta
    unhandled: bool
    code: str
    grid_cell_id: str | None


def _aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise MetricsError(f"{name}: a timezone-aware datetime is needed, got {value.isoformat()}")


#: Every stage by its value; a Stage is a str, so members look themselves up too.
_STAGES: dict[str, Stage] = {s.value: s for s in Stage}


def _stage(value: Stage | str, where: str) -> Stage:
    try:
        return Stage(value)
    except ValueError as exc:
        raise MetricsError(f"{where}: {value!r} is not a workflow stage") from exc


def _entry_stage(value: Stage | str, entry: Audit, field: str) -> Stage:
    """The stage in an audit entry's ``field``; the message is only built for a bad one."""
    stage = _STAGES.get(value)
    if stage is None:
        where = f"audit of case {entry.case_id} at {entry.at.isoformat()}: {field}"
        raise MetricsError(f"{where}: {value!r} is not a workflow stage")
    return stage


def _rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


# Plain strings: comparing with them is cheaper than with the StrEnum members.
_DISPATCH = Action.DISPATCH.value
_HANDLE = Action.HANDLE.value
_RETURN = Action.RETURN_FOR_REWORK.value
_AT = attrgetter("at")


@dataclass
class _History:
    """One case's audit entries that count, replayed."""

    stage: Stage
    reached: set[Stage]
    first_dispatch: datetime | None = None
    last_handle: datetime | None = None
    closed_at: datetime | None = None
    returns: int = 0


def _replay(case: CaseFacts, entries: Sequence[Audit], now: datetime, end: datetime) -> _History:
    """Replays ``entries`` (sorted by time) up to the first that does not count.

    An entry counts when it is at or before ``now`` and before ``end``; both are upper
    bounds on the time, so the entries that count are a prefix of the sorted trail.
    """
    initial = _STAGES.get(case.initial_stage) or _stage(
        case.initial_stage, f"case {case.case_id}.initial_stage"
    )
    stage = initial
    reached = {initial}
    first_dispatch = last_handle = closed_at = None
    returns = 0
    for entry in entries:
        at = entry.at
        if not (at <= now and at < end):
            break
        if entry.from_stage is not None:
            reached.add(_entry_stage(entry.from_stage, entry, "from_stage"))
        stage = _entry_stage(entry.to_stage, entry, "to_stage")
        reached.add(stage)
        action = entry.action
        if action == _DISPATCH:
            if first_dispatch is None:
                first_dispatch = at
        elif action == _HANDLE:
            last_handle = at
        elif action == _RETURN:
            returns += 1
        if stage is Stage.CLOSED:
            closed_at = at
    return _History(stage, reached, first_dispatch, last_handle, closed_at, returns)


def _check_at(entry: Audit) -> None:
    at = entry.at
    zone = at.tzinfo
    # UTC first: what services pass, and an identity test costs less than utcoffset().
    if zone is not UTC and (zone is None or at.utcoffset() is None):
        _aware(at, f"audit of case {entry.case_id}.at")


def _group(audits: Iterable[Audit], keep: set[int | str]) -> dict[int | str, list[Audit]]:
    grouped: dict[int | str, list[Audit]] = defaultdict(list)
    for entry in audits:
        if entry.case_id in keep:
            _check_at(entry)
            grouped[entry.case_id].append(entry)
    for entries in grouped.values():
        entries.sort(key=_AT)  # stable: same-instant entries keep their order
    return grouped


def _in_cells(case: CaseFacts, cell_ids: set[str] | None) -> bool:
    return cell_ids is None or (case.grid_cell_id is not None and case.grid_cell_id in cell_ids)


def _check_reported(case: CaseFacts) -> datetime:
    at = case.reported_at
    zone = at.tzinfo
    if zone is not UTC and (zone is None or at.utcoffset() is None):
        _aware(at, f"case {case.case_id}.reported_at")
    return at


def compute_metrics(
    cases: Iterable[CaseFacts],
    audits: Iterable[Audit],
    *,
    period_start: datetime,
    period_end: datetime,
    now: datetime,
    cell_ids: set[str] | None = None,
) -> Metrics:
    """Every DOMAIN.md metric for the period and cells (definitions in the module doc)."""
    for value, name in ((period_start, "period_start"), (period_end, "period_end"), (now, "now")):
        _aware(value, name)
    if period_end <= period_start:
        raise MetricsError(f"period_end {period_end} is not after period_start {period_start}")
    as_of = min(now, period_end)
    # Bounds in UTC, the zone of stored facts: comparing datetimes in different zones
    # calls utcoffset() on both, which cost more than the rest of the replay.
    start, end, now = period_start.astimezone(UTC), period_end.astimezone(UTC), now.astimezone(UTC)
    as_of_utc = min(now, end)

    def counts(at: datetime) -> bool:
        return at <= now and at < end

    cohort = []
    for case in cases:
        reported_at = _check_reported(case)
        in_period = start <= reported_at < end and reported_at <= now
        if in_period and _in_cells(case, cell_ids):
            cohort.append(case)
    grouped = _group(audits, {c.case_id for c in cohort})

    reported = from_ai = registered = cancelled = accepted = dispatched = handled = closed = 0
    due_to_close = closed_on_time = returned = overdue_unhandled = 0
    from_citizens = citizen_registered = 0
    handling_hours: list[float] = []
    no_entries: list[Audit] = []
    handled_stages = (Stage.HANDLED, Stage.CHECKING, Stage.CLOSED)
    for case in cohort:
        history = _replay(case, grouped.get(case.case_id, no_entries), now, end)
        reached = history.reached
        stage = history.stage
        closed_at = history.closed_at
        deadline = case.deadline
        reported += 1
        from_ai += case.source == "ai"
        is_registered = Stage.REGISTERED in reached
        is_cancelled = Stage.CANCELLED in reached
        registered += is_registered
        cancelled += is_cancelled
        if case.source == "citizen":
            from_citizens += 1
            citizen_registered += is_registered
        accepted += is_registered or is_cancelled
        is_dispatched = Stage.DISPATCHED in reached
        dispatched += is_dispatched
        closed += closed_at is not None
        handled += stage in handled_stages
        past_deadline = deadline is not None and counts(deadline)
        if is_dispatched and (closed_at is not None or past_deadline):
            due_to_close += 1
            if closed_at is not None and (deadline is None or closed_at <= deadline):
                closed_on_time += 1
            returned += history.returns > 0
        if stage in UNHANDLED_STAGES and deadline is not None and deadline < as_of_utc:
            overdue_unhandled += 1
        if (
            closed_at is not None
            and history.first_dispatch is not None
            and history.last_handle is not None
        ):
            span = history.last_handle - history.first_dispatch
            handling_hours.append(span.total_seconds() / 3600)

    return Metrics(
        period_start=period_start,
        period_end=period_end,
        as_of=as_of,
        reported=reported,
        accepted=accepted,
        awaiting_decision=reported - accepted,
        registered=registered,
        cancelled=cancelled,
        dispatched=dispatched,
        handled=handled,
        closed=closed,
        due_to_close=due_to_close,
        closed_on_time=closed_on_time,
        returned=returned,
        from_ai=from_ai,
        from_citizens=from_citizens,
        citizen_registered=citizen_registered,
        overdue_unhandled=overdue_unhandled,
        avg_handling_hours=(sum(handling_hours) / len(handling_hours) if handling_hours else None),
        registration_rate=_rate(registered, accepted),
        dispatch_rate=_rate(dispatched, registered),
        closure_rate=_rate(closed, due_to_close),
        on_time_closure_rate=_rate(closed_on_time, due_to_close),
        rework_rate=_rate(returned, due_to_close),
        disposal_rate=_rate(handled, reported),
        recognition_share=_rate(from_ai, reported),
        citizen_registration_share=_rate(citizen_registered, from_citizens),
    )


_FLOW = {
    Stage.REGISTERED: "registered",
    Stage.DISPATCHED: "dispatched",
    Stage.HANDLED: "handled",
    Stage.CLOSED: "closed",
    Stage.RETURNED: "returned",
    Stage.CANCELLED: "cancelled",
}


def daily_counts(
    cases: Iterable[CaseFacts],
    audits: Iterable[Audit],
    *,
    period_start: datetime,
    period_end: datetime,
    now: datetime,
    cell_ids: set[str] | None = None,
    tz: str = "Asia/Shanghai",
) -> list[DailyCounts]:
    """Per local day in the period (up to ``now``): cases reported and transitions made.

    Unlike :func:`compute_metrics` these are flows, for charts: a case reported on Monday
    and closed on Wednesday adds to Monday's ``reported`` and Wednesday's ``closed``.
    Transitions are counted by the stage they enter (a ``dispatch`` after rework counts
    again); days with nothing appear with zeros.
    """
    for value, name in ((period_start, "period_start"), (period_end, "period_end"), (now, "now")):
        _aware(value, name)
    if period_end <= period_start:
        raise MetricsError(f"period_end {period_end} is not after period_start {period_start}")
    zone = ZoneInfo(tz)
    # UTC bounds for the comparisons, as in compute_metrics.
    start_utc, end_utc, now_utc = (v.astimezone(UTC) for v in (period_start, period_end, now))

    def counts(at: datetime) -> bool:
        return start_utc <= at < end_utc and at <= now_utc

    table: dict[date, dict[str, int]] = {}
    day = period_start.astimezone(zone).date()
    # The last day holds ``now`` itself when the period runs past it (what happens at
    # ``now`` counts), else the period's last instant.
    last = now if now < period_end else period_end - timedelta(microseconds=1)
    last_day = max(day, last.astimezone(zone).date())
    while day <= last_day:
        table[day] = defaultdict(int)
        day += timedelta(days=1)

    keep: set[int | str] = set()
    for case in cases:
        reported_at = _check_reported(case)
        if not _in_cells(case, cell_ids):
            continue
        keep.add(case.case_id)
        if counts(reported_at):
            table[reported_at.astimezone(zone).date()]["reported"] += 1
    # Flows do not depend on the order of a case's entries, so they need no grouping.
    for entry in audits:
        if entry.case_id not in keep:
            continue
        _check_at(entry)
        column = _FLOW.get(_entry_stage(entry.to_stage, entry, "to_stage"))
        if column is not None and counts(entry.at):
            table[entry.at.astimezone(zone).date()][column] += 1
    return [
        DailyCounts(
            day=d,
            reported=row["reported"],
            registered=row["registered"],
            dispatched=row["dispatched"],
            handled=row["handled"],
            closed=row["closed"],
            returned=row["returned"],
            cancelled=row["cancelled"],
        )
        for d, row in sorted(table.items())
    ]


def overdue(
    cases_with_stage: Iterable[tuple[CaseFacts, Stage | str]], now: datetime
) -> list[OverdueCase]:
    """The open cases whose deadline is before ``now``, most overdue first.

    A case's deadline is for closing it, so every open stage can be overdue; ``unhandled``
    marks those that nobody has handled yet (the "overdue unhandled" of the metrics).
    """
    _aware(now, "now")
    found = []
    for case, stage_value in cases_with_stage:
        stage = _stage(stage_value, f"case {case.case_id}.stage")
        if not is_open(stage) or case.deadline is None:
            continue
        _aware(case.deadline, f"case {case.case_id}.deadline")
        if case.deadline < now:
            found.append(
                OverdueCase(
                    case_id=case.case_id,
                    stage=stage,
                    deadline=case.deadline,
                    overdue_by=now - case.deadline,
                    unhandled=stage in UNHANDLED_STAGES,
                    code=case.code,
                    grid_cell_id=case.grid_cell_id,
                )
            )
    found.sort(key=lambda o: (o.deadline, str(o.case_id)))
    return found
