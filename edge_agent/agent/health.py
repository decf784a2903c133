"""Figures about the board for telemetry: free disk and CPU temperature (where exposed)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["THERMAL_ROOT", "cpu_temp_c", "disk_free_mb"]

#: Where Linux exposes thermal zones; tests point it elsewhere.
THERMAL_ROOT = Path("/sys/class/thermal")


def disk_free_mb(path: Path) -> float | None:
    """Free space on the filesystem holding ``path``, in MiB (None if unknown)."""
    probe = path if path.exists() else path.parent
    try:
        return shutil.disk_usage(probe).free / (1024 * 1024)
    except OSError as exc:
        log.debug("disk usage of %s: %s", probe, exc)
        return None


def cpu_temp_c(root: Path | None = None) -> float | None:
    """The hottest CPU-ish thermal zone in °C, or None where the board exposes none."""
    base = root or THERMAL_ROOT
    best: float | None = None
    for zone in sorted(base.glob("thermal_zone*")):
        try:
            kind = (zone / "type").read_text().strip().lower()
            milli = int((zone / "temp").read_text().strip())
        except (OSError, ValueError):
            continue
        if kind and not any(word in kind for word in ("cpu", "soc", "x86_pkg", "thermal", "acpi")):
            continue
        value = milli / 1000.0
        best = value if best is None else max(best, value)
    return best
