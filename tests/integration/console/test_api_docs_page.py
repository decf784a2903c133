"""The API reference is a console page for signed-in users, built from the app's own
OpenAPI document and loading nothing from elsewhere (issue #17, finding 9: ``/api/v1/docs``
was public and fetched Swagger UI from a CDN at run time)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from central_hub.console.api_docs_routes import type_text

pytestmark = pytest.mark.integration


async def test_the_reference_lists_every_operation_for_signed_in_users_only(
    client: Any, as_role: Any
) -> None:
    away = await client.get("/console/api-docs")
    assert away.status_code == 303
    assert "/console/login" in away.headers["location"]
    assert (await client.get("/console/api-docs/openapi.json")).status_code == 303
    handler = await as_role("handler")
    page = await handler.get("/console/api-docs")
    assert page.status_code == 200
    document = (await handler.get("/console/api-docs/openapi.json")).json()
    listed = 0
    for path, item in document["paths"].items():
        for method in item:
            assert f"<code>{method.upper()} {path}</code>" in page.text, (method, path)
            listed += 1
    assert listed >= 25
    # Roles and bounds are shown as the document gives them.
    assert "admin" in page.text
    assert "integer ≥ 1 ≤ 1000" in page.text
    # Nothing is fetched from another origin: no script at all, styles from here.
    assert '<script src="http' not in page.text
    for url in re.findall(r'(?:src|href)="([^"#]+)"', page.text):
        assert url.startswith("/"), url


def test_schema_types_read_as_words() -> None:
    assert type_text({"type": "integer", "minimum": 0, "maximum": 9}) == "integer ≥ 0 ≤ 9"
    assert type_text({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]}) == (
        "string (date-time) | null"
    )
    assert type_text({"type": "array", "items": {"$ref": "#/components/schemas/Case"}}) == (
        "array of Case"
    )
