"""Rollout campaigns, run: targets resolved, units started through signed commands, their
outcomes read back, the decisions of :mod:`central_hub.domain.rollout` carried out.

A model campaign sends each unit ``model.install`` (params ``slot``, ``url``, ``token``,
``sha256``, ``size``, ``name``, ``version``); the unit downloads the archive from
``url`` with the token (one per unit and campaign, stored here only as its sha256, good
only while the unit is ``in_progress``), checks it, swaps it in and acks; with ``shadow``
(``{"cameras": [...]}``) it runs it beside the slot's model instead. A config
campaign sends ``config.apply`` with the device's next desired version. A unit's outcome
is its command's: ``succeeded``; ``failed``; ``rejected`` (the unit refused the command or
the package); ``expired`` -> ``timed_out``. Rolling back sends ``model.rollback`` (for a
shadow campaign ``model.shadow_stop``; for a config campaign the unit's previous desired
config) and the unit becomes ``rolled_back`` when that succeeds.

Everything lives in the database, so a campaign survives hub restarts; the worker's
:meth:`RolloutService.tick` claims each unit with a conditional update before its command
is queued, so several hub workers never start a unit twice.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from central_hub.db.schema import commands, devices, events, rollout_units, rollouts
from central_hub.domain.grid import Grid
from central_hub.domain.rollout import (
    Phase,
    Policy,
    Step,
    Unit,
    UnitState,
    Verdicts,
    decide,
    pick_canary,
)
from central_hub.errors import AuthError, ConflictError, InvalidInputError, NotFoundError
from central_hub.services.commands import CommandService
from central_hub.services.labels import labelled_events
from central_hub.services.packages import PackageStore

log = logging.getLogger(__name__)

__all__ = ["RolloutService", "RolloutView", "Target", "UnitView", "token_hash"]

#: A unit claimed but without a command after this long (its hub died in between) failed.
_CLAIM_GRACE = timedelta(seconds=60)

#: Command state -> unit state, for a unit's install command.
_OUTCOME = {
    "succeeded": UnitState.SUCCEEDED,
    "failed": UnitState.FAILED,
    "rejected": UnitState.REJECTED,
    "expired": UnitState.TIMED_OUT,
}


class Target(BaseModel):
    """Which devices a campaign reaches: any of these ids, kinds, or grid areas (a cell id
    at any level: a device is in it when its latest event lies there). Empty: none."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    devices: list[str] = Field(default_factory=list)
    kinds: list[str] = Field(default_factory=list)
    areas: list[str] = Field(default_factory=list)


class UnitView(BaseModel):
    """One unit of a campaign."""

    model_config = ConfigDict(frozen=True)

    device_id: str
    canary: bool
    state: UnitState
    detail: str
    bytes_served: int
    started_at: datetime | None
    finished_at: datetime | None


class RolloutView(BaseModel):
    """A campaign and its units."""

    model_config = ConfigDict(frozen=True)

    id: int
    kind: str
    package_sha256: str | None
    slot: str | None
    #: ``{"cameras": [...]}``: the package goes in as its slot's shadow.
    shadow: dict[str, Any] | None = None
    target: Target
    policy: Policy
    phase: Phase
    phase_since: datetime
    reason: str
    created_by: str
    created_at: datetime
    units: list[UnitView]

    def count(self, state: UnitState) -> int:
        """Units in ``state``."""
        return sum(1 for u in self.units if u.state is state)


def token_hash(token: str) -> str:
    """What is stored of a download token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class RolloutService:
    """Campaigns: create, read, abort, and :meth:`tick` them forward."""

    def __init__(
        self,
        engine: AsyncEngine,
        commands: CommandService,
        packages: PackageStore,
        grid: Grid,
        clock: Callable[[], datetime],
        *,
        public_url: str,
    ) -> None:
        self.engine = engine
        self.commands = commands
        self.packages = packages
        self.grid = grid
        self.clock = clock
        self.public_url = public_url.rstrip("/")

    # ------------------------------------------------------------------ creating

    async def resolve(self, target: Target) -> list[str]:
        """The registered devices ``target`` reaches, by id; unknown ids are an error."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(devices.c.device_id, devices.c.kind))).all()
            known = {r.device_id: r.kind for r in rows}
            missing = sorted(set(target.devices) - set(known))
            if missing:
                raise NotFoundError(f"no device(s) {', '.join(missing)}")
            chosen = set(target.devices) | {d for d, k in known.items() if k in target.kinds}
            if target.areas:
                for area in target.areas:
                    if area not in self.grid:
                        raise NotFoundError(f"no grid cell {area!r}")
                chosen |= await self._in_areas(conn, set(target.areas))
        return sorted(chosen)

    async def _in_areas(self, conn: AsyncConnection, areas: set[str]) -> set[str]:
        latest = (
            sa.select(events.c.device_id, sa.func.max(events.c.detected_at).label("at"))
            .group_by(events.c.device_id)
            .subquery()
        )
        rows = (
            await conn.execute(
                sa.select(events.c.device_id, events.c.lat, events.c.lon).join(
                    latest,
                    sa.and_(
                        latest.c.device_id == events.c.device_id,
                        latest.c.at == events.c.detected_at,
                    ),
                )
            )
        ).all()
        found: set[str] = set()
        for row in rows:
            cell = self.grid.locate(float(row.lat), float(row.lon))
            while cell is not None:
                if cell.id in areas:
                    found.add(row.device_id)
                    break
                cell = self.grid.get(cell.parent_id) if cell.parent_id else None
        return found

    async def create(
        self,
        *,
        target: Target,
        policy: Policy,
        by: str,
        package_sha256: str | None = None,
        slot: str | None = None,
        config: dict[str, Any] | None = None,
        shadow_cameras: list[str] | None = None,
    ) -> RolloutView:
        """Start a campaign of a published package (into ``slot``, or beside it as its
        shadow on ``shadow_cameras``, ``[]`` meaning all that run it) or of a config."""
        if shadow_cameras is not None and config is not None:
            raise InvalidInputError("a shadow runs a model package; a config has none")
        if shadow_cameras is not None and policy.max_false_alarm_rate is not None:
            raise InvalidInputError(
                "a shadow's events are never filed, so no verdicts judge its canary: "
                "leave max_false_alarm_rate out"
            )
        if (package_sha256 is None) == (config is None):
            raise InvalidInputError("a campaign carries a package or a config, not both or neither")
        if package_sha256 is not None:
            await self.packages.get(package_sha256)
            if not slot:
                raise InvalidInputError("a model campaign needs the slot: the unit's detector name")
        elif policy.max_false_alarm_rate is not None:
            raise InvalidInputError(
                "max_false_alarm_rate judges models; a config campaign has none"
            )
        device_ids = await self.resolve(target)
        if not device_ids:
            raise InvalidInputError("the target reaches no registered device")
        now = self.clock()
        async with self.engine.begin() as conn:
            online = [
                r.device_id
                for r in await conn.execute(
                    sa.select(devices.c.device_id).where(
                        devices.c.device_id.in_(device_ids),
                        devices.c.state.in_(["online", "degraded"]),
                    )
                )
            ]
            canary = set(pick_canary(device_ids, online, policy.canary))
            busy = (
                await conn.execute(
                    sa.select(rollout_units.c.device_id)
                    .join(rollouts, rollouts.c.id == rollout_units.c.rollout_id)
                    .where(
                        rollouts.c.phase.in_([Phase.CANARY.value, Phase.ROLLING.value]),
                        rollouts.c.kind == ("model" if config is None else "config"),
                        rollout_units.c.device_id.in_(device_ids),
                    )
                    .limit(5)
                )
            ).all()
            if busy:
                raise ConflictError(
                    "device(s) "
                    + ", ".join(r.device_id for r in busy)
                    + " are in a campaign still running; abort it or wait for it"
                )
            rollout_id = (
                await conn.execute(
                    rollouts.insert()
                    .values(
                        kind="model" if config is None else "config",
                        package_sha256=package_sha256,
                        slot=slot,
                        config=config,
                        shadow=None if shadow_cameras is None else {"cameras": shadow_cameras},
                        target=target.model_dump(mode="json"),
                        policy=policy.model_dump(mode="json"),
                        phase=Phase.CANARY.value,
                        phase_since=now,
                        reason="",
                        created_by=by,
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(rollouts.c.id)
                )
            ).scalar_one()
            await conn.execute(
                rollout_units.insert(),
                [
                    {
                        "rollout_id": rollout_id,
                        "device_id": d,
                        "canary": d in canary,
                        "state": UnitState.QUEUED.value,
                        "bytes_served": 0,
                        "detail": "",
                    }
                    for d in device_ids
                ],
            )
        log.info(
            "rollout %d created by %s: %d units, canary %s",
            rollout_id,
            by,
            len(device_ids),
            sorted(canary),
        )
        return await self.get(rollout_id)

    # ------------------------------------------------------------------ reading

    async def get(self, rollout_id: int) -> RolloutView:
        """One campaign with its units; NotFoundError when unknown."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(rollouts.select().where(rollouts.c.id == rollout_id))).first()
            if row is None:
                raise NotFoundError(f"no rollout {rollout_id}")
            units = (
                await conn.execute(
                    rollout_units.select()
                    .where(rollout_units.c.rollout_id == rollout_id)
                    .order_by(rollout_units.c.canary.desc(), rollout_units.c.device_id)
                )
            ).all()
        return _view(row, units)

    async def all(self, limit: int = 100) -> list[RolloutView]:
        """The newest campaigns, newest first."""
        async with self.engine.connect() as conn:
            ids = [
                int(r.id)
                for r in await conn.execute(
                    sa.select(rollouts.c.id).order_by(rollouts.c.id.desc()).limit(limit)
                )
            ]
        return [await self.get(i) for i in ids]

    # ------------------------------------------------------------------ operator actions

    async def abort(self, rollout_id: int, *, by: str, rollback: bool = False) -> RolloutView:
        """Stop a campaign: no more units start; ``rollback`` also rolls back every unit
        that took it (a unit already running its install finishes it)."""
        view = await self.get(rollout_id)
        now = self.clock()
        if view.phase.active:
            async with self.engine.begin() as conn:
                await conn.execute(
                    rollouts.update()
                    .where(rollouts.c.id == rollout_id, rollouts.c.phase == view.phase.value)
                    .values(
                        phase=Phase.ABORTED.value,
                        phase_since=now,
                        reason=f"aborted by {by}",
                        updated_at=now,
                    )
                )
        if rollback:
            done = [u.device_id for u in view.units if u.state is UnitState.SUCCEEDED]
            await self._roll_back(view, done, by=by)
        log.info("rollout %d aborted by %s%s", rollout_id, by, " with rollback" if rollback else "")
        return await self.get(rollout_id)

    # ------------------------------------------------------------------ downloads

    async def authorize_download(self, sha256: str, token: str | None) -> tuple[int, str]:
        """The (campaign, unit) a download token belongs to, if it may fetch ``sha256`` now."""
        if not token:
            raise AuthError("a package download needs the token of its install command")
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(
                        rollout_units.c.rollout_id, rollout_units.c.device_id, rollout_units.c.state
                    )
                    .join(rollouts, rollouts.c.id == rollout_units.c.rollout_id)
                    .where(
                        rollout_units.c.token_hash == token_hash(token),
                        rollouts.c.package_sha256 == sha256,
                    )
                )
            ).first()
        if row is None:
            raise AuthError("this token does not fetch this package")
        if row.state != UnitState.IN_PROGRESS.value:
            raise AuthError(f"this token is spent (the unit's install is {row.state})")
        return int(row.rollout_id), str(row.device_id)

    async def served(self, rollout_id: int, device_id: str, count: int) -> None:
        """Count ``count`` bytes sent to a unit."""
        if count <= 0:
            return
        async with self.engine.begin() as conn:
            await conn.execute(
                rollout_units.update()
                .where(
                    rollout_units.c.rollout_id == rollout_id, rollout_units.c.device_id == device_id
                )
                .values(bytes_served=rollout_units.c.bytes_served + count)
            )

    # ------------------------------------------------------------------ the worker's pass

    async def tick(self) -> int:
        """Move every running campaign one step, and take the outcomes of rollbacks still
        pending in finished ones; return how many units changed."""
        async with self.engine.connect() as conn:
            ids = [
                int(r.id)
                for r in await conn.execute(
                    sa.select(rollouts.c.id)
                    .where(
                        sa.or_(
                            rollouts.c.phase.in_([Phase.CANARY.value, Phase.ROLLING.value]),
                            rollouts.c.id.in_(
                                sa.select(rollout_units.c.rollout_id).where(
                                    rollout_units.c.rollback_cmd_id.is_not(None),
                                    rollout_units.c.state == UnitState.SUCCEEDED.value,
                                )
                            ),
                        )
                    )
                    .order_by(rollouts.c.id)
                )
            ]
        changed = 0
        for rollout_id in ids:
            changed += await self._advance(rollout_id)
        return changed

    async def _advance(self, rollout_id: int) -> int:
        now = self.clock()
        changed = await self._sync(rollout_id, now)
        view = await self.get(rollout_id)
        if not view.phase.active:
            return changed
        async with self.engine.connect() as conn:
            online = {
                r.device_id
                for r in await conn.execute(
                    sa.select(devices.c.device_id).where(
                        devices.c.state.in_(["online", "degraded"])
                    )
                )
            }
        units = [
            Unit(u.device_id, u.state, u.canary, u.device_id in online, u.started_at)
            for u in view.units
        ]
        canary_done = [u.finished_at for u in view.units if u.canary and u.finished_at is not None]
        verdicts = None
        if view.phase is Phase.CANARY and view.policy.max_false_alarm_rate is not None:
            verdicts = await self._verdicts(view, now)
        step = decide(
            view.policy,
            view.phase,
            view.phase_since,
            units,
            now,
            verdicts=verdicts,
            last_canary_done=max(canary_done) if canary_done else None,
        )
        return changed + await self._carry_out(view, step, now)

    async def _sync(self, rollout_id: int, now: datetime) -> int:
        """Units in progress take their command's outcome; rollbacks theirs."""
        changed = 0
        async with self.engine.begin() as conn:
            rows = (
                await conn.execute(
                    sa.select(
                        rollout_units.c.device_id,
                        rollout_units.c.state,
                        rollout_units.c.started_at,
                        rollout_units.c.cmd_id,
                        commands.c.state.label("cmd_state"),
                        commands.c.detail.label("cmd_detail"),
                    )
                    .outerjoin(commands, commands.c.cmd_id == rollout_units.c.cmd_id)
                    .where(
                        rollout_units.c.rollout_id == rollout_id,
                        rollout_units.c.state == UnitState.IN_PROGRESS.value,
                    )
                )
            ).all()
            for row in rows:
                if row.cmd_id is None:
                    if row.started_at is not None and now - row.started_at > _CLAIM_GRACE:
                        changed += await _finish(
                            conn,
                            rollout_id,
                            row.device_id,
                            UnitState.FAILED,
                            "the hub stopped before sending the command",
                            now,
                        )
                    continue
                outcome = _OUTCOME.get(row.cmd_state or "")
                if outcome is not None:
                    changed += await _finish(
                        conn, rollout_id, row.device_id, outcome, row.cmd_detail or "", now
                    )
            backs = (
                await conn.execute(
                    sa.select(rollout_units.c.device_id, commands.c.state, commands.c.detail)
                    .join(commands, commands.c.cmd_id == rollout_units.c.rollback_cmd_id)
                    .where(
                        rollout_units.c.rollout_id == rollout_id,
                        rollout_units.c.state == UnitState.SUCCEEDED.value,
                        commands.c.state.in_(["succeeded", "failed", "rejected", "expired"]),
                    )
                )
            ).all()
            for back in backs:
                if back.state == "succeeded":
                    changed += await _finish(
                        conn,
                        rollout_id,
                        back.device_id,
                        UnitState.ROLLED_BACK,
                        back.detail or "",
                        now,
                        was=UnitState.SUCCEEDED,
                    )
                else:
                    await conn.execute(
                        rollout_units.update()
                        .where(
                            rollout_units.c.rollout_id == rollout_id,
                            rollout_units.c.device_id == back.device_id,
                        )
                        .values(
                            detail=f"rollback {back.state}: {back.detail}"[:2000],
                            rollback_cmd_id=None,
                        )
                    )
        return changed

    async def _verdicts(self, view: RolloutView, now: datetime) -> Verdicts:
        """The canary's judged events raised by the campaign's model since it started."""
        package = await self.packages.get(view.package_sha256 or "")
        canary = {u.device_id for u in view.units if u.canary and u.state is UnitState.SUCCEEDED}
        judged = [
            e
            for e in await labelled_events(self.engine, view.phase_since, now, limit=10_000)
            if e.event.device_id in canary
            and e.event.model_name == package.name
            and e.event.model_version == package.version
        ]
        return Verdicts(judged=len(judged), false_alarms=sum(1 for e in judged if not e.positive))

    async def _carry_out(self, view: RolloutView, step: Step, now: datetime) -> int:
        changed = 0
        async with self.engine.begin() as conn:
            for device_id in step.time_out:
                changed += await _finish(
                    conn,
                    view.id,
                    device_id,
                    UnitState.TIMED_OUT,
                    f"not done within {view.policy.unit_timeout_s:.0f} s",
                    now,
                )
        for device_id in step.start:
            changed += await self._start(view, device_id, now)
        if step.roll_back:
            await self._roll_back(view, step.roll_back, by=f"rollout:{view.id}")
        if step.phase is not None:
            async with self.engine.begin() as conn:
                await conn.execute(
                    rollouts.update()
                    .where(rollouts.c.id == view.id, rollouts.c.phase == view.phase.value)
                    .values(
                        phase=step.phase.value, phase_since=now, reason=step.reason, updated_at=now
                    )
                )
            log.info("rollout %d: %s -> %s (%s)", view.id, view.phase, step.phase, step.reason)
        return changed

    async def _start(self, view: RolloutView, device_id: str, now: datetime) -> int:
        token = secrets.token_urlsafe(24)
        async with self.engine.begin() as conn:
            claimed = await conn.execute(
                rollout_units.update()
                .where(
                    rollout_units.c.rollout_id == view.id,
                    rollout_units.c.device_id == device_id,
                    rollout_units.c.state == UnitState.QUEUED.value,
                )
                .values(
                    state=UnitState.IN_PROGRESS.value, started_at=now, token_hash=token_hash(token)
                )
            )
            if claimed.rowcount != 1:
                return 0  # another worker took it
            previous = None
            if view.kind == "config":
                previous = await self._next_config(conn, device_id, view)
        ttl = timedelta(seconds=view.policy.unit_timeout_s)
        actor = f"rollout:{view.id}"
        if view.kind == "model":
            package = await self.packages.get(view.package_sha256 or "")
            params: dict[str, Any] = {
                "slot": view.slot,
                "url": f"{self.public_url}/api/v1/packages/{package.sha256}",
                "token": token,
                "sha256": package.sha256,
                "size": package.size,
                "name": package.name,
                "version": package.version,
            }
            if view.shadow is not None:
                params["shadow"] = view.shadow
            cmd = await self.commands.enqueue(
                device_id, "model.install", params, ttl=ttl, actor=actor
            )
        else:
            assert previous is not None
            cmd = await self.commands.enqueue(
                device_id, "config.apply", previous[1], ttl=ttl, actor=actor
            )
        async with self.engine.begin() as conn:
            await conn.execute(
                rollout_units.update()
                .where(
                    rollout_units.c.rollout_id == view.id, rollout_units.c.device_id == device_id
                )
                .values(cmd_id=cmd.cmd_id)
            )
        return 1

    async def _next_config(
        self, conn: AsyncConnection, device_id: str, view: RolloutView
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """Record the campaign's config as the device's next desired one; return the one it
        replaces and the ``config.apply`` params."""
        row = (
            await conn.execute(
                sa.select(
                    devices.c.desired_version, devices.c.desired_config, devices.c.config_version
                ).where(devices.c.device_id == device_id)
            )
        ).one()
        config = (
            await conn.execute(sa.select(rollouts.c.config).where(rollouts.c.id == view.id))
        ).scalar_one()
        version = max(int(row.desired_version or 0), int(row.config_version or 0)) + 1
        await conn.execute(
            devices.update()
            .where(devices.c.device_id == device_id)
            .values(desired_version=version, desired_config=config)
        )
        await conn.execute(
            rollout_units.update()
            .where(rollout_units.c.rollout_id == view.id, rollout_units.c.device_id == device_id)
            .values(previous_config=row.desired_config)
        )
        return row.desired_config, {"version": version, "config": config}

    async def _roll_back(self, view: RolloutView, device_ids: Sequence[str], *, by: str) -> None:
        ttl = timedelta(seconds=view.policy.unit_timeout_s)
        for device_id in device_ids:
            if view.kind == "model":
                kind = "model.rollback" if view.shadow is None else "model.shadow_stop"
                cmd = await self.commands.enqueue(
                    device_id, kind, {"slot": view.slot}, ttl=ttl, actor=by
                )
            else:
                async with self.engine.begin() as conn:
                    row = (
                        await conn.execute(
                            sa.select(rollout_units.c.previous_config, devices.c.desired_version)
                            .join(devices, devices.c.device_id == rollout_units.c.device_id)
                            .where(
                                rollout_units.c.rollout_id == view.id,
                                rollout_units.c.device_id == device_id,
                            )
                        )
                    ).one()
                    if row.previous_config is None:
                        await conn.execute(
                            rollout_units.update()
                            .where(
                                rollout_units.c.rollout_id == view.id,
                                rollout_units.c.device_id == device_id,
                            )
                            .values(
                                detail="no earlier pushed config to go back to; it keeps this one"
                            )
                        )
                        continue
                    version = int(row.desired_version) + 1
                    await conn.execute(
                        devices.update()
                        .where(devices.c.device_id == device_id)
                        .values(desired_version=version, desired_config=row.previous_config)
                    )
                cmd = await self.commands.enqueue(
                    device_id,
                    "config.apply",
                    {"version": version, "config": row.previous_config},
                    ttl=ttl,
                    actor=by,
                )
            async with self.engine.begin() as conn:
                await conn.execute(
                    rollout_units.update()
                    .where(
                        rollout_units.c.rollout_id == view.id,
                        rollout_units.c.device_id == device_id,
                    )
                    .values(rollback_cmd_id=cmd.cmd_id)
                )


async def _finish(
    conn: AsyncConnection,
    rollout_id: int,
    device_id: str,
    state: UnitState,
    detail: str,
    now: datetime,
    *,
    was: UnitState = UnitState.IN_PROGRESS,
) -> int:
    result = await conn.execute(
        rollout_units.update()
        .where(
            rollout_units.c.rollout_id == rollout_id,
            rollout_units.c.device_id == device_id,
            rollout_units.c.state == was.value,
        )
        .values(state=state.value, detail=detail[:2000], finished_at=now)
    )
    return int(result.rowcount)


def _view(row: sa.Row[Any], units: Sequence[sa.Row[Any]]) -> RolloutView:
    return RolloutView(
        id=row.id,
        kind=row.kind,
        package_sha256=row.package_sha256,
        slot=row.slot,
        shadow=row.shadow,
        target=Target.model_validate(row.target),
        policy=Policy.model_validate(row.policy),
        phase=Phase(row.phase),
        phase_since=row.phase_since,
        reason=row.reason,
        created_by=row.created_by,
        created_at=row.created_at,
        units=[
            UnitView(
                device_id=u.device_id,
                canary=bool(u.canary),
                state=UnitState(u.state),
                detail=u.detail,
                bytes_served=int(u.bytes_served),
                started_at=u.started_at,
                finished_at=u.finished_at,
            )
            for u in units
        ],
    )
