"""Correcting an event's boxes in the console: who may, what is refused and why, and the
correction replacing the unit's detections where labels are read (the retraining set)."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta
from typing import Any

import pytest

from central_hub.domain.labels import Verdict
from central_hub.domain.workflow import Action
from central_hub.hub import Hub
from central_hub.services.dataset import use_of
from central_hub.services.labels import labelled_events
from central_hub.testing import TINY_JPEG, ListSource, inbound, make_event
from central_hub.workers.ingest import IngestWorker

pytestmark = pytest.mark.integration


def objects_on(page: str) -> list[dict[str, Any]]:
    found = re.search(r'data-objects="([^"]*)"', page)
    assert found is not None
    return list(json.loads(html.unescape(found.group(1))))


async def test_an_operator_corrects_the_boxes_and_the_label_follows(hub: Hub, as_role: Any) -> None:
    event = make_event(snapshot=TINY_JPEG, at=hub.clock())
    await IngestWorker(hub.engine, ListSource(), hub.evidence, hub.filer, hub.clock).process(
        [inbound(event)]
    )
    url = f"/console/events/{event.event_id}/boxes"
    operator = await as_role("operator")
    page = await operator.get(url)
    assert page.status_code == 200
    assert objects_on(page.text) == [{"label": o.label, "box": list(o.box)} for o in event.objects]
    assert 'id="box-label"' in page.text
    for label in {o.label for o in event.objects}:  # offered: what units have reported
        assert f'<option value="{label}">' in page.text
    assert "/static/boxes.js" in page.text
    case = await operator.get(f"/console/cases/{(await hub.records.event(event.event_id)).case_id}")
    assert url in case.text  # the case's events link to the editor

    async def post(body: Any) -> Any:
        return await operator.post(url, json=body, headers={"X-CSRF-Token": operator.csrf})

    bad = await post({"objects": [{"label": "stall", "box": [0.5, 0.5, 0.4, 0.6]}]})
    assert bad.status_code == 422
    assert "x2 > x1" in bad.json()["detail"]
    bad = await post({"objects": [{"label": "Stall!", "box": [0.1, 0.1, 0.2, 0.2]}]})
    assert bad.status_code == 422
    assert "objects.0.label" in bad.json()["detail"]
    bad = await post({"objects": [{"label": "stall", "box": [0.1, 0.1, 1.2, 0.2]}]})
    assert bad.status_code == 422
    assert "objects.0.box.2" in bad.json()["detail"]
    missing = await operator.post(
        "/console/events/nope/boxes", json={"objects": []}, headers={"X-CSRF-Token": operator.csrf}
    )
    assert missing.status_code == 404
    fixed = [
        {"label": "goods", "box": [0.1, 0.5, 0.3, 0.9]},
        {"label": "person", "box": [0.6, 0.2, 0.7, 0.8]},
    ]
    saved = await post({"objects": fixed})
    assert saved.status_code == 200, saved.text
    assert saved.json()["saved"] == 2
    again = await operator.get(url)
    assert objects_on(again.text) == fixed
    assert "operator" in again.text  # corrected by
    # The operator calls the report a wrong object, but the corrected boxes say what is there.
    user = next(u for u in await hub.users.all() if u.name == "operator")
    await hub.cases.transition(
        (await hub.records.event(event.event_id)).case_id or 0,
        Action.CANCEL,
        user,
        verdict=Verdict.WRONG_OBJECT,
    )
    (labelled,) = await labelled_events(
        hub.engine, hub.clock() - timedelta(hours=1), hub.clock() + timedelta(hours=1)
    )
    assert labelled.corrected_by == "operator"
    assert [o["label"] for o in labelled.event.objects] == ["goods", "person"]
    assert use_of(labelled) == "boxes"  # not the hard negative the verdict alone would give
    assert labelled.verdict is Verdict.WRONG_OBJECT


async def test_only_operators_and_admins_correct_boxes(hub: Hub, as_role: Any) -> None:
    event = make_event(snapshot=TINY_JPEG, at=hub.clock())
    await IngestWorker(hub.engine, ListSource(), hub.evidence, hub.filer, hub.clock).process(
        [inbound(event)]
    )
    url = f"/console/events/{event.event_id}/boxes"
    for role in ("dispatcher", "handler"):
        client = await as_role(role)
        assert (await client.get(url)).status_code == 403
        refused = await client.post(
            url, json={"objects": []}, headers={"X-CSRF-Token": client.csrf}
        )
        assert refused.status_code == 403
    admin = await as_role("admin")
    assert (await admin.get(url)).status_code == 200
