"""Users, roles and API tokens. Tokens are shown once and stored only as SHA-256 hashes.

Tokens are 256-bit random strings, so a fast hash is enough (no password stretching is
needed for secrets nobody chose). The web console (a later issue) adds cookie sessions
on the same users.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.db.schema import users
from central_hub.domain.workflow import Role
from central_hub.errors import AuthError, ConflictError, NotFoundError

log = logging.getLogger(__name__)

__all__ = ["TOKEN_PREFIX", "User", "UserService", "hash_token"]

TOKEN_PREFIX = "xh_"


class User(BaseModel):
    """An authenticated user."""

    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    role: Role
    disabled: bool = False


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class UserService:
    """Creates users, rotates and checks tokens."""

    def __init__(self, engine: AsyncEngine, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.clock = clock

    async def add(self, name: str, role: Role | str) -> tuple[User, str]:
        """Create a user; return it and its token (shown once). ConflictError if taken."""
        if not 1 <= len(name) <= 64 or not name.isprintable():
            raise ConflictError("a user name has 1-64 printable characters")
        try:
            role = Role(role)
        except ValueError:
            raise ConflictError(
                f"unknown role {role!r}; one of {', '.join(r.value for r in Role)}"
            ) from None
        token = _new_token()
        try:
            async with self.engine.begin() as conn:
                result = await conn.execute(
                    users.insert()
                    .values(
                        name=name,
                        role=role.value,
                        token_hash=hash_token(token),
                        created_at=self.clock(),
                        disabled=False,
                    )
                    .returning(users.c.id)
                )
                user_id = int(result.scalar_one())
        except sa.exc.IntegrityError as exc:
            raise ConflictError(f"user {name!r} already exists") from exc
        log.info("user %s added with role %s", name, role.value)
        return User(id=user_id, name=name, role=role), token

    async def rotate(self, name: str) -> str:
        """Replace a user's token; the old one stops working at once."""
        token = _new_token()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                users.update().where(users.c.name == name).values(token_hash=hash_token(token))
            )
        if result.rowcount == 0:
            raise NotFoundError(f"no user {name!r}")
        return token

    async def set_disabled(self, name: str, disabled: bool) -> None:
        """Disable or re-enable a user."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                users.update().where(users.c.name == name).values(disabled=disabled)
            )
        if result.rowcount == 0:
            raise NotFoundError(f"no user {name!r}")

    async def all(self) -> list[User]:
        """Every user, by name."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(users.select().order_by(users.c.name))).all()
        return [User(id=r.id, name=r.name, role=Role(r.role), disabled=r.disabled) for r in rows]

    async def authenticate(self, token: str | None) -> User:
        """The user holding ``token``; AuthError when missing, unknown or disabled."""
        if not token:
            raise AuthError("missing token")
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(users.select().where(users.c.token_hash == hash_token(token)))
            ).first()
        if row is None:
            raise AuthError("unknown token")
        if row.disabled:
            raise AuthError(f"user {row.name!r} is disabled")
        return User(id=row.id, name=row.name, role=Role(row.role))
