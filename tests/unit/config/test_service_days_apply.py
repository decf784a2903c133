"""A unit given service days through its signed desired config: a malformed section is
rejected with the field named and the running config kept; a good one is run and kept."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent import protocol
from edge_agent.config import AgentConfig, load_config
from edge_agent.config_apply import ConfigApplier

KEY = Ed25519PrivateKey.generate()
WINDOW = {
    "name": "县前街便民服务日",
    "camera": "mast-east",
    "zone": "sidewalk",
    "kinds": ["vendor"],
    "start": "2026-03-14T08:00:00+08:00",
    "end": "2026-03-14T17:00:00+08:00",
}


def unit_file(tmp_path: Path) -> Path:
    path = tmp_path / "pole-01.yaml"
    data = {
        "device": {"id": "pole-01", "kind": "pole"},
        "mqtt": {"host": "localhost"},
        "hub": {"public_key": protocol.public_key_b64(KEY.public_key())},
    }
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def desired(version: int, section: dict[str, Any]) -> bytes:
    message = protocol.sign_desired(
        KEY, device_id="pole-01", version=version, config={"service_days": section}
    )
    return protocol.encode(message)


def test_a_malformed_calendar_is_rejected_and_a_good_one_kept(tmp_path: Path) -> None:
    path = unit_file(tmp_path)
    running: list[AgentConfig] = [load_config(path)]
    reports: list[tuple[int, str, list[str]]] = []

    async def switch(new: AgentConfig) -> str | None:
        running.append(new)
        return None

    async def report(version: int, state: str, errors: Sequence[str]) -> None:
        reports.append((version, state, list(errors)))

    applier = ConfigApplier(
        device_id="pole-01",
        raw=yaml.safe_load(path.read_text(encoding="utf-8")),
        config_path=path,
        current=lambda: running[-1],
        switch=switch,
        report=report,
        status_changed=lambda: None,
        public_key=KEY.public_key,
    )

    async def scenario() -> None:
        naive = {**WINDOW, "start": "2026-03-14T08:00:00"}  # no UTC offset
        await applier.apply_desired(desired(1, {"exemptions": [naive]}))
        await applier.apply_desired(desired(2, {"exemptions": [WINDOW]}))

    asyncio.run(scenario())
    assert reports[0][:2] == (1, "rejected")
    assert any(e.startswith("service_days.exemptions.0.start:") for e in reports[0][2])
    assert reports[1] == (2, "applied", [])
    assert len(running) == 2  # the rejected one never ran
    assert running[-1].service_days.exemptions[0].name == "县前街便民服务日"
    kept = load_config(path)  # written to the unit's file: honoured after a restart offline
    assert kept.config_version == 2
    assert kept.service_days.exemptions[0].zone == "sidewalk"
