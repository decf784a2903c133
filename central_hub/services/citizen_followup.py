"""Reporter follow-up (issue #15 item 5): a citizen who left a phone number or an e-mail
address is told, through the notice channels, when the case of their report is
registered (已立案), closed (已结案) or not registered (不予立案, with the reason).

:meth:`ReporterFollowUp.tick` reads the status changes (audit rows) of those stages made
after a report was filed and within ``horizon`` (a change older than that is news no
longer), of reports not hidden by moderation, that no follow-up row records yet. For each
it claims the pair (report, audit row) in ``citizen_followups`` under a key of the channel
and address (a hash: the address itself is not kept there), unique per change: one person
who reported one problem twice is told once, and two hub workers tell it once. Then it
queues a notice with the template ``citizen.followup`` (made at start unless the city made
its own; variables ``number``, ``status``, ``link``) to the reporter's phone (when the hub
has an SMS gateway) or else e-mail (when it has SMTP).

What cannot be told is recorded and not looked at again: no reachable address, more than
:data:`DAILY_CAP` follow-ups to one address in a day (anyone can type someone else's
number into the report page), a notice the template refuses. A notice that could not be
queued for a passing reason (the database) gives its claim back; a claim left without a
notice (a worker stopped between the two) is taken again after :data:`STALE_CLAIM`.

The notice service does the rest: the delivery queue, quiet hours, rate limits, opt-outs
(a reporter who answered STOP hears nothing). The deliveries show a reporter's address
masked to everyone but admins (:func:`masked_for`), and retention masks it for good when
it clears the report's contact. The status page (``/report/s/<token>``) shows every
change, whether or not a notice went.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.db.engine import insert_ignore
from central_hub.db.schema import audits, citizen_followups, citizen_reports
from central_hub.domain.errors import DomainError
from central_hub.domain.notices import NoticeChannel, Recipient
from central_hub.domain.open311 import mask_email, mask_phone, stage_note
from central_hub.domain.service_objects import normalise_phone
from central_hub.domain.workflow import Role, Stage
from central_hub.errors import HubError
from central_hub.services.notices import DeliveryView, NoticeService

log = logging.getLogger(__name__)

__all__ = [
    "CONTACT_PREFIX",
    "DEFAULT_TEMPLATE",
    "MILESTONES",
    "TEMPLATE",
    "FollowUpTick",
    "ReporterFollowUp",
    "address_key",
    "mask_address",
    "masked_for",
]

#: The status changes a reporter is told of.
MILESTONES = (Stage.REGISTERED, Stage.CLOSED, Stage.CANCELLED)
#: The notice template's name, and its text when the city has not written its own.
TEMPLATE = "citizen.followup"
DEFAULT_TEMPLATE = "【城管】您反映的问题（编号{number}）{status}。详情：{link}"
VARIABLES = ("number", "status", "link")
#: Who queues the notices (the notice list's "by").
ACTOR = "hub:followup"
#: The notices' contact ids: ``citizen-report-<service_request_id>``.
CONTACT_PREFIX = "citizen-report-"
#: The most follow-ups one address gets in a day.
DAILY_CAP = 5
#: A claim left without a notice this long (its worker stopped) is taken again.
STALE_CLAIM = timedelta(minutes=10)
#: The longest status text (a notice variable takes at most 200 characters).
STATUS_MAX = 180


@dataclass
class FollowUpTick:
    """What one tick did: notices queued, changes told to nobody (no address, the daily
    cap), notices that failed (refused for good, or given back for the next tick)."""

    queued: int = 0
    not_told: int = 0
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
        await self.notices.ensure_template(
            TEMPLATE, "市民反映问题进展", DEFAULT_TEMPLATE, VARIABLES, actor=ACTOR
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
        f = citizen_followups
        settled = sa.exists().where(
            f.c.report_id == citizen_reports.c.id,
            f.c.audit_id == audits.c.id,
            sa.or_(
                f.c.notice_id.is_not(None),
                f.c.channel.is_(None),
                f.c.error.is_not(None),
                f.c.created_at >= now - STALE_CLAIM,
            ),
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
                citizen_reports.c.hidden_at.is_(None),
                sa.or_(citizen_reports.c.phone.is_not(None), citizen_reports.c.email.is_not(None)),
                ~settled,
            )
            .order_by(audits.c.id, citizen_reports.c.id)
            .limit(self.batch)
        )
        async with self.engine.connect() as conn:
            due = (await conn.execute(q)).all()
        for row in due:
            await self._tell(row, now, done)
        if done.queued or done.not_told or done.failed:
            log.info("reporter follow-up: %s", done)
        return done

    async def _tell(self, row: Any, now: datetime, done: FollowUpTick) -> None:
        target = self._target(row.phone, row.email)
        if target is None:
            await self._settle(row, now, "no address the hub can reach")
            done.not_told += 1
            return
        channel, address = target
        key = address_key(channel, address)
        if await self._sent_today(key, now) >= DAILY_CAP:
            await self._settle(row, now, f"{DAILY_CAP} follow-ups to this address today")
            done.not_told += 1
            return
        if not await self._claim(row, key, channel, now):
            # Told at this address by another report of the same change, or another
            # worker has this one: either way this report's change is settled here.
            await self._settle(row, now, "told at the same address")
            return
        stage = Stage(row.to_stage)
        note = stage_note(stage, "zh-CN", row.reason if stage is Stage.CANCELLED else None)
        variables = {
            "number": str(row.report_id),
            "status": note if len(note) <= STATUS_MAX else note[: STATUS_MAX - 1] + "…",
            "link": f"{self.public_url}/report/s/{row.token}",
        }
        recipient = Recipient(
            contact_id=f"{CONTACT_PREFIX}{row.report_id}",
            phone=address if channel is NoticeChannel.SMS else None,
            email=address if channel is NoticeChannel.EMAIL else None,
        )
        where = sa.and_(
            citizen_followups.c.report_id == row.report_id,
            citizen_followups.c.audit_id == row.audit_id,
        )
        try:
            notice_id = await self.notices.remind(
                TEMPLATE, recipient, channel, variables, case_id=row.case_id, actor=ACTOR
            )
        except DomainError as exc:  # the template refuses it: it never will take it
            log.error("reporter follow-up: report %s not told: %s", row.report_id, exc)
            async with self.engine.begin() as conn:
                await conn.execute(citizen_followups.update().where(where).values(error=str(exc)))
            done.failed += 1
            return
        except (HubError, sa.exc.SQLAlchemyError) as exc:
            log.error("reporter follow-up: report %s (retried): %s", row.report_id, exc)
            async with self.engine.begin() as conn:
                await conn.execute(
                    citizen_followups.delete().where(where, citizen_followups.c.notice_id.is_(None))
                )
            done.failed += 1
            return
        async with self.engine.begin() as conn:
            await conn.execute(citizen_followups.update().where(where).values(notice_id=notice_id))
        done.queued += 1

    def _target(self, phone: str | None, email: str | None) -> tuple[NoticeChannel, str] | None:
        number = normalise_phone(phone) if phone else None
        mobile = number if number and number.isdigit() else None  # texts reach mobiles only
        if mobile and self.can_text:
            return NoticeChannel.SMS, mobile
        if email and self.can_mail:
            return NoticeChannel.EMAIL, email.strip().lower()
        return None

    async def _sent_today(self, key: str, now: datetime) -> int:
        async with self.engine.connect() as conn:
            return int(
                (
                    await conn.execute(
                        sa.select(sa.func.count()).where(
                            citizen_followups.c.address_key == key,
                            citizen_followups.c.notice_id.is_not(None),
                            citizen_followups.c.created_at >= now - timedelta(days=1),
                        )
                    )
                ).scalar_one()
            )

    async def _claim(self, row: Any, key: str, channel: NoticeChannel, now: datetime) -> bool:
        """Take (report, change) for ``key``; a claim left without a notice past
        :data:`STALE_CLAIM` is taken again."""
        f = citizen_followups
        async with self.engine.begin() as conn:
            fresh = await conn.execute(
                insert_ignore(f, conn.dialect, None).values(
                    report_id=row.report_id,
                    audit_id=row.audit_id,
                    created_at=now,
                    channel=channel.value,
                    address_key=key,
                )
            )
            if fresh.rowcount:
                return True
            stale = await conn.execute(
                f.update()
                .where(
                    f.c.report_id == row.report_id,
                    f.c.audit_id == row.audit_id,
                    f.c.address_key == key,
                    f.c.notice_id.is_(None),
                    f.c.error.is_(None),
                    f.c.created_at < now - STALE_CLAIM,
                )
                .values(created_at=now)
            )
            return bool(stale.rowcount)

    async def _settle(self, row: Any, now: datetime, why: str) -> None:
        """Record that this report's change is told to nobody (``why``), once."""
        async with self.engine.begin() as conn:
            await conn.execute(
                insert_ignore(citizen_followups, conn.dialect, None).values(
                    report_id=row.report_id,
                    audit_id=row.audit_id,
                    created_at=now,
                    channel=None,
                    address_key=f"none:{row.report_id}",
                    error=why,
                )
            )


def address_key(channel: NoticeChannel, address: str) -> str:
    """The hash an address is claimed and capped under (the address is not kept)."""
    return hashlib.sha256(f"{channel.value}:{address}".encode()).hexdigest()


def masked_for(view: DeliveryView, role: Role) -> DeliveryView:
    """A delivery as ``role`` may see it: a citizen reporter's address is personal data,
    shown whole to admins only (as the reporter's contact on the case page is)."""
    if role is Role.ADMIN or not view.contact_id.startswith(CONTACT_PREFIX):
        return view
    return dataclasses.replace(view, address=mask_address(view.address))


def mask_address(address: str) -> str:
    """A phone number or an e-mail address masked (``138****5678``, ``z***@example.cn``)."""
    masked = mask_email(address) if "@" in address else mask_phone(address)
    return masked or ""
