"""The hub's REST API under ``/api/v1`` (FastAPI): one router module per resource."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from central_hub import __version__
from central_hub.api import admin, cases, devices, events, grid, metrics
from central_hub.api.errors import install_error_handlers
from central_hub.hub import Hub

__all__ = ["API_PREFIX", "create_app"]

API_PREFIX = "/api/v1"


def create_app(hub: Hub) -> FastAPI:
    """The FastAPI app serving ``hub``; every route needs a bearer token.

    Hub and domain errors that routes raise become HTTP responses in
    :mod:`central_hub.api.errors`.
    """
    app = FastAPI(
        title="xiuhua central hub",
        version=__version__,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.hub = hub
    install_error_handlers(app)
    api = APIRouter(prefix=API_PREFIX)
    for module in (cases, events, devices, grid, metrics, admin):
        api.include_router(module.router)
    app.include_router(api)
    return app
