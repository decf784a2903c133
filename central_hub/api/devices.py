"""``/api/v1/devices``: registry, commands (signed, queued), desired config."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from central_hub.api.deps import CurrentUser, HubDep, guard
from central_hub.domain.workflow import Role
from central_hub.errors import ForbiddenError, InvalidInputError
from central_hub.services.commands import CommandView
from central_hub.services.devices import DeviceView

router = APIRouter(tags=["devices"])

_READERS = (Role.OPERATOR, Role.DISPATCHER, Role.ADMIN)
#: Command kinds with a route of their own, which keeps the device's record.
_ROUTED = {
    "config.apply": "an admin sets a device's config with PUT /api/v1/devices/{id}/config "
    "(or a config rollout), so its desired version is recorded",
    "model.install": "model packages reach units through rollouts (POST /api/v1/rollouts)",
    "keys.trust": "the hub's key is rotated with `central-hub keys rotate`",
    "spot.recheck": "the hub's move-your-car loop sends it when a reminder's wait is over",
    "speaker.play_clip": "a recorded message goes with POST /api/v1/devices/{id}/voice, "
    "which stores the clip and gives the unit its one-time token",
}
#: Kinds that change what a unit runs: admins only.
_ADMIN_KINDS = frozenset({"model.rollback", "model.shadow_stop"})


class CommandRequest(BaseModel):
    """A command to queue for a device (``speaker.say`` with ``{"text": ...}`` ...)."""

    kind: str = Field(max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)
    ttl_s: int = Field(default=600, gt=0, le=24 * 3600)


class DesiredConfig(BaseModel):
    """A config for a device to apply; the hub versions it."""

    config: dict[str, Any]


class DesiredVersion(BaseModel):
    """The version a desired config was stored under."""

    device_id: str
    version: int


@router.get("/devices", **guard(*_READERS))
async def list_devices(hub: HubDep) -> list[DeviceView]:
    """Every device with presence, health and config versions."""
    return await hub.devices.all()


@router.get("/devices/{device_id}", **guard(*_READERS))
async def get_device(device_id: str, hub: HubDep) -> DeviceView:
    """One device."""
    return await hub.devices.get(device_id)


@router.post(
    "/devices/{device_id}/commands",
    status_code=status.HTTP_202_ACCEPTED,
    **guard(Role.OPERATOR, Role.ADMIN),
)
async def send_command(
    device_id: str, body: CommandRequest, hub: HubDep, user: CurrentUser
) -> CommandView:
    """Sign and queue a command; it is sent when the device is online, or expires.

    What a unit runs changes only through the admins' routes that keep its record: a
    config through ``PUT /devices/{id}/config`` (the desired version) and a model through
    a rollout (its package, token and outcome); rolling a model back is for admins too.
    """
    if body.kind in _ROUTED:
        raise InvalidInputError(f"{body.kind} is not sent here: {_ROUTED[body.kind]}")
    if body.kind in _ADMIN_KINDS and user.role is not Role.ADMIN:
        raise ForbiddenError(f"role {user.role.value} may not send {body.kind}; needs admin")
    return await hub.commands.enqueue(
        device_id, body.kind, body.params, ttl=timedelta(seconds=body.ttl_s), actor=user.name
    )


@router.get("/devices/{device_id}/commands", **guard(*_READERS))
async def list_commands(device_id: str, hub: HubDep) -> list[CommandView]:
    """A device's commands and their states, newest first."""
    return await hub.commands.list_for(device_id)


@router.get("/commands/{cmd_id}", **guard(*_READERS))
async def get_command(cmd_id: str, hub: HubDep) -> CommandView:
    """One command's state."""
    return await hub.commands.get(cmd_id)


@router.put("/devices/{device_id}/config", **guard(Role.ADMIN))
async def put_config(device_id: str, body: DesiredConfig, hub: HubDep) -> DesiredVersion:
    """Store a new desired config and publish it (retained) to the device."""
    version = await hub.devices.set_desired(device_id, body.config)
    return DesiredVersion(device_id=device_id, version=version)
