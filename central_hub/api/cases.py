"""``/api/v1/cases``: list, filter, detail, transitions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from central_hub.api.deps import ALL_ROLES, CurrentUser, HubDep, Offset, QueryTime, RowId, guard
from central_hub.domain.labels import Verdict
from central_hub.domain.workflow import Action, Stage
from central_hub.services.cases import CaseDetail, CaseFilter, CaseView

router = APIRouter(prefix="/cases", tags=["cases"])


class TransitionRequest(BaseModel):
    """An action on a case with the reason and attachments (evidence hashes or URLs)."""

    action: Action
    reason: str = Field(default="", max_length=2000)
    attachments: list[Annotated[str, Field(max_length=500)]] = Field(
        default_factory=list, max_length=20
    )
    squad_id: str | None = Field(
        default=None, max_length=64, description="dispatch to this squad instead of the owner"
    )
    verdict: Verdict | None = Field(
        default=None,
        description="with cancel: why the AI report is not a case (required at verification)",
    )


@router.get("", **guard(*ALL_ROLES))
async def list_cases(
    hub: HubDep,
    stage: Annotated[list[Stage] | None, Query()] = None,
    code: str | None = None,
    line: str | None = None,
    squad_id: str | None = None,
    cell: Annotated[str | None, Query(description="a grid cell; its whole subtree")] = None,
    overdue: bool | None = None,
    open_only: bool = False,
    at: Annotated[QueryTime | None, Query(description="evaluate overdue at this time")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> list[CaseView]:
    """Cases, newest first, filtered by stage, code, line, squad, grid subtree, overdue."""
    cells = hub.grid.subtree(cell) if cell is not None else None
    flt = CaseFilter(
        stage=stage,
        code=code,
        line=line,
        squad_id=squad_id,
        cell_ids=cells,
        overdue=overdue,
        open_only=open_only,
        limit=limit,
        offset=offset,
    )
    return await hub.cases.find(flt, at)


@router.get("/{case_id}", **guard(*ALL_ROLES))
async def get_case(case_id: RowId, hub: HubDep, user: CurrentUser) -> CaseDetail:
    """One case with its audit trail, events and the actions the caller may take."""
    return await hub.cases.get(case_id, user)


@router.post("/{case_id}/transitions", **guard(*ALL_ROLES))
async def transition_case(
    case_id: RowId, body: TransitionRequest, hub: HubDep, user: CurrentUser
) -> CaseDetail:
    """Take an action on a case: 403 if the role may not, 409 if the stage does not allow it."""
    return await hub.cases.transition(
        case_id,
        body.action,
        user,
        reason=body.reason,
        attachments=body.attachments,
        squad_id=body.squad_id,
        verdict=body.verdict,
    )
