"""A city's own data: its grid, event catalogue and working calendar.

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
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from central_hub.domain.calendar import WorkCalendar
from central_hub.domain.catalogue import Catalogue
from central_hub.domain.grid import SAMPLE_DISTRICT_PATH, Grid
from central_hub.settings import HubSettings

log = logging.getLogger(__name__)

__all__ = ["CityData", "grid_source", "import_grid", "load_city_data"]


@dataclass(frozen=True)
class CityData:
    """What filing, the map and the statistics run on, and where each came from."""

    grid: Grid
    catalogue: Catalogue
    calendar: WorkCalendar
    grid_source: Path

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
    """Load the three data files the settings name; raise the domain error naming the file."""
    source = grid_source(settings)
    data = CityData(
        grid=Grid.load(source),
        catalogue=Catalogue.load(settings.catalogue_path),
        calendar=WorkCalendar.load(settings.calendar_path),
        grid_source=source,
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
