"""The demo's live status table: devices, events, cases and commands, from the hub's API.

:func:`summarise` (pure) turns the API's JSON into a :class:`StatusView`; :func:`render`
(pure) lays it out as text; :class:`StatusPoller` fetches the JSON over HTTP.
"""

from __future__ import annotations

import logging
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger(__name__)

__all__ = ["DeviceRow", "StatusPoller", "StatusView", "render", "summarise"]

#: Most events or cases one API page returns (the API's own cap).
PAGE = 1000
#: How many of the newest cases the table lists.
LATEST = 5


@dataclass(frozen=True)
class DeviceRow:
    """One device's line in the table."""

    device_id: str
    kind: str
    state: str
    events: int
    outbox: int | None
    fps: float | None
    commands: str


@dataclass(frozen=True)
class StatusView:
    """Everything the table shows."""

    devices: tuple[DeviceRow, ...]
    events: int
    events_capped: bool
    cases_by_code: Mapping[str, int]
    cases_by_stage: Mapping[str, int]
    commands: Mapping[str, int] = field(default_factory=dict)
    #: The newest cases as ``(id, code, title, stage, event_count)``.
    latest: tuple[tuple[int, str, str, str, int], ...] = ()


def summarise(
    devices: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    cases: Sequence[Mapping[str, Any]],
    commands: Mapping[str, Sequence[Mapping[str, Any]]],
) -> StatusView:
    """Build the view from ``/devices``, ``/events``, ``/cases`` and per-device commands."""
    per_device = Counter(str(e.get("device_id")) for e in events)
    rows = []
    all_commands: Counter[str] = Counter()
    for dev in sorted(devices, key=lambda d: str(d.get("device_id"))):
        device_id = str(dev.get("device_id"))
        tel = dev.get("telemetry") or {}
        states = Counter(str(c.get("state")) for c in commands.get(device_id, ()))
        all_commands.update(states)
        shown = ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "-"
        rows.append(
            DeviceRow(
                device_id=device_id,
                kind=str(dev.get("kind") or "?"),
                state=str(dev.get("state") or "unknown"),
                events=per_device.get(device_id, 0),
                outbox=tel.get("outbox_depth") if isinstance(tel, Mapping) else None,
                fps=tel.get("fps") if isinstance(tel, Mapping) else None,
                commands=shown,
            )
        )
    return StatusView(
        devices=tuple(rows),
        events=len(events),
        events_capped=len(events) >= PAGE,
        cases_by_code=dict(sorted(Counter(str(c.get("code")) for c in cases).items())),
        cases_by_stage=dict(sorted(Counter(str(c.get("stage")) for c in cases).items())),
        commands=dict(sorted(all_commands.items())),
        latest=tuple(
            (
                int(c.get("id") or 0),
                str(c.get("code")),
                str(c.get("title") or ""),
                str(c.get("stage")),
                int(c.get("event_count") or 0),
            )
            for c in sorted(cases, key=lambda c: int(c.get("id") or 0), reverse=True)[:LATEST]
        ),
    )


def _fit(text: str, width: int) -> str:
    """``text`` cut and padded to ``width`` terminal columns (CJK characters take two)."""
    out, used = [], 0
    for ch in text:
        w = 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
        if used + w > width:
            break
        out.append(ch)
        used += w
    return "".join(out) + " " * (width - used)


def render(view: StatusView, *, header: Sequence[str] = ()) -> str:
    """The table as text (no colour, fits 100 columns)."""
    lines = list(header)
    lines.append("")
    lines.append(
        f"{'device':<18} {'kind':<6} {'state':<9} {'events':>6} {'outbox':>6} {'fps':>5}  commands"
    )
    lines.append("-" * 78)
    for row in view.devices:
        outbox = "-" if row.outbox is None else str(row.outbox)
        fps = "-" if row.fps is None else f"{row.fps:.1f}"
        lines.append(
            f"{row.device_id:<18} {row.kind:<6} {row.state:<9} {row.events:>6} {outbox:>6} "
            f"{fps:>5}  {row.commands}"
        )
    if not view.devices:
        lines.append("(no device has reported yet)")
    lines.append("")
    total = f"{view.events}+" if view.events_capped else str(view.events)
    lines.append(f"events: {total}")
    codes = ", ".join(f"{code} x{n}" for code, n in view.cases_by_code.items()) or "none yet"
    lines.append(f"cases by code:  {codes}")
    stages = ", ".join(f"{stage} {n}" for stage, n in view.cases_by_stage.items()) or "-"
    lines.append(f"cases by stage: {stages}")
    commands = ", ".join(f"{state} {n}" for state, n in view.commands.items()) or "none yet"
    lines.append(f"commands: {commands}")
    if view.latest:
        lines.append("")
        lines.append("newest cases:")
        for case_id, code, title, stage, events in view.latest:
            lines.append(f"  #{case_id:<4} {code}  {_fit(title, 44)} {stage:<10} {events} event(s)")
    return "\n".join(lines) + "\n"


class StatusPoller:
    """Reads what the table needs from the hub's API with one token."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 5.0) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    async def fetch(self) -> StatusView:
        """One snapshot; raises ``httpx.HTTPError`` when the hub does not answer."""
        devices = await self._get("/devices")
        events = await self._get("/events", limit=PAGE)
        cases = await self._get("/cases", limit=PAGE)
        commands = {}
        for dev in devices:
            device_id = str(dev.get("device_id"))
            commands[device_id] = await self._get(f"/devices/{device_id}/commands")
        return summarise(devices, events, cases, commands)

    async def _get(self, path: str, **params: Any) -> list[dict[str, Any]]:
        response = await self._client.get(f"/api/v1{path}", params=params)
        response.raise_for_status()
        data = response.json()
        if not isinstance(data, list):
            raise httpx.DecodingError(f"{path}: expected a list, got {type(data).__name__}")
        return data

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()
