"""Shared API plumbing: the hub from app state, token authentication, per-route roles."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AwareDatetime, BaseModel

from central_hub.domain.workflow import Role
from central_hub.errors import AuthError, ForbiddenError, TooManyAttempts
from central_hub.hub import Hub
from central_hub.services.throttle import record_failure
from central_hub.services.users import User
from edge_agent.protocol import MAX_WIRE_INT

__all__ = [
    "ALL_ROLES",
    "ERROR_RESPONSES",
    "CurrentUser",
    "ErrorBody",
    "HubDep",
    "Offset",
    "QueryTime",
    "RowId",
    "get_hub",
    "guard",
]

ALL_ROLES = (Role.OPERATOR, Role.DISPATCHER, Role.HANDLER, Role.ADMIN)

#: A row number in a path (a case, a rollout): what a 64-bit column holds, so a huge
#: number is a 422 naming the parameter rather than an overflow inside the database.
RowId = Annotated[int, Path(ge=1, le=MAX_WIRE_INT)]
#: How many rows to skip.
Offset = Annotated[int, Query(ge=0, le=MAX_WIRE_INT)]
#: A time in a query: with a zone (``...Z`` or ``+08:00``); a naive one is a 422.
QueryTime = AwareDatetime


class ErrorBody(BaseModel):
    """Every refused request's body: ``detail`` says what is wrong, as a sentence, or as
    FastAPI's list of field errors when the request does not fit its schema."""

    detail: str | list[dict[str, Any]]


#: The refusals any API route may answer, documented once for all of them.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (400, "the body is not JSON or form data"),
        (401, "missing or unknown token"),
        (403, "role not allowed"),
        (404, "no such resource"),
        (409, "conflicts with the resource's state"),
        (413, "upload too large"),
        (422, "a parameter or the body is invalid"),
        (429, "too many failed attempts from this address; see Retry-After"),
        (503, "the broker is unreachable"),
    )
}

_bearer = HTTPBearer(auto_error=False, description="an API token from `central-hub user add`")


def get_hub(request: Request) -> Hub:
    """The :class:`central_hub.hub.Hub` the app was built with."""
    hub: Hub = request.app.state.hub
    return hub


HubDep = Annotated[Hub, Depends(get_hub)]


async def current_user(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The user whose bearer token came with the request; AuthError (401) otherwise, and
    429 for a while after too many refused tokens from the same address (audited)."""
    hub = get_hub(request)
    source = request.client.host if request.client else "unknown"
    wait = hub.auth_throttle.wait_s(source)
    if wait:
        await record_failure(hub.engine, at=hub.clock(), source=source, name="", reason="blocked")
        raise TooManyAttempts(wait)
    try:
        user = await hub.users.authenticate(creds.credentials if creds else None)
    except AuthError as exc:
        if creds is not None:  # a wrong token, not a request that carried none
            hub.auth_throttle.failed(source)
            await record_failure(
                hub.engine, at=hub.clock(), source=source, name="", reason=f"api: {exc}"
            )
        raise
    hub.auth_throttle.succeeded(source)
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def _require(roles: frozenset[Role]) -> Callable[[User], Awaitable[User]]:
    async def check(user: CurrentUser) -> User:
        if user.role not in roles:
            raise ForbiddenError(
                f"role {user.role.value} may not do this; needs one of "
                + ", ".join(sorted(r.value for r in roles))
            )
        return user

    return check


def guard(*roles: Role, responses: dict[int | str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Route keyword arguments that require one of ``roles`` and document them.

    Use as ``@router.get(path, **guard(Role.ADMIN))``; the OpenAPI operation carries
    ``x-roles`` so clients (and the test that walks every route) know who may call it.
    """
    allowed = frozenset(roles)
    return {
        "dependencies": [Depends(_require(allowed))],
        "openapi_extra": {"x-roles": sorted(r.value for r in allowed)},
        "responses": {**ERROR_RESPONSES, **(responses or {})},
    }
