"""The operators' web console: a second front end over the hub's services.

Server-rendered pages (Jinja2) with a little hand-written JS and CSS served from the
package, no CDN: login with the hub's users (name and access token) and roles, a live
map drawn from the grid's GeoJSON, the case queue and detail with the workflow actions
the role allows, devices with a speak panel, and statistics. Mount it with
:func:`install_console`.
"""

from __future__ import annotations

from central_hub.console.app import install_console
from central_hub.console.settings import ConsoleSettings

__all__ = ["ConsoleSettings", "install_console"]
