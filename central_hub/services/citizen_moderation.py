"""Staff's side of citizens' reports: reading them with the contact masked by role, and
moderating them (hide, unhide, redact, merge into another case).

The rules are :mod:`central_hub.domain.citizen_moderation`'s; this module loads the
report and the cases involved, applies the change and writes the case's audit rows in one
transaction, so a moderation is never half done. A merge that empties the case the report
opened cancels that case through the workflow service
(:meth:`central_hub.services.cases.CaseService.transition_in`, verdict ``duplicate``) in
the same transaction.

The reporter's contact is personal data (PIPL): every role but admin sees it masked
(``138****5678``, ``z***@example.com``, ``张*``), and each time an admin is given a
report's contact in full it is recorded in ``contact_reads`` (who, which report, when)
before it is sent, as clean frames' reads are in ``frame_reads``.

A redacted photo loses its reference here; its file leaves the evidence store at the next
retention pass that finds nothing else pointing at it (:mod:`central_hub.services.
retention`), since identical bytes may be another row's evidence too. The redaction's
audit row carries no attachment, so it keeps nothing alive.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from central_hub.db.schema import (
    UTCDateTime,
    audits,
    cases,
    citizen_reports,
    contact_reads,
    events,
)
from central_hub.domain.citizen_moderation import (
    AUDIT_ACTIONS,
    MERGED_IN,
    Moderation,
    ReportState,
    cancels_source,
    check_merge,
    check_moderation,
    check_moderator,
)
from central_hub.domain.errors import ModerationRefused
from central_hub.domain.labels import Verdict
from central_hub.domain.open311 import mask_email, mask_name, mask_phone
from central_hub.domain.workflow import Action, Role, Stage
from central_hub.errors import NotFoundError
from central_hub.services.cases import CaseService
from central_hub.services.citizen_reports import CitizenReports, StoredReport
from central_hub.services.users import User

log = logging.getLogger(__name__)

__all__ = [
    "CitizenModeration",
    "ModerationDone",
    "ReporterContact",
    "StaffReport",
    "reporter_contact",
]


class ReporterContact(BaseModel):
    """The reporter's contact: in full for admins, masked for other roles, all None once
    retention cleared it (``cleared_at``) or when the citizen stayed anonymous."""

    model_config = ConfigDict(frozen=True)

    masked: bool
    email: str | None
    first_name: str | None
    last_name: str | None
    phone: str | None
    device_id: str | None
    account_id: str | None
    cleared_at: datetime | None


def reporter_contact(report: StoredReport, *, full: bool) -> ReporterContact:
    """``report``'s contact, in full when ``full`` (admins) and masked otherwise."""

    def device(text: str | None) -> str | None:
        return text if full or not text else text[:2] + "***"

    return ReporterContact(
        masked=not full,
        email=report.email if full else mask_email(report.email),
        first_name=report.first_name if full else mask_name(report.first_name),
        last_name=report.last_name if full else mask_name(report.last_name),
        phone=report.phone if full else mask_phone(report.phone),
        device_id=device(report.device_id),
        account_id=device(report.account_id),
        cleared_at=report.contact_cleared_at,
    )


def _has_contact(report: StoredReport) -> bool:
    return any(
        (
            report.email,
            report.first_name,
            report.last_name,
            report.phone,
            report.device_id,
            report.account_id,
        )
    )


@dataclass(frozen=True)
class StaffReport:
    """A report as one member of staff may see it: the report and its contact for them."""

    report: StoredReport
    contact: ReporterContact


class ModerationDone(BaseModel):
    """What a moderation did: the report's case afterwards (``from_case_id``: the case a
    merge took it out of, ``source_case_cancelled``: whether that case was cancelled as a
    duplicate) and its state."""

    model_config = ConfigDict(frozen=True)

    service_request_id: int
    action: Moderation
    case_id: int
    from_case_id: int | None = None
    source_case_cancelled: bool = False
    hidden: bool
    redacted: bool
    at: datetime
    by: str


class CitizenModeration:
    """Reads a case's citizen reports for staff and moderates them."""

    def __init__(
        self,
        engine: AsyncEngine,
        case_service: CaseService,
        reports: CitizenReports,
        clock: Callable[[], datetime],
    ) -> None:
        self.engine = engine
        self.case_service = case_service
        self.reports = reports
        self.clock = clock

    async def of_case(self, case_id: int, user: User) -> list[StaffReport]:
        """The reports filed into a case, oldest first, with the contact ``user`` may see;
        an admin's reads of a contact are recorded first."""
        found = await self.reports.of_case(case_id)
        full = user.role is Role.ADMIN
        if full:
            read = [r.id for r in found if _has_contact(r)]
            if read:
                now = self.clock()
                async with self.engine.begin() as conn:
                    await conn.execute(
                        contact_reads.insert(),
                        [{"report_id": rid, "user_name": user.name, "at": now} for rid in read],
                    )
                log.info("%s read the contact of %d citizen reports", user.name, len(read))
        return [StaffReport(r, reporter_contact(r, full=full)) for r in found]

    async def moderate(
        self,
        action: Moderation,
        report_id: int,
        user: User,
        reason: str,
        *,
        into: int | None = None,
        in_case: int | None = None,
        now: datetime | None = None,
    ) -> ModerationDone:
        """Take ``action`` on citizen report ``report_id`` as ``user``, saying why.

        ``into``: the open case a ``merge`` moves the report to (required with merge,
        refused with anything else). ``in_case``: the case the moderator saw the report
        in; a report moved meanwhile is refused.

        Raises :class:`~central_hub.domain.errors.ModerationRefused` (``forbidden``,
        ``invalid`` naming the field, ``conflict``), or NotFoundError for an unknown report
        or target case.
        """
        check_moderator(user.role)
        if action is Moderation.MERGE and into is None:
            raise ModerationRefused("case_id: say which case to merge into", field="case_id")
        if action is not Moderation.MERGE and into is not None:
            raise ModerationRefused(
                f"case_id: only a merge takes a case, not {action.value}", field="case_id"
            )
        now = now or self.clock()
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    sa.select(
                        citizen_reports.c.id,
                        citizen_reports.c.case_id,
                        citizen_reports.c.created_at,
                        citizen_reports.c.hidden_at,
                        citizen_reports.c.redacted_at,
                    )
                    .where(citizen_reports.c.id == report_id)
                    .with_for_update()
                )
            ).first()
            if row is None:
                raise NotFoundError(f"no citizen report {report_id}")
            state = ReportState(
                report_id=row.id,
                case_id=row.case_id,
                hidden=row.hidden_at is not None,
                redacted=row.redacted_at is not None,
            )
            text = check_moderation(action, user.role, state, reason, in_case=in_case)
            if action is Moderation.MERGE:
                assert into is not None
                return await self._merge(conn, state, row.created_at, into, user, text, now)
            values: dict[str, Any]
            if action is Moderation.HIDE:
                values = {"hidden_at": now, "hidden_by": user.name}
            elif action is Moderation.UNHIDE:
                values = {"hidden_at": None, "hidden_by": None}
            else:
                # Gone for good: nothing of the text or the photo's hash is kept anywhere.
                values = {
                    "description": "",
                    "media_url": None,
                    "photo_sha256": None,
                    "redacted_at": now,
                    "redacted_by": user.name,
                }
            await conn.execute(
                citizen_reports.update().where(citizen_reports.c.id == report_id).values(values)
            )
            stage = await _stage_of(conn, state.case_id)
            await conn.execute(
                audits.insert().values(
                    _audit(state.case_id, stage, AUDIT_ACTIONS[action], user, now)
                    | {"reason": f"report {report_id}: {text}"}
                )
            )
        log.info("citizen report %s: %s by %s", report_id, action.value, user.name)
        return ModerationDone(
            service_request_id=report_id,
            action=action,
            case_id=state.case_id,
            hidden=(state.hidden or action is Moderation.HIDE) and action is not Moderation.UNHIDE,
            redacted=state.redacted or action is Moderation.REDACT,
            at=now,
            by=user.name,
        )

    async def _merge(
        self,
        conn: AsyncConnection,
        report: ReportState,
        reported_at: datetime,
        into: int,
        user: User,
        reason: str,
        now: datetime,
    ) -> ModerationDone:
        source_id = report.case_id
        # Both cases locked in id order (PostgreSQL), so two opposite merges cannot deadlock.
        rows = (
            await conn.execute(
                sa.select(cases.c.id, cases.c.stage, cases.c.source)
                .where(cases.c.id.in_(sorted({source_id, into})))
                .order_by(cases.c.id)
                .with_for_update()
            )
        ).all()
        by_id = {int(r.id): r for r in rows}
        if into not in by_id:
            raise NotFoundError(f"no case {into}")
        check_merge(report, into, Stage(by_id[into].stage))
        source = by_id[source_id]
        moved = await conn.execute(
            citizen_reports.update()
            .where(citizen_reports.c.id == report.report_id, citizen_reports.c.case_id == source_id)
            .values(case_id=into)
        )
        if moved.rowcount != 1:  # pragma: no cover - the row is locked on PostgreSQL
            raise ModerationRefused(
                f"report {report.report_id} moved meanwhile; reload", kind="conflict"
            )
        at = sa.literal(reported_at, type_=UTCDateTime)
        await conn.execute(
            cases.update()
            .where(cases.c.id == into)
            .values(
                event_count=cases.c.event_count + 1,
                last_event_at=sa.case(
                    (cases.c.last_event_at < at, at), else_=cases.c.last_event_at
                ),
                updated_at=now,
            )
        )
        await conn.execute(
            cases.update()
            .where(cases.c.id == source_id)
            .values(
                event_count=sa.case((cases.c.event_count > 0, cases.c.event_count - 1), else_=0),
                updated_at=now,
            )
        )
        out_reason = f"report {report.report_id} moved to case {into}: {reason}"
        in_reason = f"report {report.report_id} moved here from case {source_id}: {reason}"
        out_action = AUDIT_ACTIONS[Moderation.MERGE]
        await conn.execute(
            audits.insert(),
            [
                _audit(source_id, source.stage, out_action, user, now) | {"reason": out_reason},
                _audit(into, by_id[into].stage, MERGED_IN, user, now) | {"reason": in_reason},
            ],
        )
        left = await _left_in(conn, source_id)
        cancelled = cancels_source(Stage(source.stage), source.source, left)
        if cancelled:
            await self.case_service.transition_in(
                conn,
                source_id,
                Action.CANCEL,
                user,
                reason=f"duplicate of case {into}: {reason}",
                verdict=Verdict.DUPLICATE,
                now=now,
            )
        log.info(
            "citizen report %s merged from case %s into %s by %s%s",
            report.report_id,
            source_id,
            into,
            user.name,
            " (source cancelled)" if cancelled else "",
        )
        return ModerationDone(
            service_request_id=report.report_id,
            action=Moderation.MERGE,
            case_id=into,
            from_case_id=source_id,
            source_case_cancelled=cancelled,
            hidden=report.hidden,
            redacted=report.redacted,
            at=now,
            by=user.name,
        )


def _audit(case_id: int, stage: str, action: str, user: User, now: datetime) -> dict[str, Any]:
    """An audit row of a moderation: the case's stage does not change."""
    return {
        "case_id": case_id,
        "at": now,
        "from_stage": stage,
        "to_stage": stage,
        "action": action,
        "actor": user.name,
        "role": user.role.value,
        "attachments": [],
    }


async def _stage_of(conn: AsyncConnection, case_id: int) -> str:
    stage = (await conn.execute(sa.select(cases.c.stage).where(cases.c.id == case_id))).scalar_one()
    return str(stage)


async def _left_in(conn: AsyncConnection, case_id: int) -> int:
    """Reports and events still filed into a case."""
    reports = (
        sa.select(sa.func.count())
        .select_from(citizen_reports)
        .where(citizen_reports.c.case_id == case_id)
    )
    filed = sa.select(sa.func.count()).select_from(events).where(events.c.case_id == case_id)
    return int((await conn.execute(reports)).scalar_one()) + int(
        (await conn.execute(filed)).scalar_one()
    )
