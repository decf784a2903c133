"""The console's voice pages. The scheduled announcements page: an operator keeps a
schedule for a grid area (CSRF like every form), bad input comes back with each problem
named and the form kept, the slot the hub announces is listed with its notice, and the
schedule is stopped; dispatchers read it, handlers may not. A case page lists the
messages spoken from it."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa

from central_hub.adapters.audio_convert import pcm_wav
from central_hub.console.voice_routes import parse_schedule_form
from central_hub.db.schema import cases
from central_hub.hub import Hub
from central_hub.testing import FakeClock, ListSource, inbound, make_event
from central_hub.workers.ingest import IngestWorker

pytestmark = pytest.mark.integration

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def test_the_form_is_read_with_each_problem_named() -> None:
    args, problems = parse_schedule_form(
        {"area": " a1 ", "template": "tidy", "variables": "street=县前街\nbad",
         "times": "9:30, 17:00", "start_date": "2026-13-01", "end_date": ""},
        ["1", "x"],
    )  # fmt: skip
    assert problems == [
        "variables line 2: NAME=VALUE",
        "weekdays: 'x' is not a day number",
        "start_date: '2026-13-01' is not a date (YYYY-MM-DD)",
    ]
    assert args["area"] == "a1"
    assert args["times"] == ["9:30", "17:00"]
    assert args["variables"] == {"street": "县前街"}


async def test_an_operator_keeps_follows_and_stops_a_schedule(
    as_role: Any, hub: Hub, clock: FakeClock
) -> None:
    await hub.notices.create_template("tidy", "", "{street}请保持整洁。", ["street"], actor="admin")
    area = hub.grid.cells()[0].id
    op = await as_role("operator")
    page = await op.get("/console/voice-schedules")
    assert page.status_code == 200
    assert 'data-nav="voice-schedules"' in page.text
    csrf = _CSRF.search(page.text)
    assert csrf is not None
    form = {
        "area": area,
        "template": "tidy",
        "variables": "street=县前街",
        "times": "09:30, 17:00",
        "weekday": ["1", "2", "3", "4", "5"],
        "start_date": "2026-11-23",
    }
    assert (await op.post("/console/voice-schedules", data=form)).status_code == 403  # no CSRF
    bad = await op.post(
        "/console/voice-schedules", data={**form, "times": "9:3O", "csrf_token": csrf.group(1)}
    )
    assert bad.status_code == 422
    assert "times[0]: &#39;9:3O&#39; is not HH:MM" in bad.text
    assert 'value="9:3O"' in bad.text  # the form is kept
    made = await op.post("/console/voice-schedules", data={**form, "csrf_token": csrf.group(1)})
    assert made.status_code == 303
    [schedule] = await hub.voice_schedules.all()  # type: ignore[union-attr]
    assert (schedule.area, schedule.times, schedule.created_by) == (
        area, ["09:30", "17:00"], "operator",
    )  # fmt: skip
    clock.advance(minutes=31)  # Monday 09:31 in Shanghai
    assert await hub.voice_schedules.run_due() == 1  # type: ignore[union-attr]
    listing = await op.get("/console/voice-schedules")
    [notice] = await hub.notices.recent(limit=1)
    assert f"/console/notices/{notice.id}" in listing.text
    stopped = await op.post(
        f"/console/voice-schedules/{schedule.id}/cancel", data={"csrf_token": csrf.group(1)}
    )
    assert stopped.status_code == 303
    assert (await hub.voice_schedules.get(schedule.id)).cancelled_at is not None  # type: ignore[union-attr]

    dispatcher = await as_role("dispatcher")
    dpage = await dispatcher.get("/console/voice-schedules")
    assert dpage.status_code == 200
    assert 'id="new-schedule"' not in dpage.text
    token = _CSRF.search(dpage.text)
    assert token is not None
    r = await dispatcher.post(
        "/console/voice-schedules", data={**form, "csrf_token": token.group(1)}
    )
    assert r.status_code == 403
    assert (await (await as_role("handler")).get("/console/voice-schedules")).status_code == 403


async def test_a_case_page_lists_the_messages_spoken_from_it(
    as_role: Any, hub: Hub, clock: FakeClock
) -> None:
    await hub.devices.register("pole-1", "pole")
    worker = IngestWorker(hub.engine, ListSource(), hub.evidence, hub.filer, clock)
    await worker.process([inbound(make_event("pole-1", at=clock.now))])
    async with hub.engine.connect() as conn:
        case_id = (await conn.execute(sa.select(cases.c.id))).scalar_one()
    message = pcm_wav(bytes(16_000 * 2))  # 1 s at 16 kHz
    assert hub.voice is not None
    sent = await hub.voice.send("pole-1", message, actor="operator", case_id=case_id)
    await hub.voice.send("pole-1", message, actor="admin")  # not from the case
    op = await as_role("dispatcher")
    page = await op.get(f"/console/cases/{case_id}")
    assert page.status_code == 200
    section = page.text.split('id="voice-audit"', 1)[1].split("</section>", 1)[0]
    assert section.count("data-cmd-id=") == 1
    assert f'data-cmd-id="{sent.cmd_id}"' in section
    assert sent.params["sha256"][:12] in section
    assert ">operator<" in section
    # What was said can be heard again: the clip as the unit got it, for readers.
    link = f"/console/voice/clips/{sent.params['sha256']}"
    assert link in section
    heard = await op.get(link)
    assert heard.status_code == 200
    assert heard.headers["content-type"] == "audio/wav"
    assert heard.content == message
    assert (await op.get("/console/voice/clips/" + "0" * 64)).status_code == 404
    assert (await (await as_role("handler")).get(link)).status_code == 403
