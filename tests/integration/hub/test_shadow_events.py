"""A shadow candidate's would-be events at the hub: stored, never filed, out of the event
list, and compared per camera with the real events' verdicts (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from central_hub.api import create_app
from central_hub.db.schema import cases
from central_hub.domain.labels import Verdict
from central_hub.domain.workflow import Action, Role
from central_hub.hub import Hub
from central_hub.services.shadow import shadow_report
from central_hub.testing import FakeClock, ListSource, inbound, make_event
from central_hub.workers.ingest import IngestWorker
from edge_agent.protocol import ModelRef

pytestmark = pytest.mark.integration

CANDIDATE = ModelRef(name="street-detector", version="1.1.0")


async def test_shadow_events_are_kept_apart_and_compared(
    hub: Hub, clock: FakeClock, tmp_path: Path
) -> None:
    worker = IngestWorker(hub.engine, ListSource(), hub.evidence, hub.filer, clock)
    t0 = clock()
    real = [
        make_event(code="0504", seq=1, at=t0),
        make_event(code="0505", seq=2, at=t0 + timedelta(minutes=1), lat=28.6455, lon=121.2650),
    ]
    shadow = [
        make_event(code="0504", seq=0, at=t0 + timedelta(seconds=20)).model_copy(
            update={"shadow": True, "model": CANDIDATE}
        ),
        make_event(code="0501", seq=0, at=t0 + timedelta(seconds=40)).model_copy(
            update={"shadow": True, "model": CANDIDATE}
        ),
    ]
    await worker.process([inbound(e) for e in (*real, *shadow)])
    async with hub.engine.connect() as conn:
        case_count = (
            await conn.execute(sa.select(sa.func.count()).select_from(cases))
        ).scalar_one()
    assert case_count == 2  # the shadow events filed nothing
    listed = await hub.records.events(limit=100)
    assert {e.event_id for e in listed} == {e.event_id for e in real}
    shadows = await hub.records.events(shadow=True, limit=100)
    assert {e.event_id for e in shadows} == {e.event_id for e in shadow}
    assert all(e.case_id is None and e.shadow for e in shadows)
    # An operator calls the shop-front report a wrong object and registers the parking one.
    operator, _ = await hub.users.add("op", Role.OPERATOR)
    by_code = {e.code: e.case_id for e in listed}
    await hub.cases.transition(
        by_code["0504"], Action.CANCEL, operator, verdict=Verdict.WRONG_OBJECT
    )
    await hub.cases.transition(by_code["0505"], Action.START_VERIFY, operator)
    await hub.cases.transition(by_code["0505"], Action.VERIFY, operator)
    rows = await shadow_report(hub.engine, t0 - timedelta(hours=1), t0 + timedelta(hours=1))
    assert len(rows) == 1
    row = rows[0]
    assert (row.device_id, row.camera_id) == ("pole-1", "cam-1")
    assert row.shadow_models == ["street-detector@1.1.0"]
    assert (row.real, row.true_positives, row.false_alarms, row.shadow) == (2, 1, 1, 2)
    # It repeats the false alarm, misses the parking car, and raises a vendor report nobody saw.
    assert (row.kept, row.missed, row.repeated, row.spared, row.new) == (0, 1, 1, 0, 1)
    _, token = await hub.users.add("boss", Role.ADMIN)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(hub)), base_url="http://hub"
    ) as http:
        auth = {"Authorization": f"Bearer {token}"}
        api = await http.get(
            "/api/v1/shadow",
            headers=auth,
            params={
                "since": (t0 - timedelta(hours=1)).isoformat(),
                "until": (t0 + timedelta(hours=1)).isoformat(),
            },
        )
        assert api.status_code == 200, api.text
        assert api.json()[0]["repeated"] == 1
        listed_api = await http.get("/api/v1/events", headers=auth, params={"shadow": "true"})
        assert len(listed_api.json()) == 2
