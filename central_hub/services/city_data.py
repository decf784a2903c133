"""A city's own data: its grid, event catalogue, working calendar and service days.

The hub files cases against three data files. A city names its own in the settings
(``grid_path``, ``catalogue_path``, ``calendar_path``) or imports its grid once with
``central-hub grid import FILE``, which checks it strictly (levels, ids, parents,
containment, overlaps and gaps, every problem named with its feature) and stores it in the
hub's data folder. Without either, the hub runs the packaged sample district: the demo's
default.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from central_hub.domain.calendar import WorkCalendar
from central_hub.domain.catalogue import Catalogue
from central_hub.domain.grid import SAMPLE_DISTRICT_PATH, Grid
from central_hub.domain.service_days import ServiceDays
from central_hub.settings import HubSettings

log = logging.getLogger(__name__)

__all__ = ["CityData", "grid_source", "import_grid", "load_city_data", "load_service_days"]


@dataclass(frozen=True)
class CityData:
    """What filing, the map and the statistics run on, and where each came from."""

    grid: Grid
    catalogue: Catalogue
    calendar: WorkCalendar
    grid_source: Path
    #: The convenience service days (``service_days_path``; none without one).
    service_days: ServiceDays = field(default_factory=ServiceDays)

    def describe(self) -> str:
        """One line for the log at start-up."""
        counts = ", ".join(f"{n} {level}" for level, n in self.grid.level_counts().items())
        return f"grid {self.grid.version} from {self.grid_source} ({counts})"


def grid_source(settings: HubSettings) -> Path:
    """The grid file the hub uses: the setting, else an imported grid, else the sample."""
    if settings.grid_path is not None:
        return settings.grid_path
    if settings.imported_grid_path.exists():
        return settings.imported_grid_path
    return SAMPLE_DISTRICT_PATH


def load_city_data(settings: HubSettings, *, today: date | None = None) -> CityData:
    """Load the data files the settings name; raise the domain error naming the file."""
    source = grid_source(settings)
    grid = Grid.load(source)
    catalogue = Catalogue.load(settings.catalogue_path)
    data = CityData(
        grid=grid,
        catalogue=catalogue,
        calendar=WorkCalendar.load(settings.calendar_path),
        grid_source=source,
        service_days=load_service_days(settings.service_days_path, catalogue, grid),
    )
    log.info("%s", data.describe())
    year = (today or date.today()).year
    if not data.calendar.covers_year(year):
        log.warning(
            "the working calendar %s has no holidays for %d: time limits will count its "
            "holidays as working days; add this year's schedule and restart the hub",
            settings.calendar_path or "(packaged)",
            year,
        )
    return data


def load_service_days(path: Path | None, catalogue: Catalogue, grid: Grid) -> ServiceDays:
    """The service days of ``path`` checked against the catalogue's codes and the grid's
    cells (a code or cell the city does not have is an error); none without a path."""
    if path is None:
        return ServiceDays()
    return ServiceDays.load(
        path, codes=[e.code for e in catalogue.entries()], cells=[c.id for c in grid.cells()]
    )


def import_grid(source: Path, settings: HubSettings) -> Grid:
    """Check ``source`` strictly and store it as the hub's grid.

    Raises :class:`GridError` with every problem (``.problems``); nothing is stored then.
    The file is written atomically, so a running hub never reads half of it; the hub
    takes it at its next start.
    """
    grid = Grid.load(source, gaps=True)
    target = settings.imported_grid_path
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_text(json.dumps(grid.to_geojson(), ensure_ascii=False), encoding="utf-8")
    os.replace(partial, target)
    return grid
