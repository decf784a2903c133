"""The evaluation metrics of DOMAIN.md, computed from cases and their audit trail.

Everything is a pure function of plain facts: the service loads :class:`CaseFacts` and
:class:`AuditFact` rows and passes a clock in.

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
* **overdue unhandled**: reported cases that, as of the end, are still in an unhandled
  stage (reported, verifying, registered, dispatched, returned) past their deadline.
* **average handling time**: over closed cases, hours from the first dispatch to the last
  recorded handling (so rework time counts).

Rates: registration = registered / accepted; dispatch = dispatched / registered; closure
= closed / due to close; on-time closure = closed within limit / due to close; rework =
returned / due to close; disposal (处置率) = handled / reported; recognition share = from
AI / reported. A rate whose denominator is 0 is None.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from central_hub.domain.errors import MetricsError
from central_hub.domain.workflow import UNHANDLED_STAGES, Action, Stage, is_open

__all__ = [
    "AuditFact",
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
    overdue_unhandled: int
    avg_handling_hours: float | None
    registration_rate: float | None
    dispatch_rate: float | None
    closure_rate: float | None
    on_time_closure_rate: float | None
    rework_rate: float | None
    disposal_rate: float | None
    recognition_share: float | None


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


def _stage(value: Stage | str, where: str) -> Stage:
    try:
        return Stage(value)
    except ValueError as exc:
        raise MetricsError(f"{where}: {value!r} is not a workflow stage") from exc


def _rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


@dataclass
class _History:
    """One case's audit entries that count, replayed."""

    stage: Stage
    reached: set[Stage]
    first_dispatch: datetime | None = None
    last_handle: datetime | None = None
    closed_at: datetime | None = None
    returns: int = 0


def _replay(case: CaseFacts, entries: Sequence[AuditFact]) -> _History:
    initial = _stage(case.initial_stage, f"case {case.case_id}.initial_stage")
    history = _History(stage=initial, reached={initial})
    for entry in entries:
        where = f"audit of case {entry.case_id} at {entry.at.isoformat()}"
        if entry.from_stage is not None:
            history.reached.add(_stage(entry.from_stage, f"{where}: from_stage"))
        target = _stage(entry.to_stage, f"{where}: to_stage")
        history.reached.add(target)
        history.stage = target
        if entry.action == Action.DISPATCH and history.first_dispatch is None:
            history.first_dispatch = entry.at
        if entry.action == Action.HANDLE:
            history.last_handle = entry.at
        if entry.action == Action.RETURN_FOR_REWORK:
            history.returns += 1
        if target is Stage.CLOSED:
            history.closed_at = entry.at
    return history


def _group(audits: Iterable[AuditFact], keep: set[int | str]) -> dict[int | str, list[AuditFact]]:
    grouped: dict[int | str, list[AuditFact]] = defaultdict(list)
    for entry in audits:
        if entry.case_id in keep:
            _aware(entry.at, f"audit of case {entry.case_id}.at")
            grouped[entry.case_id].append(entry)
    for entries in grouped.values():
        entries.sort(key=lambda e: e.at)  # stable: same-instant entries keep their order
    return grouped


def _in_cells(case: CaseFacts, cell_ids: set[str] | None) -> bool:
    return cell_ids is None or (case.grid_cell_id is not None and case.grid_cell_id in cell_ids)


def compute_metrics(
    cases: Iterable[CaseFacts],
    audits: Iterable[AuditFact],
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

    def counts(at: datetime) -> bool:
        return at <= now and at < period_end

    cohort = []
    for case in cases:
        _aware(case.reported_at, f"case {case.case_id}.reported_at")
        in_period = period_start <= case.reported_at < period_end and case.reported_at <= now
        if in_period and _in_cells(case, cell_ids):
            cohort.append(case)
    grouped = _group(audits, {c.case_id for c in cohort})

    n: defaultdict[str, int] = defaultdict(int)
    handling_hours: list[float] = []
    for case in cohort:
        history = _replay(case, [e for e in grouped.get(case.case_id, []) if counts(e.at)])
        reached = history.reached
        n["reported"] += 1
        n["from_ai"] += case.source == "ai"
        registered = Stage.REGISTERED in reached
        cancelled = Stage.CANCELLED in reached
        n["registered"] += registered
        n["cancelled"] += cancelled
        n["accepted"] += registered or cancelled
        dispatched = Stage.DISPATCHED in reached
        n["dispatched"] += dispatched
        closed = history.closed_at is not None
        n["closed"] += closed
        n["handled"] += history.stage in (Stage.HANDLED, Stage.CHECKING, Stage.CLOSED)
        past_deadline = case.deadline is not None and counts(case.deadline)
        if dispatched and (closed or past_deadline):
            n["due_to_close"] += 1
            if closed and (
                case.deadline is None
                or (history.closed_at is not None and history.closed_at <= case.deadline)
            ):
                n["closed_on_time"] += 1
            n["returned"] += history.returns > 0
        if (
            history.stage in UNHANDLED_STAGES
            and case.deadline is not None
            and case.deadline < as_of
        ):
            n["overdue_unhandled"] += 1
        if closed and history.first_dispatch is not None and history.last_handle is not None:
            span = history.last_handle - history.first_dispatch
            handling_hours.append(span.total_seconds() / 3600)

    return Metrics(
        period_start=period_start,
        period_end=period_end,
        as_of=as_of,
        reported=n["reported"],
        accepted=n["accepted"],
        awaiting_decision=n["reported"] - n["accepted"],
        registered=n["registered"],
        cancelled=n["cancelled"],
        dispatched=n["dispatched"],
        handled=n["handled"],
        closed=n["closed"],
        due_to_close=n["due_to_close"],
        closed_on_time=n["closed_on_time"],
        returned=n["returned"],
        from_ai=n["from_ai"],
        overdue_unhandled=n["overdue_unhandled"],
        avg_handling_hours=(sum(handling_hours) / len(handling_hours) if handling_hours else None),
        registration_rate=_rate(n["registered"], n["accepted"]),
        dispatch_rate=_rate(n["dispatched"], n["registered"]),
        closure_rate=_rate(n["closed"], n["due_to_close"]),
        on_time_closure_rate=_rate(n["closed_on_time"], n["due_to_close"]),
        rework_rate=_rate(n["returned"], n["due_to_close"]),
        disposal_rate=_rate(n["handled"], n["reported"]),
        recognition_share=_rate(n["from_ai"], n["reported"]),
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
    audits: Iterable[AuditFact],
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
    end = min(now, period_end)

    def counts(at: datetime) -> bool:
        return period_start <= at < period_end and at <= now

    table: dict[date, dict[str, int]] = {}
    day = period_start.astimezone(zone).date()
    last_day = max(day, (end - timedelta(microseconds=1)).astimezone(zone).date())
    while day <= last_day:
        table[day] = defaultdict(int)
        day += timedelta(days=1)

    keep: set[int | str] = set()
    for case in cases:
        _aware(case.reported_at, f"case {case.case_id}.reported_at")
        if not _in_cells(case, cell_ids):
            continue
        keep.add(case.case_id)
        if counts(case.reported_at):
            table[case.reported_at.astimezone(zone).date()]["reported"] += 1
    for entries in _group(audits, keep).values():
        for entry in entries:
            column = _FLOW.get(_stage(entry.to_stage, f"audit of case {entry.case_id}"))
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
