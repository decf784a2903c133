"""The case queue (filters, countdowns) and the case detail with its workflow actions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from central_hub.console.errors import UploadRefused
from central_hub.console.object_routes import object_case_context
from central_hub.console.present import FormFields, countdown
from central_hub.console.render import page, page_html
from central_hub.console.security import Viewer, ViewerDep, require
from central_hub.console.state import ConsoleState, console_state
from central_hub.console.uploads import check_size, normalise_photo
from central_hub.console.vendor_routes import vendor_case_context
from central_hub.domain.catalogue import LINES
from central_hub.domain.citizen_moderation import (
    AUDIT_ACTIONS,
    MERGED_IN,
    MODERATORS,
    REASON_MAX,
    Moderation,
)
from central_hub.domain.errors import ModerationRefused, TransitionRefused, UnknownCell
from central_hub.domain.filing import CaseSource
from central_hub.domain.labels import Verdict
from central_hub.domain.workflow import (
    FINAL_STAGES,
    Action,
    Stage,
    allowed_actions,
    needs_verification,
)
from central_hub.errors import ConflictError, InvalidInputError, NotFoundError
from central_hub.services.cases import CaseDetail, CaseFilter
from central_hub.services.citizen_moderation import CitizenModeration
from central_hub.services.citizen_reports import CitizenReports
from central_hub.services.records import EventView
from edge_agent.protocol import MAX_WIRE_INT

log = logging.getLogger(__name__)

__all__ = ["QueueQuery", "parse_queue_query", "router"]

router = APIRouter()

SOURCES: tuple[str, ...] = CaseSource.__args__  # type: ignore[attr-defined]  # Literal's members
#: A viewer who may moderate citizens' reports (operators and admins).
ModeratorDep = Annotated[Viewer, require(*MODERATORS)]


@dataclass(frozen=True)
class QueueQuery(FormFields):
    """The queue's filters as the page's form sent them (already checked)."""

    stage: str = ""
    code: str = ""
    cell: str = ""
    line: str = ""
    source: str = ""
    overdue: str = ""
    page: int = 0


def parse_queue_query(raw: dict[str, str], state: ConsoleState) -> tuple[QueueQuery, list[str]]:
    """The filters from query parameters, and a message for each value that is not valid.

    An invalid value is dropped (the queue shows unfiltered on that field) and named.
    """
    errors: list[str] = []
    fields: dict[str, Any] = {}
    checks: dict[str, Callable[[str], bool]] = {
        "stage": lambda v: v in {s.value for s in Stage},
        "code": lambda v: v in state.hub.catalogue,
        "cell": lambda v: v in state.hub.grid,
        "line": lambda v: v in LINES,
        "source": lambda v: v in SOURCES,
        "overdue": lambda v: v in ("yes", "no"),
    }
    for name, valid in checks.items():
        value = raw.get(name, "").strip()
        if not value:
            continue
        if valid(value):
            fields[name] = value
        else:
            errors.append(f"{name}: {value!r} is not valid")
    try:
        fields["page"] = max(0, int(raw.get("page") or 0))
    except ValueError:
        errors.append(f"page: {raw.get('page')!r} is not a number")
    return QueueQuery(**fields), errors


def _filter(q: QueueQuery, state: ConsoleState) -> CaseFilter:
    size = state.settings.page_size
    cells = None
    if q.cell:
        try:
            cells = state.hub.grid.subtree(q.cell)
        except UnknownCell:
            cells = set()
    return CaseFilter(
        stage=[Stage(q.stage)] if q.stage else None,
        code=q.code or None,
        line=q.line or None,
        cell_ids=cells,
        source=q.source or None,
        overdue={"yes": True, "no": False}.get(q.overdue),
        limit=size + 1,  # one more tells whether there is a next page
        offset=q.page * size,
    )


@router.get("/cases", response_model=None)
async def queue(request: Request, who: ViewerDep, partial: bool = False) -> Response:
    """The case queue; ``partial=1`` returns only the rows, for live refresh."""
    state = console_state(request)
    q, errors = parse_queue_query(dict(request.query_params), state)
    found = await state.hub.cases.find(_filter(q, state))
    size = state.settings.page_size
    rows, more = found[:size], len(found) > size
    now = state.hub.clock()
    items = [(c, countdown(c.deadline, now, final=c.stage in FINAL_STAGES)) for c in rows]
    extra: dict[str, Any] = {"items": items, "q": q, "more": more}
    if partial:
        return HTMLResponse(page_html(request, who, "_case_rows.html", **extra))
    return page(
        request,
        who,
        "cases.html",
        status.HTTP_422_UNPROCESSABLE_CONTENT if errors else 200,
        errors=errors,
        stages=list(Stage),
        catalogue=state.hub.catalogue.entries(),
        cells=[c for c in state.hub.grid.cells() if c.level != "area"],
        lines=LINES,
        sources=SOURCES,
        **extra,
    )


def _moderation(state: ConsoleState) -> CitizenModeration:
    hub = state.hub
    reports = CitizenReports(hub.engine, hub.filer, hub.clock)
    return CitizenModeration(hub.engine, hub.cases, reports, hub.clock)


async def _detail_context(state: ConsoleState, detail: CaseDetail, who: Viewer) -> dict[str, Any]:
    case = detail.case
    # The citizens' reports with the contact this viewer may see (an admin's read of a
    # contact in full is recorded here, before the page is sent).
    citizen = await _moderation(state).of_case(case.id, who.user)
    evs: list[EventView] = await state.hub.records.events(case_id=case.id, limit=50)
    snapshot = next((e.snapshot_sha256 for e in evs if e.snapshot_sha256), None)
    verify = needs_verification(case.source, case.verification_required)
    actions = allowed_actions(case.stage, who.role, verification_needed=verify)
    cell_id = case.grid_cell_id
    cell = state.hub.grid.get(cell_id) if cell_id and cell_id in state.hub.grid else None
    return {
        "case": case,
        "audits": detail.audits,
        "events": evs,
        "snapshot": snapshot,
        "actions": actions,
        "cell": cell,
        "cd": countdown(case.deadline, state.hub.clock(), final=case.stage in FINAL_STAGES),
        "entry": state.hub.catalogue.get(case.code) if case.code in state.hub.catalogue else None,
        "max_upload": state.settings.upload_max_bytes,
        "verdicts": [v.value for v in Verdict],
        "citizen": citizen,
        # The vendor file's section on a 0501 case, for the roles that may see it.
        "vendor": await vendor_case_context(state, who, case),
        # The service objects the case concerns (a 0504 linked to its shop on first view).
        "objects": await object_case_context(state, who, case),
        # The move-your-car loop's record of a parked car (reminded, rechecked, why not).
        "parking": await state.hub.parking.check(case.id) if state.hub.parking else None,
        # Who watched the case's cameras live from this case (the live view's audit).
        "live_views": await state.hub.live.history(case_id=case.id) if state.hub.live else [],
        # Who said what through the units' loudspeakers from this case (高空喊话).
        "voice_sent": await state.hub.voice.sent_for_case(case.id, {e.device_id for e in evs})
        if state.hub.voice
        else [],
        "may_moderate": who.role in MODERATORS,
        "reason_max": REASON_MAX,
        "squads": sorted(
            {o for c in state.hub.grid.cells() if (o := state.hub.grid.owner(c.id, case.line))}
        ),
    }


async def _render_detail(
    request: Request,
    who: Viewer,
    case_id: int,
    *,
    code: int = 200,
    error: str | None = None,
    done: str | None = None,
) -> Response:
    state = console_state(request)
    try:
        detail = await state.hub.cases.get(case_id, who.user)
    except NotFoundError:
        return page(request, who, "error.html", 404, message=who.t("err.not_found"))
    ctx = await _detail_context(state, detail, who)
    return page(request, who, "case.html", code, error=error, done=done, **ctx)


@router.get("/cases/{case_id}", response_model=None)
async def case_detail(request: Request, who: ViewerDep, case_id: int, done: str = "") -> Response:
    """One case: evidence, events, audit trail and the actions the viewer's role allows."""
    return await _render_detail(request, who, case_id, done=done or None)


async def _photo(state: ConsoleState, upload: UploadFile) -> str:
    limit = state.settings.upload_max_bytes
    if upload.size is not None:
        check_size(upload.size, limit)
    data = await upload.read(limit + 1)
    data = await asyncio.to_thread(
        normalise_photo, data, limit=limit, max_side=state.settings.upload_max_side_px
    )
    return await state.hub.evidence.put(data)


@router.post("/cases/{case_id}/actions", response_model=None)
async def case_action(request: Request, who: ViewerDep, case_id: int) -> Response:
    """Take a workflow action, with an optional photo; errors re-render the case with why."""
    state = console_state(request)
    form = await request.form(max_part_size=64 * 1024)
    raw_action = form.get("action")
    reason = form.get("reason")
    reason = reason[:2000] if isinstance(reason, str) else ""
    try:
        action = Action(raw_action if isinstance(raw_action, str) else "")
    except ValueError:
        return await _render_detail(
            request, who, case_id, code=422, error=f"unknown action {raw_action!r}"
        )
    squad = form.get("squad_id")
    squad_id = squad.strip()[:64] or None if isinstance(squad, str) else None
    if action is not Action.DISPATCH:
        squad_id = None
    raw_verdict = form.get("verdict")
    verdict = None
    if action is Action.CANCEL and isinstance(raw_verdict, str) and raw_verdict:
        try:
            verdict = Verdict(raw_verdict)
        except ValueError:
            return await _render_detail(
                request, who, case_id, code=422, error=f"unknown verdict {raw_verdict[:40]!r}"
            )
    attachments: list[str] = []
    photo = form.get("photo")
    if isinstance(photo, UploadFile) and (photo.filename or photo.size):
        try:
            attachments.append(await _photo(state, photo))
        except UploadRefused as exc:
            log.info("case %s: upload refused: %s", case_id, exc)
            return await _render_detail(
                request, who, case_id, code=exc.status, error=who.t(exc.key, **exc.values)
            )
    try:
        await state.hub.cases.transition(
            case_id,
            action,
            who.user,
            reason=reason,
            attachments=attachments,
            squad_id=squad_id,
            verdict=verdict,
        )
    except NotFoundError:
        return page(request, who, "error.html", 404, message=who.t("err.not_found"))
    except TransitionRefused as exc:
        code = 403 if exc.kind == "forbidden" else 409
        return await _render_detail(request, who, case_id, code=code, error=exc.reason)
    except ConflictError as exc:
        return await _render_detail(request, who, case_id, code=409, error=str(exc))
    except InvalidInputError as exc:
        return await _render_detail(request, who, case_id, code=422, error=str(exc))
    return RedirectResponse(
        state.url(f"/cases/{case_id}?done={action.value}"), status.HTTP_303_SEE_OTHER
    )


def _row_number(text: str, field: str) -> int:
    """A row id typed into a form; InvalidInputError naming ``field`` when it is not one."""
    if not text.isdigit() or not 1 <= int(text) <= MAX_WIRE_INT:
        raise InvalidInputError(f"{field}: {text[:20]!r} is not a number from 1 to {MAX_WIRE_INT}")
    return int(text)


@router.post("/cases/{case_id}/citizen-reports", response_model=None)
async def moderate_report(request: Request, who: ModeratorDep, case_id: int) -> Response:
    """Hide, unhide, redact or merge one of the case's citizen reports, with a reason
    (operators and admins); errors re-render the case with why, naming the field."""
    state = console_state(request)
    form = await request.form(max_part_size=64 * 1024)

    def field(name: str) -> str:
        value = form.get(name)
        return value.strip() if isinstance(value, str) else ""

    reason = form.get("reason")
    try:
        report_id = _row_number(field("report"), "report")
        try:
            action = Moderation(field("action"))
        except ValueError:
            choices = ", ".join(m.value for m in Moderation)
            raise InvalidInputError(
                f"action: {field('action')[:20]!r} is not one of {choices}"
            ) from None
        into = _row_number(field("case_id"), "case_id") if action is Moderation.MERGE else None
        done = await _moderation(state).moderate(
            action,
            report_id,
            who.user,
            reason if isinstance(reason, str) else "",
            into=into,
            in_case=case_id,
        )
    except InvalidInputError as exc:
        return await _render_detail(request, who, case_id, code=422, error=str(exc))
    except ModerationRefused as exc:
        code = {"forbidden": 403, "conflict": 409}.get(exc.kind, 422)
        return await _render_detail(request, who, case_id, code=code, error=exc.reason)
    except NotFoundError as exc:
        return await _render_detail(request, who, case_id, code=404, error=str(exc))
    # A merged report is shown where it went; the case it left is linked from the trail.
    word = MERGED_IN if action is Moderation.MERGE else AUDIT_ACTIONS[action]
    return RedirectResponse(
        state.url(f"/cases/{done.case_id}?done={word}"), status.HTTP_303_SEE_OTHER
    )
