"""Console sessions: server-side, in memory, with a CSRF token each (pure: clock passed in).

A session id is 256 random bits sent only in an HttpOnly, SameSite=Strict cookie; the
server keeps the user's API token beside it so every request re-checks the user through
:meth:`central_hub.services.users.UserService.authenticate` (a disabled user or a rotated token
ends the session at once). Logging out deletes the session on the server, so a copied
cookie is worthless afterwards. A hub restart logs everybody out.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from central_hub.console.settings import Lang

__all__ = ["Session", "SessionStore", "new_secret", "same_secret"]


def new_secret() -> str:
    """A fresh URL-safe random secret (session ids, CSRF tokens)."""
    return secrets.token_urlsafe(32)


def same_secret(a: str | None, b: str | None) -> bool:
    """Constant-time comparison that is False when either side is missing or empty."""
    if not a or not b:
        return False
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


@dataclass(frozen=True)
class Session:
    """One logged-in browser."""

    sid: str
    user_name: str
    token: str
    csrf: str
    lang: Lang
    created_at: datetime
    last_seen: datetime


class SessionStore:
    """Sessions by id, with idle and absolute expiry measured on the clock passed in."""

    def __init__(
        self,
        clock: Callable[[], datetime],
        *,
        idle: timedelta = timedelta(hours=8),
        max_age: timedelta = timedelta(hours=24),
    ) -> None:
        self.clock = clock
        self.idle = idle
        self.max_age = max_age
        self._sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, user_name: str, token: str, lang: Lang) -> Session:
        """Start a session for a user who just proved who they are."""
        now = self.clock()
        self._prune(now)
        session = Session(
            sid=new_secret(),
            user_name=user_name,
            token=token,
            csrf=new_secret(),
            lang=lang,
            created_at=now,
            last_seen=now,
        )
        self._sessions[session.sid] = session
        return session

    def get(self, sid: str | None) -> Session | None:
        """The live session with this id (touching it), or None when unknown or expired."""
        if not sid:
            return None
        session = self._sessions.get(sid)
        if session is None:
            return None
        now = self.clock()
        if now - session.last_seen > self.idle or now - session.created_at > self.max_age:
            del self._sessions[sid]
            return None
        touched = replace(session, last_seen=now)
        self._sessions[sid] = touched
        return touched

    def set_lang(self, sid: str, lang: Lang) -> None:
        """Switch a session's interface language."""
        session = self._sessions.get(sid)
        if session is not None:
            self._sessions[sid] = replace(session, lang=lang)

    def drop(self, sid: str | None) -> None:
        """End a session (logout); unknown ids are ignored."""
        if sid:
            self._sessions.pop(sid, None)

    def drop_user(self, user_name: str) -> int:
        """End every session of a user; return how many ended."""
        gone = [s.sid for s in self._sessions.values() if s.user_name == user_name]
        for sid in gone:
            del self._sessions[sid]
        return len(gone)

    def _prune(self, now: datetime) -> None:
        dead = [
            s.sid
            for s in self._sessions.values()
            if now - s.last_seen > self.idle or now - s.created_at > self.max_age
        ]
        for sid in dead:
            del self._sessions[sid]
