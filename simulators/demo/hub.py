"""``python -m simulators.demo.hub``: ``central-hub serve`` as the demo runs it.

The same :func:`central_hub.app.serve` as ``central-hub serve``, with one setting the
command line does not offer: the demo runs one hub worker, so it subscribes without a
``$share/hub/`` group. Mosquitto (2.0.11 measured) does not restore shared subscriptions
from its persistence file after a restart, so a shared-subscription hub misses every
event published between the broker coming back and the hub re-subscribing; a plain
persistent subscription is restored and queues them. And its units' clocks run ahead
(the scenes are faster than real time), which a real hub refuses past 10 minutes.
Everything else comes from the usual ``XH_HUB_*`` environment variables.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo's hub until SIGINT/SIGTERM; returns the exit status."""
    from central_hub.app import serve
    from central_hub.settings import HubSettings

    parser = argparse.ArgumentParser(prog="python -m simulators.demo.hub", description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--mqtt-port", type=int, required=True)
    parser.add_argument("--api-port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = HubSettings(
        data_dir=args.data_dir,
        mqtt_port=args.mqtt_port,
        api_port=args.api_port,
        share_group=None,
        # The demo's scenes run faster than real time and stamp frames with their own
        # clock, so its units' times run ahead of the hub's (by days over a long run).
        max_clock_ahead_s=366 * 86400.0,
    )
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
