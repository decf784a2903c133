"""Login, logout and the language switch."""

from __future__ import annotations

import logging
from typing import Annotated, cast

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import RedirectResponse, Response

from central_hub.console.render import page
from central_hub.console.security import (
    PRE_COOKIE,
    SESSION_COOKIE,
    ViewerDep,
)
from central_hub.console.sessions import new_secret
from central_hub.console.settings import Lang
from central_hub.console.state import ConsoleState, console_state
from central_hub.errors import AuthError
from central_hub.services.throttle import record_failure

log = logging.getLogger(__name__)

__all__ = ["router", "safe_next"]

router = APIRouter()


def _lang(value: str | None, default: Lang) -> Lang:
    return cast(Lang, value) if value in ("zh", "en") else default


def safe_next(value: str | None, state: ConsoleState) -> str:
    """Where to go after login: only a path under the console (never another site)."""
    prefix = state.settings.prefix
    if (
        value
        and value.startswith(prefix + "/")
        and not value.startswith("//")
        and "\\" not in value
    ):
        return value
    return state.url("/")


def _secure(request: Request, state: ConsoleState) -> bool:
    if state.settings.cookie_secure is not None:
        return state.settings.cookie_secure
    return request.url.scheme == "https"


@router.get("/login")
async def login_form(
    request: Request, lang: str | None = None, next: str | None = None
) -> Response:
    """The login form; sets the pre-session CSRF cookie it posts back."""
    state = console_state(request)
    pre = request.cookies.get(PRE_COOKIE) or new_secret()
    chosen = _lang(lang, state.settings.default_lang)
    response = page(
        request, None, "login.html", lang=chosen, csrf=pre, next=safe_next(next, state), error=None
    )
    response.set_cookie(
        PRE_COOKIE,
        pre,
        httponly=True,
        samesite="strict",
        secure=_secure(request, state),
        path=state.settings.prefix,
    )
    return response


@router.post("/login")
async def login(
    request: Request,
    name: Annotated[str, Form(max_length=64)],
    token: Annotated[str, Form(max_length=200)],
    lang: Annotated[str, Form()] = "zh",
    next: Annotated[str, Form()] = "",
) -> Response:
    """Check the user name and access token; start a session on success."""
    state = console_state(request)
    chosen = _lang(lang, state.settings.default_lang)
    hub = state.hub
    source = request.client.host if request.client else "unknown"

    def refused(code: int, error: str) -> Response:
        return page(
            request,
            None,
            "login.html",
            code,
            lang=chosen,
            csrf=request.cookies.get(PRE_COOKIE, ""),
            next=safe_next(next, state),
            error=error,
        )

    if hub.auth_throttle.wait_s(source):
        await record_failure(hub.engine, at=hub.clock(), source=source, name=name, reason="blocked")
        return refused(status.HTTP_429_TOO_MANY_REQUESTS, "login.throttled")
    try:
        user = await hub.users.authenticate(token.strip())
        if user.name != name.strip():
            raise AuthError("the token belongs to another user")
    except AuthError as exc:
        log.warning("console login refused for %r from %s: %s", name[:64], source, exc)
        hub.auth_throttle.failed(source)
        await record_failure(
            hub.engine, at=hub.clock(), source=source, name=name, reason=f"console: {exc}"
        )
        return refused(status.HTTP_401_UNAUTHORIZED, "login.failed")
    hub.auth_throttle.succeeded(source)
    session = state.sessions.create(user.name, token.strip(), chosen)
    log.info("console login: %s (%s)", user.name, user.role.value)
    response = RedirectResponse(safe_next(next, state), status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        SESSION_COOKIE,
        session.sid,
        httponly=True,
        samesite="strict",
        secure=_secure(request, state),
        path="/",
    )
    response.delete_cookie(PRE_COOKIE, path=state.settings.prefix)
    return response


@router.post("/logout")
async def logout(request: Request, who: ViewerDep) -> Response:
    """End the session on the server and clear the cookie."""
    state = console_state(request)
    state.sessions.drop(who.session.sid)
    response = RedirectResponse(state.url("/login"), status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/lang")
async def switch_lang(
    request: Request,
    who: ViewerDep,
    lang: Annotated[str, Form()],
    back: Annotated[str, Form()] = "",
) -> Response:
    """Switch the interface language and go back to the page."""
    state = console_state(request)
    state.sessions.set_lang(who.session.sid, _lang(lang, who.session.lang))
    return RedirectResponse(safe_next(back, state), status.HTTP_303_SEE_OTHER)
