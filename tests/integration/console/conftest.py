"""A hub on SQLite without MQTT, its app with the console, and logged-in clients."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from central_hub.api import create_app
from central_hub.console import ConsoleSettings, install_console
from central_hub.domain.workflow import Role
from central_hub.hub import Hub, build_hub
from central_hub.settings import HubSettings
from central_hub.testing import FakeClock, RecordingPublisher

# Helpers sit beside this file; tests import them by name (tests/ is not a package).
sys.path.insert(0, str(Path(__file__).parent))
from console_http import HUB_START, Client


@pytest.fixture
def clock() -> FakeClock:
    """A hand-moved clock on a Monday morning in Shanghai."""
    return FakeClock(HUB_START)


@pytest.fixture
async def hub(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Hub]:
    """A hub on SQLite; commands go to a recording publisher."""
    built = await build_hub(
        HubSettings(data_dir=tmp_path / "hub"),
        clock=clock,
        mqtt=False,
        publisher=RecordingPublisher(),
    )
    yield built
    await built.close()


@pytest.fixture
def app(hub: Hub) -> FastAPI:
    """The hub's API with the console mounted (small upload cap for tests)."""
    application = create_app(hub)
    install_console(application, hub, ConsoleSettings(upload_max_bytes=300_000, live_poll_s=0.05))
    return application


@pytest.fixture
async def tokens(hub: Hub) -> dict[str, str]:
    """A user per role, named after it; their tokens."""
    out = {}
    for role in Role:
        _, token = await hub.users.add(role.value, role)
        out[role.value] = token
    return out


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[Client]:
    """A fresh, logged-out client."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub"
    ) as http:
        yield Client(http)


@pytest.fixture
async def as_role(app: FastAPI, tokens: dict[str, str]) -> AsyncIterator[Any]:
    """``await as_role("operator")``: a client logged in as that role."""
    opened: list[httpx.AsyncClient] = []

    async def make(role: str) -> Client:
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub")
        opened.append(http)
        c = Client(http)
        r = await c.login(role, tokens[role])
        assert r.status_code == 303, r.text
        return c

    yield make
    for http in opened:
        await http.aclose()
