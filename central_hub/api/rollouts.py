"""``/api/v1/rollouts`` and ``/api/v1/packages`` (admins): model and config campaigns.

The units' own download route, ``GET /api/v1/packages/{sha256}`` with an install
command's token, is :func:`install_downloads`; it takes no user token, so it is left out
of the OpenAPI document the user routes are checked against.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict

from central_hub.api.deps import CurrentUser, HubDep, QueryTime, RowId, get_hub, guard
from central_hub.domain.rollout import Policy
from central_hub.domain.workflow import Role
from central_hub.services.packages import PackageView, RangeError, parse_range
from central_hub.services.rollouts import RolloutView, Target
from central_hub.services.shadow import CameraShadow, shadow_report

__all__ = ["install_downloads", "router"]

router = APIRouter(tags=["rollouts"])

_CHUNK = 1 << 18
#: Byte counts being written (kept referenced until done).
_counting: set[asyncio.Task[None]] = set()


class RolloutRequest(BaseModel):
    """A new campaign: a published package into a slot, or a config; whom; how."""

    model_config = ConfigDict(extra="forbid")

    package_sha256: str | None = None
    slot: str | None = None
    config: dict[str, Any] | None = None
    #: Model campaigns: install as the slot's shadow on these cameras ([]: all running it).
    shadow_cameras: list[str] | None = None
    target: Target
    policy: Policy = Policy()


@router.get("/packages", **guard(Role.ADMIN))
async def list_packages(hub: HubDep) -> list[PackageView]:
    """Published model packages, newest first."""
    return await hub.packages.all()


@router.get("/rollouts", **guard(Role.ADMIN))
async def list_rollouts(
    hub: HubDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[RolloutView]:
    """The newest campaigns with their units."""
    return await hub.rollouts.all(limit)


@router.post("/rollouts", status_code=status.HTTP_201_CREATED, **guard(Role.ADMIN))
async def create_rollout(hub: HubDep, user: CurrentUser, body: RolloutRequest) -> RolloutView:
    """Start a campaign; its canary starts on the worker's next pass."""
    return await hub.rollouts.create(
        target=body.target,
        policy=body.policy,
        by=user.name,
        package_sha256=body.package_sha256,
        slot=body.slot,
        config=body.config,
        shadow_cameras=body.shadow_cameras,
    )


@router.get("/rollouts/{rollout_id}", **guard(Role.ADMIN))
async def get_rollout(hub: HubDep, rollout_id: RowId) -> RolloutView:
    """One campaign and each unit's state."""
    return await hub.rollouts.get(rollout_id)


@router.post("/rollouts/{rollout_id}/abort", **guard(Role.ADMIN))
async def abort_rollout(
    hub: HubDep, user: CurrentUser, rollout_id: RowId, rollback: bool = False
) -> RolloutView:
    """Stop starting units; with ``rollback`` also roll back the units that took it."""
    return await hub.rollouts.abort(rollout_id, by=user.name, rollback=rollback)


@router.get("/shadow", **guard(Role.ADMIN))
async def shadow_comparison(
    hub: HubDep,
    since: QueryTime,
    until: QueryTime,
    window_s: Annotated[float, Query(gt=0, le=3600)] = 60.0,
) -> list[CameraShadow]:
    """Per camera, shadow candidates' would-be events against the real ones' verdicts."""
    return await shadow_report(hub.engine, since, until, window_s=window_s)


def install_downloads(app: FastAPI) -> None:
    """Add ``GET /api/v1/packages/{sha256}``: a unit fetches its package with its token."""

    @app.get("/api/v1/packages/{sha256}", include_in_schema=False, response_model=None)
    async def download(request: Request, sha256: str) -> Response:
        hub = get_hub(request)
        given = request.headers.get("authorization", "")
        token = given.removeprefix("Bearer ").strip() if given.startswith("Bearer ") else None
        rollout_id, device_id = await hub.rollouts.authorize_download(sha256, token)
        path = hub.packages.path(sha256)
        size = (await hub.packages.get(sha256)).size
        try:
            span = parse_range(request.headers.get("range"), size)
        except RangeError as exc:
            return Response(
                str(exc),
                status.HTTP_416_RANGE_NOT_SATISFIABLE,
                headers={"Content-Range": f"bytes */{size}"},
            )
        start, end = span or (0, size)
        headers = {"Accept-Ranges": "bytes", "Content-Length": str(end - start)}
        if span is not None:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"

        async def body() -> AsyncIterator[bytes]:
            sent = 0
            try:
                with path.open("rb") as fh:
                    fh.seek(start)
                    while sent < end - start:
                        chunk = await asyncio.to_thread(fh.read, min(_CHUNK, end - start - sent))
                        if not chunk:
                            break
                        sent += len(chunk)
                        yield chunk
            finally:
                # The unit may hang up mid-body (a power cut): this task is then being
                # cancelled, so the count is written by a task of its own.
                count = asyncio.get_running_loop().create_task(
                    hub.rollouts.served(rollout_id, device_id, sent)
                )
                _counting.add(count)
                count.add_done_callback(_counting.discard)

        code = status.HTTP_206_PARTIAL_CONTENT if span is not None else status.HTTP_200_OK
        return StreamingResponse(
            body(), status_code=code, headers=headers, media_type="application/x-tar"
        )
