"""The service-object registry in the console: search with its map, an object's page with
contacts masked by role, the audited edit form behind CSRF, a photo stored without EXIF,
and the objects of a 0504 case on its page (linked automatically, unlinked by hand)."""

from __future__ import annotations

import html
import io
import re
from typing import Any

import pytest
from console_http import Client, seed_case
from PIL import Image

from central_hub.hub import Hub
from central_hub.services.service_objects import ObjectQuery, ServiceObjects

pytestmark = pytest.mark.integration

SHOP = (28.6472, 121.2615)
FILE = (
    "kind,name,address,industry,subcategory,legal_representative,lat,lon,contact_name,"
    "contact_phone\n"
    f"street_shop,老王修鞋,县前街 12 号,02,0205,王大成,{SHOP[0]},{SHOP[1]},王大成,13812345678\n"
    "community,城东社区,东门路 1 号,,,,,,周主任,13900001111\n"
)


async def _shop(hub: Hub) -> int:
    registry = ServiceObjects.of_hub(hub)
    report = await registry.import_file(FILE.encode(), "shops.csv", "cli")
    assert report.created == 2
    return (await registry.search(ObjectQuery(text="老王")))[0].id


def _edit_form(c: Client, **change: str) -> dict[str, str]:
    form = {
        "csrf_token": c.csrf,
        "kind": "street_shop",
        "name": "老王修鞋",
        "address": "县前街 12 号",
        "industry": "02",
        "subcategory": "0205",
        "legal_representative": "王大成",
        "lat": str(SHOP[0]),
        "lon": str(SHOP[1]),
        "notes": "",
    }
    form.update(change)
    return form


async def test_search_object_page_masking_and_an_audited_edit(as_role: Any, hub: Hub) -> None:
    shop_id = await _shop(hub)
    ops = await as_role("operator")
    found = await ops.get("/console/objects", params={"q": "修鞋"})
    assert found.status_code == 200
    assert f'data-object-id="{shop_id}"' in found.text
    assert found.text.count('class="object-marker') == 1  # the community has no location
    assert "城东社区" not in found.text
    assert (await ops.get("/console/objects", params={"kind": "shopfront"})).status_code == 422

    full = await ops.get(f"/console/objects/{shop_id}")
    assert "13812345678" in full.text
    disp = await as_role("dispatcher")
    masked = await disp.get(f"/console/objects/{shop_id}")
    assert "13812345678" not in masked.text
    assert "138****5678" in masked.text
    assert 'id="object-edit"' not in masked.text  # dispatchers read, they do not edit

    # Without the CSRF token the edit is refused and nothing changes.
    no_token = _edit_form(ops, legal_representative="王小成")
    no_token.pop("csrf_token")
    refused = await ops.post(f"/console/objects/{shop_id}", data=no_token)
    assert refused.status_code == 403
    bad = await ops.post(f"/console/objects/{shop_id}", data=_edit_form(ops, subcategory="0301"))
    assert bad.status_code == 422
    assert "subcategory: 0301" in html.unescape(bad.text)
    saved = await ops.post(
        f"/console/objects/{shop_id}", data=_edit_form(ops, legal_representative="王小成")
    )
    assert saved.status_code == 303
    page = html.unescape((await ops.get(saved.headers["location"])).text)
    assert "王大成 → 王小成" in page
    trail = (await ServiceObjects.of_hub(hub).get(shop_id)).audits
    assert (trail[-1].actor, trail[-1].changes) == (
        "operator",
        {"legal_representative": ["王大成", "王小成"]},
    )
    # An import through the page lists every bad row; a dispatcher may not import.
    bad_file = FILE + "street_shop,,县前街 13 号,02,0205,王大成,,,,\n"
    imported = await ops.post(
        "/console/objects/import",
        data={"csrf_token": ops.csrf},
        files={"file": ("shops.csv", bad_file.encode(), "text/csv")},
    )
    assert imported.status_code == 422
    assert '<tr data-row="4"><td>4</td><td>name</td>' in imported.text
    # The file puts back the legal representative the form changed: one update.
    assert "共 3 行：新建 0，更新 1，未变 1，有误 1 行" in imported.text
    assert 'id="object-import"' not in masked.text
    # A contact removed from the page is gone, and the trail says what it held.
    contact_id = (await ServiceObjects.of_hub(hub).get(shop_id)).contacts[0].id
    removed = await ops.post(
        f"/console/objects/{shop_id}/contacts/{contact_id}/remove", data={"csrf_token": ops.csrf}
    )
    assert removed.status_code == 303
    after = await ServiceObjects.of_hub(hub).get(shop_id)
    assert after.contacts == []
    assert after.audits[-1].changes == {"contact 王大成": [["", "13812345678", None], None]}
    disp_edit = await disp.post(
        f"/console/objects/{shop_id}", data=_edit_form(disp, legal_representative="x")
    )
    assert disp_edit.status_code == 403


async def test_a_photo_is_stored_without_exif(as_role: Any, hub: Hub) -> None:
    shop_id = await _shop(hub)
    ops = await as_role("operator")
    await ops.get(f"/console/objects/{shop_id}")
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    raw = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(raw, format="JPEG", exif=exif.tobytes())
    assert b"PhoneMaker" in raw.getvalue()
    sent = await ops.post(
        f"/console/objects/{shop_id}/photos",
        data={"csrf_token": ops.csrf},
        files={"photo": ("shop.jpg", raw.getvalue(), "image/jpeg")},
    )
    assert sent.status_code == 303
    [sha] = (await ServiceObjects.of_hub(hub).get(shop_id)).photos
    stored = await hub.evidence.get(sha)
    assert b"PhoneMaker" not in stored
    assert not Image.open(io.BytesIO(stored)).getexif()


async def test_a_0504_case_page_shows_its_shop_and_an_operator_unlinks_it(
    as_role: Any, hub: Hub
) -> None:
    shop_id = await _shop(hub)
    near = (SHOP[0] + 5 / 111_195.0, SHOP[1])  # 5 m north of the shop
    case_id = await seed_case(hub, code="0504", lat=near[0], lon=near[1])
    ops = await as_role("operator")
    shown = await ops.get(f"/console/cases/{case_id}")
    section = re.search(r'id="case-objects">(.*?)</section>', shown.text, re.S)
    assert section is not None
    assert f'data-object-id="{shop_id}" data-how="auto"' in section.group(1)
    assert "老王修鞋" in section.group(1)
    gone = await ops.post(
        f"/console/cases/{case_id}/objects",
        data={"csrf_token": ops.csrf, "action": "unlink", "object_id": str(shop_id),
              "reason": "the neighbour's stall"},
    )  # fmt: skip
    assert gone.status_code == 303
    again = await ops.get(gone.headers["location"])
    assert 'data-how="auto"' not in again.text  # not linked again behind the operator's back
    assert 'data-action="object_unlink"' in again.text
    handler = await as_role("handler")
    refused = await handler.post(
        f"/console/cases/{case_id}/objects",
        data={"csrf_token": handler.csrf, "action": "link", "object_id": str(shop_id)},
    )
    assert refused.status_code == 403
