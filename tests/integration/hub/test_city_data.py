"""A city's own grid: checked and imported by the CLI, then used by filing, map and metrics."""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from central_hub.adapters.evidence import EvidenceStore
from central_hub.api import API_PREFIX, create_app
from central_hub.cli import main
from central_hub.domain.errors import CalendarError, CatalogueError, GridError
from central_hub.domain.grid import Grid
from central_hub.domain.workflow import Role
from central_hub.hub import build_hub
from central_hub.services.cases import CaseFilter
from central_hub.services.city_data import load_city_data
from central_hub.settings import HubSettings
from central_hub.testing import FakeClock, ListSource, RecordingPublisher, inbound, make_event
from central_hub.workers.ingest import IngestWorker

pytestmark = pytest.mark.integration

#: A made-up city on the other side of the province: lon 120.10-120.14, lat 30.24-30.26.
LON0, LAT0, STEP = 120.10, 30.24, 0.01
OWNERS = {
    "enforcement": "city-patrol",
    "sanitation": "city-clean",
    "landscaping": "city-green",
    "municipal": "city-works",
}


def _box(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    return {"type": "Polygon", "coordinates": [ring]}


def _cell(cid: str, level: str, parent: str | None, geom: dict[str, Any], **props: Any) -> Any:
    return {
        "type": "Feature",
        "properties": {"id": cid, "level": level, "name": cid, "parent_id": parent, **props},
        "geometry": geom,
    }


def city_grid() -> dict[str, Any]:
    """1 area = 1 squadron, 2 zones (west, east), 2 streets each, no gaps."""
    whole = _box(LON0, LAT0, LON0 + 4 * STEP, LAT0 + 2 * STEP)
    features = [
        _cell("c-area", "area", None, whole),
        _cell("c-sq", "squadron", "c-area", whole, owners=OWNERS),
    ]
    for z, name in enumerate(("w", "e")):
        x = LON0 + 2 * z * STEP
        features.append(
            _cell(f"c-z-{name}", "zone", "c-sq", _box(x, LAT0, x + 2 * STEP, LAT0 + 2 * STEP))
        )
        for s in range(2):
            xs = x + s * STEP
            geom = _box(xs, LAT0, xs + STEP, LAT0 + 2 * STEP)
            features.append(_cell(f"c-st-{name}{s}", "street", f"c-z-{name}", geom))
    return {"type": "FeatureCollection", "features": features}


def three_faults() -> dict[str, Any]:
    doc = city_grid()
    fs = doc["features"]
    fs[3]["properties"]["level"] = "lane"  # c-st-w0: not a level
    fs[7]["properties"]["id"] = "c-st-e0"  # c-st-e1: an id used twice
    fs[4]["geometry"] = _box(
        LON0 + STEP, LAT0 - STEP, LON0 + 2 * STEP, LAT0 + 2 * STEP
    )  # leaves c-z-w
    return doc


def _write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_cli_refuses_a_grid_with_three_faults_with_three_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "hub"
    broken = _write(tmp_path / "broken.geojson", three_faults())
    for verb in ("check", "import"):
        assert main(["--data-dir", str(data_dir), "grid", verb, str(broken)]) == 1
        err = capsys.readouterr().err.splitlines()
        assert err[0] == f"central-hub: {broken}: 3 problems"
        assert [line.split(":")[0].strip() for line in err[1:]] == [
            "features[3] (c-st-w0)",
            "features[7] (c-st-e0)",
            "features[4] (c-st-w1)",
        ], err
        assert "properties.level" in err[1]
        assert "used twice" in err[2]
        assert "reaches outside its parent 'c-z-w'" in err[3]
    assert not (data_dir / "grid.geojson").exists()  # nothing stored

    gappy = city_grid()
    gappy["features"].pop(4)  # c-st-w1 gone: half of c-z-w lies in no street
    assert (
        main(
            [
                "--data-dir",
                str(data_dir),
                "grid",
                "check",
                str(_write(tmp_path / "g.geojson", gappy)),
            ]
        )
        == 1
    )
    assert "features[2] (c-z-w): gap: " in capsys.readouterr().err

    good = _write(tmp_path / "city.geojson", city_grid())
    assert main(["--data-dir", str(data_dir), "grid", "import", str(good)]) == 0
    out = capsys.readouterr().out
    version = Grid.from_geojson(city_grid()).version
    assert f"version {version} (1 area, 1 squadron, 2 zone, 4 street)" in out
    assert main(["--data-dir", str(data_dir), "grid", "show"]) == 0
    assert f"{data_dir / 'grid.geojson'}: in use; version {version}" in capsys.readouterr().out


async def test_an_imported_grid_is_used_by_filing_map_and_metrics(
    db: AsyncEngine, tmp_path: Path, clock: FakeClock
) -> None:
    settings = HubSettings(data_dir=tmp_path / "hub")
    assert (
        main(
            [
                "--data-dir",
                str(settings.data_dir),
                "grid",
                "import",
                str(_write(tmp_path / "c.geojson", city_grid())),
            ]
        )
        == 0
    )
    hub = await build_hub(
        settings,
        clock=clock,
        mqtt=False,
        engine=db,
        run_migrations=False,
        publisher=RecordingPublisher(),
    )
    assert hub.grid.version == Grid.from_geojson(city_grid()).version
    worker = IngestWorker(
        hub.engine, ListSource(), EvidenceStore(tmp_path / "ev"), hub.filer, clock
    )
    event = make_event("pole-c", at=clock.now, lat=LAT0 + STEP, lon=LON0 + 2.5 * STEP)
    await worker.process([inbound(event)])
    cases = await hub.cases.find(CaseFilter(), now=clock.now)
    assert [(c.grid_cell_id, c.squad_id, c.grid_version) for c in cases] == [
        ("c-st-e0", "city-patrol", hub.grid.version)
    ]
    figures = await hub.metrics.metrics(
        clock.now - timedelta(hours=1),
        clock.now + timedelta(hours=1),
        cell_id="c-z-e",
        now=clock.now,
    )
    assert figures.reported == 1
    west = await hub.metrics.metrics(
        clock.now - timedelta(hours=1),
        clock.now + timedelta(hours=1),
        cell_id="c-z-w",
        now=clock.now,
    )
    assert west.reported == 0

    _, token = await hub.users.add("op", Role.OPERATOR)
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(hub)), base_url="http://hub"
    ) as api:
        geo = (await api.get(f"{API_PREFIX}/grid", headers=auth)).json()
        assert {f["properties"]["id"] for f in geo["features"]} >= {"c-area", "c-st-e1"}
        assert not any(f["properties"].get("id", "").startswith("hy-") for f in geo["features"])
        detail = (await api.get(f"{API_PREFIX}/cases/{cases[0].id}", headers=auth)).json()
        assert detail["case"]["grid_version"] == hub.grid.version


async def test_the_sample_district_stays_the_default_and_a_bad_path_is_named(
    tmp_path: Path,
) -> None:
    sample = await build_hub(HubSettings(data_dir=tmp_path / "a"), mqtt=False)
    try:
        assert "hy-area" in sample.grid
    finally:
        await sample.close()
    missing = tmp_path / "nowhere.geojson"
    with pytest.raises(GridError, match=f"{missing}: cannot read the grid"):
        await build_hub(HubSettings(data_dir=tmp_path / "b", grid_path=missing), mqtt=False)


def test_catalogue_and_calendar_come_from_the_settings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = HubSettings(data_dir=tmp_path / "hub")
    packaged = load_city_data(settings, today=date(2026, 6, 1))
    assert packaged.grid_source.name == "district.geojson"
    with caplog.at_level(logging.WARNING, logger="central_hub.services.city_data"):
        load_city_data(settings, today=date(2031, 1, 5))
    assert "has no holidays for 2031" in caplog.text

    calendar = tmp_path / "calendar.yaml"
    calendar.write_text(
        "version: 1\ntimezone: Asia/Shanghai\nworking_periods: [['09:00', '17:00']]\n"
        "weekend: [sun]\nholidays: [{date: 2031-01-01, name: New Year}]\nmakeup_workdays: []\n",
        encoding="utf-8",
    )
    own = load_city_data(
        HubSettings(data_dir=tmp_path / "hub", calendar_path=calendar), today=date(2031, 1, 5)
    )
    assert own.calendar.hours_per_day == 8.0
    assert own.calendar.weekend == frozenset({7})
    calendar.write_text("version: 1\ntimezone: Mars/Olympus\n", encoding="utf-8")
    with pytest.raises(CalendarError, match=str(calendar)):
        load_city_data(HubSettings(data_dir=tmp_path / "hub", calendar_path=calendar))
    with pytest.raises(CatalogueError, match="cannot read"):
        load_city_data(HubSettings(data_dir=tmp_path / "hub", catalogue_path=tmp_path / "no.yaml"))
