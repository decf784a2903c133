"""Live view in a real Chromium against a real unit: the operator opens a camera on the
device page and sees frames change with the overlay; two more viewers (MJPEG over HTTP)
watch the same camera and the unit streams it once; closing the page and the others
ends the views (audited) and the unit stops sending well within the lease."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_harness import HubThread, event_at, publish_event

from central_hub.testing import MARKET_POLE
from simulators.live_camera import write_live_unit
from simulators.mosquitto import MosquittoBroker
from simulators.polling import eventually_sync
from simulators.subscriber import Subscriber

pytestmark = pytest.mark.browser

Shot = Callable[[Any, str], Path]
DEVICE = "pole-live-b1"
REPO = Path(__file__).resolve().parents[2]


class Tap:
    """Counts the unit's live frames and keeps its acks, straight from the broker."""

    def __init__(self, port: int) -> None:
        self.frames: list[float] = []
        self.acks: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.link = Subscriber(port, [f"xh/v1/dev/{DEVICE}/#"], self._message, client_id="live-tap")

    def _message(self, topic: str, payload: bytes) -> None:
        with self.lock:
            if topic.endswith("/live"):
                self.frames.append(time.monotonic())
            elif topic.endswith("/cmd/ack"):
                self.acks.append(json.loads(payload))

    def close(self) -> None:
        self.link.close()


@pytest.fixture
def unit(broker: MosquittoBroker, hub_server: HubThread, tmp_path: Path) -> Iterator[None]:
    config = write_live_unit(
        tmp_path / "unit",
        device_id=DEVICE,
        mqtt_port=broker.port,
        hub_public_key=hub_server.public_key,
    )
    log = open(tmp_path / "unit.log", "ab")  # noqa: SIM115 - the child keeps it open
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_agent.run_command", "--config", str(config)],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    try:
        cameras = eventually_sync(
            lambda: (
                (r := hub_server.api("GET", f"/devices/{DEVICE}")).status_code == 200
                and (r.json().get("telemetry") or {}).get("cameras")
            ),
            30,
            every_s=0.2,
        )
        assert cameras, "the unit never reported its camera:\n" + (tmp_path / "unit.log").read_text(
            errors="replace"
        )
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _mjpeg_viewer(base: str, cookies: Any, parts: list[int], stop: threading.Event) -> None:
    with (
        httpx.Client(base_url=base, cookies=cookies, timeout=10) as http,
        http.stream("GET", f"/console/devices/{DEVICE}/live/mast/stream") as r,
    ):
        assert r.status_code == 200
        for chunk in r.iter_bytes():
            parts[0] += chunk.count(b"Content-Type: image/jpeg")
            if stop.is_set():
                return


def test_live_view_in_the_browser_fans_out_and_stops_when_closed(
    contexts: Callable[..., Any],
    hub_server: HubThread,
    broker: MosquittoBroker,
    unit: None,
    shot: Shot,
) -> None:
    base = hub_server.base_url
    tap = Tap(broker.port)
    ctx = contexts("operator")
    try:
        page = ctx.new_page()
        page.goto(f"{base}/console/devices/{DEVICE}")
        page.click('.live-watch[data-camera="mast"]')
        page.wait_for_selector("#live-status[data-seq]")
        page.wait_for_function(
            "document.getElementById('live-img').naturalWidth > 0", timeout=15_000
        )
        first = page.locator("#live-img").screenshot()
        page.wait_for_timeout(700)
        second = page.locator("#live-img").screenshot()
        assert first != second, "the live picture did not change"
        assert page.locator("#live-svg polygon[data-zone='pavement']").count() == 1
        assert page.locator("#live-svg rect[data-label='stall']").count() >= 1
        shot(page, "live-view")
        # Two more viewers of the same camera, over plain HTTP with the same session.
        cookies = {c["name"]: c["value"] for c in ctx.cookies()}
        stop = threading.Event()
        counts = [[0], [0]]
        viewers = [
            threading.Thread(target=_mjpeg_viewer, args=(base, cookies, n, stop), daemon=True)
            for n in counts
        ]
        for v in viewers:
            v.start()
        assert eventually_sync(lambda: all(n[0] >= 3 for n in counts), 15), counts
        stop.set()
        for v in viewers:
            v.join(10)
        # One stream on the unit for three viewers: one 'streaming', the rest renewals.
        with tap.lock:
            started = [a for a in tap.acks if str(a.get("detail", "")).startswith("streaming")]
        assert len(started) == 1, tap.acks
        page.close()
        # The unit stops well within the lease (30 s): the last viewer's stop goes out.
        closed = time.monotonic()

        def quiet() -> bool:
            with tap.lock:
                last = tap.frames[-1] if tap.frames else 0.0
            return time.monotonic() - last > 1.5

        assert eventually_sync(quiet, 20, every_s=0.2), "the unit kept streaming"
        assert time.monotonic() - closed < 20
        # The audit on the device page: three views by the operator, all ended.
        audit = ctx.new_page()
        audit.goto(f"{base}/console/devices/{DEVICE}")
        rows = audit.locator("#live-history tbody tr")
        assert rows.count() == 3
        assert audit.locator("#live-history").inner_text().count("operator") == 3
        assert "观看中" not in audit.locator("#live-history").inner_text()
        audit.close()
        # From a case: its event's camera opens live for that case, audited with it.
        event = event_at(DEVICE, *MARKET_POLE).model_copy(update={"camera_id": "mast"})
        publish_event(broker.port, event)
        case_id = hub_server.case_of(event.event_id)
        from_case = ctx.new_page()
        from_case.goto(f"{base}/console/cases/{case_id}")
        from_case.click("a.watch-live")
        from_case.wait_for_selector("#live-status[data-seq]")
        from_case.goto(f"{base}/console/cases/{case_id}")  # leaving ends the view

        def case_audit() -> str:
            from_case.reload()
            found = from_case.locator("#live-audit")
            text = found.inner_text() if found.count() else ""
            return text if "operator" in text and "观看中" not in text else ""

        assert eventually_sync(case_audit, 10, every_s=0.3), "no closed audit row on the case"
        shot(from_case, "live-case-audit")
        from_case.close()
    finally:
        tap.close()
