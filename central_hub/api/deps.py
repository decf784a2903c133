"""Shared API plumbing: the hub from app state, token authentication, per-route roles."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from central_hub.domain.workflow import Role
from central_hub.errors import AuthError, ForbiddenError, TooManyAttempts
from central_hub.hub import Hub
from central_hub.services.throttle import record_failure
from central_hub.services.users import User

__all__ = ["ALL_ROLES", "CurrentUser", "HubDep", "get_hub", "guard"]

ALL_ROLES = (Role.OPERATOR, Role.DISPATCHER, Role.HANDLER, Role.ADMIN)

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
        "responses": {
            401: {"description": "missing or unknown token"},
            403: {"description": "role not allowed"},
            **(responses or {}),
        },
    }
