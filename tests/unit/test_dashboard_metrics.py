"""Every metric the Grafana dashboard charts is one the hub or a unit exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from central_hub.adapters.prometheus import HubMetrics
from central_hub.db.engine import create_engine
from central_hub.workers.ingest import IngestStats
from edge_agent.agent.metrics import AgentFigures, families
from edge_agent.link.outbox import OutboxStats
from edge_agent.protocol import CameraHealth
from edge_agent.vision.pipeline import ModelFigures, VisionStats

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"


def _exposed() -> set[str]:
    # Collecting reads only cached figures: the engine is never connected here.
    hub = HubMetrics(create_engine("sqlite+aiosqlite:///:memory:"), IngestStats())
    unit = AgentFigures(
        uptime_s=1.0,
        outbox=OutboxStats(0, 0, 0, 0),
        link_connected=True,
        vision=VisionStats(
            fps=1.0,
            inference_ms=1.0,
            dropped_frames=0,
            cameras={"c": CameraHealth(state="ok", fps=1.0, dropped=0)},
            models={"m": ModelFigures(1, 0.1, 0)},
        ),
        restarts={"s": 1},
    )
    names = set()
    for family in [*hub.collect(), *families(unit)]:
        names.update(sample.name for sample in family.samples)
    return names


def test_every_charted_metric_is_exposed() -> None:
    doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [target["expr"] for panel in doc["panels"] for target in panel.get("targets", [])]
    charted = {name for expr in exprs for name in re.findall(r"\bxh_[a-z_]+", expr)}
    assert len(charted) >= 25
    missing = charted - _exposed()
    assert not missing, f"the dashboard charts metrics nobody exposes: {sorted(missing)}"
