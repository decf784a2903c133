"""The vendor file through the REST API: an allowed role creates, links, counsels, finds
and reads a person (masked phone and number, colour from the history, every look
recorded); a role the city did not allow gets 403 on every route and learns nothing; the
city's setting decides which roles those are; bad input is a 422 naming the field."""

from __future__ import annotations

import io
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from central_hub.adapters.id_cipher import write_key_file
from central_hub.api import API_PREFIX, create_app
from central_hub.domain.workflow import Role
from central_hub.hub import Hub, build_hub
from central_hub.settings import HubSettings
from central_hub.testing import FakeClock, RecordingPublisher

sys.path.insert(0, str(Path(__file__).parent))
from vendor_seed import NUMBER, seed_case

pytestmark = pytest.mark.integration

VF = f"{API_PREFIX}/vendor-file"


async def make_hub(tmp_path: Path, clock: FakeClock, roles: str | None = None) -> Hub:
    key = tmp_path / "vendor.key"
    if not key.exists():
        write_key_file(key)
    settings = HubSettings(data_dir=tmp_path / "hub", vendor_file_key_file=key)
    if roles:
        settings = HubSettings(
            data_dir=tmp_path / "hub", vendor_file_key_file=key, vendor_file_roles=roles
        )
    return await build_hub(
        settings,
        clock=clock,
        mqtt=False,
        publisher=RecordingPublisher(),
    )


@pytest.fixture
async def keyed_hub(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Hub]:
    built = await make_hub(tmp_path, clock)
    yield built
    await built.close()


async def clients(hub: Hub) -> tuple[httpx.AsyncClient, dict[Role, dict[str, str]]]:
    auth = {}
    for role in Role:
        _, token = await hub.users.add(f"u-{role.value}", role)
        auth[role] = {"Authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=create_app(hub), raise_app_exceptions=True)
    return httpx.AsyncClient(transport=transport, base_url="http://hub"), auth


async def test_an_allowed_role_keeps_and_reads_the_file(keyed_hub: Hub, clock: FakeClock) -> None:
    hub = keyed_hub
    first, second, third = [await seed_case(hub.engine, clock.advance(days=d)) for d in (0, 7, 7)]
    http, auth = await clients(hub)
    async with http:
        h = auth[Role.HANDLER]
        made = await http.post(
            f"{VF}/persons",
            headers=h,
            json={"name": "张三", "phone": "13812345678", "id_number": NUMBER, "case_id": first},
        )
        assert made.status_code == 201, made.text
        who = made.json()["id"]
        r = await http.post(
            f"{VF}/persons/{who}/counsellings", headers=h, json={"outcome": "refused"}
        )
        assert r.status_code == 201, r.text
        for case in (second, third):
            r = await http.post(f"{VF}/persons/{who}/cases", headers=h, json={"case_id": case})
            assert r.status_code == 200, r.text
            assert r.json()["created"] is True
        found = await http.post(
            f"{VF}/search", headers=h, json={"name": "张", "reason": "stall on 横街路"}
        )
        assert found.status_code == 200, found.text
        [person] = found.json()
        assert person["phone"] == "138****5678"
        assert person["id_number"] == "110***********002X"
        assert NUMBER not in found.text
        assert "13812345678" not in found.text
        assert person["colour"] == "red"
        assert person["violations"] == 3
        by_number = await http.post(
            f"{VF}/search", headers=h, json={"id_number": NUMBER, "reason": "card shown"}
        )
        assert [p["id"] for p in by_number.json()] == [who]
        got = await http.get(f"{VF}/persons/{who}", headers=h, params={"reason": "follow-up"})
        assert got.status_code == 200, got.text
        body = got.json()
        assert [v["case_id"] for v in body["violations"]] == [first, second, third]
        assert [c["outcome"] for c in body["counsellings"]] == ["refused"]
        exif = Image.Exif()
        exif[0x010F] = "PhoneMaker"
        shot = io.BytesIO()
        Image.new("RGB", (40, 30), (9, 99, 199)).save(shot, format="JPEG", exif=exif)
        put = await http.put(
            f"{VF}/persons/{who}/photo",
            headers=h,
            files={"file": ("me.jpg", shot.getvalue(), "image/jpeg")},
        )
        assert put.status_code == 200, put.text
        bad = await http.put(
            f"{VF}/persons/{who}/photo",
            headers=h,
            files={"file": ("x.jpg", b"\xff\xd8no", "image/jpeg")},
        )
        assert bad.status_code == 422
        assert (await http.get(f"{VF}/persons/{who}/photo", headers=h)).status_code == 422
        pic = await http.get(f"{VF}/persons/{who}/photo", headers=h, params={"reason": "id check"})
        assert pic.headers["content-type"] == "image/jpeg"
        with Image.open(io.BytesIO(pic.content)) as img:
            assert dict(img.getexif()) == {}
        log = await http.get(f"{VF}/lookups", headers=auth[Role.ADMIN])
        assert [(x["kind"], x["user_name"], x["reason"]) for x in log.json()] == [
            ("photo", "u-handler", "id check"),
            ("file", "u-handler", "follow-up"),
            ("id_number", "u-handler", "card shown"),
            ("search", "u-handler", "stall on 横街路"),
        ]
        doc = (await http.get(f"{API_PREFIX}/openapi.json", headers=h)).json()
        ops = [op for p, item in doc["paths"].items() if "vendor-file" in p for op in item.values()]
        assert len(ops) == 8
        assert all(op["x-roles"] == ["admin", "handler"] for op in ops)
        assert all("delete" not in item for p, item in doc["paths"].items() if "vendor-file" in p)


async def test_a_role_without_the_right_gets_403_everywhere_and_sees_nothing(
    keyed_hub: Hub, clock: FakeClock
) -> None:
    hub = keyed_hub
    case = await seed_case(hub.engine, clock())
    http, auth = await clients(hub)
    async with http:
        made = await http.post(
            f"{VF}/persons", headers=auth[Role.ADMIN], json={"name": "张三", "case_id": case}
        )
        who = made.json()["id"]
        calls: list[tuple[str, str, dict[str, Any]]] = [
            ("POST", f"{VF}/search", {"json": {"name": "张", "reason": "x"}}),
            ("POST", f"{VF}/search", {"json": {"id_number": NUMBER, "reason": "x"}}),
            ("GET", f"{VF}/persons/{who}", {"params": {"reason": "x"}}),
            ("POST", f"{VF}/persons", {"json": {"name": "李四"}}),
            ("POST", f"{VF}/persons/{who}/cases", {"json": {"case_id": case}}),
            ("POST", f"{VF}/persons/{who}/counsellings", {"json": {"outcome": "complied"}}),
            ("GET", f"{VF}/lookups", {}),
            ("GET", f"{VF}/persons/{who}/photo", {"params": {"reason": "x"}}),
            (
                "PUT",
                f"{VF}/persons/{who}/photo",
                {"files": {"file": ("x.jpg", b"x", "image/jpeg")}},
            ),
        ]
        for role in (Role.OPERATOR, Role.DISPATCHER):
            for method, url, kw in calls:
                r = await http.request(method, url, headers=auth[role], **kw)
                assert r.status_code == 403, (role, method, url, r.text)
                assert "张三" not in r.text
                assert f"role {role.value} may not" in r.json()["detail"]
        log = await http.get(f"{VF}/lookups", headers=auth[Role.ADMIN])
        assert log.json() == []  # the refused looks were never made
        # The case API itself says nothing of the file.
        case_page = await http.get(f"{API_PREFIX}/cases/{case}", headers=auth[Role.OPERATOR])
        assert case_page.status_code == 200
        assert "张三" not in case_page.text


async def test_the_city_chooses_the_roles(tmp_path: Path, clock: FakeClock) -> None:
    hub = await make_hub(tmp_path, clock, roles="operator,admin")
    http, auth = await clients(hub)
    try:
        async with http:
            body = {"name": "张", "reason": "x"}
            ok = await http.post(f"{VF}/search", headers=auth[Role.OPERATOR], json=body)
            assert ok.status_code == 200
            no = await http.post(f"{VF}/search", headers=auth[Role.HANDLER], json=body)
            assert no.status_code == 403
            assert "needs one of admin, operator" in no.json()["detail"]
    finally:
        await hub.close()


async def test_bad_input_is_a_422_naming_the_field(keyed_hub: Hub) -> None:
    http, auth = await clients(keyed_hub)
    h = auth[Role.HANDLER]
    async with http:
        bad = [
            ("POST", f"{VF}/persons", {"name": "张\x00三"}, "name: holds control characters"),
            ("POST", f"{VF}/persons", {"name": "张三", "id_number": "123"}, "identity number"),
            ("POST", f"{VF}/persons", {"name": "张三", "phone": "call me"}, "phone: only"),
            (
                "POST",
                f"{VF}/search",
                {"name": "张", "id_number": NUMBER, "reason": "x"},
                "not both",
            ),
            ("POST", f"{VF}/search", {"name": "张", "reason": ""}, "reason"),
            ("POST", f"{VF}/search", {"name": "张", "reason": " "}, "reason: required"),
        ]
        for method, url, body, says in bad:
            r = await http.request(method, url, headers=h, json=body)
            assert r.status_code == 422, (body, r.text)
            assert says in r.text, r.text
        who = (await http.post(f"{VF}/persons", headers=h, json={"name": "张三"})).json()["id"]
        for at, says in (
            ("0001-01-01T00:00:00+08:00", "at: year 1"),
            ("2026-12-05T08:00:00", "timezone"),
            ("2099-01-01T00:00:00Z", "at: in the future"),
        ):
            r = await http.post(
                f"{VF}/persons/{who}/counsellings",
                headers=h,
                json={"outcome": "complied", "at": at},
            )
            assert r.status_code == 422, r.text
            assert says in r.text, r.text
        r = await http.get(f"{VF}/persons/1", headers=h)
        assert r.status_code == 422  # no reason, no look
        assert "reason" in r.text
