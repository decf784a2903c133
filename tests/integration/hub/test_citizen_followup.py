"""Reporter follow-up (issue #15 item 5) on SQLite and PostgreSQL: citizens who left a
phone number or an e-mail address get a notice when their case is registered, closed or
not registered, once each (two workers ticking at once included), by the channel the hub
has; changes made before a report was filed, reporters without a contact and reporters
whose contact retention cleared get nothing."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
import sqlalchemy as sa

from central_hub.db.schema import audits, citizen_followups, citizen_reports
from central_hub.domain.notices import NoticeChannel
from central_hub.domain.open311 import ReportInput
from central_hub.domain.retention import RetentionPolicy
from central_hub.domain.workflow import Action, Role
from central_hub.hub import Hub
from central_hub.services.citizen_followup import ReporterFollowUp, address_key, masked_for
from central_hub.services.citizen_reports import CitizenReports, Open311Key, Open311Keys
from central_hub.services.retention import apply_retention
from central_hub.testing import FakeClock

pytestmark = pytest.mark.integration

HERE = (28.6472, 121.2615)


def followup(hub: Hub, *, can_text: bool = True, can_mail: bool = True) -> ReporterFollowUp:
    return ReporterFollowUp(
        hub.engine,
        hub.notices,
        hub.clock,
        public_url="https://hub.example.cn",
        can_text=can_text,
        can_mail=can_mail,
    )


async def client(hub: Hub) -> tuple[Open311Key, CitizenReports]:
    """The city app's api_key and the service its reports are submitted through."""
    key, _ = await Open311Keys(hub.engine, hub.clock).add("city-app")
    return key, CitizenReports(hub.engine, hub.filer, hub.clock)


async def told(hub: Hub) -> list[tuple[str, str, str]]:
    """(channel, address, body) of every follow-up delivery, by channel and address."""
    out = []
    for notice in await hub.notices.recent(limit=100):
        if notice.template != "citizen.followup":
            continue
        for d in await hub.notices.deliveries(notice.id):
            out.append((d.channel.value, d.address, notice.body))
    return sorted(out, key=lambda t: (t[0] != "sms", t[1]))


async def test_reporters_hear_of_registration_and_closure_once_each(
    hub: Hub, clock: FakeClock
) -> None:
    key, reports = await client(hub)
    report = ReportInput("0507", *HERE, "gps", description="垃圾堆在路边")
    texted = await reports.submit(
        dataclasses.replace(report, phone="13800138000", email="a@example.cn"), key=key
    )
    mailed = await reports.submit(dataclasses.replace(report, email="b@example.cn"), key=key)
    silent = await reports.submit(report, key=key)  # no contact
    assert texted.case_id == mailed.case_id == silent.case_id
    users = {role: (await hub.users.add(f"{role.value}-f", role))[0] for role in Role}
    case_id = texted.case_id
    await hub.cases.transition(case_id, Action.START_VERIFY, users[Role.OPERATOR])
    worker = followup(hub)
    assert (await worker.tick()).queued == 0  # verifying is no news for the reporter
    clock.advance(minutes=5)
    await hub.cases.transition(case_id, Action.VERIFY, users[Role.OPERATOR])
    # Two workers at once: each change is told once.
    ticks = await asyncio.gather(worker.tick(), followup(hub).tick())
    assert sum(t.queued for t in ticks) == 2
    link = f"https://hub.example.cn/report/s/{texted.token}"
    assert await told(hub) == [
        (
            "sms",
            "13800138000",
            f"【城管】您反映的问题（编号{texted.id}）已立案，待派遣。详情：{link}",
        ),
        (
            "email",
            "b@example.cn",
            f"【城管】您反映的问题（编号{mailed.id}）已立案，待派遣。详情："
            f"https://hub.example.cn/report/s/{mailed.token}",
        ),
    ]
    assert (await worker.tick()).queued == 0  # nothing new
    # A report filed after the registration hears only of what comes next.
    clock.advance(minutes=1)
    late = await reports.submit(dataclasses.replace(report, phone="13900139000"), key=key)
    assert late.case_id == case_id
    for action, role in (
        (Action.DISPATCH, Role.DISPATCHER),
        (Action.HANDLE, Role.HANDLER),
        (Action.CHECK, Role.OPERATOR),
    ):
        clock.advance(minutes=30)
        await hub.cases.transition(case_id, action, users[role])
    assert (await worker.tick()).queued == 0  # dispatched, handled, checking: no news
    clock.advance(minutes=30)
    await hub.cases.transition(case_id, Action.APPROVE, users[Role.OPERATOR])
    assert (await worker.tick()).queued == 3
    closed = [t for t in await told(hub) if "已结案" in t[2]]
    assert sorted(a for _, a, _ in closed) == ["13800138000", "13900139000", "b@example.cn"]
    async with hub.engine.connect() as conn:
        rows = (await conn.execute(sa.select(citizen_followups))).all()
    assert len(rows) == 5
    assert all(r.notice_id for r in rows)


async def test_not_registered_says_why_and_no_channel_means_no_notice(
    hub: Hub, clock: FakeClock
) -> None:
    key, reports = await client(hub)
    report = ReportInput("0507", *HERE, "gps")
    texted = await reports.submit(dataclasses.replace(report, phone="13800138000"), key=key)
    mailed = await reports.submit(dataclasses.replace(report, email="b@example.cn"), key=key)
    operator, _ = await hub.users.add("op-f", Role.OPERATOR)
    await hub.cases.transition(texted.case_id, Action.START_VERIFY, operator)
    clock.advance(minutes=5)
    await hub.cases.transition(texted.case_id, Action.CANCEL, operator, reason="现场已清理")
    only_mail = followup(hub, can_text=False)  # a hub with SMTP and no SMS gateway
    done = await only_mail.tick()
    assert (done.queued, done.not_told) == (1, 1)  # the phone-only reporter: no channel
    assert await told(hub) == [
        (
            "email",
            "b@example.cn",
            f"【城管】您反映的问题（编号{mailed.id}）不予立案: 现场已清理。详情："
            f"https://hub.example.cn/report/s/{mailed.token}",
        )
    ]
    # Recorded as unreachable, and not looked at again even once a gateway exists.
    assert (await followup(hub).tick()).queued == 0


async def test_a_contact_retention_cleared_a_hidden_report_and_old_news_get_nothing(
    hub: Hub, clock: FakeClock
) -> None:
    key, reports = await client(hub)
    report = ReportInput("0507", *HERE, "gps", phone="13800138000")
    cleared = await reports.submit(report, key=key)
    hidden = await reports.submit(dataclasses.replace(report, phone="13900139000"), key=key)
    operator, _ = await hub.users.add("op-f", Role.OPERATOR)
    await hub.cases.transition(cleared.case_id, Action.START_VERIFY, operator)
    clock.advance(minutes=1)
    await hub.cases.transition(cleared.case_id, Action.VERIFY, operator)
    async with hub.engine.begin() as conn:
        await conn.execute(  # the address stays: only the mark says it was cleared
            citizen_reports.update()
            .where(citizen_reports.c.id == cleared.id)
            .values(contact_cleared_at=clock.now)
        )
        await conn.execute(  # an operator hid it (moderation)
            citizen_reports.update()
            .where(citizen_reports.c.id == hidden.id)
            .values(hidden_at=clock.now, hidden_by="op-f")
        )
    assert (await followup(hub).tick()).queued == 0
    # A registration older than the horizon (a hub that was down for weeks) is old news.
    other = await reports.submit(
        ReportInput("0401", 28.6480, 121.2600, "gps", phone="13700137000",
                    attributes={"BLOCKING": "partly"}),
        key=key,
    )  # fmt: skip
    await hub.cases.transition(other.case_id, Action.START_VERIFY, operator)
    clock.advance(minutes=1)
    await hub.cases.transition(other.case_id, Action.VERIFY, operator)
    clock.advance(days=8)
    assert (await followup(hub).tick()).queued == 0
    clock.advance(days=-8)  # within the week it is news
    assert (await followup(hub).tick()).queued == 1


async def test_one_person_is_told_once_and_at_most_five_times_a_day(
    hub: Hub, clock: FakeClock
) -> None:
    """Reporting one problem twice gives one text a change; anyone can type someone
    else's number into the report page, so one address gets at most five a day."""
    key, reports = await client(hub)
    operator, _ = await hub.users.add("op-f", Role.OPERATOR)
    filed = []
    for n in range(6):  # six problems 110 m apart, each its own case
        spot = ReportInput("0507", HERE[0] + 0.001 * n, HERE[1], "gps", phone="138 0013 8000")
        filed.append(await reports.submit(spot, key=key))
    first = ReportInput("0507", *HERE, "gps", phone="+86 13800138000")
    again = await reports.submit(first, key=key)  # the first problem reported again
    assert again.case_id == filed[0].case_id
    assert len({f.case_id for f in filed}) == 6
    clock.advance(minutes=1)
    for f in filed:
        await hub.cases.transition(f.case_id, Action.START_VERIFY, operator)
        await hub.cases.transition(f.case_id, Action.VERIFY, operator)
    done = await followup(hub).tick()
    assert (done.queued, done.not_told) == (5, 1)
    assert {a for _, a, _ in await told(hub)} == {"13800138000"}
    assert (await followup(hub).tick()).queued == 0  # settled, not tried again


async def test_a_long_reason_is_cut_a_stale_claim_is_retaken_and_addresses_are_masked(
    hub: Hub, clock: FakeClock
) -> None:
    key, reports = await client(hub)
    texted = await reports.submit(ReportInput("0507", *HERE, "gps", phone="13800138000"), key=key)
    operator, _ = await hub.users.add("op-f", Role.OPERATOR)
    await hub.cases.transition(texted.case_id, Action.START_VERIFY, operator)
    clock.advance(minutes=1)
    await hub.cases.transition(texted.case_id, Action.CANCEL, operator, reason="重复上报" * 60)
    # A worker claimed it and stopped before queueing the notice.
    async with hub.engine.connect() as conn:
        audit_id = (await conn.execute(sa.select(sa.func.max(audits.c.id)))).scalar_one()
    async with hub.engine.begin() as conn:
        await conn.execute(
            citizen_followups.insert().values(
                report_id=texted.id,
                audit_id=audit_id,
                created_at=clock.now,
                channel="sms",
                address_key=address_key(NoticeChannel.SMS, "13800138000"),
            )
        )
    worker = followup(hub)
    assert (await worker.tick()).queued == 0  # claimed a moment ago: left to its worker
    clock.advance(minutes=11)
    done = await worker.tick()
    assert (done.queued, done.failed) == (1, 0)
    [(_, _, body)] = await told(hub)
    assert "不予立案: 重复上报" in body
    assert "…。详情" in body  # the reason cut to fit a notice variable
    # The address is the reporter's personal data: masked but to admins.
    [notice] = [n for n in await hub.notices.recent() if n.template == "citizen.followup"]
    [delivery] = await hub.notices.deliveries(notice.id)
    assert masked_for(delivery, Role.OPERATOR).address == "138****8000"
    assert masked_for(delivery, Role.ADMIN).address == "13800138000"
    # Retention clearing the report's contact (its case closed: cancelled) masks the
    # address the text went to.
    clock.advance(days=200)
    report = await apply_retention(
        hub.engine, hub.evidence, hub.frames, RetentionPolicy(), clock.now
    )
    assert report.citizen_contacts_cleared == 1
    assert report.followup_addresses_masked == 1
    [delivery] = await hub.notices.deliveries(notice.id)
    assert delivery.address == "138****8000"
