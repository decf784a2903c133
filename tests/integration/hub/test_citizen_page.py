"""The citizens' report page (issue #15 item 4) served in-process: a scanned plate, the
form, "is it one of these?", a photo whose GPS EXIF never reaches storage, the status
page following the case, and every refusal (forged plates, stale forms, throttles, a bad
plates file). Storage-bound tests run on SQLite and PostgreSQL (the ``hub`` fixture)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from PIL import Image

from central_hub.api import create_app
from central_hub.api.citizen_reports import moderation_service
from central_hub.citizen_page import PageLimits, install_citizen_page
from central_hub.db.schema import citizen_reports
from central_hub.domain.citizen_moderation import Moderation
from central_hub.domain.errors import PlateError
from central_hub.domain.qr_plates import SAMPLE_POINTS_PATH, plate_path, plate_signature
from central_hub.domain.workflow import Action, Role, Stage
from central_hub.hub import Hub
from central_hub.services.citizen_page import PAGE_CLIENT, PlateBook
from central_hub.services.citizen_reports import Open311Keys
from central_hub.testing import FakeClock

pytestmark = pytest.mark.integration

#: A plate of the sample's 县前街 and one of the ids the sample lists.
PLATE_ID = "XQJ-017"
GPS_LAT = 31.2304  # Shanghai: the phone's position, which must not reach storage


@dataclass
class Page:
    client: httpx.AsyncClient
    book: PlateBook

    def plate_url(self, point_id: str = PLATE_ID) -> str:
        return plate_path(point_id, self.book.secret)

    async def form(self, url: str) -> dict[str, str]:
        """Open a form page; its hidden fields."""
        resp = await self.client.get(url)
        assert resp.status_code == 200, resp.text
        return hidden_fields(resp.text)

    async def send(
        self,
        url: str,
        fields: dict[str, str],
        photo: bytes | None = None,
        **kw: object,
    ) -> httpx.Response:
        """Open ``url``'s form and send it with ``fields`` (and a photo)."""
        hidden = await self.form(url)
        files = {"photo": ("p.jpg", photo, "image/jpeg")} if photo is not None else None
        return await self.client.post(
            "/report",
            data={**hidden, **fields},
            files=files,
            **kw,  # type: ignore[arg-type]
        )


def hidden_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def photo_with_gps() -> bytes:
    """A JPEG whose EXIF says where it was taken (GPS IFD) and with which phone."""
    img = Image.new("RGB", (320, 240), (120, 160, 90))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (31.0, 13.0, 49.44)
    gps[3], gps[4] = "E", (121.0, 28.0, 19.0)
    out = io.BytesIO()
    img.save(out, format="JPEG", exif=exif)
    data = out.getvalue()
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825), "the fixture has GPS"
    return data


@pytest.fixture
async def page(hub: Hub, tmp_path: Path) -> AsyncIterator[Page]:
    app = create_app(hub)
    book = PlateBook.load(SAMPLE_POINTS_PATH, tmp_path / "plate_secret", hub.grid)
    limits = PageLimits(per_client_burst=50, per_plate_burst=50)
    install_citizen_page(app, hub, book, limits=limits)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub", follow_redirects=False
    ) as client:
        yield Page(client, book)


async def stored(hub: Hub) -> list[sa.Row[tuple[object, ...]]]:
    async with hub.engine.connect() as conn:
        return list((await conn.execute(citizen_reports.select().order_by("id"))).all())


# --- a plate, the form, a report -----------------------------------------------------------


async def test_a_scanned_plate_opens_the_form_with_its_place(page: Page) -> None:
    resp = await page.client.get(page.plate_url())
    assert resp.status_code == 200
    assert 'data-plate-id="XQJ-017"' in resp.text
    assert "县前街 17号牌" in resp.text
    assert 'id="nearby-none"' in resp.text  # nothing open there yet
    assert resp.headers["content-security-policy"].startswith("default-src 'self'")
    assert "xh_report=" in resp.headers["set-cookie"]
    english = await page.client.get(page.plate_url() + "?lang=en")
    assert "You scanned the plate at" in english.text


@pytest.mark.parametrize(
    ("token", "kind"),
    [
        ("XQJ-017", "malformed"),
        ("XQJ-017.aaaaaaaaaaaaaaaa", "forged"),
        ("XQJ-017.AAAAAAAAAAAAAAAA", "malformed"),
        ("<script>alert(1)</script>", "malformed"),
    ],
)
async def test_a_forged_or_malformed_plate_is_refused(page: Page, token: str, kind: str) -> None:
    resp = await page.client.get(f"/r/{token}")
    assert resp.status_code == 404
    assert f'data-kind="{kind}"' in resp.text


async def test_a_genuine_plate_the_city_no_longer_lists_is_refused(page: Page) -> None:
    token = f"XQJ-999.{plate_signature('XQJ-999', page.book.secret)}"
    resp = await page.client.get(f"/r/{token}")
    assert resp.status_code == 404
    assert 'data-kind="unknown"' in resp.text


async def test_a_report_from_a_plate_is_filed_without_the_photos_gps(page: Page, hub: Hub) -> None:
    resp = await page.send(
        page.plate_url(),
        {"code": "0404", "description": "井盖松动", "attr.ON_ROAD": "no", "phone": "13800000000"},
        photo=photo_with_gps(),
    )
    assert resp.status_code == 303, resp.text
    location = resp.headers["location"]
    assert location.startswith("/report/s/")
    [row] = await stored(hub)
    point = page.book.points[PLATE_ID]
    assert (row.lat, row.lon) == (point.lat, point.lon)
    assert row.location_source == "plate"
    assert row.address == "县前街 17号牌 (XQJ-017)"
    assert row.code == "0404"
    assert row.phone == "13800000000"
    assert location == f"/report/s/{row.report_id}?lang=zh"
    keys = await Open311Keys(hub.engine, hub.clock).all()
    assert [k.name for k in keys if k.id == row.api_key_id] == [PAGE_CLIENT]
    # The stored photo is a re-encoded JPEG: no EXIF at all, so no position.
    data = (hub.evidence.path_of(row.photo_sha256)).read_bytes()
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "JPEG"
        assert not img.getexif()
        assert img.getexif().get_ifd(0x8825) == {}
    assert b"Exif" not in data[:200]
    assert b"PhoneMaker" not in data

    status = await page.client.get(location)
    assert status.status_code == 200
    assert 'data-stage="reported"' in status.text
    assert "已上报，待核实" in status.text
    assert "县前街 17号牌 (XQJ-017)" in status.text
    assert "13800000000" not in status.text  # contact is never shown back


async def test_the_form_without_a_plate_takes_coordinates(page: Page, hub: Hub) -> None:
    resp = await page.send(
        "/report", {"code": "0507", "lat": "28.6472", "lon": "121.2615", "located": "gps"}
    )
    assert resp.status_code == 303, resp.text
    [row] = await stored(hub)
    assert (row.lat, row.lon, row.location_source) == (28.6472, 121.2615, "gps")


async def test_is_it_one_of_these_then_the_same_problem_joins_its_case(
    page: Page, hub: Hub, clock: FakeClock
) -> None:
    first = await page.send(page.plate_url(), {"code": "0507", "description": "门口堆放纸箱"})
    assert first.status_code == 303
    clock.advance(minutes=10)
    # A plate 9 m along the street: the first report is listed, 9 m away.
    form = await page.client.get(page.plate_url("XQJ-018"))
    [token] = re.findall(r'<li data-token="([^"]+)" data-code="0507">', form.text)
    assert first.headers["location"] == f"/report/s/{token}?lang=zh"
    assert re.search(r"\b9 米", form.text)
    second = await page.send(page.plate_url("XQJ-018"), {"code": "0507"})
    assert second.status_code == 303
    one, two = await stored(hub)
    assert one.case_id == two.case_id  # merged by code and radius
    # The script's endpoint says the same for a typed position.
    near = await page.client.get(
        "/report/nearby.json", params={"lat": str(one.lat), "lon": str(one.lon), "lang": "en"}
    )
    body = near.json()
    assert [r["token"] for r in body["reports"]][:2] == [one.report_id, two.report_id]
    assert body["reports"][0]["status"] == "reported, awaiting verification"
    assert "description" not in json.dumps(body)  # unverified text is not public


async def test_the_status_page_follows_the_case(page: Page, hub: Hub, clock: FakeClock) -> None:
    resp = await page.send(page.plate_url(), {"code": "0507"})
    [row] = await stored(hub)
    op, _ = await hub.users.add("op-page", Role.OPERATOR)
    clock.advance(minutes=3)
    await hub.cases.transition(row.case_id, Action.START_VERIFY, op)
    clock.advance(minutes=2)
    await hub.cases.transition(row.case_id, Action.VERIFY, op)
    status = await page.client.get(resp.headers["location"])
    assert f'data-stage="{Stage.REGISTERED.value}"' in status.text
    history = re.findall(r"<li><time>([^<]+)</time> ([^<]+)</li>", status.text)
    assert [note for _, note in history] == ["已上报，待核实", "核实中", "已立案，待派遣"]


async def test_a_double_tap_files_one_report(page: Page, hub: Hub) -> None:
    hidden = await page.form(page.plate_url())
    fields = {**hidden, "code": "0507"}
    one = await page.client.post("/report", data=fields)
    two = await page.client.post("/report", data=fields)
    assert one.status_code == two.status_code == 303
    assert one.headers["location"] == two.headers["location"]
    assert len(await stored(hub)) == 1


# --- refusals --------------------------------------------------------------------------------


async def test_a_form_missing_what_open311_needs_comes_back_with_the_reasons(
    page: Page, hub: Hub
) -> None:
    resp = await page.send("/report", {"description": "门口堆物", "phone": "139"})
    assert resp.status_code == 400
    assert 'id="form-errors"' in resp.text
    assert "service_code was not provided" in resp.text
    assert "门口堆物" in resp.text  # what was typed is kept
    resp = await page.send("/report", {"code": "0507"})
    assert resp.status_code == 400
    assert "a location was not provided" in resp.text
    resp = await page.send(page.plate_url(), {"code": "0404", "attr.ON_ROAD": "perhaps"})
    assert resp.status_code == 400
    assert "ON_ROAD" in resp.text
    assert await stored(hub) == []


async def test_a_broken_photo_is_refused_and_nothing_is_filed(page: Page, hub: Hub) -> None:
    resp = await page.send(page.plate_url(), {"code": "0507"}, photo=b"\xff\xd8not a jpeg")
    assert resp.status_code == 415
    assert "照片" in resp.text
    assert await stored(hub) == []


async def test_a_form_without_its_secret_or_from_another_site_is_refused(
    page: Page, hub: Hub
) -> None:
    hidden = await page.form(page.plate_url())
    stale = await page.client.post("/report", data={**hidden, "csrf_token": "x", "code": "0507"})
    assert stale.status_code == 403
    assert "页面已过期" in stale.text
    cross = await page.client.post(
        "/report", data={**hidden, "code": "0507"}, headers={"Origin": "https://evil.example"}
    )
    assert cross.status_code == 403
    forged = await page.client.post(
        "/report", data={**hidden, "code": "0507", "plate": "XQJ-017.aaaaaaaaaaaaaaaa"}
    )
    assert forged.status_code == 400
    assert await stored(hub) == []


async def test_reports_are_throttled_per_plate_and_per_client(hub: Hub, tmp_path: Path) -> None:
    app = create_app(hub)
    book = PlateBook.load(SAMPLE_POINTS_PATH, tmp_path / "plate_secret", hub.grid)
    install_citizen_page(app, hub, book, limits=PageLimits(per_client_burst=4, per_plate_burst=2))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub"
    ) as client:
        page = Page(client, book)
        codes = [
            (await page.send(page.plate_url(), {"code": "0507"})).status_code for _ in range(3)
        ]
        assert codes == [303, 303, 429]
        third = await page.send(page.plate_url("XQJ-020"), {"code": "0507"})
        assert third.status_code == 303  # another plate, same client: within its budget
        over = await page.send(page.plate_url("XQJ-021"), {"code": "0507"})
        assert over.status_code == 429
        assert int(over.headers["retry-after"]) >= 1
    assert len(await stored(hub)) == 3


async def test_revoking_the_page_client_pauses_the_page(page: Page, hub: Hub) -> None:
    assert (await page.send(page.plate_url(), {"code": "0507"})).status_code == 303
    await Open311Keys(hub.engine, hub.clock).revoke(PAGE_CLIENT)
    resp = await page.send(page.plate_url(), {"code": "0507"})
    assert resp.status_code == 503
    assert "12319" in resp.text
    assert len(await stored(hub)) == 1


async def test_nearby_refuses_a_bad_position(page: Page) -> None:
    for params in ({"lat": "x", "lon": "1"}, {"lat": "91", "lon": "1"}, {"lon": "1"}):
        resp = await page.client.get("/report/nearby.json", params=params)
        assert resp.status_code == 400
        assert "lat and lon" in resp.json()["detail"]


async def test_an_unknown_status_token_says_so(page: Page) -> None:
    resp = await page.client.get("/report/s/" + "0" * 36)
    assert resp.status_code == 404
    assert 'data-kind="no_report"' in resp.text


# --- the plates file -------------------------------------------------------------------------


async def test_a_bad_plates_file_is_refused_naming_the_file(hub: Hub, tmp_path: Path) -> None:
    broken = tmp_path / "plates.geojson"
    broken.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature"}]}')
    with pytest.raises(PlateError, match=r"plates\.geojson"):
        PlateBook.load(broken, tmp_path / "secret", hub.grid)
    far = tmp_path / "far.geojson"
    far.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"id": "FAR-1", "street": "远街"},
                        "geometry": {"type": "Point", "coordinates": [116.4, 39.9]},
                    }
                ],
            }
        )
    )
    with pytest.raises(PlateError, match=r"FAR-1.*no street cell"):
        PlateBook.load(far, tmp_path / "secret", hub.grid)


async def test_a_hidden_report_keeps_its_status_page_but_leaves_the_nearby_list(
    page: Page, hub: Hub
) -> None:
    sent = await page.send(page.plate_url(), {"code": "0507"})
    [row] = await stored(hub)
    listed = await page.client.get(page.plate_url("XQJ-018"))
    assert f'data-token="{row.report_id}"' in listed.text
    op, _ = await hub.users.add("op-moderator", Role.OPERATOR)
    await moderation_service(hub).moderate(Moderation.HIDE, row.id, op, "abusive text")
    listed = await page.client.get(page.plate_url("XQJ-018"))
    assert row.report_id not in listed.text
    assert 'id="nearby-none"' in listed.text
    status = await page.client.get(sent.headers["location"])
    assert status.status_code == 200  # the reporter's receipt still works
    assert 'data-stage="reported"' in status.text
