"""The console's scheduled announcements page: an operator keeps a schedule for a grid
area (CSRF like every form), bad input comes back with each problem named and the form
kept, the slot the hub announces is listed with its notice, and the schedule is stopped;
handlers may not add one."""

from __future__ import annotations

import re
from typing import Any

import pytest

from central_hub.console.voice_routes import parse_schedule_form
from central_hub.hub import Hub
from central_hub.testing import FakeClock

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
