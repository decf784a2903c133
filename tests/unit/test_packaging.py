"""Packaging promises: light imports and the console scripts."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points


def test_import_edge_agent_stays_light() -> None:
    code = (
        "import sys, edge_agent, edge_agent.protocol; "
        "heavy = [m for m in ('cv2', 'onnxruntime', 'numpy', 'paho') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import edge_agent pulled in {out.stdout.strip()}"


def test_console_scripts_are_declared() -> None:
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts["edge-agent"] == "edge_agent.cli:main"
    assert scripts["central-hub"] == "central_hub.cli:main"
    assert scripts["xiuhua"] == "simulators.launcher:main"
