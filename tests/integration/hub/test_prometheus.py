"""The hub's /metrics: Prometheus text that moves as ingest files events and devices report."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from central_hub.adapters.evidence import EvidenceStore
from central_hub.api import create_app
from central_hub.hub import Hub
from central_hub.settings import HubSettings
from central_hub.testing import (
    FakeClock,
    ListSource,
    inbound,
    make_event,
    make_status,
    running_hub,
)
from central_hub.workers.ingest import IngestWorker
from simulators.device import SimDevice
from simulators.mosquitto import MosquittoBroker, free_port
from simulators.polling import eventually

pytestmark = pytest.mark.integration


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def test_metrics_move_with_ingest(hub: Hub, clock: FakeClock, tmp_path: Path) -> None:
    worker = IngestWorker(
        hub.engine, ListSource(), EvidenceStore(tmp_path / "ev"), hub.filer, clock
    )
    hub.ingest = worker
    app = create_app(hub, metrics_token="s3cret")
    app.state.ops_metrics.refresh_s = 0.0
    auth = {"Authorization": "Bearer s3cret"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub"
    ) as api:
        assert (await api.get("/metrics")).status_code == 401
        assert (
            await api.get("/metrics", headers={"Authorization": "Bearer no"})
        ).status_code == 401
        first = await api.get("/metrics", headers=auth)
        assert first.status_code == 200
        assert first.headers["content-type"].startswith("text/plain; version=0.0.4")
        before = _samples(first.text)
        assert before[("xh_hub_cases", (("stage", "reported"),))] == 0
        assert before[("xh_hub_ingest_events_new_total", ())] == 0

        clock.advance(seconds=30)
        events = [
            inbound(make_event("pole-1", seq=n + 1, at=clock.now, lat=28.641 + 0.001 * n))
            for n in range(3)
        ]
        await worker.process([*events, inbound(make_status("pole-1", "online", clock.now))])
        clock.advance(seconds=2)
        await worker.process(
            [inbound(make_event("pole-1", seq=9, at=clock.now - timedelta(seconds=45)))]
        )
        after = _samples((await api.get("/metrics", headers=auth)).text)

    assert after[("xh_hub_ingest_events_new_total", ())] == 4
    assert after[("xh_hub_ingest_messages_total", (("channel", "event"),))] == 4
    assert after[("xh_hub_ingest_messages_total", (("channel", "status"),))] == 1
    assert after[("xh_hub_ingest_write_seconds_count", ())] == 2
    assert after[("xh_hub_ingest_write_seconds_sum", ())] > 0
    assert after[("xh_hub_ingest_lag_seconds", ())] == pytest.approx(45.0)
    opened = sum(v for (name, labels), v in after.items() if name == "xh_hub_cases")
    assert opened == 4  # four spots more than a merge radius apart
    assert after[("xh_hub_units", (("state", "online"),))] == 1
    assert after[("xh_hub_db_ping_seconds", ())] > 0
    assert after[("xh_hub_dead_letters", ())] == 0


async def test_a_worker_without_the_api_serves_metrics_on_its_own_port(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    port = free_port()
    settings = HubSettings(
        data_dir=tmp_path / "hub",
        mqtt_port=mosquitto.port,
        mqtt_client_id="hub-metrics-test",
        share_group="",
        metrics_port=port,
    )
    async with running_hub(settings):
        device = SimDevice("pole-m", port=mosquitto.port)
        await asyncio.to_thread(device.start)
        await asyncio.to_thread(device.online)
        device.close()

        def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            try:
                return _samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text)
            except httpx.HTTPError:
                return {}

        def status_counted() -> bool:
            found = scrape()
            return found.get(("xh_hub_ingest_messages_total", (("channel", "status"),)), 0) >= 1

        assert await eventually(lambda: asyncio.to_thread(status_counted), 15, every_s=0.2)
        assert await eventually(
            lambda: asyncio.to_thread(
                lambda: scrape().get(("xh_hub_units", (("state", "online"),))) == 1
            ),
            15,
            every_s=0.2,
        ), "the refresh task did not count the unit online"
    assert await asyncio.to_thread(scrape) == {}  # the endpoint closes with the worker
