"""What the benchmarks that serve a hub share: running ``central-hub`` as a newcomer would.

The benchmarks are scripts (``python bench/NAME.py``), so this folder is on ``sys.path``
and they import this module by its plain name.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

__all__ = ["hub_cli"]


def hub_cli(data: Path, env: dict[str, str], *args: str) -> str:
    """Run ``central-hub --data-dir DATA ARGS...`` with ``env``; its standard output
    (stripped). A failing command raises ``CalledProcessError``."""
    done = subprocess.run(
        [sys.executable, "-m", "central_hub.cli", "--data-dir", str(data), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=env,
    )
    return done.stdout.strip()
