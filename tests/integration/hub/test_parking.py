"""The move-your-car loop on SQLite and PostgreSQL: remind, wait, recheck, decide."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from central_hub.adapters.notice_channels import WebhookSender
from central_hub.api import API_PREFIX, create_app
from central_hub.db.schema import audits, cases, commands, notices
from central_hub.domain.notices import NoticeChannel, Recipient
from central_hub.domain.parking import CheckState
from central_hub.domain.workflow import Action, Role, Stage
from central_hub.hub import Hub
from central_hub.services.vehicles import VehicleRegistry
from central_hub.testing import TINY_JPEG, FakeClock, ListSource, inbound, make_event
from central_hub.workers.ingest import IngestWorker
from central_hub.workers.notices import ChannelLimits, NoticeWorker
from edge_agent.protocol import CommandAck, Event, Plate, Snapshot, SnapshotReply
from simulators.sms_gateway import GatewayRequest, SmsGateway

DEVICE = "pole-parking-01"
WAIT = timedelta(minutes=10)
SECRET = b"shared-with-the-gateway"
#: The gateway refuses this number for good (400), as a real one refuses a dead number.
DEAD_NUMBER = "13800000009"
# Five spots far enough apart to be five cases (around the parking pole of the sample district).
SPOTS = [
    (28.6455, 121.2650),
    (28.6460, 121.2660),
    (28.6450, 121.2640),
    (28.6465, 121.2645),
    (28.6448, 121.2656),
]


@pytest.fixture
async def texts(hub: Hub) -> AsyncIterator[tuple[SmsGateway, NoticeWorker]]:
    """A real stand-in SMS gateway and the hub's notice worker sending to it."""

    def script(request: GatewayRequest) -> int:
        return 400 if request.body.get("to") == DEAD_NUMBER else 200

    gateway = SmsGateway(SECRET, script=script)
    port = await gateway.start()
    sender = WebhookSender(
        f"http://127.0.0.1:{port}/sms?to={{phone}}&ref={{id}}", SECRET, timeout_s=5
    )
    worker = NoticeWorker(
        hub.notices,
        {NoticeChannel.SMS: sender},
        {NoticeChannel.SMS: ChannelLimits(1000, 1000, 8)},
    )
    yield gateway, worker
    await gateway.stop()


def parked(plate: str | None, seq: int, at: datetime, spot: tuple[float, float]) -> Event:
    event = make_event(DEVICE, code="0505", seq=seq, at=at, lat=spot[0], lon=spot[1])
    return event.model_copy(
        update={
            "kind": "illegal_parking",
            "zone": "no_parking",
            "camera_id": "parking-mast",
            "plate": Plate(text=plate, score=0.9) if plate else None,
        }
    )


async def setup(hub: Hub, clock: FakeClock) -> tuple[IngestWorker, dict[str, int]]:
    """Two known owners with phones, one whose number is dead, one unknown plate, one unread
    plate: five cases."""
    assert hub.parking is not None
    hub.parking.can_text = True
    await hub.devices.register(DEVICE, "pole")
    report = await VehicleRegistry(hub.engine, clock).import_rows(
        [
            (2, {"plate": "浙J·A12345", "owner_name": "王某", "phone": "13800000001"}),
            (3, {"plate": "浙J·B67890", "owner_name": "李某", "phone": "13800000002"}),
            (4, {"plate": "浙J·C24680", "owner_name": "张某", "phone": DEAD_NUMBER}),
        ],
        "cars.csv",
        "admin",
    )
    assert not report.problems
    worker = IngestWorker(hub.engine, ListSource(), hub.evidence, hub.filer, clock)
    plates = ["浙J·A12345", "浙J·B67890", "浙A·99999", None, "浙J·C24680"]
    events = [parked(p, i + 1, clock(), SPOTS[i]) for i, p in enumerate(plates)]
    await worker.process([inbound(e) for e in events])
    async with hub.engine.connect() as conn:
        rows = (await conn.execute(sa.select(cases.c.id, cases.c.stage))).all()
    assert len(rows) == 5
    assert {r.stage for r in rows} == {"reported"}
    ids = {}
    for event in events:
        found = await hub.records.event(event.event_id)
        assert found.case_id is not None
        ids[event.plate.text if event.plate else "unread"] = found.case_id
    return worker, ids


async def answer(
    worker: IngestWorker, clock: FakeClock, cmd_id: str, state: str, detail: str
) -> None:
    """The unit's frame and ack, as they come in over MQTT."""
    frame = SnapshotReply(
        device_id=DEVICE,
        cmd_id=cmd_id,
        camera_id="parking-mast",
        snapshot=Snapshot.model_validate(
            {"jpeg_b64": base64.b64encode(TINY_JPEG).decode(), "width": 64, "height": 48}
        ),
        ts=clock(),
    )
    ack = CommandAck.model_validate(
        {"cmd_id": cmd_id, "device_id": DEVICE, "state": state, "detail": detail, "ts": clock()}
    )
    await worker.process([inbound(frame), inbound(ack)])


async def stage_of(hub: Hub, case_id: int) -> str:
    async with hub.engine.connect() as conn:
        stage: str = (
            await conn.execute(sa.select(cases.c.stage).where(cases.c.id == case_id))
        ).scalar_one()
    return stage


async def test_one_car_leaves_after_the_reminder_and_one_stays(
    hub: Hub, clock: FakeClock, texts: tuple[SmsGateway, NoticeWorker]
) -> None:
    assert hub.parking is not None
    gateway, sender = texts
    worker, ids = await setup(hub, clock)
    a, b, dead = ids["浙J·A12345"], ids["浙J·B67890"], ids["浙J·C24680"]

    first = await hub.parking.tick()
    assert (first.reminded, first.to_operators) == (3, 2)
    assert [await stage_of(hub, i) for i in (a, b)] == ["reminded", "reminded"]
    # Unknown owner and unread plate: the operators' verification queue, with why.
    assert await stage_of(hub, ids["浙A·99999"]) == "reported"
    unknown = await hub.parking.check(ids["浙A·99999"])
    assert unknown
    assert unknown.state is CheckState.TO_OPERATORS
    assert "not in the vehicle registry" in unknown.reason
    unread = await hub.parking.check(ids["unread"])
    assert unread
    assert "no plate was read" in unread.reason
    # One text per owner, tied to the case, naming the plate and the wait.
    async with hub.engine.connect() as conn:
        queued = (await conn.execute(sa.select(notices.c.case_id, notices.c.body))).all()
    assert sorted(t.case_id for t in queued) == sorted([a, b, dead])
    assert all("10分钟" in t.body for t in queued)
    assert any("浙J·A12345" in t.body for t in queued)

    # The wait starts when a text goes out (quiet hours may hold one), not before.
    clock.advance(minutes=30)
    assert (await hub.parking.tick()).asked == 0
    assert await sender.run_once(NoticeChannel.SMS) == 3
    assert {r.body["to"] for r in gateway.requests} == {"13800000001", "13800000002", DEAD_NUMBER}
    # The dead number's case goes to the operators, still reminded, with the gateway's why.
    assert (await hub.parking.tick()).not_delivered == 1
    failed = await hub.parking.check(dead)
    assert failed
    assert failed.state is CheckState.NOT_DELIVERED
    assert "400" in failed.reason
    assert await stage_of(hub, dead) == Stage.REMINDED

    # Nothing is asked before the wait is over, and nothing twice.
    clock.advance(seconds=WAIT.total_seconds() - 1)
    assert (await hub.parking.tick()).asked == 0
    clock.advance(seconds=2)
    assert (await hub.parking.tick()).asked == 2
    assert (await hub.parking.tick()).asked == 0
    async with hub.engine.connect() as conn:
        asked = (
            await conn.execute(sa.select(commands).where(commands.c.kind == "spot.recheck"))
        ).all()
    params: dict[int, dict[str, Any]] = {}
    for case_id in (a, b):
        check = await hub.parking.check(case_id)
        assert check
        assert check.state is CheckState.RECHECKING
        assert check.cmd_id
        params[case_id] = next(c.params for c in asked if c.cmd_id == check.cmd_id)
    assert params[a]["camera_id"] == "parking-mast"
    assert params[a]["zone"] == "no_parking"
    assert params[a]["plate"] == "浙J·A12345"
    assert params[a]["box"] == [0.1, 0.1, 0.3, 0.4]

    # The unit answers: A has gone, B is still there.
    check_a, check_b = await hub.parking.check(a), await hub.parking.check(b)
    assert check_a
    assert check_a.cmd_id
    assert check_b
    assert check_b.cmd_id
    await answer(worker, clock, check_a.cmd_id, "succeeded", "cleared: seen in 0 of 5 frames")
    await answer(worker, clock, check_b.cmd_id, "succeeded", "still_there: seen in 5 of 5 frames")
    decided = await hub.parking.tick()
    assert (decided.moved, decided.stayed) == (1, 1)
    assert await stage_of(hub, a) == Stage.CLOSED
    assert await stage_of(hub, b) == Stage.REGISTERED
    async with hub.engine.connect() as conn:
        trail = (
            await conn.execute(
                sa.select(audits).where(audits.c.case_id.in_([a, b])).order_by(audits.c.id)
            )
        ).all()
    moved = next(r for r in trail if r.action == "moved")
    assert moved.case_id == a
    assert moved.actor == "hub:parking"
    assert len(moved.attachments) == 1  # the frame the unit looked at
    assert "cleared" in moved.reason
    assert [r.action for r in trail if r.case_id == b] == ["file", "remind", "stayed"]

    # The months count both, as the bureau's metrics do.
    (month,) = await hub.parking.months(clock() - timedelta(days=1), clock() + timedelta(days=1))
    # The dead number's reminder counts as one (it was sent to the gateway) that moved
    # nothing and registered nothing.
    assert (month.reminded, month.moved, month.stayed) == (3, 1, 1)
    assert (month.share_moved, month.enforcement_rate) == (0.3333, 0.3333)
    # A later tick changes nothing.
    assert (await hub.parking.tick()) == type(decided)()
    # The same figures through the API, for the console and the city's dashboards.
    _, token = await hub.users.add("op", Role.OPERATOR)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(hub)), base_url="http://hub"
    ) as api:
        period = {"start": "2026-11-01T00:00:00+08:00", "end": "2026-12-01T00:00:00+08:00"}
        auth = {"Authorization": f"Bearer {token}"}
        got = await api.get(f"{API_PREFIX}/metrics/parking", params=period, headers=auth)
        assert got.status_code == 200, got.text
        assert got.json() == [
            {
                "month": "2026-11",
                "reminded": 3,
                "moved": 1,
                "stayed": 1,
                "share_moved": 0.3333,
                "enforcement_rate": 0.3333,
            }
        ]
        backwards = {"start": period["end"], "end": period["start"]}
        bad = await api.get(f"{API_PREFIX}/metrics/parking", params=backwards, headers=auth)
        assert bad.status_code == 422
        assert "end must be after start" in bad.text


async def test_a_silent_unit_or_an_operator_leaves_the_case_to_people(
    hub: Hub, clock: FakeClock, texts: tuple[SmsGateway, NoticeWorker]
) -> None:
    assert hub.parking is not None
    worker, ids = await setup(hub, clock)
    a, b = ids["浙J·A12345"], ids["浙J·B67890"]
    await hub.parking.tick()
    await texts[1].run_once(NoticeChannel.SMS)
    await hub.parking.tick()
    # An operator takes B over while it waits; the loop lets go of it.
    operator, _ = await hub.users.add("op", Role.OPERATOR)
    await hub.cases.transition(b, Action.START_VERIFY, operator)
    clock.advance(seconds=WAIT.total_seconds())
    report = await hub.parking.tick()
    assert report.asked == 2
    check_b = await hub.parking.check(b)
    assert check_b
    assert check_b.cmd_id
    await answer(worker, clock, check_b.cmd_id, "succeeded", "still_there: seen in 5 of 5")
    # A's unit never answers: after the answer time the case stays reminded, for people.
    clock.advance(minutes=5)
    report = await hub.parking.tick()
    assert report.unanswered == 1
    check_a = await hub.parking.check(a)
    assert check_a
    assert check_a.state is CheckState.UNANSWERED
    assert "no answer from the unit" in check_a.reason
    assert await stage_of(hub, a) == Stage.REMINDED
    assert check_b.state is CheckState.RECHECKING
    taken = await hub.parking.check(b)
    assert taken
    assert taken.state is CheckState.TAKEN_OVER
    assert await stage_of(hub, b) == Stage.VERIFYING


async def test_without_a_text_gateway_nobody_is_reminded(hub: Hub, clock: FakeClock) -> None:
    assert hub.parking is not None
    _, ids = await setup(hub, clock)
    hub.parking.can_text = False
    report = await hub.parking.tick()
    assert (report.reminded, report.to_operators) == (0, 5)
    check = await hub.parking.check(ids["浙J·A12345"])
    assert check
    assert "XH_HUB_NOTICE_SMS_URL" in check.reason


async def test_a_worker_that_died_after_texting_does_not_text_twice(
    hub: Hub, clock: FakeClock
) -> None:
    assert hub.parking is not None
    _, ids = await setup(hub, clock)
    a = ids["浙J·A12345"]
    # A claim left in 'deciding' after its text was queued: the worker was killed there.
    await hub.parking.ensure_template()
    assert await hub.parking._claim(a, clock())
    owner = Recipient(contact_id="vehicle:浙J·A12345", name="王某", phone="13800000001")
    variables = {"plate": "浙J·A12345", "place": "x", "minutes": "10"}
    await hub.notices.remind(
        hub.parking.policy.template,
        owner,
        NoticeChannel.SMS,
        variables,
        case_id=a,
        actor="hub:parking",
    )
    await hub.parking.tick()  # a fresh claim is not taken up by another worker's tick
    assert await stage_of(hub, a) == Stage.REPORTED
    clock.advance(seconds=61)
    await hub.parking.tick()
    async with hub.engine.connect() as conn:
        count = (
            await conn.execute(
                sa.select(sa.func.count()).select_from(notices).where(notices.c.case_id == a)
            )
        ).scalar_one()
    assert count == 1
    assert await stage_of(hub, a) == Stage.REMINDED
