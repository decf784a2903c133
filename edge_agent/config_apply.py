"""A config pushed by the hub: validate it, have the agent switch to it, keep or report it.

A new config comes from a signed ``config.apply`` command (params ``{version, config}``)
or from the retained ``config/desired`` topic, whose message the hub signs too (bound to
the unit and the version; an unsigned or forged one is refused). Sections it leaves out
keep their current values (:func:`merge_pushed`); the sections that identify the unit
(:data:`FIXED_SECTIONS`) cannot be changed that way: that is re-provisioning
(:func:`check_pushed`). The agent then restarts its config-dependent stages on it and
rolls back if they cannot start or crash within :data:`APPLY_PROBE_S`
(:func:`crashed_stages`). The outcome goes to ``config/reported`` and a kept config is
written to the config file.

The decisions are pure functions; :class:`ConfigApplier` runs them one at a time and is
given what it drives (the agent's stage switch, the report, the status) as callables.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from edge_agent import protocol
from edge_agent.config import AgentConfig, ConfigError, parse_config, save_config_file
from edge_agent.link.commands import CommandFailed

log = logging.getLogger(__name__)

__all__ = [
    "APPLY_PROBE_S",
    "CONFIG_STAGES",
    "FIXED_SECTIONS",
    "ApplyRejected",
    "ConfigApplier",
    "apply_params",
    "check_pushed",
    "crashed_stages",
    "is_new_desired",
    "merge_pushed",
]

#: After a new config's stages start, a crash within this many seconds rolls back.
APPLY_PROBE_S = 2.0
#: Stages that depend on the parts of the config a pushed config may change.
CONFIG_STAGES = ("gps", "vision", "selftest")
#: Sections a pushed config may not change.
FIXED_SECTIONS = ("device", "mqtt", "hub", "outbox")


class ApplyRejected(CommandFailed):
    """A pushed config that cannot run here; ``errors`` go to ``config/reported``."""

    def __init__(self, summary: str, errors: Sequence[str]) -> None:
        super().__init__(summary)
        self.errors = list(errors)


def apply_params(params: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    """The ``version`` and ``config`` of a ``config.apply`` command's params."""
    version, data = params.get("version"), params.get("config")
    if not isinstance(version, int) or version < 1 or not isinstance(data, dict):
        raise CommandFailed("params need version (an integer >= 1) and config (a mapping)")
    return version, data


def merge_pushed(raw: Mapping[str, Any], data: Mapping[str, Any], version: int) -> dict[str, Any]:
    """The config file's data with the pushed sections in place of its own, at ``version``."""
    merged = {**raw, **{k: v for k, v in data.items() if k != "config_version"}}
    merged["config_version"] = version
    return merged


def check_pushed(merged: Mapping[str, Any], current: AgentConfig, base: Path) -> AgentConfig:
    """The validated config of ``merged``; :class:`ApplyRejected` if it is invalid or
    changes a section of :data:`FIXED_SECTIONS` (relative paths resolve against ``base``)."""
    version = merged["config_version"]
    try:
        new = parse_config(merged, base, "config.apply")
    except ConfigError as exc:
        summary = f"config {version} rejected: {len(exc.errors)} error(s)"
        raise ApplyRejected(summary, exc.errors) from exc
    changed = [s for s in FIXED_SECTIONS if getattr(new, s) != getattr(current, s)]
    if changed:
        errors = [
            f"{s}: cannot be changed by config.apply (re-provision the unit)" for s in changed
        ]
        raise ApplyRejected("; ".join(errors), errors)
    return new


def crashed_stages(
    before: Mapping[str, int], after: Mapping[str, int], names: Sequence[str] = CONFIG_STAGES
) -> list[str]:
    """The stages of ``names`` restarted between two readings of the restart counts."""
    return [s for s in names if after.get(s, 0) > before.get(s, 0)]


def is_new_desired(version: int, running: int, seen: Collection[int]) -> bool:
    """Whether a ``config/desired`` ``version`` is worth trying: newer than the running
    config and not tried before (a retained copy comes again on every reconnect)."""
    return version > running and version not in seen


#: Starts the stages of a config in place of the running ones: ``None`` once the agent
#: runs it, else the problem that made it roll back to the previous config.
StageSwitch = Callable[[AgentConfig], Awaitable[str | None]]
#: Sends the outcome of a version to ``config/reported``: ``(version, state, errors)``.
Report = Callable[[int, str, Sequence[str]], Awaitable[None]]


class ConfigApplier:
    """Applies pushed configs one at a time; see the module docstring.

    ``raw`` is the config file as written (relative paths kept); ``current`` reads the
    config the agent runs, ``switch`` moves the agent to a new one, ``report`` sends an
    outcome and ``status_changed`` republishes the unit's status once a config is kept.
    """

    def __init__(
        self,
        *,
        device_id: str,
        raw: Mapping[str, Any],
        config_path: Path | None,
        current: Callable[[], AgentConfig],
        switch: StageSwitch,
        report: Report,
        status_changed: Callable[[], None],
        public_key: Callable[[], protocol.HubKeys],
    ) -> None:
        self.device_id = device_id
        self._public_key = public_key
        #: Desired configs refused as not the hub's (unsigned, forged, another unit's).
        self.refused = 0
        self.raw = dict(raw)
        self.config_path = config_path
        self._current = current
        self._switch = switch
        self._report = report
        self._status_changed = status_changed
        self._lock = asyncio.Lock()
        self._desired_seen: set[int] = set()

    async def apply_command(self, command: protocol.Command) -> str:
        """The ``config.apply`` executor: the outcome text, or :class:`CommandFailed`."""
        version, data = apply_params(command.params)
        async with self._lock:
            return await self._apply(version, data)

    async def apply_desired(self, payload: bytes) -> None:
        """A retained ``config/desired`` message: apply it unless it is not signed by the
        hub for this unit, or already running or tried; a failure is logged (and
        reported)."""
        try:
            desired = protocol.verify_desired(
                payload, public_key=self._public_key(), device_id=self.device_id
            )
        except protocol.CommandRejected as exc:
            # Not the hub's (unsigned, forged, another unit's): nothing is applied.
            log.warning("refused a config/desired message: %s", exc)
            self.refused += 1
            return
        async with self._lock:
            version = desired.version
            if not is_new_desired(version, self._current().config_version, self._desired_seen):
                return
            self._desired_seen.add(version)
            try:
                await self._apply(version, desired.config)
            except CommandFailed as exc:
                log.warning("config/desired %d not applied: %s", version, exc)

    async def _apply(self, version: int, data: dict[str, Any]) -> str:
        """Validate, start and keep (or roll back) config ``version``; report the outcome."""
        base = self.config_path.resolve().parent if self.config_path else Path.cwd()
        merged = merge_pushed(self.raw, data, version)
        try:
            new = check_pushed(merged, self._current(), base)
        except ApplyRejected as exc:
            await self._report(version, "rejected", exc.errors)
            raise
        problem = await self._switch(new)
        if problem is not None:
            log.error("config %d rolled back: %s", version, problem)
            await self._report(version, "rolled_back", [problem])
            raise CommandFailed(f"config {version} rolled back: {problem}")
        self.raw = merged
        if self.config_path is not None:
            await asyncio.to_thread(save_config_file, self.config_path, merged)
        self._status_changed()
        await self._report(version, "applied", [])
        return f"config {version} applied"
