"""Mounting the console on the hub's FastAPI app, and turning refusals into responses."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from central_hub.console import (
    api_docs_routes,
    auth_routes,
    box_routes,
    case_routes,
    device_routes,
    live_routes,
    map_routes,
    metrics_routes,
    notice_routes,
    object_routes,
    rollout_routes,
    service_day_routes,
    vendor_routes,
    voice_routes,
)
from central_hub.console.i18n import Translator
from central_hub.console.metrics_routes import default_view
from central_hub.console.present import format_bytes
from central_hub.console.render import page
from central_hub.console.security import CsrfRefused, Forbidden, NeedLogin, TooLarge, csrf_protect
from central_hub.console.settings import ConsoleSettings
from central_hub.console.state import ConsoleState, console_state
from central_hub.hub import Hub

log = logging.getLogger(__name__)

__all__ = ["ROUTE_MODULES", "SECURITY_HEADERS", "STATIC_DIR", "console_routes", "install_console"]

#: CSS and JS shipped with the package (public: they hold no data).
STATIC_DIR = Path(__file__).with_name("static")
#: Headers on every console response: no framing, no sniffing, scripts only from here
#: (inline styles are allowed: badges take their stage colour from a style attribute).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
#: The modules whose routers make up the console.
ROUTE_MODULES = (
    auth_routes,
    map_routes,
    case_routes,
    device_routes,
    metrics_routes,
    object_routes,
    rollout_routes,
    box_routes,
    api_docs_routes,
    vendor_routes,
    service_day_routes,
    notice_routes,
    live_routes,
    voice_routes,
)


def console_routes(prefix: str = "/console") -> list[tuple[str, str]]:
    """Every (method, path) the console serves (for tests that walk them all)."""
    out: list[tuple[str, str]] = []
    for module in ROUTE_MODULES:
        for route in module.router.routes:
            if isinstance(route, APIRoute):
                out.extend((method, prefix + route.path) for method in sorted(route.methods or ()))
    return sorted(out)


def _wants_json(request: Request, state: ConsoleState) -> bool:
    path = request.url.path
    prefix = state.settings.prefix
    return (
        path.startswith((prefix + "/data/", prefix + "/live"))
        or "application/json" in request.headers.get("accept", "")
        or request.headers.get("content-type", "").startswith("application/json")
    )


def _lang_of(request: Request, state: ConsoleState) -> Translator:
    who = getattr(request.state, "viewer", None)
    return who.t if who is not None else Translator(state.settings.default_lang)


async def _need_login(request: Request, exc: Exception) -> Response:
    state = console_state(request)
    if _wants_json(request, state) or request.method != "GET":
        return JSONResponse({"detail": "log in first"}, status_code=401)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    from urllib.parse import quote

    return RedirectResponse(state.url(f"/login?next={quote(target)}"), status_code=303)


async def _forbidden(request: Request, exc: Exception) -> Response:
    state = console_state(request)
    t = _lang_of(request, state)
    if _wants_json(request, state):
        return JSONResponse({"detail": f"{t('err.forbidden')} ({exc})"}, status_code=403)
    return page(
        request,
        getattr(request.state, "viewer", None),
        "error.html",
        403,
        message=f"{t('err.forbidden')} ({exc})",
    )


async def _csrf(request: Request, exc: Exception) -> Response:
    state = console_state(request)
    t = _lang_of(request, state)
    log.warning("refused %s %s: %s", request.method, request.url.path, exc)
    if _wants_json(request, state):
        return JSONResponse({"detail": t("err.csrf")}, status_code=403)
    return page(request, None, "error.html", 403, message=t("err.csrf"))


async def _too_large(request: Request, exc: Exception) -> Response:
    state = console_state(request)
    t = _lang_of(request, state)
    assert isinstance(exc, TooLarge)
    message = t("upload.too_big", limit=format_bytes(exc.limit), size=format_bytes(exc.size))
    if _wants_json(request, state):
        return JSONResponse({"detail": message}, status_code=413)
    return page(request, None, "error.html", 413, message=message)


class SecurityHeaders:
    """Puts :data:`SECURITY_HEADERS` on every response under ``prefix``.

    A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` ran every request of the
    hub (the API's and Open311's too) through an extra task and body stream, a tenth of
    the hub's time under a burst of citizen reports.
    """

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(SECURITY_HEADERS)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_console(
    app: FastAPI, hub: Hub, settings: ConsoleSettings | None = None
) -> ConsoleState:
    """Mount the web console on ``app`` under ``settings.prefix`` (``/console``).

    Adds the pages, their data routes and SSE stream, the static files, a redirect from
    ``/`` and the handlers that turn refusals into a login redirect, 401, 403 or 413.
    Returns the console's state (its ``feed.close()`` ends live streams at shutdown).
    """
    settings = settings or ConsoleSettings()
    state = ConsoleState.build(hub, settings)
    app.state.console = state
    router = APIRouter(prefix=settings.prefix, dependencies=[Depends(csrf_protect)])
    for module in ROUTE_MODULES:
        router.include_router(module.router)
    app.include_router(router, include_in_schema=False)
    app.mount(settings.prefix + "/static", StaticFiles(directory=STATIC_DIR), name="console-static")

    @app.get("/", include_in_schema=False)
    async def _root() -> RedirectResponse:
        return RedirectResponse(state.url("/"), status_code=303)

    app.add_middleware(SecurityHeaders, prefix=settings.prefix)

    app.add_exception_handler(NeedLogin, _need_login)
    app.add_exception_handler(Forbidden, _forbidden)
    app.add_exception_handler(CsrfRefused, _csrf)
    app.add_exception_handler(TooLarge, _too_large)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass  # mounted outside a loop (tests): warmed on the first map page instead
    else:
        state.metrics.warm(default_view(state))  # statistics open at once from the start
    log.info("console mounted at %s", settings.prefix)
    return state
