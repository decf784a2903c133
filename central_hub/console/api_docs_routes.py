"""The REST API's reference, for signed-in console users: every operation with its roles,
parameters, body and answers, read from the app's own OpenAPI document.

Served from here, not from a CDN: the page holds no script, and neither it nor the
OpenAPI document is shown to anyone who is not signed in (issue #17: ``/api/v1/docs``
was public and loaded Swagger UI from the internet at run time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

from central_hub.console.render import page
from central_hub.console.security import ViewerDep

__all__ = ["Operation", "Parameter", "operations", "router", "type_text"]

router = APIRouter()

_METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class Parameter:
    """One parameter of an operation, as the page shows it."""

    name: str
    where: str
    required: bool
    type: str
    description: str


@dataclass(frozen=True)
class Operation:
    """One API operation, as the page shows it."""

    method: str
    path: str
    summary: str
    description: str
    roles: tuple[str, ...]
    parameters: tuple[Parameter, ...]
    body: str
    answers: tuple[str, ...]
    anchor: str


def type_text(schema: dict[str, Any]) -> str:
    """A schema in a few words: ``integer ≥ 1 ≤ 1000``, ``string (date-time)``, ``Foo``."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        kinds = [type_text(s) for s in schema["anyOf"] if s.get("type") != "null"]
        nullable = any(s.get("type") == "null" for s in schema["anyOf"])
        return " | ".join(kinds) + (" | null" if nullable else "")
    if schema.get("type") == "array":
        return f"array of {type_text(schema.get('items', {}))}"
    text = str(schema.get("type", "any"))
    if "format" in schema:
        text += f" ({schema['format']})"
    if "enum" in schema:
        text += " one of " + ", ".join(str(v) for v in schema["enum"])
    for key, sign in (
        ("minimum", "≥"),
        ("exclusiveMinimum", ">"),
        ("maximum", "≤"),
        ("exclusiveMaximum", "<"),
        ("maxLength", "length ≤"),
    ):
        if key in schema:
            text += f" {sign} {schema[key]}"
    return text


def _body(operation: dict[str, Any]) -> str:
    content = operation.get("requestBody", {}).get("content", {})
    return "; ".join(f"{kind}: {type_text(c.get('schema', {}))}" for kind, c in content.items())


def operations(document: dict[str, Any]) -> list[Operation]:
    """Every operation of an OpenAPI document, in path order."""
    out: list[Operation] = []
    for path, item in sorted(document.get("paths", {}).items()):
        for method in _METHODS:
            op = item.get(method)
            if op is None:
                continue
            params = tuple(
                Parameter(
                    name=str(p["name"]),
                    where=str(p["in"]),
                    required=bool(p.get("required", False)),
                    type=type_text(p.get("schema", {})),
                    description=str(p.get("description", "")),
                )
                for p in op.get("parameters", ())
            )
            out.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    summary=str(op.get("summary", "")),
                    description=str(op.get("description", "")),
                    roles=tuple(op.get("x-roles", ())),
                    parameters=params,
                    body=_body(op),
                    answers=tuple(sorted(op.get("responses", {}))),
                    anchor=str(op.get("operationId", f"{method}{path}")),
                )
            )
    return out


@router.get("/api-docs", response_class=HTMLResponse)
async def api_docs(request: Request, who: ViewerDep) -> HTMLResponse:
    """The API reference page."""
    document = request.app.openapi()
    return page(
        request,
        who,
        "api_docs.html",
        operations=operations(document),
        version=document.get("info", {}).get("version", ""),
    )


@router.get("/api-docs/openapi.json")
async def api_document(request: Request, who: ViewerDep) -> JSONResponse:
    """The OpenAPI document itself, for a signed-in user's tools."""
    return JSONResponse(request.app.openapi())
