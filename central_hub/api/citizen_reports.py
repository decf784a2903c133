"""``/api/v1/cases/{id}/citizen-reports``: the citizens' reports filed into a case.

Staff see what a citizen sent, photo hash included (the photo is internal evidence); the
reporter's contact is personal data (PIPL), so it is masked for every role but admin
(``138****5678``, ``z***@example.com``, ``张*``), and Open311's public output never
carries it at all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from central_hub.api.deps import ALL_ROLES, CurrentUser, HubDep, RowId, guard
from central_hub.domain.open311 import mask_email, mask_name, mask_phone
from central_hub.domain.workflow import Role
from central_hub.services.citizen_reports import CitizenReports, StoredReport

__all__ = ["CitizenReportView", "ReporterContact", "router"]

router = APIRouter(prefix="/cases", tags=["cases"])


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


class CitizenReportView(BaseModel):
    """One citizen report (an Open311 service request) of a case."""

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


def _contact(report: StoredReport, full: bool) -> ReporterContact:
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


@router.get("/{case_id}/citizen-reports", **guard(*ALL_ROLES))
async def case_citizen_reports(
    hub: HubDep, user: CurrentUser, case_id: RowId
) -> list[CitizenReportView]:
    """The citizens' reports of a case, oldest first; contact masked except for admins."""
    await hub.cases.get(case_id)  # 404 for an unknown case
    reports = await CitizenReports(hub.engine, hub.filer, hub.clock).of_case(case_id)
    full = user.role is Role.ADMIN
    return [
        CitizenReportView(
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
            contact=_contact(r, full),
        )
        for r in reports
    ]
