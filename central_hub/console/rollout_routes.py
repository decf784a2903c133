"""Rollouts (admins): campaigns of model packages and configs, their units, start and stop.

The page lists the campaigns with each one's phase and unit counts, and has the form that
starts one (a published package into a slot, or a config as YAML; targets by device id,
kind or grid cell; canary, rate and abort thresholds). A campaign's page shows every unit
and lets an admin abort it, with or without rolling the units back.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import yaml
from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from central_hub.console.render import page, page_html
from central_hub.console.security import Viewer, require
from central_hub.console.state import console_state
from central_hub.domain.rollout import Policy, UnitState
from central_hub.domain.workflow import Role
from central_hub.errors import HubError, NotFoundError
from central_hub.services.rollouts import Target
from central_hub.services.shadow import shadow_report
from edge_agent.protocol import error_lines

log = logging.getLogger(__name__)

__all__ = ["parse_form", "router"]

router = APIRouter()

AdminDep = require(Role.ADMIN)


def _csv(value: Any) -> list[str]:
    return [p.strip() for p in str(value or "").replace("\n", ",").split(",") if p.strip()]


def _number(form: dict[str, str], key: str) -> float | None:
    text = form.get(key, "").strip()
    return float(text) if text else None


def parse_form(form: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The create form as ``RolloutService.create`` arguments, or the problems with it."""
    problems: list[str] = []
    target = Target(
        devices=_csv(form.get("devices")),
        kinds=_csv(form.get("kinds")),
        areas=_csv(form.get("areas")),
    )
    if not (target.devices or target.kinds or target.areas):
        problems.append("target: give device ids, kinds or grid cells")
    policy_data: dict[str, Any] = {}
    for key in (
        "canary",
        "rate_per_min",
        "max_failed_share",
        "max_false_alarm_rate",
        "soak_s",
        "unit_timeout_s",
    ):
        try:
            value = _number(form, key)
        except ValueError:
            problems.append(f"{key}: not a number")
            continue
        if value is not None:
            policy_data[key] = int(value) if key == "canary" else value
    policy: Policy | None = None
    try:
        policy = Policy.model_validate(policy_data)
    except ValidationError as exc:
        problems.extend(error_lines(exc))
    args: dict[str, Any] = {"target": target, "policy": policy}
    if form.get("what") == "config":
        try:
            config = (
                yaml.safe_load(form.get("config", "")) if form.get("config", "").strip() else None
            )
        except yaml.YAMLError as exc:
            problems.append(f"config: not YAML: {exc}")
            config = None
        if not isinstance(config, dict) or not config:
            problems.append(
                "config: a mapping of config sections, e.g. telemetry: {interval_s: 30}"
            )
        args["config"] = config
    else:
        if not form.get("package"):
            problems.append("package: choose a published package")
        if not form.get("slot", "").strip():
            problems.append("slot: the units' detector name, e.g. street")
        args["package_sha256"] = form.get("package") or None
        args["slot"] = form.get("slot", "").strip() or None
        if form.get("shadow") == "1":
            args["shadow_cameras"] = _csv(form.get("shadow_cameras"))
    return args, problems


async def _list(
    request: Request,
    who: Viewer,
    *,
    problems: list[str] | None = None,
    form: dict[str, str] | None = None,
    code: int = 200,
) -> Response:
    hub = console_state(request).hub
    return page(
        request,
        who,
        "rollouts.html",
        status_code=code,
        rollouts=await hub.rollouts.all(50),
        packages=await hub.packages.all(),
        problems=problems or [],
        form=form or {},
        states=list(UnitState),
    )


@router.get("/rollouts", response_model=None)
async def rollouts_page(
    request: Request, who: Viewer = AdminDep, partial: bool = False
) -> Response:
    """The campaigns, newest first, and the form that starts one; ``partial=1``: the rows
    (the page refreshes them as units move)."""
    if partial:
        hub = console_state(request).hub
        rows = page_html(
            request,
            who,
            "_rollout_rows.html",
            rollouts=await hub.rollouts.all(50),
            states=list(UnitState),
        )
        return HTMLResponse(rows)
    return await _list(request, who)


@router.post("/rollouts", response_model=None)
async def create_rollout(request: Request, who: Viewer = AdminDep) -> Response:
    """Start a campaign from the form; problems re-render the page with the form kept."""
    state = console_state(request)
    raw = await request.form(max_part_size=256 * 1024)
    form = {k: v for k, v in raw.items() if isinstance(v, str) and k != "csrf_token"}
    args, problems = parse_form(form)
    if not problems:
        try:
            view = await state.hub.rollouts.create(by=who.user.name, **args)
        except HubError as exc:
            problems = [str(exc)]
        else:
            log.info("console: %s started rollout %d", who.user.name, view.id)
            return RedirectResponse(state.url(f"/rollouts/{view.id}"), status.HTTP_303_SEE_OTHER)
    return await _list(
        request, who, problems=problems, form=form, code=status.HTTP_422_UNPROCESSABLE_CONTENT
    )


@router.get("/shadow", response_model=None)
async def shadow_page(request: Request, who: Viewer = AdminDep, days: int = 7) -> Response:
    """Shadow candidates against the running models, per camera, over the last ``days``."""
    hub = console_state(request).hub
    days = max(1, min(days, 90))
    until = hub.clock()
    rows = await shadow_report(hub.engine, until - timedelta(days=days), until)
    return page(request, who, "shadow.html", rows=rows, days=days)


@router.get("/rollouts/{rollout_id}", response_model=None)
async def rollout_page(
    request: Request, rollout_id: int, who: Viewer = AdminDep, partial: bool = False
) -> Response:
    """One campaign: its policy, phase, reason and every unit; ``partial=1``: the body
    (refreshed live)."""
    try:
        view = await console_state(request).hub.rollouts.get(rollout_id)
    except NotFoundError:
        return page(request, who, "error.html", 404, message=who.t("err.not_found"))
    if partial:
        body = page_html(request, who, "_rollout_body.html", rollout=view, states=list(UnitState))
        return HTMLResponse(body)
    return page(request, who, "rollout.html", rollout=view, states=list(UnitState))


@router.post("/rollouts/{rollout_id}/abort", response_model=None)
async def abort_rollout(request: Request, rollout_id: int, who: Viewer = AdminDep) -> Response:
    """Stop the campaign (``rollback=1``: and roll back the units that took it)."""
    state = console_state(request)
    form = await request.form(max_part_size=64 * 1024)
    await state.hub.rollouts.abort(
        rollout_id, by=who.user.name, rollback=form.get("rollback") == "1"
    )
    return RedirectResponse(state.url(f"/rollouts/{rollout_id}"), status.HTTP_303_SEE_OTHER)
