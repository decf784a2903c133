"""The registries' API: import by upload, search, create and edit with audit, masking of
contacts and owners by role, vehicles by plate, a case's objects; refusals as documented."""

from __future__ import annotations

import httpx
import pytest

from central_hub.api import API_PREFIX, create_app
from central_hub.domain.workflow import Role
from central_hub.hub import Hub

pytestmark = pytest.mark.integration

SHOPS = (
    "kind,name,address,industry,subcategory,legal_representative,lat,lon,contact_name,"
    "contact_phone\n"
    "street_shop,老王修鞋,县前街 12 号,02,0205,王大成,28.6472,121.2615,王大成,13812345678\n"
    "street_shop,,县前街 13 号,02,0205,王大成,,,,\n"
)


async def test_the_registries_through_the_api(sqlite_hub: Hub) -> None:
    hub = sqlite_hub
    _, oper = await hub.users.add("op", Role.OPERATOR)
    _, disp = await hub.users.add("disp", Role.DISPATCHER)
    o, d = {"Authorization": f"Bearer {oper}"}, {"Authorization": f"Bearer {disp}"}
    base = f"{API_PREFIX}/service-objects"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(hub)), base_url="http://hub"
    ) as api:
        files = {"file": ("shops.csv", SHOPS.encode(), "text/csv")}
        refused = await api.post(f"{base}/import", files=files, headers=d)
        assert refused.status_code == 403  # dispatchers read, they do not import
        report = (await api.post(f"{base}/import", files=files, headers=o)).json()
        assert (report["created"], report["bad_rows"]) == (1, 1)
        assert report["problems"] == [{"row": 3, "column": "name", "reason": "required"}]

        found = (await api.get(base, params={"q": "修鞋"}, headers=d)).json()
        assert [x["name"] for x in found] == ["老王修鞋"]
        shop_id = found[0]["id"]
        full = (await api.get(f"{base}/{shop_id}", headers=o)).json()
        masked = (await api.get(f"{base}/{shop_id}", headers=d)).json()
        assert full["contacts"][0]["phone"] == "13812345678"
        assert (masked["contacts"][0]["phone"], masked["contacts_masked"]) == ("138****5678", True)
        assert masked["contacts"][0]["name"] == "王**"

        body = {
            "kind": "street_shop",
            "name": "老王修鞋",
            "address": "县前街 12 号",
            "industry": "repair",
            "subcategory": "0205",
            "legal_representative": "王小成",
            "lat": 28.6472,
            "lon": 121.2615,
        }
        edited = (await api.put(f"{base}/{shop_id}", json=body, headers=o)).json()
        assert edited["audits"][-1]["changes"] == {"legal_representative": ["王大成", "王小成"]}
        assert edited["audits"][-1]["actor"] == "op"
        bad = await api.put(f"{base}/{shop_id}", json={**body, "subcategory": "0301"}, headers=o)
        assert bad.status_code == 422
        assert "subcategory" in bad.json()["detail"]
        outside = await api.post(base, json={**body, "lat": 31.23, "lon": 121.47}, headers=o)
        assert outside.status_code == 422
        taken = await api.post(base, json=body, headers=o)
        assert taken.status_code == 409
        assert (await api.get(f"{base}/999999", headers=o)).status_code == 404
        assert (await api.get(base, params={"cell": "nowhere"}, headers=o)).status_code == 404
        industries = (await api.get(f"{API_PREFIX}/industries", headers=d)).json()
        assert (len(industries), sum(len(i["subcategories"]) for i in industries)) == (20, 131)

        contact_id = full["contacts"][0]["id"]
        gone = f"{base}/{shop_id}/contacts/{contact_id}"
        assert (await api.delete(gone, headers=d)).status_code == 403
        assert (await api.delete(gone, headers=o)).json()["contacts"] == []
        assert (await api.delete(gone, headers=o)).status_code == 404

        cars = {"file": ("cars.csv", "车牌,车主,电话\n浙JA12345,李四,13912345678\n".encode())}
        assert (await api.post(f"{API_PREFIX}/vehicles/import", files=cars, headers=o)).json()[
            "created"
        ] == 1
        owner = (await api.get(f"{API_PREFIX}/vehicles/浙J·A12345", headers=o)).json()
        assert (owner["owner_name"], owner["phone"]) == ("李四", "13912345678")
        hidden = (await api.get(f"{API_PREFIX}/vehicles/浙JA12345", headers=d)).json()
        assert (hidden["owner_name"], hidden["phone"]) == ("李*", "139****5678")
        assert (await api.get(f"{API_PREFIX}/vehicles/浙JB00000", headers=o)).status_code == 404
        assert (await api.get(f"{API_PREFIX}/vehicles/nonsense", headers=o)).status_code == 422

        missing = await api.get(f"{API_PREFIX}/cases/424242/objects", headers=o)
        assert missing.status_code == 404
        link = await api.post(
            f"{API_PREFIX}/cases/424242/objects", json={"object_id": shop_id}, headers=o
        )
        assert link.status_code == 404
