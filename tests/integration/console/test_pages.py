"""The pages over a real SQLite hub: queue filters, uploads, map data, speak, stats, live feed."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta
from typing import Any

import pytest
from console_http import HUB_START, Client, seed_case
from PIL import Image

from central_hub.console.state import ConsoleState
from central_hub.db.schema import audits
from central_hub.domain.workflow import Action, Role
from central_hub.hub import Hub
from central_hub.services.users import User
from central_hub.testing import FakeClock

pytestmark = pytest.mark.integration

EAST = (28.6420, 121.2700)


def png(size: tuple[int, int] = (40, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (250, 10, 10)).save(out, format="PNG")
    return out.getvalue()


def ids(html: str) -> set[int]:
    import re

    return {int(m) for m in re.findall(r'<tr data-case-id="(\d+)"', html)}


async def test_queue_filters_by_stage_source_category_grid_line_and_overdue(
    as_role: Any, hub: Hub
) -> None:
    a = await seed_case(hub, stage="reported", source="ai", code="0504")
    b = await seed_case(
        hub,
        stage="dispatched",
        source="citizen",
        code="0102",
        line="sanitation",
        deadline=HUB_START - timedelta(hours=1),
        lat=EAST[0],
        lon=EAST[1],
    )
    c = await seed_case(
        hub,
        stage="closed",
        source="inspector",
        code="0504",
        deadline=HUB_START - timedelta(hours=1),
    )
    op: Client = await as_role("operator")
    everything = await op.get("/console/cases")
    assert ids(everything.text) == {a, b, c}
    assert ids((await op.get("/console/cases?stage=dispatched")).text) == {b}
    assert ids((await op.get("/console/cases?source=citizen")).text) == {b}
    assert ids((await op.get("/console/cases?code=0504")).text) == {a, c}
    assert ids((await op.get("/console/cases?line=sanitation")).text) == {b}
    assert ids((await op.get("/console/cases?overdue=yes")).text) == {b}  # closed is not overdue
    assert ids((await op.get("/console/cases?overdue=no")).text) == {a, c}
    cell = hub.grid.locate(*EAST)
    assert cell is not None
    assert cell.parent_id is not None
    zone = hub.grid.get(cell.parent_id)
    assert ids((await op.get(f"/console/cases?cell={zone.id}")).text) == {b}
    page = (await op.get("/console/cases?overdue=yes")).text
    assert 'class="cd over"' in page
    assert "已超期" in page
    partial = await op.get("/console/cases?stage=dispatched&partial=1")
    assert "<html" not in partial.text
    assert ids(partial.text) == {b}


async def test_a_bad_filter_value_is_named_and_ignored(as_role: Any, hub: Hub) -> None:
    a = await seed_case(hub)
    op: Client = await as_role("operator")
    r = await op.get("/console/cases?stage=bogus&page=x")
    assert r.status_code == 422
    assert "stage: &#39;bogus&#39; is not valid" in r.text
    assert "page:" in r.text
    assert ids(r.text) == {a}


async def test_cancelling_an_ai_report_asks_why_and_records_the_verdict(
    as_role: Any, hub: Hub
) -> None:
    """The operator's reason for not registering an AI report becomes its label."""
    case_id = await seed_case(hub, stage="verifying", source="ai")
    op: Client = await as_role("operator")
    page = await op.get(f"/console/cases/{case_id}")
    assert '<select name="verdict" required>' in page.text
    assert 'value="wrong_object"' in page.text
    url = f"/console/cases/{case_id}/actions"
    form = {"action": "cancel", "reason": "雨伞，不是摊位", "csrf_token": op.csrf}
    r = await op.post(url, data=form)
    assert r.status_code == 422
    assert "verdict must be one of" in r.text
    r = await op.post(url, data={**form, "verdict": "bogus"})
    assert r.status_code == 422
    assert "unknown verdict" in r.text
    assert (await hub.cases.get(case_id)).case.stage == "verifying"  # nothing changed
    r = await op.post(url, data={**form, "verdict": "wrong_object"})
    assert r.status_code == 303
    detail = await hub.cases.get(case_id)
    assert detail.case.stage == "cancelled"
    assert detail.audits[-1].verdict == "wrong_object"
    page = await op.get(f"/console/cases/{case_id}")
    assert "识别错误（不是该物体）" in page.text


async def test_the_handler_uploads_a_photo_and_bad_uploads_are_refused(
    as_role: Any, hub: Hub
) -> None:
    case_id = await seed_case(hub, stage="dispatched")
    hand: Client = await as_role("handler")
    url = f"/console/cases/{case_id}/actions"
    form = {"action": "handle", "reason": "已清理", "csrf_token": hand.csrf}

    r = await hand.post(url, data=form, files={"photo": ("x.jpg", b"hello", "image/jpeg")})
    assert r.status_code == 415
    assert "不是可识别的图片" in r.text
    r = await hand.post(
        url, data=form, files={"photo": ("big.jpg", b"\xff" * 310_000, "image/jpeg")}
    )
    assert r.status_code == 413
    assert "照片过大" in r.text
    r = await hand.post(
        url, data=form, files={"photo": ("huge.jpg", b"\xff" * 500_000, "image/jpeg")}
    )
    assert r.status_code == 413
    assert "照片过大" in r.text
    assert (await hub.cases.get(case_id)).case.stage == "dispatched"  # nothing changed

    r = await hand.post(url, data=form, files={"photo": ("after.png", png(), "image/png")})
    assert r.status_code == 303
    detail = await hub.cases.get(case_id)
    assert detail.case.stage == "handled"
    (sha,) = detail.audits[-1].attachments
    stored = await hub.evidence.get(sha)
    assert stored.startswith(b"\xff\xd8")  # re-encoded as JPEG
    page = await hand.get(f"/console/cases/{case_id}")
    assert f"/console/evidence/{sha}" in page.text
    img = await hand.get(f"/console/evidence/{sha}")
    assert img.status_code == 200
    assert img.headers["content-type"] == "image/jpeg"


async def test_map_data_projects_open_cases_and_devices(as_role: Any, hub: Hub, app: Any) -> None:
    open_id = await seed_case(hub, stage="dispatched", deadline=HUB_START - timedelta(minutes=1))
    await seed_case(hub, stage="closed")
    await hub.devices.register("pole-1", "pole")
    await hub.devices.set_desired("pole-1", {"device": {"location": {"lat": 28.65, "lon": 121.26}}})
    op: Client = await as_role("operator")
    data = (await op.get("/console/data/map")).json()
    (marker,) = data["cases"]
    assert marker["id"] == open_id
    assert marker["overdue"] is True
    state: ConsoleState = app.state.console
    assert 0 < marker["x"] < state.projection.width
    assert 0 < marker["y"] < state.projection.height
    (device,) = data["devices"]
    assert device["id"] == "pole-1"
    assert device["state"] == "unknown"
    page = await op.get("/console/")
    assert page.text.count('class="cell lv-street"') == 21


async def test_the_map_sends_the_open_cases_in_its_view(as_role: Any, hub: Hub, app: Any) -> None:
    """Cases come for the view box on screen, at most map_case_limit of them, with how many
    are open there; a view that is not four numbers is refused with what is wrong."""
    state: ConsoleState = app.state.console
    proj = state.projection
    west = [await seed_case(hub, lat=28.6470, lon=121.2540) for _ in range(3)]
    east = await seed_case(hub, lat=28.6470, lon=121.2700)
    await seed_case(hub, lat=28.6470, lon=121.2541, stage="closed")
    op: Client = await as_role("operator")
    whole = (await op.get("/console/data/map")).json()
    assert sorted(m["id"] for m in whole["cases"]) == sorted([*west, east])
    assert whole["cases_in_view"] == 4
    x0, y0 = proj.to_xy(28.6500, 121.2500)
    x1, y1 = proj.to_xy(28.6440, 121.2600)
    view = f"{x0},{y0},{x1 - x0},{y1 - y0}"
    zoomed = (await op.get("/console/data/map", params={"view": view})).json()
    assert sorted(m["id"] for m in zoomed["cases"]) == sorted(west)
    assert zoomed["cases_in_view"] == 3
    state.settings = state.settings.model_copy(update={"map_case_limit": 2})
    capped = (await op.get("/console/data/map", params={"view": view})).json()
    assert [m["id"] for m in capped["cases"]] == sorted(west, reverse=True)[:2]
    assert capped["cases_in_view"] == 3
    for bad in ("1,2,3", "a,b,c,d", "0,0,-5,10", "0,0,nan,10"):
        r = await op.get("/console/data/map", params={"view": bad})
        assert r.status_code == 422, bad
        assert "view must be x,y,w,h" in r.json()["detail"]


async def test_speak_queues_a_signed_command_and_refuses_bad_input(as_role: Any, hub: Hub) -> None:
    await hub.devices.register("pole-1", "pole")
    op: Client = await as_role("operator")
    page = await op.get("/console/devices/pole-1")
    assert 'id="speak-form"' in page.text
    assert "no-vending" in page.text
    h = {"X-CSRF-Token": op.csrf}
    r = await op.post("/console/devices/pole-1/speak", json={"text": "请勿占道经营"}, headers=h)
    assert r.status_code == 202
    cmd = r.json()
    assert cmd["kind"] == "speaker.say"
    assert cmd["state"] == "queued"
    state = (await op.get(f"/console/data/commands/{cmd['cmd_id']}")).json()
    assert state["label"] == "排队中"
    assert state["final"] is False
    rows = await op.get("/console/devices/pole-1?partial=commands")
    assert f'data-cmd-id="{cmd["cmd_id"]}"' in rows.text
    r = await op.post("/console/devices/pole-1/speak", json={"clip": "a", "text": "b"}, headers=h)
    assert r.status_code == 422
    assert "exactly one" in r.json()["detail"]
    r = await op.post("/console/devices/pole-9/speak", json={"clip": "chime"}, headers=h)
    assert r.status_code == 404
    assert len(await hub.commands.list_for("pole-1")) == 1


async def test_statistics_show_a_closed_case_and_refuse_a_bad_period(
    as_role: Any, hub: Hub, clock: FakeClock
) -> None:
    case_id = await seed_case(hub, stage="reported", source="ai")
    admin = User(id=0, name="admin", role=Role.ADMIN)
    for action in (
        Action.START_VERIFY,
        Action.VERIFY,
        Action.DISPATCH,
        Action.HANDLE,
        Action.CHECK,
        Action.APPROVE,
    ):
        clock.advance(minutes=10)
        await hub.cases.transition(case_id, action, admin)
    op: Client = await as_role("operator")
    page = await op.get("/console/stats")
    assert page.status_code == 200
    assert '<tr data-metric="closed"><th>结案数</th><td>1</td>' in page.text
    assert 'data-series="closed" data-value="1"' in page.text
    assert "100.00%" in page.text  # recognition share: the only case came from AI
    bad = await op.get("/console/stats?start=2026-11-30&end=2026-11-01")
    assert bad.status_code == 422
    assert "时间段无效" in bad.text
    zone = await op.get("/console/stats?cell=bogus")
    assert zone.status_code == 422


async def test_the_live_feed_reports_what_changed(app: Any, hub: Hub) -> None:
    state: ConsoleState = app.state.console
    async with state.feed.listen() as queue:
        await seed_case(hub)
        changed = await asyncio.wait_for(queue.get(), 5)
        assert "cases" in changed
        assert "devices" not in changed
        await hub.devices.register("pole-1")
        changed = await asyncio.wait_for(queue.get(), 5)
        assert changed == frozenset({"devices"})
    assert state.feed.listeners == 0
    await state.feed.close()


async def test_pages_render_in_english_after_the_switch(as_role: Any, hub: Hub) -> None:
    await seed_case(hub)
    op: Client = await as_role("operator")
    assert "案卷队列" in (await op.get("/console/cases")).text
    r = await op.post(
        "/console/lang", data={"lang": "en", "back": "/console/cases", "csrf_token": op.csrf}
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/console/cases"
    page = (await op.get("/console/cases")).text
    assert "Case queue" in page
    assert 'lang="en"' in page
    async with hub.engine.connect() as conn:
        assert (await conn.execute(audits.select())).all()


async def test_the_stats_page_shows_the_move_your_car_months(
    hub: Hub, clock: FakeClock, as_role: Any
) -> None:
    from central_hub.services.parking import HUB_ACTOR

    op: Client = await as_role("operator")
    empty = await op.get("/console/stats")
    assert "本期没有挪车提醒" in empty.text
    for outcome in (Action.MOVED, Action.STAYED, None):
        case_id = await seed_case(hub, code="0505", at=clock())
        for action in (Action.REMIND, outcome):
            if action is None:
                continue
            clock.advance(minutes=10)
            async with hub.engine.begin() as conn:
                await hub.cases.transition_in(
                    conn, case_id, action, HUB_ACTOR, now=clock(), by_hub=True
                )
    page = await op.get("/console/stats?refresh=1")
    assert page.status_code == 200
    month = HUB_START.strftime("%Y-%m")
    row = f'<tr data-month="{month}"><td>{month}</td><td>3</td><td>1</td><td>1</td>'
    assert row in page.text
    assert page.text.count("33.33%") >= 2  # share moved and enforcement rate
    # A case the loop could not remind shows why, so the operator knows what to do.
    from central_hub.db.schema import parking_checks

    waiting = await seed_case(hub, code="0505", at=clock())
    async with hub.engine.begin() as conn:
        await conn.execute(
            parking_checks.insert().values(
                case_id=waiting,
                event_id="e-1",
                device_id="pole-parking-01",
                camera_id="parking-mast",
                zone="no_parking",
                plate="浙J·A12345",
                state="to_operators",
                reason="plate 浙J·A12345 is not in the vehicle registry",
                claimed_at=clock(),
            )
        )
    case_page = await op.get(f"/console/cases/{waiting}")
    assert 'id="parking-check" data-state="to_operators"' in case_page.text
    assert "无法提醒，转人工核实" in case_page.text
    assert "not in the vehicle registry" in case_page.text
