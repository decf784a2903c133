"""Citizens' reports for staff: ``/api/v1/cases/{id}/citizen-reports`` reads a case's
reports, ``/api/v1/citizen-reports/{id}/hide|unhide|redact|merge`` moderates one.

Staff see what a citizen sent, photo hash included (the photo is internal evidence); the
reporter's contact is personal data (PIPL), so it is masked for every role but admin
(``138****5678``, ``z***@example.com``, ``张*``), each admin read of it is recorded
(``contact_reads``), and Open311's public output never carries it at all.

Operators and admins moderate (:mod:`central_hub.services.citizen_moderation`), each
action with a reason of 1-200 characters that goes into the case's audit trail: a hidden
report is left out of Open311's ``GET requests`` and ``requests/{id}`` (404) while its
token still answers; a redacted one loses its description and photo for good; a merged
one moves to another open case, and the case it opened is cancelled as a duplicate when
nothing is left in it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from central_hub.api.deps import ALL_ROLES, CurrentUser, HubDep, RowId, guard
from central_hub.domain.citizen_moderation import MODERATORS, REASON_MAX, Moderation
from central_hub.hub import Hub
from central_hub.services.citizen_moderation import (
    CitizenModeration,
    ModerationDone,
    ReporterContact,
    StaffReport,
)
from central_hub.services.citizen_reports import CitizenReports
from central_hub.services.users import User
from edge_agent.protocol import MAX_WIRE_INT

__all__ = [
    "CitizenReportView",
    "MergeRequest",
    "ModerationRequest",
    "ReporterContact",
    "moderation_service",
    "router",
]

router = APIRouter()
_MODERATORS = tuple(sorted(MODERATORS))


class CitizenReportView(BaseModel):
    """One citizen report (an Open311 service request) of a case.

    ``hidden_at``/``hidden_by``: an operator hid it from Open311's public output;
    ``redacted_at``/``redacted_by``: its description and photo were removed for good (the
    reasons are in the case's audit trail)."""

    model_config = ConfigDict(frozen=True)

    service_request_id: int
    token: str
    case_id: int
    service_code: str
    created_at: datetime
    lat: float
    lon: float
    location_source: str
    address: str | None
    description: str
    attributes: dict[str, Any]
    media_url: str | None
    photo_sha256: str | None
    contact: ReporterContact
    hidden_at: datetime | None = None
    hidden_by: str | None = None
    redacted_at: datetime | None = None
    redacted_by: str | None = None


class ModerationRequest(BaseModel):
    """Why a report is hidden, shown again or redacted (it goes into the audit trail)."""

    reason: str = Field(min_length=1, max_length=REASON_MAX)


class MergeRequest(BaseModel):
    """The open case a report joins, and why."""

    reason: str = Field(min_length=1, max_length=REASON_MAX)
    case_id: int = Field(ge=1, le=MAX_WIRE_INT, description="the open case the report joins")


def moderation_service(hub: Hub) -> CitizenModeration:
    """The moderation service over ``hub``'s database and workflow."""
    return CitizenModeration(
        hub.engine, hub.cases, CitizenReports(hub.engine, hub.filer, hub.clock), hub.clock
    )


def _view(staff: StaffReport) -> CitizenReportView:
    r = staff.report
    return CitizenReportView(
        service_request_id=r.id,
        token=r.token,
        case_id=r.case_id,
        service_code=r.code,
        created_at=r.created_at,
        lat=r.lat,
        lon=r.lon,
        location_source=r.location_source,
        address=r.address,
        description=r.description,
        attributes=r.attributes,
        media_url=r.media_url,
        photo_sha256=r.photo_sha256,
        contact=staff.contact,
        hidden_at=r.hidden_at,
        hidden_by=r.hidden_by,
        redacted_at=r.redacted_at,
        redacted_by=r.redacted_by,
    )


@router.get("/cases/{case_id}/citizen-reports", tags=["cases"], **guard(*ALL_ROLES))
async def case_citizen_reports(
    hub: HubDep, user: CurrentUser, case_id: RowId
) -> list[CitizenReportView]:
    """The citizens' reports of a case, oldest first; contact masked except for admins
    (whose reads of it are recorded)."""
    await hub.cases.get(case_id)  # 404 for an unknown case
    return [_view(r) for r in await moderation_service(hub).of_case(case_id, user)]


async def _moderate(
    hub: Hub, user: User, action: Moderation, report_id: int, reason: str, into: int | None = None
) -> ModerationDone:
    return await moderation_service(hub).moderate(action, report_id, user, reason, into=into)


@router.post("/citizen-reports/{report_id}/hide", tags=["citizen reports"], **guard(*_MODERATORS))
async def hide_report(
    hub: HubDep, user: CurrentUser, report_id: RowId, body: ModerationRequest
) -> ModerationDone:
    """Hide a report from Open311's public output (``GET requests`` leaves it out,
    ``requests/{id}`` answers 404; its token still answers the reporter). 409 when it is
    hidden already."""
    return await _moderate(hub, user, Moderation.HIDE, report_id, body.reason)


@router.post("/citizen-reports/{report_id}/unhide", tags=["citizen reports"], **guard(*_MODERATORS))
async def unhide_report(
    hub: HubDep, user: CurrentUser, report_id: RowId, body: ModerationRequest
) -> ModerationDone:
    """Show a hidden report in Open311's public output again. 409 when it is not hidden."""
    return await _moderate(hub, user, Moderation.UNHIDE, report_id, body.reason)


@router.post("/citizen-reports/{report_id}/redact", tags=["citizen reports"], **guard(*_MODERATORS))
async def redact_report(
    hub: HubDep, user: CurrentUser, report_id: RowId, body: ModerationRequest
) -> ModerationDone:
    """Remove a report's description and photo reference for good (personal data, abuse);
    who and when stay on the report, why in the case's audit trail. 409 when it is
    redacted already."""
    return await _moderate(hub, user, Moderation.REDACT, report_id, body.reason)


@router.post("/citizen-reports/{report_id}/merge", tags=["citizen reports"], **guard(*_MODERATORS))
async def merge_report(
    hub: HubDep, user: CurrentUser, report_id: RowId, body: MergeRequest
) -> ModerationDone:
    """Move a report into another open case (``case_id``); the case it leaves is cancelled
    as a duplicate when a citizen's report opened it and nothing is left in it. 404 for an
    unknown case, 409 for its own case or a closed or cancelled one."""
    return await _moderate(hub, user, Moderation.MERGE, report_id, body.reason, body.case_id)
