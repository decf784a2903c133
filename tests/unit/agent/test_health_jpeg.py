"""Board figures for telemetry, and the JPEG size reader used for snapshot replies."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from edge_agent.agent.health import cpu_temp_c, disk_free_mb
from edge_agent.agent.snapshot import jpeg_size


def test_cpu_temp_takes_the_hottest_cpu_zone(tmp_path: Path) -> None:
    for name, kind, milli in (
        ("thermal_zone0", "cpu-thermal", "51500"),
        ("thermal_zone1", "soc_thermal", "63000"),
        ("thermal_zone2", "battery", "90000"),
    ):
        (tmp_path / name).mkdir()
        (tmp_path / name / "type").write_text(kind)
        (tmp_path / name / "temp").write_text(milli)
    assert cpu_temp_c(tmp_path) == 63.0
    assert cpu_temp_c(tmp_path / "none") is None


def test_disk_free_is_positive_even_before_the_file_exists(tmp_path: Path) -> None:
    free = disk_free_mb(tmp_path / "outbox.db")
    assert free is not None
    assert free > 0


@pytest.mark.parametrize(("width", "height", "progressive"), [(64, 48, False), (33, 100, True)])
def test_jpeg_size(width: int, height: int, progressive: bool) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (width, height)).save(buf, "JPEG", progressive=progressive)
    assert jpeg_size(buf.getvalue()) == (width, height)
    with pytest.raises(ValueError, match="not a JPEG"):
        jpeg_size(b"GIF89a")
