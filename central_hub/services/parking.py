"""The move-your-car loop (issue #14 item 3): text the owner, wait, ask the unit, decide.

:class:`ParkingLoop` runs inside ``serve`` next to the notice worker. Each tick it

1. takes the new camera 0505 cases still ``reported`` (at most a batch), claims each in
   ``parking_checks`` (one worker wins a case), looks the plate of the case's first event
   up in the vehicle registry and, following :func:`central_hub.domain.parking.plan`,
   queues a text to the owner and moves the case to ``reminded`` (the hub's own action
   ``remind``), or leaves the case in the operators' verification queue with the reason;
2. sends a signed ``spot.recheck`` (camera, zone, plate, the original box) to the unit
   that saw the car once the wait of the case's grid area is over;
3. reads the answers: ``still_there`` registers the case for enforcement (``stayed``),
   ``cleared`` closes it as rectified after the reminder (``moved``); the frame the unit
   sent with its answer goes into the audit row as an attachment. A unit that fails,
   lets the command expire or stays silent past ``answer_within`` leaves the case
   ``reminded`` for the operators, with the reason in ``parking_checks``.

A crash between claiming a case and recording its reminder leaves the claim in
``deciding``; the next tick takes such claims up again and looks for a notice already
queued for the case before sending one, so an owner is not texted twice. If an operator
takes a case over meanwhile (``start_verify``, ``cancel``), the loop lets go of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.db.engine import insert_ignore
from central_hub.db.schema import (
    audits,
    cases,
    commands,
    events,
    notice_deliveries,
    notices,
    parking_checks,
    snapshots,
)
from central_hub.domain.errors import DomainError, NoticeError, TransitionRefused, UnknownCell
from central_hub.domain.grid import Grid
from central_hub.domain.notices import DeliveryState, NoticeChannel, Recipient
from central_hub.domain.parking import (
    DEFAULT_TEMPLATE,
    CheckState,
    ParkingMonth,
    ParkingPolicy,
    Remind,
    ToOperators,
    monthly,
    plan,
    read_answer,
)
from central_hub.domain.workflow import Action, Role, Stage
from central_hub.errors import ConflictError, HubError, NotFoundError, SettingsError
from central_hub.services.cases import CaseService
from central_hub.services.commands import CommandService
from central_hub.services.notices import NoticeService
from central_hub.services.users import User
from central_hub.services.vehicles import VehicleRegistry
from central_hub.settings import HubSettings

__all__ = ["HUB_ACTOR", "ParkingCheckView", "ParkingLoop", "TickReport", "parking_policy"]

log = logging.getLogger(__name__)

#: Who the audit trail names for the loop's own actions.
HUB_ACTOR = User(id=0, name="hub:parking", role=Role.ADMIN)
#: A claim left in ``deciding`` this long is taken up again (its worker died).
STALE_CLAIM = timedelta(seconds=60)
#: Cases taken per tick and step.
BATCH = 100
#: How long a recheck command may wait for the unit (it is queued like any command).
RECHECK_TTL = timedelta(minutes=5)


def parking_policy(settings: HubSettings, grid: Grid) -> ParkingPolicy:
    """The loop's policy from the hub's settings; a :class:`SettingsError` names a grid
    area of ``parking_wait_by_area`` that is not in the city's grid."""
    waits = settings.parking_waits()
    unknown = sorted(cell for cell in waits if cell not in grid)
    if unknown:
        raise SettingsError(
            "parking_wait_by_area (XH_HUB_PARKING_WAIT_BY_AREA): not in the grid: "
            + ", ".join(unknown)
        )
    return ParkingPolicy(
        default_wait=timedelta(seconds=settings.parking_wait_s),
        by_area={cell: timedelta(seconds=s) for cell, s in waits.items()},
        answer_within=timedelta(seconds=settings.parking_answer_s),
    )


@dataclass
class TickReport:
    """What one tick did."""

    reminded: int = 0
    to_operators: int = 0
    asked: int = 0
    moved: int = 0
    stayed: int = 0
    unanswered: int = 0
    not_delivered: int = 0


class ParkingCheckView(BaseModel):
    """A case's record in the loop, for the console and the API."""

    case_id: int
    plate: str | None
    device_id: str
    camera_id: str
    zone: str
    state: CheckState
    reason: str
    notice_id: str | None
    reminded_at: datetime | None
    due_at: datetime | None
    cmd_id: str | None
    decided_at: datetime | None


class ParkingLoop:
    """Reminders, waits and rechecks of parked cars; see the module docstring."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        cases_service: CaseService,
        vehicles: VehicleRegistry,
        notices_service: NoticeService,
        commands_service: CommandService,
        grid: Grid,
        clock: Callable[[], datetime],
        policy: ParkingPolicy | None = None,
        can_text: bool = True,
        tick_s: float = 2.0,
    ) -> None:
        self.engine = engine
        self.cases = cases_service
        self.vehicles = vehicles
        self.notices = notices_service
        self.commands = commands_service
        self.grid = grid
        self.clock = clock
        self.policy = policy or ParkingPolicy()
        #: Whether the hub has a text-message gateway (``notice_sms_url``): without one
        #: no owner can be reminded and every case goes to the operators.
        self.can_text = can_text
        self.tick_s = tick_s
        self._template_ready = False

    # ------------------------------------------------------------------ running

    async def ensure_template(self) -> None:
        """Create the reminder's notice template when the city has not made its own."""
        if self._template_ready:
            return
        await self.notices.ensure_template(
            self.policy.template,
            "挪车提醒",
            DEFAULT_TEMPLATE,
            ["plate", "place", "minutes"],
            actor=HUB_ACTOR.name,
        )
        self._template_ready = True

    async def run(self) -> None:
        """Tick until cancelled; a failing tick is logged and the next one tries again
        (the loop never takes ``serve`` down with it)."""
        while True:
            try:
                await self.ensure_template()
                await self.tick()
            except (sa.exc.SQLAlchemyError, OSError, HubError, DomainError) as exc:
                log.error("parking loop: tick failed, retrying: %s", exc)
            await asyncio.sleep(self.tick_s)

    async def tick(self) -> TickReport:
        """One pass over new cases, due rechecks and answers."""
        report = TickReport()
        await self._new_cases(report)
        await self._texts_out(report)
        await self._due_rechecks(report)
        await self._answers(report)
        return report

    # ------------------------------------------------------------------ views

    async def check(self, case_id: int) -> ParkingCheckView | None:
        """The loop's record of ``case_id`` (None when it never looked at the case)."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    parking_checks.select().where(parking_checks.c.case_id == case_id)
                )
            ).first()
        if row is None:
            return None
        return ParkingCheckView(
            case_id=row.case_id,
            plate=row.plate,
            device_id=row.device_id,
            camera_id=row.camera_id,
            zone=row.zone,
            state=CheckState(row.state),
            reason=row.reason,
            notice_id=row.notice_id,
            reminded_at=row.reminded_at,
            due_at=row.due_at,
            cmd_id=row.cmd_id,
            decided_at=row.decided_at,
        )

    async def months(self, start: datetime, end: datetime) -> list[ParkingMonth]:
        """Reminders sent, cars moved, cars registered, per local month in [start, end)."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(audits.c.at, audits.c.action).where(
                        audits.c.action.in_(
                            [Action.REMIND.value, Action.MOVED.value, Action.STAYED.value]
                        ),
                        audits.c.at >= start,
                        audits.c.at < end,
                    )
                )
            ).all()
        return monthly(((r.at, r.action) for r in rows), self.cases.calendar.zone)

    # ------------------------------------------------------------------ steps

    async def _new_cases(self, report: TickReport) -> None:
        now = self.clock()
        stale = now - STALE_CLAIM
        async with self.engine.connect() as conn:
            fresh = (
                await conn.execute(
                    sa.select(cases.c.id)
                    .where(
                        cases.c.code.in_(sorted(self.policy.codes)),
                        cases.c.source == "ai",
                        cases.c.stage == Stage.REPORTED.value,
                        cases.c.reported_at >= now - self.policy.horizon,
                        ~sa.exists().where(parking_checks.c.case_id == cases.c.id),
                    )
                    .order_by(cases.c.id)
                    .limit(BATCH)
                )
            ).all()
            abandoned = (
                await conn.execute(
                    sa.select(parking_checks.c.case_id)
                    .where(
                        parking_checks.c.state == CheckState.DECIDING.value,
                        parking_checks.c.claimed_at < stale,
                    )
                    .limit(BATCH)
                )
            ).all()
        for (case_id,) in fresh:
            if await self._claim(case_id, now):
                await self._decide(case_id, report)
        for (case_id,) in abandoned:
            await self._decide(case_id, report)

    async def _claim(self, case_id: int, now: datetime) -> bool:
        """Record the case's car in ``parking_checks``; False if another worker has it."""
        async with self.engine.begin() as conn:
            first = (
                await conn.execute(
                    sa.select(events)
                    .where(events.c.case_id == case_id)
                    .order_by(events.c.detected_at)
                    .limit(1)
                )
            ).first()
            if first is None:
                return False  # filed without an event (never for a camera's case)
            boxes = [o.get("box") for o in (first.objects or []) if isinstance(o, dict)]
            done = await conn.execute(
                insert_ignore(parking_checks, conn.dialect, ["case_id"]).values(
                    case_id=case_id,
                    event_id=first.event_id,
                    device_id=first.device_id,
                    camera_id=first.camera_id,
                    zone=first.zone,
                    plate=first.plate_text or None,
                    box=list(boxes[0]) if boxes and boxes[0] else None,
                    state=CheckState.DECIDING.value,
                    claimed_at=now,
                )
            )
        return bool(done.rowcount == 1)

    async def _decide(self, case_id: int, report: TickReport) -> None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(parking_checks, cases.c.grid_cell_id, cases.c.stage)
                    .join(cases, cases.c.id == parking_checks.c.case_id)
                    .where(parking_checks.c.case_id == case_id)
                )
            ).first()
        if row is None or row.state != CheckState.DECIDING.value:
            return
        if row.stage != Stage.REPORTED.value:
            await self._finish(case_id, CheckState.TAKEN_OVER, f"the case is {row.stage}")
            return
        vehicle = await self.vehicles.lookup(row.plate) if row.plate else None
        owner = (vehicle.owner_name, vehicle.phone) if vehicle is not None else None
        decision = plan(row.plate, owner)
        if isinstance(decision, Remind) and not self.can_text:
            decision = ToOperators("no text-message gateway is configured (XH_HUB_NOTICE_SMS_URL)")
        if not isinstance(decision, Remind):
            await self._finish(case_id, CheckState.TO_OPERATORS, decision.reason)
            report.to_operators += 1
            log.info("parking: case %s left to the operators: %s", case_id, decision.reason)
            return
        wait = self.policy.wait_for(self._path(row.grid_cell_id))
        notice_id = await self._queued_notice(case_id)
        if notice_id is None:
            minutes = max(1, round(wait.total_seconds() / 60))
            await self.ensure_template()
            try:
                notice_id = await self._remind(case_id, decision, row.grid_cell_id, minutes)
            except NoticeError as exc:  # e.g. a phone the gateway cannot take
                await self._finish(case_id, CheckState.TO_OPERATORS, f"no reminder: {exc}")
                report.to_operators += 1
                return
        now = self.clock()
        try:
            async with self.engine.begin() as conn:
                await self.cases.transition_in(
                    conn,
                    case_id,
                    Action.REMIND,
                    HUB_ACTOR,
                    reason=f"owner of {decision.plate} texted; recheck in {wait}",
                    now=now,
                    by_hub=True,
                )
                await conn.execute(
                    parking_checks.update()
                    .where(parking_checks.c.case_id == case_id)
                    .values(
                        state=CheckState.REMINDED.value,
                        notice_id=notice_id,
                        reminded_at=now,
                        wait_s=wait.total_seconds(),
                    )
                )
        except (TransitionRefused, ConflictError) as exc:
            await self._finish(case_id, CheckState.TAKEN_OVER, str(exc))
            return
        report.reminded += 1
        log.info("parking: case %s reminded (%s), recheck due in %s", case_id, notice_id, wait)

    async def _remind(
        self, case_id: int, decision: Remind, cell_id: str | None, minutes: int
    ) -> str:
        """Queue the text to the owner; the notice's id."""
        return await self.notices.remind(
            self.policy.template,
            Recipient(
                contact_id=f"vehicle:{decision.plate}",
                name=decision.owner_name,
                phone=decision.phone,
            ),
            NoticeChannel.SMS,
            {"plate": decision.plate, "place": self._place(cell_id), "minutes": str(minutes)},
            case_id=case_id,
            actor=HUB_ACTOR.name,
        )

    async def _texts_out(self, report: TickReport) -> None:
        """Start each reminded case's wait when its text went out; a text that failed
        leaves the case to the operators."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(
                        parking_checks.c.case_id,
                        parking_checks.c.wait_s,
                        notice_deliveries.c.state,
                        notice_deliveries.c.sent_at,
                        notice_deliveries.c.last_error,
                    )
                    .join(
                        notice_deliveries,
                        notice_deliveries.c.notice_id == parking_checks.c.notice_id,
                    )
                    .where(
                        parking_checks.c.state == CheckState.REMINDED.value,
                        parking_checks.c.due_at.is_(None),
                        notice_deliveries.c.state.in_(
                            [
                                DeliveryState.SENT.value,
                                DeliveryState.DELIVERED.value,
                                DeliveryState.FAILED.value,
                            ]
                        ),
                    )
                    .limit(BATCH)
                )
            ).all()
        for row in rows:
            if row.state == DeliveryState.FAILED.value:
                reason = f"the text to the owner failed: {row.last_error or 'no reason given'}"
                await self._finish(row.case_id, CheckState.NOT_DELIVERED, reason)
                report.not_delivered += 1
                continue
            sent = row.sent_at or self.clock()
            async with self.engine.begin() as conn:
                await conn.execute(
                    parking_checks.update()
                    .where(parking_checks.c.case_id == row.case_id)
                    .values(due_at=sent + timedelta(seconds=row.wait_s or 0.0))
                )

    async def _due_rechecks(self, report: TickReport) -> None:
        now = self.clock()
        async with self.engine.connect() as conn:
            due = (
                await conn.execute(
                    sa.select(parking_checks)
                    .where(
                        parking_checks.c.state == CheckState.REMINDED.value,
                        parking_checks.c.due_at <= now,
                    )
                    .order_by(parking_checks.c.due_at)
                    .limit(BATCH)
                )
            ).all()
        for row in due:
            params: dict[str, Any] = {"camera_id": row.camera_id, "zone": row.zone}
            if row.plate:
                params["plate"] = row.plate
            if row.box:
                params["box"] = list(row.box)
            try:
                cmd = await self.commands.enqueue(
                    row.device_id, "spot.recheck", params, ttl=RECHECK_TTL, actor=HUB_ACTOR.name
                )
            except NotFoundError as exc:
                await self._finish(row.case_id, CheckState.UNANSWERED, str(exc))
                report.unanswered += 1
                continue
            async with self.engine.begin() as conn:
                await conn.execute(
                    parking_checks.update()
                    .where(
                        parking_checks.c.case_id == row.case_id,
                        parking_checks.c.state == CheckState.REMINDED.value,
                    )
                    .values(state=CheckState.RECHECKING.value, cmd_id=cmd.cmd_id, asked_at=now)
                )
            report.asked += 1

    async def _answers(self, report: TickReport) -> None:
        now = self.clock()
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(
                        parking_checks.c.case_id,
                        parking_checks.c.asked_at,
                        parking_checks.c.cmd_id,
                        commands.c.state.label("cmd_state"),
                        commands.c.detail.label("cmd_detail"),
                        snapshots.c.sha256.label("frame"),
                    )
                    .join(commands, commands.c.cmd_id == parking_checks.c.cmd_id)
                    .outerjoin(snapshots, snapshots.c.cmd_id == parking_checks.c.cmd_id)
                    .where(parking_checks.c.state == CheckState.RECHECKING.value)
                    .limit(BATCH)
                )
            ).all()
        for row in rows:
            answer = read_answer(
                row.cmd_state, row.cmd_detail or "", row.asked_at, now, self.policy
            )
            if answer.pending or answer.state is None:
                continue
            if answer.action is None:
                await self._finish(row.case_id, answer.state, answer.detail)
                report.unanswered += 1
                log.warning(
                    "parking: case %s left to the operators: %s", row.case_id, answer.detail
                )
                continue
            try:
                async with self.engine.begin() as conn:
                    await self.cases.transition_in(
                        conn,
                        row.case_id,
                        answer.action,
                        HUB_ACTOR,
                        reason=f"recheck: {answer.detail}",
                        attachments=[row.frame] if row.frame else None,
                        now=now,
                        by_hub=True,
                    )
                    await self._finish_in(conn, row.case_id, answer.state, answer.detail, now)
            except (TransitionRefused, ConflictError) as exc:
                await self._finish(row.case_id, CheckState.TAKEN_OVER, str(exc))
                continue
            if answer.state is CheckState.MOVED:
                report.moved += 1
            else:
                report.stayed += 1
            log.info("parking: case %s %s", row.case_id, answer.state)

    # ------------------------------------------------------------------ helpers

    async def _finish(self, case_id: int, state: CheckState, reason: str) -> None:
        async with self.engine.begin() as conn:
            await self._finish_in(conn, case_id, state, reason, self.clock())

    @staticmethod
    async def _finish_in(
        conn: Any, case_id: int, state: CheckState, reason: str, now: datetime
    ) -> None:
        await conn.execute(
            parking_checks.update()
            .where(parking_checks.c.case_id == case_id)
            .values(state=state.value, reason=reason[:500], decided_at=now)
        )

    async def _queued_notice(self, case_id: int) -> str | None:
        """A reminder already queued for the case (by a worker that died after it)."""
        async with self.engine.connect() as conn:
            found = await conn.execute(
                sa.select(notices.c.id).where(notices.c.case_id == case_id).limit(1)
            )
            return found.scalar_one_or_none()

    def _path(self, cell_id: str | None) -> list[str]:
        if cell_id is None:
            return []
        try:
            return [c.id for c in self.grid.path(cell_id)]
        except (KeyError, UnknownCell):
            return []

    def _place(self, cell_id: str | None) -> str:
        if cell_id is None:
            return "此处"
        try:
            return self.grid.get(cell_id).name
        except (KeyError, UnknownCell):
            return cell_id
