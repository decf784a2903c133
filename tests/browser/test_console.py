"""The console in a real Chromium: login, live map and queue, the workflow across roles,
a speak command reaching ``succeeded``, statistics. Each test saves screenshots."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from browser_harness import (
    HubThread,
    event_at,
    heartbeat,
    jpeg,
    no_horizontal_scroll,
    publish_event,
    publish_status,
    stage_of,
    take_action,
)

from simulators.device import SimDevice
from simulators.mosquitto import MosquittoBroker
from simulators.polling import eventually_sync

pytestmark = pytest.mark.browser

Shot = Callable[[Any, str], Path]


def test_login_refused_then_admitted_language_and_logout(
    browser: Any, hub_server: HubThread, shot: Shot
) -> None:
    base = hub_server.base_url
    ctx = browser.new_context(viewport={"width": 1366, "height": 768})
    try:
        page = ctx.new_page()
        page.goto(base + "/console/cases")
        assert page.url.startswith(base + "/console/login")
        assert page.locator("html").get_attribute("lang") == "zh-CN"
        page.fill('input[name="name"]', "operator")
        page.fill('input[name="token"]', "xh_not-the-token")
        page.click('button[type="submit"]')
        assert page.locator("p.error").is_visible()
        shot(page, "login-refused")

        page.fill('input[name="name"]', "operator")
        page.fill('input[name="token"]', hub_server.tokens["operator"])
        page.click('button[type="submit"]')
        page.wait_for_url(base + "/console/cases")
        assert page.locator("table.queue").is_visible()
        assert page.locator('nav a[data-nav="cases"]').inner_text() == "案卷"
        assert no_horizontal_scroll(page, 1366)

        page.click("#lang-switch")
        page.wait_for_selector('nav a[data-nav="cases"]:text("Cases")')
        assert page.url.startswith(base + "/console/cases")
        shot(page, "queue-english")
        page.click("#lang-switch")
        page.wait_for_selector('nav a[data-nav="cases"]:text("案卷")')

        page.click("#logout")
        page.wait_for_url(base + "/console/login")
        page.goto(base + "/console/")
        assert page.url.startswith(base + "/console/login")
        shot(page, "logged-out")
    finally:
        ctx.close()


def test_event_from_the_broker_appears_on_map_and_queue_without_reload(
    contexts: Callable[..., Any], hub_server: HubThread, broker: MosquittoBroker, shot: Shot
) -> None:
    base = hub_server.base_url
    ctx = contexts("operator")
    map_page = ctx.new_page()
    queue = ctx.new_page()
    try:
        map_page.goto(base + "/console/")
        map_page.wait_for_selector("body[data-live-ready='1']")
        assert map_page.locator("#grid path.lv-street").count() >= 21
        assert no_horizontal_scroll(map_page, 1366)
        queue.goto(base + "/console/cases")
        queue.wait_for_selector("body[data-live-ready='1']")
        map_url, queue_url = map_page.url, queue.url

        publish_status(broker.port, "pole-live-1")
        event = event_at("pole-live-1", 28.6525, 121.2560, code="0505")
        publish_event(broker.port, event)
        case_id = hub_server.case_of(event.event_id)

        marker = f'#markers a[data-case-id="{case_id}"]'
        map_page.wait_for_selector(marker)
        queue.wait_for_selector(f'#queue-rows tr[data-case-id="{case_id}"]')
        map_page.wait_for_selector('#markers a[data-device-id="pole-live-1"]')
        assert (map_page.url, queue.url) == (map_url, queue_url)  # nobody reloaded
        assert map_page.get_attribute(marker, "data-stage") == "reported"
        shot(map_page, "map-live-marker")
        shot(queue, "queue-live-row")

        # Cases come for the view on screen: panned out of sight, the case's marker goes
        # (the device's stays: devices are few); back in view, it returns.
        box = map_page.locator("#map").bounding_box()
        assert box is not None
        map_page.mouse.move(box["x"] + box["width"] - 20, box["y"] + box["height"] - 20)
        map_page.mouse.down()
        map_page.mouse.move(box["x"] + 60, box["y"] + 60, steps=5)
        map_page.mouse.up()
        map_page.wait_for_selector(marker, state="detached")
        assert map_page.get_attribute("#map", "data-cases-in-view") == "0"
        map_page.click('[data-zoom="reset"]')
        map_page.wait_for_selector(marker)

        map_page.click('[data-zoom="in"]')
        assert float(map_page.get_attribute("#map", "data-zoom") or 0) > 1
        map_page.click(marker)
        map_page.wait_for_url(f"{base}/console/cases/{case_id}")
        assert stage_of(map_page) == "reported"
    finally:
        map_page.close()
        queue.close()


def test_workflow_across_roles_with_photo_and_statistics(
    contexts: Callable[..., Any],
    hub_server: HubThread,
    broker: MosquittoBroker,
    shot: Shot,
    tmp_path: Path,
) -> None:
    base = hub_server.base_url
    event = event_at("pole-flow-1", 28.6415, 121.2705, code="0102", snapshot=jpeg())
    publish_event(broker.port, event)
    case_id = hub_server.case_of(event.event_id)
    case_url = f"{base}/console/cases/{case_id}"

    op = contexts("operator").new_page()
    disp = contexts("dispatcher").new_page()
    hand = contexts("handler", phone=True).new_page()
    try:
        op.goto(case_url)
        assert op.evaluate("document.getElementById('snapshot').naturalWidth") == 64
        assert op.locator(f'#events tr[data-event-id="{event.event_id}"]').count() == 1
        take_action(op, "start_verify")
        assert stage_of(op) == "verifying"
        take_action(op, "verify", "现场视频确认")
        assert stage_of(op) == "registered"
        assert op.locator('form[data-action="dispatch"]').count() == 0

        # The handler sees neither the dispatcher's nor the operator's actions.
        hand.goto(case_url)
        assert hand.locator("#no-actions").is_visible()
        assert hand.locator('form[data-action="dispatch"]').count() == 0
        assert no_horizontal_scroll(hand, 390)
        shot(hand, "handler-registered-no-actions")
        hand.goto(base + "/console/devices")
        assert hand.locator("p.error").is_visible()

        disp.goto(case_url)
        assert disp.locator("form.action").count() >= 1
        take_action(disp, "dispatch", "派环卫一队")
        assert stage_of(disp) == "dispatched"
        assert disp.locator("span.cd[data-deadline]").count() == 1

        hand.goto(case_url)
        form = hand.locator('form[data-action="handle"]')
        assert hand.locator("form.action").count() == 1
        form.locator('input[type="file"]').set_input_files(
            {"name": "notes.txt", "mimeType": "image/jpeg", "buffer": b"not a picture at all"}
        )
        form.locator("button").click()
        hand.wait_for_selector("#case-error")
        assert "图片" in hand.inner_text("#case-error")
        assert stage_of(hand) == "dispatched"  # nothing changed
        shot(hand, "handler-upload-refused")

        photo = tmp_path / "after.jpg"
        photo.write_bytes(jpeg(320, 240, (40, 160, 90)))
        form = hand.locator('form[data-action="handle"]')
        form.locator("textarea").fill("已清理")
        form.locator('input[type="file"]').set_input_files(str(photo))
        form.locator("button").click()
        hand.wait_for_selector("p.ok")
        assert stage_of(hand) == "handled"
        thumb = hand.locator('#audit li[data-action="handle"] img.thumb')
        thumb.wait_for()
        # The element is there before the photo is fetched and decoded: wait for that.
        hand.wait_for_function(
            "() => { const i = document.querySelector("
            "'#audit li[data-action=\"handle\"] img.thumb'); "
            "return i !== null && i.complete && i.naturalWidth > 0; }"
        )
        assert (
            hand.evaluate(
                "document.querySelector('#audit li[data-action=\"handle\"] img.thumb').naturalWidth"
            )
            == 320
        )
        shot(hand, "handler-handled-phone")

        op.goto(case_url)
        take_action(op, "check")
        assert stage_of(op) == "checking"
        take_action(op, "approve", "核查通过")
        assert stage_of(op) == "closed"
        assert op.locator("form.action").count() == 0
        shot(op, "case-closed")

        op.goto(base + "/console/stats")
        op.click("#stats-refresh")  # figures may be from before the close: recompute
        op.wait_for_url("**/console/stats?**refresh=1")
        closed = int(op.inner_text('tr[data-metric="closed"] td'))
        assert closed >= 1
        assert op.locator("#daily-chart rect[data-series='closed'][data-value='0']").count() < (
            op.locator("#daily-chart rect[data-series='closed']").count()
        )
        shot(op, "statistics")
    finally:
        for page in (op, disp, hand):
            page.close()


def test_speak_command_reaches_succeeded(
    contexts: Callable[..., Any], hub_server: HubThread, broker: MosquittoBroker, shot: Shot
) -> None:
    base = hub_server.base_url
    device = SimDevice("pole-speak-1", port=broker.port, hub_public_key=hub_server.public_key)
    device.start()
    try:
        device.online(heartbeat("pole-speak-1"))

        def seen_online() -> bool:
            r = hub_server.api("GET", "/devices/pole-speak-1")
            return r.status_code == 200 and r.json()["state"] == "online" and r.json()["telemetry"]

        assert eventually_sync(seen_online, 15)
        page = contexts("operator").new_page()
        try:
            page.goto(base + "/console/devices")
            row = page.locator('tr[data-device-id="pole-speak-1"]')
            assert row.get_attribute("data-state") == "online"
            shot(page, "devices")
            row.locator("a").click()
            page.wait_for_url(base + "/console/devices/pole-speak-1")
            page.wait_for_selector("body[data-live-ready='1']")
            assert page.inner_text("#h-fps") == "4.0"
            assert page.inner_text("#h-inf") == "38"
            assert page.inner_text("#h-outbox").startswith("3")
            assert "v0" in page.inner_text("#h-config")
            page.fill('#speak-form input[name="text"]', "请勿占道经营")
            page.click('#speak-form button[type="submit"]')
            page.wait_for_selector('#speak-status[data-cmd-state="succeeded"]')
            cmd_id = page.get_attribute("#speak-status", "data-cmd-id")
            page.wait_for_selector(f'tr[data-cmd-id="{cmd_id}"][data-cmd-state="succeeded"]')
            shot(page, "speak-succeeded")
        finally:
            page.close()
        assert [c.params for c in device.commands] == [{"text": "请勿占道经营"}]
    finally:
        device.close()


def test_an_operator_corrects_boxes_by_keyboard_and_mouse(
    contexts: Callable[..., Any], hub_server: HubThread, broker: MosquittoBroker, shot: Shot
) -> None:
    base = hub_server.base_url
    event = event_at("pole-boxes-1", 28.6430, 121.2660, code="0501", snapshot=jpeg(320, 240))
    publish_event(broker.port, event)
    case_id = hub_server.case_of(event.event_id)
    op = contexts("operator").new_page()
    try:
        op.goto(f"{base}/console/cases/{case_id}")
        op.click(f'#events tr[data-event-id="{event.event_id}"] a.fix-boxes')
        op.wait_for_selector("#boxes rect.box")
        first = op.locator('#boxes rect[data-index="0"]')
        before = [float(v) for v in (first.get_attribute("data-box") or "").split(",")]
        # Keyboard: Tab to the box, move it right by 3 % and down by 5 %, widen it by 2 %.
        op.focus('#boxes rect[data-index="0"]')
        for _ in range(3):
            op.keyboard.press("ArrowRight")
        op.keyboard.press("Shift+ArrowDown")
        op.keyboard.press("Alt+ArrowRight")
        op.keyboard.press("Alt+ArrowRight")
        moved = [
            float(v)
            for v in (
                op.locator('#boxes rect[data-index="0"]').get_attribute("data-box") or ""
            ).split(",")
        ]
        assert moved[0] == pytest.approx(before[0] + 0.03, abs=1e-3)
        assert moved[1] == pytest.approx(before[1] + 0.05, abs=1e-3)
        assert moved[2] - moved[0] == pytest.approx(before[2] - before[0] + 0.02, abs=1e-3)
        # L: relabel it.
        op.keyboard.press("l")
        assert op.evaluate("document.activeElement.id") == "box-label"
        op.fill("#box-label", "goods")
        op.keyboard.press("Enter")
        assert op.locator('#boxes rect[data-index="0"]').get_attribute("data-label") == "goods"
        # N adds a box, Delete removes it again.
        op.keyboard.press("n")
        assert op.get_attribute("#box-editor", "data-count") == "2"
        op.keyboard.press("Delete")
        assert op.get_attribute("#box-editor", "data-count") == "1"
        # Mouse: draw a second box across the lower left of the picture, label it.
        area = op.locator("#boxes").bounding_box()
        assert area is not None
        op.mouse.move(area["x"] + area["width"] * 0.05, area["y"] + area["height"] * 0.6)
        op.mouse.down()
        op.mouse.move(area["x"] + area["width"] * 0.25, area["y"] + area["height"] * 0.95, steps=5)
        op.mouse.up()
        assert op.get_attribute("#box-editor", "data-count") == "2"
        drawn = [
            float(v)
            for v in (
                op.locator('#boxes rect[data-index="1"]').get_attribute("data-box") or ""
            ).split(",")
        ]
        assert drawn == pytest.approx([0.05, 0.6, 0.25, 0.95], abs=0.02)
        op.fill("#box-label", "person")
        op.keyboard.press("Enter")
        shot(op, "boxes-corrected")
        op.click("#save-boxes")
        op.wait_for_selector('#box-editor[data-saved="1"]')
        # Read back: the page shows the saved boxes after a reload.
        op.reload()
        op.wait_for_selector('#boxes rect[data-index="1"]')
        labels = [
            op.locator(f'#boxes rect[data-index="{i}"]').get_attribute("data-label") for i in (0, 1)
        ]
        assert labels == ["goods", "person"]
    finally:
        op.close()
