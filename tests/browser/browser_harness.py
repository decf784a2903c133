"""A whole hub (broker, ingest, command queue, API, console) in a thread, and wire helpers.

The browser tests drive Chromium with Playwright's sync API from the test thread; the hub
runs its own asyncio loop in a background thread, exactly as ``central-hub serve`` does
(:func:`central_hub.app.run_hub`), on a free port, against a real Mosquitto.
"""

from __future__ import annotations

import asyncio
import io
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from PIL import Image

from central_hub.app import run_hub
from central_hub.hub import build_hub
from central_hub.settings import HubSettings
from central_hub.testing import make_event, make_status
from edge_agent.protocol import Channel, Event, Telemetry, encode, public_key_b64, topic
from simulators.mosquitto import free_port
from simulators.polling import eventually_sync

#: Debian's Chromium (or ``XH_CHROMIUM``) and how every browser test launches it.
CHROMIUM = os.environ.get("XH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

ROLES = ("operator", "dispatcher", "handler", "admin")


@dataclass
class HubThread:
    """The hub's loop in a thread; ``tokens`` by user name (named after their role)."""

    data_dir: Path
    mqtt_port: int
    api_port: int = field(default_factory=free_port)
    tokens: dict[str, str] = field(default_factory=dict)
    public_key: str = ""
    error: BaseException | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """The hub's HTTP root."""
        return f"http://127.0.0.1:{self.api_port}"

    async def _main(self) -> None:
        settings = HubSettings(
            data_dir=self.data_dir,
            mqtt_port=self.mqtt_port,
            api_port=self.api_port,
            mqtt_client_id="hub-browser",
            command_tick_s=0.2,
        )
        hub = await build_hub(settings)
        try:
            for role in ROLES:
                _, token = await hub.users.add(role, role)
                self.tokens[role] = token
            self.public_key = public_key_b64(hub.key)
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await run_hub(hub, settings, api=True, stop=self._stop)
        finally:
            await hub.close()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the test thread by start()/stop()
            self.error = exc
            self._ready.set()

    def start(self, within_s: float = 30.0) -> None:
        """Start the hub and wait until its HTTP port answers."""
        self._thread = threading.Thread(target=self._run, name="hub", daemon=True)
        self._thread.start()
        if not self._ready.wait(within_s) or self.error is not None:
            raise RuntimeError(f"hub did not start: {self.error!r}")

        def answers() -> bool:
            try:
                return httpx.get(self.base_url + "/console/login", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        if not eventually_sync(answers, within_s):
            raise RuntimeError("hub's HTTP port never answered")

    def stop(self) -> None:
        """Stop the hub and join its thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(30)
            if self._thread.is_alive():
                raise RuntimeError("hub thread did not stop")

    def api(self, method: str, path: str, role: str = "admin", **kw: Any) -> httpx.Response:
        """Call the REST API as ``role``."""
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        return httpx.request(
            method, self.base_url + "/api/v1" + path, headers=headers, timeout=10, **kw
        )

    def case_of(self, event_id: str, within_s: float = 15.0) -> int:
        """The case an event was filed into (waits for ingest)."""

        def case_id() -> int | None:
            r = self.api("GET", f"/events/{event_id}")
            found = r.json().get("case_id") if r.status_code == 200 else None
            return None if found is None else int(found)

        found = eventually_sync(case_id, within_s)
        if found is None:
            raise AssertionError(f"event {event_id} was not filed within {within_s} s")
        return found


def mqtt_client(port: int, client_id: str) -> paho.Client:
    """A connected paho client with its network thread running."""
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def publish_event(port: int, event: Event) -> None:
    """Publish one event as a device would (QoS 1) and wait for the broker's PUBACK."""
    client = mqtt_client(port, f"pub-{event.event_id[-8:]}")
    try:
        info = client.publish(topic(event.device_id, Channel.EVENT), encode(event), qos=1)
        info.wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


def publish_status(port: int, device_id: str, state: str = "online") -> None:
    """Publish a device's retained presence, as its agent does on connect."""
    client = mqtt_client(port, f"status-{device_id}")
    try:
        status = make_status(device_id, state, datetime.now(UTC))
        info = client.publish(topic(device_id, Channel.STATUS), encode(status), qos=1, retain=True)
        info.wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


def event_at(
    device_id: str,
    lat: float,
    lon: float,
    *,
    code: str = "0504",
    seq: int = 1,
    snapshot: bytes | None = None,
) -> Event:
    """A fresh event now at (lat, lon)."""
    return make_event(
        device_id, code=code, seq=seq, at=datetime.now(UTC), lat=lat, lon=lon, snapshot=snapshot
    )


def heartbeat(device_id: str) -> Telemetry:
    """A heartbeat with figures the device page shows (4.0 fps, 38 ms, 3 queued)."""
    return Telemetry.model_validate(
        {
            "device_id": device_id,
            "ts": datetime.now(UTC),
            "uptime_s": 60.0,
            "fps": 4.0,
            "inference_ms": 38.0,
            "outbox_depth": 3,
            "outbox_bytes": 2048,
            "evicted": 0,
        }
    )


# --- pages ---------------------------------------------------------------------------------


def jpeg(width: int = 64, height: int = 48, colour: tuple[int, int, int] = (200, 80, 40)) -> bytes:
    """A small real JPEG."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="JPEG")
    return out.getvalue()


def no_horizontal_scroll(page: Any, width: int) -> bool:
    """Whether the page fits the viewport's width."""
    return bool(page.evaluate(f"document.documentElement.scrollWidth <= {width + 1}"))


def stage_of(page: Any) -> str:
    """The stage of the case a console case page shows."""
    return str(page.get_attribute("article.case", "data-stage"))


def take_action(page: Any, action: str, reason: str = "") -> None:
    """Take a workflow action on a console case page (with a reason) and wait for it."""
    form = page.locator(f'form[data-action="{action}"]')
    if reason:
        form.locator("textarea").fill(reason)
    form.locator("button").click()
    page.wait_for_selector("p.ok, #case-error")
