"""Reporter follow-up (issue #15 item 5): a citizen who left a phone number or an e-mail
address is told, through the notice channels, when the case of their report is
registered (受理), closed (办结) or not registered (不予立案, with the reason).

:meth:`ReporterFollowUp.tick` reads the status changes (audit rows) of those stages made
after a report was filed and within ``horizon`` (a change older than that is news no
longer), that no follow-up row records yet. For each it first claims the pair
(report, audit row) in ``citizen_followups`` (an insert that does nothing when another
hub worker claimed it), then queues a notice with the template ``citizen.followup``
(made at start unless the city made its own; variables ``number``, ``status``, ``link``)
to the reporter's phone (when the hub has an SMS gateway) or else e-mail (when it has
SMTP). A notice that cannot be queued gives its claim back, so the next tick tries again;
a reporter the hub cannot reach is recorded with no channel and not looked at again.

The notice service does the rest: the delivery queue, quiet hours, rate limits, opt-outs
(a reporter who answered STOP hears nothing). The status page (``/report/s/<token>``)
shows every change, whether or not a notice went. A contact cleared by retention is
gone, and so are its follow-ups.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.db.engine import insert_ignore
from central_hub.db.schema import audits, citizen_followups, citizen_reports
from central_hub.domain.errors import DomainError
from central_hub.domain.notices import NoticeChannel, Recipient
from central_hub.domain.open311 import stage_note
from central_hub.domain.workflow import Stage
from central_hub.errors import ConflictError, HubError, NotFoundError
from central_hub.services.notices import NoticeService

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_TEMPLATE", "MILESTONES", "TEMPLATE", "FollowUpTick", "ReporterFollowUp"]

#: The status changes a reporter is told of.
MILESTONES = (Stage.REGISTERED, Stage.CLOSED, Stage.CANCELLED)
#: The notice template's name, and its text when the city has not written its own.
TEMPLATE = "citizen.followup"
DEFAULT_TEMPLATE = "【城管】您反映的问题（编号{number}）{status}。详情：{link}"
#: Who queues the notices (the notice list's "by").
ACTOR = "hub:followup"


@dataclass
class FollowUpTick:
    """What one tick did."""

    queued: int = 0
    unreachable: int = 0
    failed: int = 0


class ReporterFollowUp:
    """Tells reporters of their cases' status changes; see the module doc."""

    def __init__(
        self,
        engine: AsyncEngine,
        notices: NoticeService,
        clock: Callable[[], datetime],
        *,
        public_url: str,
        can_text: bool,
        can_mail: bool,
        tick_s: float = 10.0,
        horizon: timedelta = timedelta(days=7),
        batch: int = 200,
    ) -> None:
        self.engine = engine
        self.notices = notices
        self.clock = clock
        self.public_url = public_url.rstrip("/")
        self.can_text = can_text
        self.can_mail = can_mail
        self.tick_s = tick_s
        self.horizon = horizon
        self.batch = batch
        self._template_ready = False

    async def ensure_template(self) -> None:
        """Create the follow-up's notice template when the city has not made its own."""
        if self._template_ready:
            return
        try:
            await self.notices.template(TEMPLATE)
        except NotFoundError:
            with contextlib.suppress(ConflictError):  # another worker made it first
                await self.notices.create_template(
                    TEMPLATE,
                    "市民反映问题进展",
                    DEFAULT_TEMPLATE,
                    ["number", "status", "link"],
                    actor=ACTOR,
                )
        self._template_ready = True

    async def run(self) -> None:
        """Tick until cancelled; a failing tick is logged and the next one tries again."""
        while True:
            try:
                await self.ensure_template()
                await self.tick()
            except (sa.exc.SQLAlchemyError, OSError, HubError, DomainError) as exc:
                log.error("reporter follow-up: tick failed, retrying: %s", exc)
            await asyncio.sleep(self.tick_s)

    async def tick(self) -> FollowUpTick:
        """Queue the follow-ups due now."""
        now = self.clock()
        done = FollowUpTick()
        await self.ensure_template()
        told = sa.exists().where(
            citizen_followups.c.report_id == citizen_reports.c.id,
            citizen_followups.c.audit_id == audits.c.id,
        )
        q = (
            sa.select(
                citizen_reports.c.id.label("report_id"),
                citizen_reports.c.report_id.label("token"),
                citizen_reports.c.case_id,
                citizen_reports.c.phone,
                citizen_reports.c.email,
                audits.c.id.label("audit_id"),
                audits.c.to_stage,
                audits.c.reason,
            )
            .select_from(
                audits.join(citizen_reports, citizen_reports.c.case_id == audits.c.case_id)
            )
            .where(
                audits.c.at >= now - self.horizon,
                audits.c.to_stage.in_([s.value for s in MILESTONES]),
                audits.c.at > citizen_reports.c.created_at,
                citizen_reports.c.contact_cleared_at.is_(None),
                sa.or_(citizen_reports.c.phone.is_not(None), citizen_reports.c.email.is_not(None)),
                ~told,
            )
            .order_by(audits.c.id, citizen_reports.c.id)
            .limit(self.batch)
        )
        async with self.engine.connect() as conn:
            due = (await conn.execute(q)).all()
        for row in due:
            channel = self._channel(row.phone, row.email)
            if not await self._claim(row.report_id, row.audit_id, channel, now):
                continue  # another worker tells this one
            if channel is None:
                done.unreachable += 1
                continue
            stage = Stage(row.to_stage)
            variables = {
                "number": str(row.report_id),
                "status": stage_note(
                    stage, "zh-CN", row.reason if stage is Stage.CANCELLED else None
                ),
                "link": f"{self.public_url}/report/s/{row.token}",
            }
            recipient = Recipient(
                contact_id=f"citizen-report-{row.report_id}",
                phone=row.phone if channel is NoticeChannel.SMS else None,
                email=row.email if channel is NoticeChannel.EMAIL else None,
            )
            try:
                notice_id = await self.notices.remind(
                    TEMPLATE, recipient, channel, variables, case_id=row.case_id, actor=ACTOR
                )
            except (HubError, DomainError, sa.exc.SQLAlchemyError) as exc:
                log.error(
                    "reporter follow-up: report %s, change %s not queued (retried): %s",
                    row.report_id,
                    row.audit_id,
                    exc,
                )
                await self._unclaim(row.report_id, row.audit_id)
                done.failed += 1
                continue
            async with self.engine.begin() as conn:
                await conn.execute(
                    citizen_followups.update()
                    .where(
                        citizen_followups.c.report_id == row.report_id,
                        citizen_followups.c.audit_id == row.audit_id,
                    )
                    .values(notice_id=notice_id)
                )
            done.queued += 1
        if done.queued or done.unreachable or done.failed:
            log.info("reporter follow-up: %s", done)
        return done

    def _channel(self, phone: str | None, email: str | None) -> NoticeChannel | None:
        if phone and self.can_text:
            return NoticeChannel.SMS
        if email and self.can_mail:
            return NoticeChannel.EMAIL
        return None

    async def _claim(
        self, report_id: int, audit_id: int, channel: NoticeChannel | None, now: datetime
    ) -> bool:
        async with self.engine.begin() as conn:
            stmt = insert_ignore(citizen_followups, conn.dialect, ["report_id", "audit_id"])
            result = await conn.execute(
                stmt.values(
                    report_id=report_id,
                    audit_id=audit_id,
                    created_at=now,
                    channel=channel.value if channel is not None else None,
                )
            )
        return bool(result.rowcount)

    async def _unclaim(self, report_id: int, audit_id: int) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                citizen_followups.delete().where(
                    citizen_followups.c.report_id == report_id,
                    citizen_followups.c.audit_id == audit_id,
                    citizen_followups.c.notice_id.is_(None),
                )
            )
