"""Who is asking, and may they: session cookies, role checks and CSRF protection.

Every console route depends on :func:`viewer` (or, for the login form, on nothing but
CSRF). State-changing requests (any method but GET/HEAD/OPTIONS) must carry the
session's CSRF token in the ``X-CSRF-Token`` header or a ``csrf_token`` form field; the
login form, which has no session yet, uses a pre-session cookie of its own (double
submit). A cross-site ``Origin`` is refused too. Failures raise the exceptions below,
which :mod:`central_hub.console.app` turns into a login redirect, 401, 403 or 413.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, Request

from central_hub.console.i18n import Translator
from central_hub.console.sessions import Session, same_secret
from central_hub.console.state import ConsoleState, console_state
from central_hub.domain.workflow import Role
from central_hub.errors import AuthError
from central_hub.services.users import User

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "PRE_COOKIE",
    "SESSION_COOKIE",
    "CommanderDep",
    "CsrfRefused",
    "Forbidden",
    "NeedLogin",
    "ReaderDep",
    "TooLarge",
    "Viewer",
    "ViewerDep",
    "csrf_protect",
    "require",
    "viewer",
]

SESSION_COOKIE = "xh_session"
PRE_COOKIE = "xh_pre"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
#: Room for the form fields around an upload.
_FORM_SLACK = 64 * 1024


class NeedLogin(Exception):
    """No valid session: pages redirect to the login form, data routes answer 401."""


class Forbidden(Exception):
    """The user's role may not open this page or take this action."""


class CsrfRefused(Exception):
    """A state-changing request without the right CSRF token, or from another origin."""


class TooLarge(Exception):
    """A request body over the upload cap, refused before it is parsed."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"request body of {size} bytes is over the limit of {limit}")
        self.size = size
        self.limit = limit


@dataclass(frozen=True)
class Viewer:
    """The logged-in user of a request, their session and their language."""

    user: User
    session: Session
    t: Translator

    @property
    def role(self) -> Role:
        """The user's role."""
        return self.user.role

    def may(self, *roles: Role) -> bool:
        """Whether the user has one of ``roles``."""
        return self.user.role in roles


async def viewer(request: Request) -> Viewer:
    """The logged-in user; NeedLogin when there is no live session or the user is gone."""
    state = console_state(request)
    session = state.sessions.get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise NeedLogin
    try:
        user = await state.hub.users.authenticate(session.token)
    except AuthError as exc:
        state.sessions.drop(session.sid)
        raise NeedLogin from exc
    if user.name != session.user_name:
        state.sessions.drop(session.sid)
        raise NeedLogin
    viewer = Viewer(user=user, session=session, t=Translator(session.lang))
    request.state.viewer = viewer
    return viewer


ViewerDep = Annotated[Viewer, Depends(viewer)]

#: Roles that may see devices and statistics (as in the REST API).
READERS = (Role.OPERATOR, Role.DISPATCHER, Role.ADMIN)
#: Roles that may send commands to devices.
COMMANDERS = (Role.OPERATOR, Role.ADMIN)


def require(*roles: Role) -> Any:
    """A dependency that raises :class:`Forbidden` unless the viewer has one of ``roles``."""

    async def check(who: ViewerDep) -> Viewer:
        if who.user.role not in roles:
            raise Forbidden(f"role {who.user.role.value} may not do this")
        return who

    return Depends(check)


#: A viewer who may read devices and statistics.
ReaderDep = Annotated[Viewer, require(*READERS)]
#: A viewer who may send commands to devices.
CommanderDep = Annotated[Viewer, require(*COMMANDERS)]


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        # Old browsers and non-browser clients send no Origin; the token still decides.
        return origin is None
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc == host


async def csrf_protect(request: Request) -> None:
    """Refuse a state-changing request without the CSRF token (see the module doc)."""
    if request.method in _SAFE:
        return
    state: ConsoleState = console_state(request)
    length = int(request.headers.get("content-length") or 0)
    limit = state.settings.upload_max_bytes + _FORM_SLACK
    if length > limit:
        raise TooLarge(length, state.settings.upload_max_bytes)
    if not _same_origin(request):
        raise CsrfRefused("cross-origin request")
    session = state.sessions.get(request.cookies.get(SESSION_COOKIE))
    expected = session.csrf if session else request.cookies.get(PRE_COOKIE)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form(max_part_size=64 * 1024)
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not same_secret(sent, expected):
        raise CsrfRefused("missing or wrong CSRF token")
