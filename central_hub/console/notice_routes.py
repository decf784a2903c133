"""The notices page (operators, dispatchers, admins): compose a notice from a template to
an audience, follow the recent notices' delivery states and one notice's deliveries, and
record an opt-out. The forms carry the console's CSRF token like every other form."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, status
from fastapi.responses import RedirectResponse, Response

from central_hub.console.render import page
from central_hub.console.security import ReaderDep
from central_hub.console.state import console_state
from central_hub.domain.errors import NoticeError
from central_hub.domain.notices import (
    AUDIENCE_KINDS,
    Audience,
    DeliveryState,
    NoticeChannel,
    Recipient,
)
from central_hub.errors import HubError, NotFoundError
from central_hub.services.notices import NoticeRequest

log = logging.getLogger(__name__)

__all__ = ["mask", "parse_compose", "router"]

router = APIRouter()

_FORM_MAX = 256 * 1024


def mask(address: str) -> str:
    """A phone or e-mail address as the page shows it (``138****0001``, ``w***@x.com``):
    personal data, so the page never shows it whole; a speaker's device id is not."""
    local, at, domain = address.partition("@")
    if at:
        return f"{local[:1]}***@{domain}"
    digits = sum(ch.isdigit() for ch in address)
    if digits >= 7 and len(address) >= 7:
        return address[:3] + "****" + address[-4:]
    return address


def parse_compose(form: dict[str, str]) -> tuple[NoticeRequest | None, list[str]]:
    """The compose form as a request, or every problem with it (line numbers named)."""
    problems: list[str] = []
    template = form.get("template", "").strip()
    if not template:
        problems.append("template: choose one")
    try:
        channel = NoticeChannel(form.get("channel", ""))
    except ValueError:
        problems.append("channel: choose sms, email or speaker")
        channel = NoticeChannel.SMS
    kind = form.get("kind", "contacts")
    if kind not in AUDIENCE_KINDS:
        problems.append(f"audience: unknown kind {kind!r}")
        kind = "contacts"
    recipients: list[Recipient] = []
    for number, line in enumerate(form.get("contacts", "").splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        parts += [""] * (4 - len(parts))
        if len(parts) > 4 or not parts[0]:
            problems.append(f"contacts line {number}: id,name,phone,email (the id is needed)")
            continue
        recipients.append(Recipient(parts[0], parts[1], parts[2] or None, parts[3] or None))
    key = form.get("key", "").strip()
    if kind == "contacts" and not recipients:
        problems.append("contacts: one line a contact")
    if kind != "contacts" and not key:
        problems.append(f"key: kind {kind} needs an id")
    variables: dict[str, str] = {}
    for number, line in enumerate(form.get("variables", "").splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            problems.append(f"variables line {number}: name=value")
            continue
        variables[name.strip()] = value.strip()
    case_id: int | None = None
    if form.get("case_id", "").strip():
        try:
            case_id = int(form["case_id"])
        except ValueError:
            problems.append("case_id: a case number")
        else:
            if not 1 <= case_id <= 2**53:
                problems.append("case_id: a case number")
    if problems:
        return None, problems
    audience = Audience(kind, key, tuple(recipients))  # type: ignore[arg-type]  # checked above
    return (
        NoticeRequest(template, variables, audience, channel, case_id, form.get("urgent") == "1"),
        [],
    )


async def _page(
    request: Request,
    who: ReaderDep,
    *,
    problems: list[str] | None = None,
    form: dict[str, str] | None = None,
    code: int = 200,
) -> Response:
    notices = console_state(request).hub.notices
    return page(
        request,
        who,
        "notices.html",
        status_code=code,
        templates=await notices.templates(),
        notices=await notices.recent(limit=50),
        opt_outs=await notices.opt_outs(limit=50),
        kinds=AUDIENCE_KINDS,
        channels=list(NoticeChannel),
        states=list(DeliveryState),
        problems=problems or [],
        form=form or {},
        mask=mask,
    )


@router.get("/notices", response_model=None)
async def notices_page(request: Request, who: ReaderDep) -> Response:
    """Recent notices with their delivery states, the compose form, the opt-outs."""
    return await _page(request, who)


@router.post("/notices", response_model=None)
async def compose(request: Request, who: ReaderDep) -> Response:
    """Queue the composed notice; problems re-render the page with the form kept."""
    state = console_state(request)
    raw = await request.form(max_part_size=_FORM_MAX)
    form = {k: v for k, v in raw.items() if isinstance(v, str) and k != "csrf_token"}
    req, problems = parse_compose(form)
    if req is not None:
        try:
            (notice_id,) = await state.hub.notices.send_many([req], actor=who.user.name)
        except (NoticeError, HubError) as exc:
            problems = [str(exc)]
        else:
            log.info("console: %s sent notice %s", who.user.name, notice_id)
            return RedirectResponse(state.url(f"/notices/{notice_id}"), status.HTTP_303_SEE_OTHER)
    return await _page(
        request, who, problems=problems, form=form, code=status.HTTP_422_UNPROCESSABLE_CONTENT
    )


@router.post("/notices/opt-outs", response_model=None)
async def add_opt_out(request: Request, who: ReaderDep) -> Response:
    """Record that an address wants no notices on a channel."""
    state = console_state(request)
    form = await request.form(max_part_size=64 * 1024)
    problems: list[str] = []
    try:
        channel = NoticeChannel(str(form.get("channel", "")))
        address = str(form.get("address", ""))[:254]
        await state.hub.notices.opt_out(
            channel, address, reason=str(form.get("reason", ""))[:200], actor=who.user.name
        )
    except ValueError:
        problems.append("channel: choose sms, email or speaker")
    except NoticeError as exc:
        problems.append(str(exc))
    if problems:
        return await _page(
            request, who, problems=problems, code=status.HTTP_422_UNPROCESSABLE_CONTENT
        )
    return RedirectResponse(state.url("/notices"), status.HTTP_303_SEE_OTHER)


@router.get("/notices/{notice_id}", response_model=None)
async def notice_page(request: Request, notice_id: str, who: ReaderDep) -> Response:
    """One notice: its text and every delivery's state, attempts, receipt and reason."""
    notices = console_state(request).hub.notices
    try:
        view = await notices.get(notice_id[:36])
    except NotFoundError:
        return page(request, who, "error.html", 404, message=who.t("err.not_found"))
    deliveries = await notices.deliveries(view.id, limit=500)
    return page(request, who, "notice.html", notice=view, deliveries=deliveries, mask=mask)
