"""``/api/v1/notices``, ``/api/v1/notice-templates``, ``/api/v1/notice-opt-outs``: notices
to a contact, an explicit list of contacts, or (with the registry) an object, an industry,
a subcategory or a grid area; on the speaker channel a grid area's loudspeakers.

Operators, dispatchers and admins send and read notices; admins make templates (a
template's text is the bureau's voice) and everyone who sends may record an opt-out.
Deliveries show the address each went to: personal data, so handlers, who do not send
notices, do not read them.

The SMS gateway's receipts come to ``POST /api/v1/notices/receipts`` (:func:`install_receipts`)
without a user's token, signed instead with the gateway's shared secret (HMAC-SHA256 of
the body in ``X-Xiuhua-Signature``); it is left out of the OpenAPI document, like the
units' package downloads.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, FastAPI, Path, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from central_hub.adapters.notice_channels import SIGNATURE_HEADER, verify_signature
from central_hub.api.deps import CurrentUser, HubDep, Offset, get_hub, guard
from central_hub.domain.errors import NoticeError
from central_hub.domain.notices import Audience, NoticeChannel, Recipient
from central_hub.domain.workflow import Role
from central_hub.errors import InvalidInputError, NotFoundError
from central_hub.services.citizen_followup import masked_for
from central_hub.services.notices import (
    DeliveryView,
    NoticeRequest,
    NoticeView,
    OptOutView,
    TemplateView,
)
from edge_agent.protocol import MAX_WIRE_INT

__all__ = ["install_receipts", "router"]

router = APIRouter(tags=["notices"])

_SENDERS = (Role.OPERATOR, Role.DISPATCHER, Role.ADMIN)
#: Text without control characters (a line of a form).
_LINE = r"^[^\x00-\x1f\x7f]*$"
_KEY = Annotated[str, Field(min_length=1, max_length=64, pattern=_LINE)]
NoticeId = Annotated[str, Path(min_length=1, max_length=36, pattern=r"^[0-9a-f-]+$")]
Limit = Annotated[int, Query(ge=1, le=500)]


class TemplateIn(BaseModel):
    """A new template: ``{variable}`` placeholders, each declared in ``variables``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    subject: str = Field(default="", max_length=200, pattern=_LINE)
    body: str = Field(min_length=1, max_length=2000)
    variables: list[Annotated[str, Field(min_length=1, max_length=32)]] = Field(
        default_factory=list, max_length=20
    )


class RecipientIn(BaseModel):
    """One contact of an explicit list: a stable id and where to reach them."""

    model_config = ConfigDict(extra="forbid")

    contact_id: _KEY
    name: str = Field(default="", max_length=100, pattern=_LINE)
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9][0-9 -]{2,19}$")
    email: str | None = Field(
        default=None, max_length=254, pattern=r"^[^@\s\x00-\x1f]{1,64}@[^@\s\x00-\x1f]{1,189}$"
    )


class AudienceIn(BaseModel):
    """Whom: ``contacts`` (the list in ``contacts``), or ``contact``, ``object``,
    ``industry``, ``subcategory``, ``area`` with the registry's ``key`` (a grid cell id for
    ``area``)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["contacts", "contact", "object", "industry", "subcategory", "area"]
    key: str = Field(default="", max_length=64, pattern=_LINE)
    contacts: list[RecipientIn] = Field(default_factory=list, max_length=1000)


class NoticeIn(BaseModel):
    """A notice: a template and its variables, an audience, a channel."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(min_length=1, max_length=64)
    variables: dict[
        Annotated[str, Field(min_length=1, max_length=32)],
        Annotated[str, Field(max_length=200, pattern=_LINE)],
    ] = Field(default_factory=dict, max_length=20)
    audience: AudienceIn
    channel: NoticeChannel
    case_id: int | None = Field(default=None, ge=1, le=MAX_WIRE_INT)
    urgent: bool = False

    def request(self) -> NoticeRequest:
        """The service's request."""
        if self.audience.kind == "contacts" and not self.audience.contacts:
            raise InvalidInputError("audience.contacts: an explicit list needs contacts")
        if self.audience.kind != "contacts" and not self.audience.key:
            raise InvalidInputError(f"audience.key: kind {self.audience.kind} needs a key")
        recipients = tuple(
            Recipient(c.contact_id, c.name, c.phone, c.email) for c in self.audience.contacts
        )
        return NoticeRequest(
            self.template,
            dict(self.variables),
            Audience(self.audience.kind, self.audience.key, recipients),
            self.channel,
            self.case_id,
            self.urgent,
        )


class NoticeBatch(BaseModel):
    """Up to 1,000 notices queued in one transaction (reminders from an import)."""

    model_config = ConfigDict(extra="forbid")

    notices: list[NoticeIn] = Field(min_length=1, max_length=1000)


class NoticeIds(BaseModel):
    """The ids of queued notices, in the order asked."""

    ids: list[str]


class OptOutIn(BaseModel):
    """An address that wants no notices on a channel."""

    model_config = ConfigDict(extra="forbid")

    channel: NoticeChannel
    address: str = Field(min_length=1, max_length=254, pattern=_LINE)
    reason: str = Field(default="", max_length=200, pattern=_LINE)


class OptInResult(BaseModel):
    """Whether an opt-out was removed."""

    removed: bool


class ReceiptIn(BaseModel):
    """A gateway's delivery receipt: its message id (or the delivery's id), the result."""

    model_config = ConfigDict(extra="forbid")

    message_id: str = Field(min_length=1, max_length=128)
    status: Literal["delivered", "failed"]
    reason: str = Field(default="", max_length=200)


async def _queue(hub: HubDep, requests: list[NoticeRequest], actor: str) -> list[str]:
    try:
        return await hub.notices.send_many(requests, actor=actor)
    except NoticeError as exc:
        raise InvalidInputError(str(exc)) from exc


@router.get("/notice-templates", **guard(*_SENDERS))
async def list_templates(hub: HubDep) -> list[TemplateView]:
    """Every notice template."""
    return await hub.notices.templates()


@router.post("/notice-templates", status_code=status.HTTP_201_CREATED, **guard(Role.ADMIN))
async def create_template(body: TemplateIn, hub: HubDep, user: CurrentUser) -> TemplateView:
    """Make a template; 422 names unknown, unused or malformed variables, 409 a taken name."""
    try:
        return await hub.notices.create_template(
            body.name, body.subject, body.body, body.variables, actor=user.name
        )
    except NoticeError as exc:
        raise InvalidInputError(str(exc)) from exc


@router.post("/notices", status_code=status.HTTP_201_CREATED, **guard(*_SENDERS))
async def send_notice(body: NoticeIn, hub: HubDep, user: CurrentUser) -> NoticeView:
    """Queue one notice to its audience; each recipient's delivery goes out in the
    background (``GET /notices/{id}/deliveries`` follows them)."""
    (notice_id,) = await _queue(hub, [body.request()], user.name)
    return await hub.notices.get(notice_id)


@router.post("/notices/batch", status_code=status.HTTP_201_CREATED, **guard(*_SENDERS))
async def send_batch(body: NoticeBatch, hub: HubDep, user: CurrentUser) -> NoticeIds:
    """Queue up to 1,000 notices at once, all or none (422 names each bad one by index)."""
    return NoticeIds(ids=await _queue(hub, [n.request() for n in body.notices], user.name))


@router.get("/notices", **guard(*_SENDERS))
async def list_notices(hub: HubDep, limit: Limit = 50, offset: Offset = 0) -> list[NoticeView]:
    """The newest notices with their deliveries counted by state."""
    return await hub.notices.recent(limit=limit, offset=offset)


@router.get("/notices/{notice_id}", **guard(*_SENDERS))
async def get_notice(notice_id: NoticeId, hub: HubDep) -> NoticeView:
    """One notice with its deliveries counted by state."""
    return await hub.notices.get(notice_id)


@router.get("/notices/{notice_id}/deliveries", **guard(*_SENDERS))
async def list_deliveries(
    notice_id: NoticeId, hub: HubDep, user: CurrentUser, limit: Limit = 100, offset: Offset = 0
) -> list[DeliveryView]:
    """A notice's deliveries: state, attempts, next attempt, provider id, receipt, error.
    A citizen reporter's address (a follow-up) is masked but to admins."""
    found = await hub.notices.deliveries(notice_id, limit=limit, offset=offset)
    return [masked_for(d, user.role) for d in found]


@router.get("/notice-opt-outs", **guard(*_SENDERS))
async def list_opt_outs(hub: HubDep, limit: Limit = 100, offset: Offset = 0) -> list[OptOutView]:
    """Addresses that asked for no notices, newest first."""
    return await hub.notices.opt_outs(limit=limit, offset=offset)


@router.post("/notice-opt-outs", status_code=status.HTTP_201_CREATED, **guard(*_SENDERS))
async def add_opt_out(body: OptOutIn, hub: HubDep, user: CurrentUser) -> OptOutView:
    """Record an opt-out (honoured when each delivery is sent: failed, ``opted_out``)."""
    try:
        return await hub.notices.opt_out(
            body.channel, body.address, reason=body.reason, actor=user.name
        )
    except NoticeError as exc:
        raise InvalidInputError(str(exc)) from exc


@router.post("/notice-opt-outs/remove", **guard(Role.ADMIN))
async def remove_opt_out(body: OptOutIn, hub: HubDep) -> OptInResult:
    """Remove an opt-out (the person asked for notices again; admins only)."""
    return OptInResult(removed=await hub.notices.opt_in(body.channel, body.address))


def install_receipts(app: FastAPI) -> None:
    """Add the gateway's receipt route (signed, no user token; not in the document)."""

    @app.post("/api/v1/notices/receipts", include_in_schema=False)
    async def receipt(request: Request) -> JSONResponse:
        hub = get_hub(request)
        secret = hub.notices.receipt_secret
        if secret is None:
            return JSONResponse({"detail": "this hub takes no receipts"}, status_code=404)
        body = await request.body()
        if len(body) > 4096:
            return JSONResponse({"detail": "receipt too large"}, status_code=413)
        if not verify_signature(secret, body, request.headers.get(SIGNATURE_HEADER)):
            return JSONResponse({"detail": f"bad or missing {SIGNATURE_HEADER}"}, status_code=401)
        try:
            given = ReceiptIn.model_validate_json(body)
        except ValidationError as exc:
            return JSONResponse(
                {"detail": json.loads(exc.json(include_url=False))}, status_code=422
            )
        try:
            changed = await hub.notices.receipt(
                given.message_id, given.status == "delivered", given.reason
            )
        except NotFoundError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=404)
        return JSONResponse({"changed": changed})
