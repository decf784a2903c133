"""The live view's console routes refuse what they cannot show, by name: a hub without a
broker, another role, an unknown device, a camera the device does not have, an unknown
case; the device page offers the device's cameras."""

from __future__ import annotations

from typing import Any

from central_hub.hub import Hub
from central_hub.services.live import LiveViews


async def test_live_routes_refuse_by_name_and_the_page_offers_the_cameras(
    as_role: Any, hub: Hub
) -> None:
    await hub.devices.register("pole-1", "pole")
    await hub.devices.set_desired("pole-1", {"vision": {"cameras": [{"id": "mast"}]}})
    operator = await as_role("operator")
    stream = "/console/devices/pole-1/live/mast/stream"
    r = await operator.get(stream)
    assert r.status_code == 503
    assert "broker" in r.json()["detail"]
    page = await operator.get("/console/devices/pole-1")
    assert 'id="live"' in page.text
    assert "live.js" in page.text
    # With live views (no broker link: nothing is sent, the routes and audit still work).
    hub.live = LiveViews(hub.engine, hub.key, None, hub.clock)
    page = await operator.get("/console/devices/pole-1?live=mast")
    assert 'class="live-watch" data-camera="mast"' in page.text
    assert 'data-open="mast"' in page.text
    handler = await as_role("handler")
    assert (await handler.get(stream)).status_code == 403
    r = await operator.get("/console/devices/pole-9/live/mast/stream")
    assert (r.status_code, r.json()["detail"]) == (404, "no device 'pole-9'")
    r = await operator.get("/console/devices/pole-1/live/gate/stream")
    assert (r.status_code, r.json()["detail"]) == (404, "device 'pole-1' has no camera 'gate'")
    r = await operator.get(stream + "?case=424242")
    assert (r.status_code, r.json()["detail"]) == (404, "no case 424242")
    overlay = await operator.get("/console/devices/pole-1/live/mast/overlay")
    assert overlay.json() == {"seq": None, "viewers": 0}
