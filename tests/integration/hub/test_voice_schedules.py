"""Scheduled announcements on SQLite and PostgreSQL: a schedule for a grid area announces
each slot once through the notices' speaker channel (one speaker.say per loudspeaker of
the area), with two workers passing at once, after a restart, and after a worker killed
between queueing and recording; a slot missed while the hub was down is skipped; a bad
schedule is refused naming the field; through the API."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import sqlalchemy as sa

from central_hub.api import create_app
from central_hub.db.schema import notices, voice_schedule_slots
from central_hub.domain.notices import Audience, NoticeChannel
from central_hub.domain.workflow import Role
from central_hub.hub import Hub
from central_hub.services.notices import NoticeRequest
from central_hub.services.voice_schedules import CLAIM_LEASE, VoiceSchedules
from central_hub.testing import FakeClock, ListSource, inbound, make_event
from central_hub.workers.ingest import IngestWorker

pytestmark = pytest.mark.integration


async def _notices_by_schedule(hub: Hub) -> list[str]:
    async with hub.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(notices.c.created_by)
            .where(notices.c.created_by.like("schedule:%"))
            .order_by(notices.c.created_by)
        )
        return list(rows.scalars())


async def test_each_slot_is_announced_once_to_the_areas_speakers(
    hub: Hub, clock: FakeClock
) -> None:
    # HUB_START: Monday 2026-11-23 09:00 in Shanghai.
    for device in ("pole-1", "pole-far"):
        await hub.devices.register(device, "pole")
    worker = IngestWorker(hub.engine, ListSource(), hub.evidence, hub.filer, clock)
    await worker.process(
        [
            inbound(make_event("pole-1", at=clock.now)),
            inbound(make_event("pole-far", at=clock.now, lat=28.70, lon=121.30)),
        ]
    )
    cell = hub.grid.locate(28.6472, 121.2615)
    assert cell is not None
    await hub.notices.create_template("tidy", "", "{street}请保持整洁。", ["street"], actor="admin")
    _, operator = await hub.users.add("op", Role.OPERATOR)
    _, dispatcher = await hub.users.add("disp", Role.DISPATCHER)
    auth = {"Authorization": f"Bearer {operator}"}
    body = {
        "area": cell.id,
        "template": "tidy",
        "variables": {"street": "县前街"},
        "times": ["17:00", "09:30"],
        "weekdays": [1, 2, 3, 4, 5],
        "start_date": "2026-11-23",
    }
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(hub)), base_url="http://hub"
    ) as http:
        for change, reason in (
            ({"times": ["9:3O"]}, "times[0]"),
            ({"weekdays": [0]}, "weekdays"),
            ({"end_date": "2026-11-01"}, "before start_date"),
            ({"area": "nowhere"}, "nowhere"),
            ({"template": "missing"}, "missing"),
        ):
            r = await http.post("/api/v1/voice/schedules", json={**body, **change}, headers=auth)
            assert r.status_code == 422, (change, r.text)
            assert reason in r.text
        r = await http.post(
            "/api/v1/voice/schedules",
            json=body,
            headers={"Authorization": f"Bearer {dispatcher}"},
        )
        assert r.status_code == 403
        r = await http.post("/api/v1/voice/schedules", json=body, headers=auth)
        assert r.status_code == 201, r.text
        made = r.json()
        assert made["times"] == ["09:30", "17:00"]
        assert made["created_by"] == "op"

        # Two workers pass at 09:31 at the same moment: one announcement.
        one, two = (VoiceSchedules(hub.engine, hub.notices, clock) for _ in range(2))
        assert await one.run_due() == 0  # 09:00: nothing due yet
        clock.advance(minutes=31)
        sent = await asyncio.gather(one.run_due(), two.run_due())
        assert sorted(sent) == [0, 1]
        assert await _notices_by_schedule(hub) == [f"schedule:{made['id']}@2026-11-23T01:30Z"]
        [notice] = await hub.notices.recent(limit=1)
        [delivery] = await hub.notices.deliveries(notice.id)
        assert delivery.address == "pole-1"  # the area's speaker only
        assert notice.body == "县前街请保持整洁。"
        # A restarted worker finds the slot taken.
        clock.advance(minutes=5)
        assert await VoiceSchedules(hub.engine, hub.notices, clock).run_due() == 0

        # A worker killed after queueing the 17:00 notice, before recording it: the slot's
        # claim has no notice; after the lease the next pass finds the notice by its actor.
        actor = f"schedule:{made['id']}@2026-11-23T09:00Z"
        await hub.notices.send_many(
            [NoticeRequest("tidy", {"street": "县前街"}, Audience("area", cell.id),
                           NoticeChannel.SPEAKER)],
            actor=actor,
        )  # fmt: skip
        clock.now = clock.now.replace(hour=9, minute=0, second=0)
        async with hub.engine.begin() as conn:
            await conn.execute(
                voice_schedule_slots.insert().values(
                    schedule_id=made["id"], slot_at=clock.now, claimed_at=clock.now
                )
            )
        clock.advance(seconds=30)
        assert await one.run_due() == 0  # the claim is fresh: its worker may be alive
        clock.advance(seconds=CLAIM_LEASE.total_seconds())
        assert await two.run_due() == 1
        assert (await _notices_by_schedule(hub)).count(actor) == 1

        # The hub down over Tuesday's 09:30 until 18:00: those slots are not announced late.
        clock.now = clock.now.replace(day=24, hour=10, minute=0)  # Tuesday 18:00 Shanghai
        assert await one.run_due() == 0
        assert len(await _notices_by_schedule(hub)) == 2

        listed = (await http.get("/api/v1/voice/schedules", headers=auth)).json()
        assert [s[0][:16] for s in listed[0]["sent"]] == ["2026-11-23T09:00", "2026-11-23T01:30"]
        r = await http.post(f"/api/v1/voice/schedules/{made['id']}/cancel", headers=auth)
        assert r.json()["cancelled_at"] is not None
        clock.now = clock.now.replace(day=25, hour=1, minute=31)  # Wednesday 09:31
        assert await one.run_due() == 0
