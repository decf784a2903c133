"""The console's service-day page: upcoming days, what each unit was sent, and the events
held back, for operators, dispatchers and admins; handlers are refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from central_hub.hub import Hub, build_hub
from central_hub.services.devices import apply_telemetry
from central_hub.services.service_days import ServiceDayGate
from central_hub.settings import HubSettings
from central_hub.testing import FakeClock, ListSource, RecordingPublisher, inbound, make_event
from central_hub.workers.ingest import IngestWorker
from edge_agent.protocol import Telemetry

pytestmark = pytest.mark.integration

# 2026-11-28 is the Saturday after the console's clock (Monday 2026-11-23 09:00 Shanghai).
DOC = """\
version: 1
timezone: Asia/Shanghai
service_days:
  - name: 县前街便民服务日
    zones: [pole-1/cam-1/door-line]
    suspends: [shop_front, "0501"]
    dates:
      - {date: 2026-11-28, from: "08:00", to: "17:00"}
  - name: far away
    zones: [pole-1/cam-1]
    suspends: [vendor]
    dates:
      - {date: 2027-09-11}
"""


@pytest.fixture
async def hub(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Hub]:
    """The console's hub, with a service-day calendar."""
    path = tmp_path / "service_days.yaml"
    path.write_text(DOC, encoding="utf-8")
    built = await build_hub(
        HubSettings(data_dir=tmp_path / "hub", service_days_path=path),
        clock=clock,
        mqtt=False,
        publisher=RecordingPublisher(),
    )
    yield built
    await built.close()


async def test_readers_see_upcoming_days_units_and_held_events(
    as_role: Any, hub: Hub, tmp_path: Path
) -> None:
    await hub.devices.register("pole-1", "pole")
    op = await as_role("operator")
    r = await op.get("/console/service-days")
    assert r.status_code == 200
    assert 'data-nav="service-days"' in r.text
    assert 'data-name="县前街便民服务日"' in r.text
    assert "2026-11-28 08:00–17:00" in r.text
    assert "shop_front, 0501" in r.text
    assert "pole-1/cam-1/door-line" in r.text
    assert "far away" not in r.text  # beyond the 120 days shown
    assert 'data-device="pole-1"' in r.text
    assert "待下发" in r.text  # not pushed yet
    assert "没有因便民服务日未立案的事件" in r.text

    await hub.service_days.push()
    event = make_event("pole-1", code="0504", at=datetime(2026, 11, 28, 2, 0, tzinfo=UTC))
    worker = IngestWorker(
        hub.engine,
        ListSource(),
        hub.evidence,
        hub.filer,
        lambda: datetime(2026, 11, 28, 3, 0, tzinfo=UTC),
        held_back=ServiceDayGate(hub.service_days.calendar, hub.grid),
    )
    await worker.process([inbound(event)])
    r = await op.get("/console/service-days?days=400")
    assert "已下发" in r.text
    assert "far away" in r.text
    assert f'data-event="{event.event_id}"' in r.text
    assert "2026-11-28 10:00:00" in r.text  # detected, in the city's time
    assert "service day &#39;县前街便民服务日&#39; suspends shop_front, 0501" in r.text


async def test_handlers_are_refused_and_see_no_link(as_role: Any) -> None:
    handler = await as_role("handler")
    r = await handler.get("/console/service-days")
    assert r.status_code == 403
    home = await handler.get("/console/cases")
    assert 'data-nav="service-days"' not in home.text


async def test_a_units_page_says_which_rules_a_service_day_keeps_silent(
    as_role: Any, hub: Hub, clock: FakeClock
) -> None:
    tel = Telemetry(
        device_id="pole-1",
        ts=clock.now,
        uptime_s=10.0,
        fps=5.0,
        inference_ms=20.0,
        outbox_depth=0,
        outbox_bytes=0,
        evicted=0,
        exempted={"cam-1/vendors": "县前街便民服务日"},
    )
    async with hub.engine.begin() as conn:
        await apply_telemetry(conn, tel, clock.now)
    op = await as_role("operator")
    r = await op.get("/console/devices/pole-1")
    assert r.status_code == 200
    assert '<dd id="h-exempted">cam-1/vendors: 县前街便民服务日</dd>' in r.text
