"""Helpers for the console's HTTP tests: a cookie-keeping client and direct case seeding."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from central_hub.db.schema import audits, cases
from central_hub.hub import Hub

HUB_START = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shanghai
MARKET = (28.6472, 121.2615)
_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]*)"')
_FORM_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Client:
    """An httpx client that keeps cookies and knows the page's CSRF token."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.csrf = ""

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        r = await self.http.get(path, **kw)
        m = (
            _CSRF.search(r.text)
            if r.headers.get("content-type", "").startswith("text/html")
            else None
        )
        if m and m.group(1):
            self.csrf = m.group(1)
        return r

    async def post(self, path: str, **kw: Any) -> httpx.Response:
        return await self.http.post(path, **kw)

    async def login(self, name: str, token: str) -> httpx.Response:
        page = await self.http.get("/console/login")
        pre = _FORM_CSRF.search(page.text)
        assert pre is not None
        r = await self.http.post(
            "/console/login", data={"name": name, "token": token, "csrf_token": pre.group(1)}
        )
        await self.get("/console/")
        return r


async def seed_case(
    hub: Hub,
    *,
    stage: str = "reported",
    code: str = "0504",
    source: str = "ai",
    line: str = "enforcement",
    at: datetime = HUB_START,
    lat: float = MARKET[0],
    lon: float = MARKET[1],
    deadline: datetime | None = None,
    cell: str | None = None,
) -> int:
    """Insert a case (and its filing audit) directly; return its id."""
    cell_id = cell or (hub.grid.locate(lat, lon).id if hub.grid.locate(lat, lon) else None)  # type: ignore[union-attr]
    async with hub.engine.begin() as conn:
        result = await conn.execute(
            cases.insert()
            .values(
                source=source,
                code=code,
                major=code[:2],
                category="test",
                title=f"test {code}",
                line=line,
                grid_cell_id=cell_id,
                squad_id=None,
                stage=stage,
                lat=lat,
                lon=lon,
                reported_at=at,
                deadline=deadline,
                limit_kind="working_hours",
                limit_amount=4.0,
                verification_required=False,
                event_count=1,
                last_event_at=at,
                updated_at=at,
                closed_at=at + timedelta(hours=1) if stage in ("closed", "cancelled") else None,
            )
            .returning(cases.c.id)
        )
        case_id = int(result.scalar_one())
        await conn.execute(
            audits.insert().values(
                case_id=case_id,
                at=at,
                from_stage=None,
                to_stage="reported",
                action="file",
                actor="test",
                role="system",
                reason="",
                attachments=[],
            )
        )
    return case_id
