"""A citizen's phone in a real Chromium (issue #15's acceptance): scan a plate's URL,
report with a photo file, land on the status page; an operator verifies the case in the
console; the status page shows the new state. The photo's GPS EXIF never reaches the
stored bytes. Each step saves a screenshot."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from browser_harness import HubThread, no_horizontal_scroll, stage_of, take_action
from PIL import Image

from central_hub.console.mapdraw import MapProjection
from central_hub.domain.filing import haversine_m
from central_hub.domain.grid import Grid
from central_hub.domain.qr_plates import SAMPLE_POINTS_PATH, plate_path
from central_hub.services.citizen_page import PlateBook

pytestmark = pytest.mark.browser

Shot = Callable[[Any, str], Path]
PHONE = {"width": 390, "height": 844}
GRID = Grid.load_sample()


def photo_with_gps(path: Path) -> Path:
    """A phone's JPEG: EXIF with the maker and a GPS position."""
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (31.0, 13.0, 49.44)
    gps[3], gps[4] = "E", (121.0, 28.0, 19.0)
    Image.new("RGB", (640, 480), (150, 120, 60)).save(path, format="JPEG", exif=exif)
    with Image.open(path) as img:
        assert img.getexif().get_ifd(0x8825)
    return path


def test_a_citizen_reports_from_a_plate_and_follows_the_case(
    browser: Any,
    contexts: Callable[..., Any],
    hub_server: HubThread,
    shot: Shot,
    tmp_path: Path,
) -> None:
    base = hub_server.base_url
    secret = (hub_server.data_dir / "plate_secret").read_bytes()
    ctx = browser.new_context(viewport=PHONE, locale="zh-CN", is_mobile=True, has_touch=True)
    ctx.set_default_timeout(15_000)
    phone = ctx.new_page()
    errors: list[str] = []
    phone.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        phone.goto(base + plate_path("HJL-040", secret))
        assert phone.get_attribute("#plate", "data-plate-id") == "HJL-040"
        assert phone.locator("#nearby-none").is_visible()
        assert no_horizontal_scroll(phone, PHONE["width"])
        # The chosen code's questions show, the others' do not.
        phone.select_option("#code", "0401")
        assert phone.locator('fieldset.attrs[data-code="0401"]').is_visible()
        assert not phone.locator('fieldset.attrs[data-code="0404"]').is_visible()
        phone.check('input[name="attr.BLOCKING"][value="partly"]')
        phone.set_input_files("#photo", str(photo_with_gps(tmp_path / "phone.jpg")))
        phone.wait_for_selector("#preview:not([hidden])")
        phone.fill("#description", "路面塌陷一个坑，占了半条车道")
        phone.fill('input[name="phone"]', "13800000000")
        shot(phone, "plate-form-filled")
        phone.click("#send")
        phone.wait_for_url(re.compile(r".*/report/s/[0-9a-f-]{36}\?lang=zh$"))
        status = "#report-status"
        assert phone.get_attribute(status, "data-stage") == "reported"
        assert "已上报，待核实" in phone.inner_text("#status-now")
        assert "横街路 40号牌 (HJL-040)" in phone.inner_text(status)
        assert no_horizontal_scroll(phone, PHONE["width"])
        shot(phone, "status-reported")

        # Staff find the case; the photo they see was stored without its EXIF.
        [case] = hub_server.api("GET", "/cases", params={"code": "0401"}).json()
        [report] = hub_server.api("GET", f"/cases/{case['id']}/citizen-reports").json()
        assert report["location_source"] == "plate"
        stored = hub_server.api("GET", f"/evidence/{report['photo_sha256']}").content
        with Image.open(io.BytesIO(stored)) as img:
            assert img.size == (640, 480)
            assert not img.getexif()
        assert b"PhoneMaker" not in stored

        op = contexts("operator").new_page()
        try:
            op.goto(f"{base}/console/cases/{case['id']}")
            # The operator sees what the citizen sent: the plate, the photo, the
            # phone number masked.
            sent = op.locator(
                f'#citizen-reports article[data-report-id="{report["service_request_id"]}"]'
            )
            assert "HJL-040" in sent.inner_text()
            assert op.evaluate("document.querySelector('img.citizen-photo').naturalWidth") == 640
            contact = sent.locator("dd.contact")
            assert contact.get_attribute("data-masked") == "yes"
            assert "13800000000" not in contact.inner_text()
            shot(op, "console-citizen-report")
            take_action(op, "start_verify")
            take_action(op, "verify", "市民上报，视频确认塌陷")
            assert stage_of(op) == "registered"
        finally:
            op.close()

        phone.reload()
        assert phone.get_attribute(status, "data-stage") == "registered"
        assert "已立案，待派遣" in phone.inner_text("#status-now")
        history = phone.locator("#history li").all_inner_texts()
        assert [h.split(" ", 2)[-1] for h in history] == [
            "已上报，待核实",
            "核实中",
            "已立案，待派遣",
        ]
        shot(phone, "status-registered")

        # A second citizen at the next plate is asked "is it one of these?".
        phone.goto(base + plate_path("HJL-041", secret))
        same = phone.locator("#nearby-list li button.same")
        assert same.count() == 1
        same.click()
        assert phone.input_value("#code") == "0401"
        assert phone.locator("#same-note").is_visible()
        shot(phone, "nearby-one-of-these")

        # Without a plate: zoom the pin map in and tap where the plate stands; the
        # position is filled in and the open report there is offered.
        phone.goto(base + "/report")
        plate = PlateBook.load(SAMPLE_POINTS_PATH, hub_server.data_dir / "plate_secret", GRID)
        point = plate.points["HJL-040"]
        x, y = MapProjection.for_bounds(GRID.bounds(), width=1000.0).to_xy(point.lat, point.lon)

        def tap_the_plate() -> None:
            phone.locator("#pin-map").scroll_into_view_if_needed()
            screen = phone.evaluate(
                "([x, y]) => { const m = document.getElementById('pin-map').getScreenCTM();"
                " return [m.a * x + m.c * y + m.e, m.b * x + m.d * y + m.f]; }",
                [x, y],
            )
            phone.mouse.click(screen[0], screen[1])

        tap_the_plate()  # the whole district: a rough pin
        phone.click('.pin-tools button[data-zoom="in"]')  # zooms around the pin
        phone.click('.pin-tools button[data-zoom="in"]')
        tap_the_plate()  # closer
        phone.wait_for_selector("#nearby-list li")
        tapped = (float(phone.input_value("#lat")), float(phone.input_value("#lon")))
        assert haversine_m(*tapped, point.lat, point.lon) < 15
        assert phone.input_value("#located") == "pin"
        assert phone.locator("#nearby-list li").count() == 1
        assert no_horizontal_scroll(phone, PHONE["width"])
        shot(phone, "pin-map-tapped")

        # A forged plate is refused in words, not a stack trace.
        phone.goto(base + "/r/HJL-040.aaaaaaaaaaaaaaaa")
        assert phone.get_attribute("#refused", "data-kind") == "forged"
        assert errors == []
    finally:
        ctx.close()
