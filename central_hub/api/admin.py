"""``/api/v1/dead-letters``, ``/api/v1/ingest``, ``/api/v1/users``, ``/api/v1/me``,
``/api/v1/auth-failures``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from central_hub.api.deps import ALL_ROLES, CurrentUser, HubDep, Offset, guard
from central_hub.db.schema import auth_failures
from central_hub.domain.workflow import Role
from central_hub.services.records import DeadLetterView
from central_hub.services.users import User

router = APIRouter(tags=["admin"])


class DeadLetterPage(BaseModel):
    """A page of dead letters and how many there are in all."""

    total: int
    items: list[DeadLetterView]


@router.get("/dead-letters", **guard(Role.ADMIN))
async def list_dead_letters(
    hub: HubDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> DeadLetterPage:
    """Messages ingest refused, newest first, with reasons and raw bytes."""
    return DeadLetterPage(
        total=await hub.records.dead_letter_count(),
        items=await hub.records.dead_letters(limit=limit, offset=offset),
    )


@router.get("/ingest/stats", **guard(Role.ADMIN))
async def ingest_stats(hub: HubDep) -> dict[str, Any]:
    """This process's ingest counters (empty when it runs no ingest worker)."""
    return hub.ingest.stats.as_dict() if hub.ingest is not None else {}


@router.get("/users", **guard(Role.ADMIN))
async def list_users(hub: HubDep) -> list[User]:
    """Every user and role."""
    return await hub.users.all()


@router.get("/me", **guard(*ALL_ROLES))
async def me(user: CurrentUser) -> User:
    """The caller."""
    return user


class AuthFailureView(BaseModel):
    """A failed login or refused token, or a refusal while its address was blocked."""

    at: datetime
    source: str
    user_name: str
    reason: str


@router.get("/auth-failures", **guard(Role.ADMIN))
async def list_auth_failures(
    hub: HubDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[AuthFailureView]:
    """Failed logins and refused tokens, newest first (the throttle's audit)."""
    async with hub.engine.connect() as conn:
        rows = (
            await conn.execute(
                auth_failures.select().order_by(auth_failures.c.id.desc()).limit(limit)
            )
        ).all()
    return [
        AuthFailureView(at=r.at, source=r.source, user_name=r.user_name, reason=r.reason)
        for r in rows
    ]
