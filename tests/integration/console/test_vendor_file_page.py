"""The vendor file in the console: a handler creates a person for a 0501 case (photo
stripped of EXIF, identity number masked), finds them by name from the phone page with
a reason, reads their file and records counsellings that move the colour; every look is
recorded; an operator sees no nav link, no section on the case page and a 403 on every
vendor page, with nothing of the person in it."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from console_http import Client, seed_case
from PIL import Image

from central_hub.adapters.id_cipher import write_key_file
from central_hub.console.app import console_routes
from central_hub.db.schema import vendor_file_lookups, vendor_persons
from central_hub.hub import Hub, build_hub
from central_hub.settings import HubSettings
from central_hub.testing import FakeClock, RecordingPublisher

pytestmark = pytest.mark.integration

NUMBER = "11010519491231002X"


@pytest.fixture
async def hub(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Hub]:
    """The console's hub, with the vendor file's key (roles: the default)."""
    key = tmp_path / "vendor.key"
    write_key_file(key)
    built = await build_hub(
        HubSettings(data_dir=tmp_path / "hub", vendor_file_key_file=key),
        clock=clock,
        mqtt=False,
        publisher=RecordingPublisher(),
    )
    yield built
    await built.close()


def jpeg_with_gps() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x8825] = {2: (28.0, 38.0, 50.0)}  # GPSInfo: latitude
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 20)).save(out, format="JPEG", exif=exif)
    return out.getvalue()


async def looks(hub: Hub) -> list[tuple[str, str, str]]:
    async with hub.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(
                vendor_file_lookups.c.user_name,
                vendor_file_lookups.c.kind,
                vendor_file_lookups.c.reason,
            ).order_by(vendor_file_lookups.c.id)
        )
        return [(str(u), str(k), str(r)) for u, k, r in rows]


async def test_a_handler_files_finds_and_counsels_a_vendor_from_the_phone_pages(
    as_role: Any, hub: Hub, clock: FakeClock
) -> None:
    handler: Client = await as_role("handler")
    case = await seed_case(hub, code="0501", stage="registered")
    page = await handler.get(f"/console/cases/{case}")
    assert 'id="vendor-file"' in page.text
    assert f"/console/vendor-file/new?case_id={case}" in page.text
    assert 'data-nav="vendor"' in page.text
    form = await handler.get(f"/console/vendor-file/new?case_id={case}")
    assert form.status_code == 200
    assert f'value="{case}"' in form.text
    made = await handler.post(
        "/console/vendor-file/persons",
        data={
            "csrf_token": handler.csrf,
            "name": "张三",
            "phone": "13812345678",
            "id_number": NUMBER,
            "case_id": str(case),
        },
        files={"photo": ("me.jpg", jpeg_with_gps(), "image/jpeg")},
    )
    assert made.status_code == 303, made.text
    assert made.headers["location"] == f"/console/cases/{case}?done=vendor_linked"
    page = await handler.get(f"/console/cases/{case}")
    linked = re.search(r'class="vendor-linked" data-person-id="(\d+)"', page.text)
    assert linked is not None
    who = int(linked.group(1))
    assert 'data-colour="none"' in page.text
    # The lookup page: by name, with a reason; the result shows photo, colour, masked phone.
    lookup = await handler.get("/console/vendor-file")
    assert 'name="viewport"' in lookup.text
    assert "vendor.css" in lookup.text
    found = await handler.post(
        "/console/vendor-file/search",
        data={"csrf_token": handler.csrf, "name": "张", "reason": "县前街 stall"},
    )
    assert found.status_code == 200
    assert f'data-person-id="{who}"' in found.text
    assert "138****5678" in found.text
    assert "13812345678" not in found.text
    photo_url = (
        f"/console/vendor-file/persons/{who}/photo?reason=%E5%8E%BF%E5%89%8D%E8%A1%97%20stall"
    )
    assert photo_url in found.text
    no_reason = await handler.get(f"/console/vendor-file/persons/{who}/photo")
    assert no_reason.status_code == 422
    photo = await handler.get(photo_url)
    assert photo.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(photo.content)) as img:
        assert dict(img.getexif()) == {}
    # The file: asks for a reason first, then shows the history with links.
    ask = await handler.get(f"/console/vendor-file/persons/{who}")
    assert 'id="vendor-reason"' in ask.text
    assert "张三" not in ask.text
    file = await handler.get(f"/console/vendor-file/persons/{who}", params={"reason": "follow-up"})
    assert file.status_code == 200
    assert "110***********002X" in file.text
    assert NUMBER not in file.text
    assert f'href="/console/cases/{case}"' in file.text
    said = await handler.post(
        f"/console/vendor-file/persons/{who}/counsellings",
        data={
            "csrf_token": handler.csrf,
            "outcome": "refused",
            "case_id": str(case),
            "note": "told to come to the office",
            "reason": "follow-up",
        },
    )
    assert said.status_code == 303, said.text
    file = await handler.get(said.headers["location"])
    assert 'data-colour="yellow"' in file.text
    assert 'data-outcome="refused"' in file.text
    assert "told to come to the office" in file.text
    assert ">黄色<" in file.text or ">yellow<" in file.text
    # A second 0501 case, linked from its page through the search: the refusal now
    # counts for a second violation, and the file turns green.
    other = await seed_case(hub, code="0501", stage="registered")
    page = await handler.get(f"/console/cases/{other}")
    assert 'id="vendor-find"' in page.text
    found = await handler.post(
        "/console/vendor-file/search",
        data={"csrf_token": handler.csrf, "name": "张三", "reason": "linking", "for_case": other},
    )
    assert f'action="/console/vendor-file/persons/{who}/cases"' in found.text
    linked_too = await handler.post(
        f"/console/vendor-file/persons/{who}/cases",
        data={"csrf_token": handler.csrf, "case_id": str(other)},
    )
    assert linked_too.status_code == 303
    assert linked_too.headers["location"] == f"/console/cases/{other}?done=vendor_linked"
    file = await handler.get(f"/console/vendor-file/persons/{who}", params={"reason": "again"})
    assert 'data-colour="green"' in file.text
    assert file.text.count("data-case-id=") == 2
    # A case of another code has no vendor section.
    parked = await seed_case(hub, code="0505")
    assert 'id="vendor-file"' not in (await handler.get(f"/console/cases/{parked}")).text
    recorded = await looks(hub)
    assert ("handler", "case", f"case {case} page") in recorded
    assert ("handler", "search", "县前街 stall") in recorded
    assert ("handler", "photo", "县前街 stall") in recorded
    assert recorded.count(("handler", "file", "follow-up")) == 2


async def test_a_lookup_without_a_reason_shows_nothing_and_records_nothing(
    as_role: Any, hub: Hub, tokens: dict[str, str]
) -> None:
    handler: Client = await as_role("handler")
    user = await hub.users.authenticate(tokens["handler"])
    await hub.vendor_file.create_person(user, name="张三")
    r = await handler.post(
        "/console/vendor-file/search",
        data={"csrf_token": handler.csrf, "name": "张", "reason": "  "},
    )
    assert r.status_code == 422
    assert "reason: required" in r.text
    assert "vendor-result" not in r.text
    no_csrf = await handler.post("/console/vendor-file/search", data={"name": "张", "reason": "x"})
    assert no_csrf.status_code == 403
    assert await looks(hub) == []


def concrete(path: str, person: int, case: int) -> str:
    return path.replace("{person_id}", str(person)).replace("{case_id}", str(case))


async def test_an_operator_sees_no_trace_of_the_file(as_role: Any, hub: Hub) -> None:
    handler: Client = await as_role("handler")
    operator: Client = await as_role("operator")
    case = await seed_case(hub, code="0501", stage="registered")
    made = await handler.post(
        "/console/vendor-file/persons",
        data={"csrf_token": handler.csrf, "name": "张三", "case_id": str(case)},
    )
    assert made.status_code == 303
    async with hub.engine.connect() as conn:
        who = (await conn.execute(sa.select(vendor_persons.c.id))).scalar_one()
    home = await operator.get("/console/")
    assert 'data-nav="vendor"' not in home.text
    assert "/console/vendor-file" not in home.text
    page = await operator.get(f"/console/cases/{case}")
    assert page.status_code == 200
    assert 'id="vendor-file"' not in page.text
    assert "张三" not in page.text
    routes = [(m, p) for m, p in console_routes() if "/vendor-file" in p]
    assert len(routes) >= 8
    for method, path in routes:
        url = concrete(path, who, case)
        kw: dict[str, Any] = {}
        if method == "POST":
            kw["data"] = {
                "csrf_token": operator.csrf,
                "name": "张",
                "reason": "x",
                "case_id": str(case),
                "outcome": "complied",
            }
        elif path.endswith("/persons/{person_id}"):
            kw["params"] = {"reason": "x"}
        r = await operator.http.request(method, url, **kw)
        assert r.status_code == 403, (method, path, r.status_code)
        assert "张三" not in r.text
    # Only the handler's own looks are on record; the operator's never happened.
    assert {u for u, _, _ in await looks(hub)} <= {"handler"}
