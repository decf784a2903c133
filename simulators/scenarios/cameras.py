"""Camera configs for simulator scenarios: their zones, default rules and location.

Used by the replay tests, the demo and the benchmark, so a scenario and its camera
config never drift apart.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from edge_agent import protocol
from edge_agent.vision.config import CameraConfig, FixedLocation, RuleConfig, ZoneConfig
from simulators.scenarios.core import Scenario
from simulators.scenarios.library import CAMERA_SITES

__all__ = ["DEFAULT_ZONE_RULES", "route_location", "scenario_camera"]

#: Rules a scenario camera gets for each zone it has, unless the caller gives rules.
DEFAULT_ZONE_RULES: dict[tuple[str, str], tuple[dict[str, str], ...]] = {
    ("pole", "pavement"): ({"name": "vendor", "kind": "vendor"},),
    ("pole", "shop_front"): ({"name": "shop-front", "kind": "shop_front"},),
    ("pole", "no_parking"): ({"name": "no-parking", "kind": "parking"},),
    ("truck", "road"): ({"name": "spillage", "kind": "spillage"},),
}


def _site_location(scenario: Scenario) -> FixedLocation | None:
    if scenario.camera != "pole" or scenario.site is None:
        return None
    lat, lon = CAMERA_SITES[scenario.site]
    return FixedLocation(lat=lat, lon=lon)


def scenario_camera(
    scenario: Scenario,
    *,
    camera_id: str | None = None,
    rules: Sequence[RuleConfig | dict[str, Any]] | None = None,
    source: str | None = None,
    **overrides: Any,
) -> CameraConfig:
    """A camera config over ``scenario``: its zones, the given or default rules, its site.

    ``source`` defaults to ``scenario:NAME?seed=SEED``; ``overrides`` set any other
    :class:`CameraConfig` field (``detect_fps``, ``width``, ``blur_faces`` ...).
    """
    zones = [
        ZoneConfig(name=name, polygon=tuple((float(x), float(y)) for x, y in points))
        for name, points in scenario.zones.items()
    ]
    if rules is None:
        chosen: list[RuleConfig | dict[str, Any]] = []
        for zone in scenario.zones:
            for rule in DEFAULT_ZONE_RULES.get((scenario.camera, zone), ()):
                chosen.append({**rule, "zone": zone})
        rules = chosen
    fields: dict[str, Any] = {
        "id": camera_id or scenario.name.replace("_", "-"),
        "source": source or f"scenario:{scenario.name}?seed={scenario.seed}",
        "detect_fps": scenario.fps,
        "width": scenario.width,
        "height": scenario.height,
        "zones": zones,
        "rules": list(rules),
        "location": _site_location(scenario),
    }
    fields.update(overrides)
    return CameraConfig.model_validate(fields)


def route_location(scenario: Scenario) -> Callable[[datetime], protocol.Location | None]:
    """A truck scenario's GPS: the route fix at a given scenario time (for replays)."""
    route = scenario.route
    times = [p[0] for p in route]

    def location_at(ts: datetime) -> protocol.Location | None:
        if not route:
            return None
        t = (ts - scenario.start_time).total_seconds()
        i = max(0, min(len(route) - 1, bisect.bisect_right(times, t) - 1))
        return protocol.Location(lat=route[i][1], lon=route[i][2], source="gps")

    return location_at
