"""``central-hub serve``: ingest, the command queue and the API in one process."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Callable
from datetime import datetime

import uvicorn

from central_hub.adapters.mqtt import HubMqtt
from central_hub.adapters.prometheus import HubMetrics
from central_hub.api import create_app
from central_hub.api.open311 import Open311Limits
from central_hub.citizen_page import PageLimits, install_citizen_page
from central_hub.console import install_console
from central_hub.console.state import ConsoleState
from central_hub.errors import BrokerError
from central_hub.hub import Hub, build_hub
from central_hub.services.citizen_page import PlateBook
from central_hub.services.keys import resign_marker
from central_hub.settings import HubSettings
from central_hub.workers.retention import RetentionWorker
from central_hub.workers.service_days import ServiceDayWorker
from edge_agent.protocol import TOPIC_ROOT, utc_now

log = logging.getLogger(__name__)

__all__ = ["run_hub", "serve"]

#: How long the hub waits for its delivery probe at start.
PROBE_WITHIN_S = 10.0


async def run_hub(hub: Hub, settings: HubSettings, *, api: bool, stop: asyncio.Event) -> None:
    """Run the hub's long-lived tasks until ``stop`` is set, then shut them down."""
    server: uvicorn.Server | None = None
    console: ConsoleState | None = None
    tasks: list[asyncio.Task[None]] = []
    # A bad plates file stops the start here, naming the file, before anything runs.
    plates = await asyncio.to_thread(PlateBook.of_hub, settings, hub.grid) if api else None
    # People stored in the vendor file and no key, or another key: stop here, naming it.
    await hub.vendor_file.check_key()
    if hub.mqtt is not None:
        await hub.mqtt.start()
    stop_metrics: Callable[[], None] | None = None
    async with asyncio.TaskGroup() as tg:
        if hub.ingest is not None:
            tasks.append(tg.create_task(hub.ingest.run(), name="ingest"))
            if hub.mqtt is not None:
                tasks.append(tg.create_task(_probe_delivery(hub.mqtt), name="probe"))
        if hub.mqtt is not None and resign_marker(settings).exists():
            tasks.append(tg.create_task(_resign_desired(hub, settings), name="resign"))
        if hub.mqtt is not None:  # the city's service days to the units they concern
            pusher = ServiceDayWorker(hub.service_days, ready=hub.mqtt.wait_subscribed)
            tasks.append(tg.create_task(pusher.run(), name="service-days"))
        if settings.metrics_port is not None:
            ops = HubMetrics(hub.engine, hub.ingest.stats if hub.ingest is not None else None)
            stop_metrics = ops.serve(settings.metrics_host, settings.metrics_port)
            tasks.append(tg.create_task(ops.refresh_forever(), name="metrics"))
            log.info(
                "metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port
            )
        tasks.append(tg.create_task(hub.dispatcher.run(), name="commands"))
        tasks.append(tg.create_task(hub.rollout_worker.run(), name="rollouts"))
        tasks.append(tg.create_task(hub.notice_worker.run(), name="notices"))
        if hub.parking is not None:
            tasks.append(tg.create_task(hub.parking.run(), name="parking"))
        if hub.followup is not None:
            tasks.append(tg.create_task(hub.followup.run(), name="followup"))
        if hub.voice_schedules is not None:
            tasks.append(tg.create_task(hub.voice_schedules.run(), name="voice-schedules"))
        retention = RetentionWorker(
            hub.engine,
            hub.evidence,
            hub.frames,
            settings.retention,
            hub.clock,
            every_s=settings.retention_every_s,
            voice=settings.voice_path,
        )
        tasks.append(tg.create_task(retention.run(), name="retention"))
        if api:
            token = settings.metrics_token
            app = create_app(
                hub,
                metrics_token=token.get_secret_value() if token else None,
                open311_limits=Open311Limits(
                    per_address_per_min=settings.open311_address_per_min,
                    per_address_burst=settings.open311_address_burst,
                    per_key_per_min=settings.open311_key_per_min,
                    per_key_burst=settings.open311_key_burst,
                ),
            )
            console = install_console(app, hub)
            assert plates is not None
            install_citizen_page(
                app,
                hub,
                plates,
                limits=PageLimits(
                    per_client_per_min=settings.report_page_client_per_min,
                    per_client_burst=settings.report_page_client_burst,
                    per_plate_per_min=settings.report_page_plate_per_min,
                    per_plate_burst=settings.report_page_plate_burst,
                ),
                contact_days=settings.retention_citizen_contact_days,
            )
            config = uvicorn.Config(
                app,
                host=settings.api_host,
                port=settings.api_port,
                log_level="info",
                lifespan="off",
                ssl_certfile=settings.api_tls_cert,
                ssl_keyfile=settings.api_tls_key,
            )
            server = uvicorn.Server(config)
            tasks.append(tg.create_task(server.serve(), name="api"))
            if hub.live is not None:  # live view: the console's viewers, the units' frames
                tasks.append(tg.create_task(hub.live.run(), name="live"))
        log.info("hub running (api: %s, ingest: %s)", api, hub.ingest is not None)
        await stop.wait()
        log.info("hub stopping")
        if server is not None:
            server.should_exit = True
        if console is not None:
            await console.close()  # end live streams so shutdown does not wait
        if hub.live is not None:
            hub.live.close()  # end the live views' streams too
        for task in tasks:
            if task.get_name() != "api":
                task.cancel()
    if stop_metrics is not None:
        await asyncio.to_thread(stop_metrics)
    if hub.mqtt is not None:
        await hub.mqtt.stop()


async def _resign_desired(hub: Hub, settings: HubSettings) -> None:
    """After a key rotation: publish the stored desired configs signed with the new key."""
    assert hub.mqtt is not None
    await hub.mqtt.wait_subscribed()
    try:
        await hub.devices.resign_desired()
    except BrokerError as exc:
        log.error("could not re-sign the desired configs (tried again at the next start): %s", exc)
        return
    resign_marker(settings).unlink(missing_ok=True)


async def _probe_delivery(mqtt: HubMqtt) -> None:
    """Say loudly when the broker takes the hub's subscriptions but delivers nothing."""
    await mqtt.wait_subscribed()
    try:
        delivered = await mqtt.check_delivery(PROBE_WITHIN_S)
    except BrokerError as exc:
        log.warning("could not probe the broker's delivery: %s", exc)
        return
    if delivered:
        log.info("the broker delivers to the hub's subscriptions (probe came back)")
        return
    log.error(
        "the broker at %s:%s accepted the hub's subscriptions but did not deliver its probe "
        "within %.0f s: devices' messages would be acknowledged and never reach the hub. "
        "A broker without shared subscriptions (NATS) needs XH_HUB_SHARE_GROUP= (empty); "
        "else check the hub user's ACL (read on %s/#)",
        mqtt.host,
        mqtt.port,
        PROBE_WITHIN_S,
        TOPIC_ROOT,
    )


async def serve(
    settings: HubSettings, *, api: bool = True, clock: Callable[[], datetime] = utc_now
) -> None:
    """Build the hub from ``settings`` and run it until SIGINT or SIGTERM."""
    hub = await build_hub(settings, clock=clock)
    # Everything built so far (catalogue, grid, templates, ORM metadata) lives as long as
    # the process: move it out of the collector's reach so full sweeps stay short while
    # statistics build tens of thousands of short-lived rows (measured 100-150 ms -> ~10 ms).
    gc.collect()
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await run_hub(hub, settings, api=api, stop=stop)
    finally:
        await hub.close()
