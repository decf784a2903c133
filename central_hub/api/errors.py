"""Hub and domain errors mapped to HTTP once: one handler per error class.

Routes raise the errors of :mod:`central_hub.errors` and :mod:`central_hub.domain.errors`;
the handlers here turn them into the status code and ``{"detail": ...}`` body a client sees.
Starlette picks the handler of the most specific class in the exception's MRO, so
:class:`ForbiddenError` (an :class:`AuthError`) answers 403, not 401.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from central_hub.domain.errors import (
    MetricsError,
    ModerationRefused,
    TransitionRefused,
    UnknownCell,
)
from central_hub.errors import (
    AuthError,
    BrokerError,
    CommandError,
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    TooLargeError,
    TooManyAttempts,
)

__all__ = ["STATUS_OF", "install_error_handlers"]

#: The status code of each error class whose message is the response's ``detail``.
STATUS_OF: dict[type[Exception], int] = {
    NotFoundError: status.HTTP_404_NOT_FOUND,
    UnknownCell: status.HTTP_404_NOT_FOUND,
    ConflictError: status.HTTP_409_CONFLICT,
    CommandError: status.HTTP_422_UNPROCESSABLE_CONTENT,
    InvalidInputError: status.HTTP_422_UNPROCESSABLE_CONTENT,
    MetricsError: status.HTTP_422_UNPROCESSABLE_CONTENT,
    TooLargeError: status.HTTP_413_CONTENT_TOO_LARGE,
    ForbiddenError: status.HTTP_403_FORBIDDEN,
    BrokerError: status.HTTP_503_SERVICE_UNAVAILABLE,
}

Handler = Callable[[Request, Exception], Awaitable[JSONResponse]]


def _detail(code: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    # The body FastAPI's HTTPException produces, so clients see the same JSON as before.
    return JSONResponse({"detail": detail}, status_code=code, headers=headers)


def _plain(code: int) -> Handler:
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        return _detail(code, str(exc))

    return handle


async def _unauthorized(_request: Request, exc: Exception) -> JSONResponse:
    return _detail(status.HTTP_401_UNAUTHORIZED, str(exc), {"WWW-Authenticate": "Bearer"})


async def _too_many(_request: Request, exc: Exception) -> JSONResponse:
    wait = exc.retry_after_s if isinstance(exc, TooManyAttempts) else 60.0
    return _detail(
        status.HTTP_429_TOO_MANY_REQUESTS, str(exc), {"Retry-After": str(max(1, round(wait)))}
    )


async def _refused(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, TransitionRefused):  # registered for that class only
        raise TypeError(f"not a refused transition: {exc!r}") from exc
    code = status.HTTP_403_FORBIDDEN if exc.kind == "forbidden" else status.HTTP_409_CONFLICT
    return _detail(code, exc.reason)


async def _moderation_refused(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, ModerationRefused):  # registered for that class only
        raise TypeError(f"not a refused moderation: {exc!r}") from exc
    codes = {"forbidden": status.HTTP_403_FORBIDDEN, "conflict": status.HTTP_409_CONFLICT}
    return _detail(codes.get(exc.kind, status.HTTP_422_UNPROCESSABLE_CONTENT), exc.reason)


def install_error_handlers(app: FastAPI) -> None:
    """Register one exception handler per hub and domain error class on ``app``."""
    for cls, code in STATUS_OF.items():
        app.add_exception_handler(cls, _plain(code))
    app.add_exception_handler(AuthError, _unauthorized)
    app.add_exception_handler(TooManyAttempts, _too_many)
    app.add_exception_handler(TransitionRefused, _refused)
    app.add_exception_handler(ModerationRefused, _moderation_refused)
