"""``/api/v1/grid``: the four-level grid as GeoJSON, cells and their owners."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from central_hub.api.deps import ALL_ROLES, HubDep, guard
from central_hub.errors import NotFoundError

router = APIRouter(prefix="/grid", tags=["grid"])


class CellView(BaseModel):
    """A grid cell with its path from the built-up area and the owner per line."""

    id: str
    level: str
    name: str
    parent_id: str | None
    path: list[str]
    owners: dict[str, str | None]
    children: list[str]


@router.get("", **guard(*ALL_ROLES))
async def grid_geojson(hub: HubDep) -> dict[str, Any]:
    """The whole grid as a GeoJSON FeatureCollection."""
    return hub.grid.to_geojson()


@router.get("/locate", **guard(*ALL_ROLES))
async def locate(lat: float, lon: float, hub: HubDep) -> CellView:
    """The street-level cell holding a point; 404 outside the grid."""
    cell = hub.grid.locate(lat, lon)
    if cell is None:
        raise NotFoundError(f"({lat}, {lon}) is outside the grid")
    return _cell_view(hub, cell.id)


@router.get("/cells/{cell_id}", **guard(*ALL_ROLES))
async def get_cell(cell_id: str, hub: HubDep) -> CellView:
    """One cell."""
    return _cell_view(hub, cell_id)


def _cell_view(hub: Any, cell_id: str) -> CellView:
    cell = hub.grid.get(cell_id)
    return CellView(
        id=cell.id,
        level=cell.level,
        name=cell.name,
        parent_id=cell.parent_id,
        path=[c.id for c in hub.grid.path(cell_id)],
        owners=hub.grid.owners(cell_id),
        children=[c.id for c in hub.grid.children(cell_id)],
    )
