"""Notices through real channels: a real HTTP gateway (simulators.sms_gateway) and a real
SMTP server (aiosmtpd) started by the test, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import Message
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.adapters.notice_channels import (
    Outgoing,
    SmtpSender,
    SpeakerSender,
    WebhookSender,
    verify_signature,
)
from central_hub.db.schema import notice_deliveries
from central_hub.domain.calendar import WorkCalendar
from central_hub.domain.errors import NoticeError
from central_hub.domain.grid import Grid
from central_hub.domain.notices import (
    Accepted,
    Audience,
    DeliveryState,
    NoticeChannel,
    QuietHours,
    Recipient,
    RetryPolicy,
)
from central_hub.hub import Hub
from central_hub.services.notices import OPTED_OUT, HubAudiences, NoticeRequest, NoticeService
from central_hub.testing import FakeClock
from central_hub.workers.notices import ChannelLimits, NoticeWorker, quiet_hours_of
from simulators.mosquitto import free_port
from simulators.sms_gateway import GatewayRequest, SmsGateway

pytestmark = pytest.mark.integration

SECRET = b"shared-with-the-gateway"
WANG = Recipient("c-wang", "王先生", phone="13800000001", email="wang@example.com")
LI = Recipient("c-li", "李女士", phone="13800000002", email="li@example.com")


def _no_jitter(_low: float, high: float) -> float:
    return high


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[SmsGateway, str]]:
    gw = SmsGateway(SECRET)
    port = await gw.start()
    yield gw, f"http://127.0.0.1:{port}/send/{{phone}}?ref={{id}}"
    await gw.stop()


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.refuse: set[str] = set()

    async def handle_RCPT(
        self, _server: Any, _session: Any, envelope: Any, address: str, _options: Any
    ) -> str:
        if address in self.refuse:
            return "550 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 queued"


@pytest.fixture
def smtp() -> Any:
    box = _Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield box, controller.port
    controller.stop()


def _service(db: AsyncEngine, clock: FakeClock, quiet: QuietHours | None = None) -> NoticeService:
    return NoticeService(
        db,
        clock,
        HubAudiences(db, Grid.load_sample()),
        quiet=quiet,
        retry=RetryPolicy(initial_s=1, cap_s=4, max_attempts=3),
        lease=timedelta(seconds=30),
        uniform=_no_jitter,
    )


def _worker(
    service: NoticeService, url: str, *, per_s: float = 1000, burst: int = 1000
) -> NoticeWorker:
    return NoticeWorker(
        service,
        {NoticeChannel.SMS: WebhookSender(url, SECRET, timeout_s=5)},
        {NoticeChannel.SMS: ChannelLimits(per_s, burst, 8)},
    )


async def _template(service: NoticeService) -> None:
    await service.create_template(
        "move-car",
        "挪车提醒",
        "您的车辆 {plate} 停在 {place}，请尽快挪走。",
        ["plate", "place"],
        actor="op",
    )


async def _states(db: AsyncEngine) -> dict[str, str]:
    async with db.connect() as conn:
        rows = (
            await conn.execute(sa.select(notice_deliveries.c.contact_id, notice_deliveries.c.state))
        ).all()
    return {r[0]: r[1] for r in rows}


async def test_a_reminder_is_signed_sent_and_delivered_by_receipt(
    db: AsyncEngine, clock: FakeClock, gateway: tuple[SmsGateway, str]
) -> None:
    gw, url = gateway
    service = _service(db, clock)
    await _template(service)
    worker = _worker(service, url)
    notice_id = await service.remind(
        "move-car", WANG, NoticeChannel.SMS, {"plate": "浙J12345", "place": "县前街"}, actor="op"
    )
    assert await worker.run_once(NoticeChannel.SMS) == 1
    (request,) = gw.requests
    assert request.path.startswith("/send/13800000001?ref=")
    assert request.body["to"] == "13800000001"
    assert request.body["text"] == "您的车辆 浙J12345 停在 县前街，请尽快挪走。"
    (delivery,) = await service.deliveries(notice_id)
    assert request.key == delivery.id  # the idempotency key is the delivery's id
    assert delivery.state is DeliveryState.SENT
    assert delivery.provider_message_id == gw.message_ids[delivery.id]
    assert gw.bad_signatures == 0
    # The gateway's receipt, by its own message id.
    assert await service.receipt(gw.message_ids[delivery.id], delivered=True)
    assert not await service.receipt(gw.message_ids[delivery.id], delivered=True)  # repeated
    view = await service.get(notice_id)
    assert view.deliveries == {"delivered": 1}


async def test_5xx_is_retried_with_backoff_then_sent_and_4xx_fails_with_the_reason(
    db: AsyncEngine, clock: FakeClock, gateway: tuple[SmsGateway, str]
) -> None:
    gw, url = gateway

    def script(req: GatewayRequest) -> int:
        if req.body["to"] == WANG.phone:
            return 503 if req.attempt == 1 else 200
        return 400

    gw.script = script
    service = _service(db, clock)
    await _template(service)
    worker = _worker(service, url)
    await service.send_many(
        [
            _request(Audience("contacts", recipients=(WANG, LI))),
        ],
        actor="op",
    )
    assert await worker.run_once(NoticeChannel.SMS) == 2
    assert await _states(db) == {"c-wang": "queued", "c-li": "failed"}
    assert await worker.run_once(NoticeChannel.SMS) == 0  # not due before its backoff
    clock.advance(seconds=1)
    assert await worker.run_once(NoticeChannel.SMS) == 1
    assert await _states(db) == {"c-wang": "sent", "c-li": "failed"}
    async with db.connect() as conn:
        rows = {r.contact_id: r for r in (await conn.execute(notice_deliveries.select())).all()}
    assert rows["c-wang"].attempts == 2
    assert rows["c-li"].last_error.startswith("gateway answered 400")


async def test_out_of_attempts_fails_naming_the_last_error(
    db: AsyncEngine, clock: FakeClock, gateway: tuple[SmsGateway, str]
) -> None:
    gw, url = gateway
    gw.script = lambda _req: 503
    service = _service(db, clock)
    await _template(service)
    worker = _worker(service, url)
    await service.remind(
        "move-car", WANG, NoticeChannel.SMS, {"plate": "A", "place": "B"}, actor="op"
    )
    for _ in range(3):
        await worker.run_once(NoticeChannel.SMS)
        clock.advance(seconds=10)
    (delivery,) = await service.deliveries((await service.recent())[0].id)
    assert delivery.state is DeliveryState.FAILED
    assert delivery.last_error is not None
    assert delivery.last_error.startswith("gave up after 3 attempts: gateway answered 503")
    assert len(gw.requests) == 3


async def test_a_killed_sender_is_resent_after_its_lease_under_the_same_key(
    db: AsyncEngine, clock: FakeClock, gateway: tuple[SmsGateway, str]
) -> None:
    gw, url = gateway
    service = _service(db, clock)
    await _template(service)
    sender = WebhookSender(url, SECRET)
    await service.remind(
        "move-car", WANG, NoticeChannel.SMS, {"plate": "A", "place": "B"}, actor="op"
    )
    (claimed,) = await service.claim(NoticeChannel.SMS, 10)
    await sender.send(claimed.item)  # ...and the process dies before recording it
    assert await service.claim(NoticeChannel.SMS, 10) == []  # still leased
    clock.advance(seconds=31)
    (again,) = await service.claim(NoticeChannel.SMS, 10)
    assert again.item.delivery_id == claimed.item.delivery_id
    outcome = await sender.send(again.item)
    await service.record([(again, outcome)])
    await service.record([(claimed, outcome)])  # the old claim's late record changes nothing
    await sender.aclose()
    assert gw.stats() == {
        "raw": 2,
        "accepted": 1,
        "duplicated": 0,
        "resent": 1,
        "bad_signatures": 0,
    }
    assert await _states(db) == {"c-wang": "sent"}


async def test_an_opted_out_address_is_failed_not_sent(
    db: AsyncEngine, clock: FakeClock, gateway: tuple[SmsGateway, str]
) -> None:
    gw, url = gateway
    service = _service(db, clock)
    await _template(service)
    await service.opt_out(NoticeChannel.SMS, LI.phone or "", reason="asked by phone", actor="op")
    await service.opt_out(NoticeChannel.SMS, LI.phone or "", actor="op")  # again: no change
    assert len(await service.opt_outs()) == 1
    worker = _worker(service, url)
    await service.send_many([_request(Audience("contacts", recipients=(WANG, LI)))], actor="op")
    await worker.run_once(NoticeChannel.SMS)
    assert [r.body["to"] for r in gw.requests] == [WANG.phone]
    async with db.connect() as conn:
        li = (
            await conn.execute(
                notice_deliveries.select().where(notice_deliveries.c.contact_id == "c-li")
            )
        ).one()
    assert (li.state, li.last_error) == ("failed", OPTED_OUT)
    assert await service.opt_in(NoticeChannel.SMS, LI.phone or "")


async def test_quiet_hours_hold_a_notice_until_they_end(
    db: AsyncEngine, clock: FakeClock, gateway: tuple[SmsGateway, str]
) -> None:
    gw, url = gateway
    clock.now = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)  # 22:30 in Shanghai
    quiet = quiet_hours_of("22:00-07:00", WorkCalendar())
    service = _service(db, clock, quiet)
    await _template(service)
    worker = _worker(service, url)
    await service.remind(
        "move-car", WANG, NoticeChannel.SMS, {"plate": "A", "place": "B"}, actor="op"
    )
    urgent = _request(Audience("contacts", recipients=(LI,)), urgent=True)
    await service.send_many([urgent], actor="op")
    assert await worker.run_once(NoticeChannel.SMS) == 1  # the urgent one only
    assert [r.body["to"] for r in gw.requests] == [LI.phone]
    clock.now = datetime(2026, 11, 23, 22, 59, tzinfo=UTC)  # 06:59
    assert await worker.run_once(NoticeChannel.SMS) == 0
    clock.now = datetime(2026, 11, 23, 23, 0, tzinfo=UTC)  # 07:00
    assert await worker.run_once(NoticeChannel.SMS) == 1
    assert await _states(db) == {"c-wang": "sent", "c-li": "sent"}


async def test_the_rate_limit_spaces_sends(
    db: AsyncEngine, clock: FakeClock, gateway: tuple[SmsGateway, str]
) -> None:
    _gw, url = gateway
    service = _service(db, clock)
    await _template(service)
    worker = _worker(service, url, per_s=2, burst=2)
    people = tuple(Recipient(f"c{i}", phone=f"1390000000{i}") for i in range(5))
    await service.send_many([_request(Audience("contacts", recipients=people))], actor="op")
    assert await worker.run_once(NoticeChannel.SMS) == 2
    assert await worker.run_once(NoticeChannel.SMS) == 0
    clock.advance(seconds=0.5)
    assert await worker.run_once(NoticeChannel.SMS) == 1
    clock.advance(seconds=10)
    assert await worker.run_once(NoticeChannel.SMS) == 2


async def test_bad_notices_are_refused_whole_naming_the_request(
    db: AsyncEngine, clock: FakeClock
) -> None:
    service = _service(db, clock)
    await _template(service)
    good = _request(Audience("contacts", recipients=(WANG,)))
    bad = _request(Audience("contacts", recipients=(LI,)), variables={"plate": "A"})
    registry = _request(Audience("industry", key="餐饮"))
    with pytest.raises(NoticeError) as err:
        await service.send_many([good, bad, registry], actor="op")
    assert "notices[1]: missing variables of template move-car: place" in str(err.value)
    assert "notices[2]: audience: kind industry needs the service-object registry" in str(err.value)
    assert await service.recent() == []  # nothing was queued


async def test_email_goes_through_a_real_smtp_server(
    db: AsyncEngine, clock: FakeClock, smtp: tuple[_Mailbox, int]
) -> None:
    box, port = smtp
    box.refuse.add(LI.email or "")
    service = _service(db, clock)
    await _template(service)
    worker = NoticeWorker(
        service,
        {NoticeChannel.EMAIL: SmtpSender("127.0.0.1", port, "notices@city.example")},
        {NoticeChannel.EMAIL: ChannelLimits(100, 100, 2)},
    )
    notice_id = (
        await service.send_many(
            [_request(Audience("contacts", recipients=(WANG, LI)), channel=NoticeChannel.EMAIL)],
            actor="op",
        )
    )[0]
    assert await worker.run_once(NoticeChannel.EMAIL) == 2
    (mail,) = box.messages
    assert mail["To"] == WANG.email
    assert mail["Subject"] == "挪车提醒"
    payload = mail.get_payload(decode=True)
    assert isinstance(payload, bytes)
    assert "浙J00001" in payload.decode("utf-8")
    states = {d.contact_id: d for d in await service.deliveries(notice_id)}
    assert states["c-wang"].state is DeliveryState.SENT  # accepted: sent, not delivered
    assert states["c-wang"].provider_message_id == mail["Message-ID"]
    assert states["c-li"].state is DeliveryState.FAILED
    assert "550" in (states["c-li"].last_error or "")


async def test_two_workers_never_claim_the_same_delivery(db: AsyncEngine, clock: FakeClock) -> None:
    service = _service(db, clock)
    await _template(service)
    people = tuple(Recipient(f"c{i}", phone=f"139{i:08d}") for i in range(60))
    await service.send_many([_request(Audience("contacts", recipients=people))], actor="op")
    other = _service(db, clock)
    batches = await asyncio.gather(
        *(s.claim(NoticeChannel.SMS, 7) for s in (service, other) for _ in range(5))
    )
    ids = [c.item.delivery_id for batch in batches for c in batch]
    assert len(ids) == len(set(ids)) == 60


def test_the_webhook_signature_is_hmac_sha256_of_the_body() -> None:
    body = json.dumps({"a": 1}).encode()
    import hashlib
    import hmac

    header = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    assert verify_signature(SECRET, body, header)
    assert not verify_signature(SECRET, body + b" ", header)
    assert not verify_signature(SECRET, body, None)


def _request(
    audience: Audience,
    *,
    variables: dict[str, str] | None = None,
    channel: NoticeChannel = NoticeChannel.SMS,
    urgent: bool = False,
) -> NoticeRequest:
    return NoticeRequest(
        "move-car",
        variables if variables is not None else {"plate": "浙J00001", "place": "横街路"},
        audience,
        channel,
        urgent=urgent,
    )


REGISTRY_CSV = (
    "kind,name,address,industry,subcategory,legal_representative,lat,lon,"
    "contact_name,contact_role,contact_phone,contact_email,notes\n"
    "street_shop,老王修鞋,县前街 12 号,02,0205,王大成,28.6472,121.2615,王大成,店主,13812345678,,\n"
    "street_shop,Golden Scissors,县前街 14 号,03,0301,李美,28.64747,121.2615,"
    "李美,店长,13912345678,meili@example.com,\n"
)


async def test_registry_audiences_reach_an_object_industry_subcategory_area_and_contact(
    hub: Hub,
) -> None:
    from central_hub.services.service_objects import ObjectQuery, ServiceObjects

    registry = ServiceObjects.of_hub(hub)
    await registry.import_file(REGISTRY_CSV.encode(), "shops.csv", "cli")
    shop = (await registry.search(ObjectQuery(text="老王")))[0]
    (wang,) = await registry.contacts_of_object(shop.id)
    cell = hub.grid.locate(28.6472, 121.2615)
    assert cell is not None
    area = hub.grid.path(cell.id)[0].id
    await _template(hub.notices)
    audiences = {
        "object": Audience("object", str(shop.id)),
        "industry": Audience("industry", "03"),
        "subcategory": Audience("subcategory", "0205"),
        "area": Audience("area", area),
        "contact": Audience("contact", str(wang.contact_id)),
    }
    ids = await hub.notices.send_many([_request(a) for a in audiences.values()], actor="op")
    reached = {}
    for kind, notice_id in zip(audiences, ids, strict=True):
        reached[kind] = sorted(d.address for d in await hub.notices.deliveries(notice_id))
    assert reached == {
        "object": ["13812345678"],
        "industry": ["13912345678"],
        "subcategory": ["13812345678"],
        "area": ["13812345678", "13912345678"],
        "contact": ["13812345678"],
    }
    with pytest.raises(NoticeError, match="industry: '99' is not in the taxonomy"):
        await hub.notices.send_many([_request(Audience("industry", "99"))], actor="op")
    with pytest.raises(NoticeError, match="no service object 99999"):
        await hub.notices.send_many([_request(Audience("object", "99999"))], actor="op")


async def test_an_area_announcement_goes_to_its_speakers_and_the_ack_is_the_receipt(
    hub: Hub, clock: FakeClock
) -> None:
    from central_hub.services.commands import apply_ack
    from central_hub.testing import ListSource, inbound, make_event
    from central_hub.workers.ingest import IngestWorker
    from edge_agent.protocol import CommandAck

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
    await hub.notices.create_template("clear", "", "请勿占道经营。", [], actor="admin")
    (notice_id,) = await hub.notices.send_many(
        [NoticeRequest("clear", {}, Audience("area", cell.id), NoticeChannel.SPEAKER)],
        actor="op",
    )
    (delivery,) = await hub.notices.deliveries(notice_id)
    assert delivery.address == "pole-1"
    assert await hub.notice_worker.run_once(NoticeChannel.SPEAKER) == 1
    (sent,) = await hub.notices.deliveries(notice_id)
    command = await hub.commands.get(sent.provider_message_id or "")
    assert (command.kind, command.params) == ("speaker.say", {"text": "请勿占道经营。"})
    async with hub.engine.begin() as conn:
        await apply_ack(
            conn,
            CommandAck(cmd_id=command.cmd_id, device_id="pole-1", state="succeeded", ts=clock.now),
            clock.now,
        )
    # A worker killed after queueing the command resends under the same delivery: the
    # speaker finds the command it queued and does not announce twice.
    again = await SpeakerSender(hub.commands).send(
        Outgoing(delivery.id, notice_id, "pole-1", "", "", "请勿占道经营。")
    )
    assert again == Accepted(command.cmd_id)
    assert await hub.notices.sweep_speaker_receipts() == 1
    assert (await hub.notices.get(notice_id)).deliveries == {"delivered": 1}
