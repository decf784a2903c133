"""The hub's REST API under ``/api/v1`` (FastAPI): one router module per resource."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, FastAPI, Request, Response, status
from fastapi.responses import JSONResponse, RedirectResponse

from central_hub import __version__
from central_hub.adapters.prometheus import CONTENT_TYPE, HubMetrics
from central_hub.api import (
    admin,
    cases,
    citizen_reports,
    devices,
    events,
    grid,
    metrics,
    notices,
    open311,
    rollouts,
    service_objects,
    vendor_file,
    voice,
)
from central_hub.api.deps import CurrentUser
from central_hub.api.errors import install_error_handlers
from central_hub.api.open311 import Open311Limits
from central_hub.hub import Hub

__all__ = ["API_PREFIX", "create_app"]

API_PREFIX = "/api/v1"


def create_app(
    hub: Hub, *, metrics_token: str | None = None, open311_limits: Open311Limits | None = None
) -> FastAPI:
    """The FastAPI app serving ``hub``; every API route needs a user's bearer token.

    Hub and domain errors that routes raise become HTTP responses in
    :mod:`central_hub.api.errors`. ``GET /metrics`` serves the operations figures in
    Prometheus' format (:mod:`central_hub.adapters.prometheus`), to anyone that can reach
    the port unless ``metrics_token`` is set, which it then wants as a bearer token.
    """
    app = FastAPI(
        title="xiuhua central hub",
        version=__version__,
        # Neither the document nor a docs page is public (issue #17, finding 9): the
        # document wants a token, and the reference is a console page for signed-in users.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.hub = hub
    install_error_handlers(app)
    # Citizens' reports: Open311 GeoReport v2 with its own api_keys and error format,
    # outside the bearer-token API and its OpenAPI document. Its routes come first: a
    # request is matched against the routes in order, and reaching Open311's past the
    # API's cost 1.4 ms of a burst's every request (measured, bench/citizens.py).
    open311.install(app, hub, open311_limits)
    api = APIRouter(prefix=API_PREFIX)
    for module in (
        cases,
        citizen_reports,
        events,
        devices,
        grid,
        metrics,
        admin,
        rollouts,
        notices,
        service_objects,
        voice,
    ):
        api.include_router(module.router)
    # The vendor file's routes take the roles the city allows (a setting), so they are
    # built for this hub.
    api.include_router(vendor_file.router_for(hub.vendor_file.roles))
    app.include_router(api)
    rollouts.install_downloads(app)
    voice.install_clip_downloads(app)
    notices.install_receipts(app)

    @app.get(f"{API_PREFIX}/openapi.json", include_in_schema=False)
    async def openapi_document(_user: CurrentUser) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get(f"{API_PREFIX}/docs", include_in_schema=False)
    async def docs_page() -> RedirectResponse:
        # The reference lives in the console (which asks for a login when needed).
        return RedirectResponse("/console/api-docs", status_code=status.HTTP_307_TEMPORARY_REDIRECT)

    ops = HubMetrics(hub.engine, hub.ingest.stats if hub.ingest is not None else None)
    app.state.ops_metrics = ops

    @app.get("/metrics", include_in_schema=False, response_model=None)
    async def prometheus_metrics(request: Request) -> Response:
        if metrics_token is not None:
            given = request.headers.get("authorization", "")
            if not secrets.compare_digest(given, f"Bearer {metrics_token}"):
                return Response("metrics need the metrics token\n", status.HTTP_401_UNAUTHORIZED)
        return Response(await ops.render(), media_type=CONTENT_TYPE)

    return app
