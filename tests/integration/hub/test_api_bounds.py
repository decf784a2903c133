"""Every query and path parameter of the API refuses out-of-range input with a 422 naming
it, never a 500 (issue #17, finding 7: integers past int64 and naive datetimes were
internal errors). The walk reads the OpenAPI document, so a new route is covered as soon
as it exists."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from central_hub.api import API_PREFIX, create_app
from central_hub.domain.workflow import Role
from central_hub.hub import Hub

pytestmark = pytest.mark.integration

METHODS = ("get", "post", "put", "patch", "delete")


def _kinds(schema: dict[str, Any]) -> set[str]:
    if "anyOf" in schema:
        return {k for s in schema["anyOf"] for k in _kinds(s)}
    kind = str(schema.get("type", ""))
    return {f"{kind}:{schema['format']}" if "format" in schema else kind}


async def test_every_parameter_refuses_what_does_not_fit(sqlite_hub: Hub) -> None:
    _, token = await sqlite_hub.users.add("root", Role.ADMIN)
    auth = {"Authorization": f"Bearer {token}"}
    # raise_app_exceptions: an unhandled error inside a route fails the test at once.
    transport = httpx.ASGITransport(app=create_app(sqlite_hub), raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        doc = (await client.get(f"{API_PREFIX}/openapi.json", headers=auth)).json()
        probed = {"integer": 0, "string:date-time": 0}
        for path, item in doc["paths"].items():
            for method, op in item.items():
                if method not in METHODS:
                    continue
                for param in op.get("parameters", ()):
                    kinds = _kinds(param.get("schema", {}))
                    if "integer" in kinds:
                        bad = [str(2**63), str(10**30), "-1" if param["in"] == "path" else "x"]
                        probed["integer"] += 1
                    elif "string:date-time" in kinds:
                        bad = ["2026-12-05T08:00:00", "2026-13-01T00:00:00Z"]
                        probed["string:date-time"] += 1
                    else:
                        continue
                    for value in bad:
                        url = path
                        query: dict[str, str] = {}
                        if param["in"] == "path":
                            url = path.replace("{" + param["name"] + "}", value)
                        else:
                            query[param["name"]] = value
                        url = re.sub(r"\{[^}]+\}", "1", url)
                        resp = await client.request(method, url, params=query, headers=auth)
                        assert resp.status_code == 422, (method, path, param["name"], value)
                        detail = resp.json()["detail"]
                        assert param["name"] in str(detail), (method, path, detail)
        assert probed["integer"] >= 8, probed
        assert probed["string:date-time"] >= 8, probed
