"""Browser fixtures: one hub and one Chromium per test module, a logged-in context per role.

Module scope matters: Playwright's sync API keeps an event loop running in the main
thread while it is started, which would break every asyncio test that runs after it.

Chromium is Debian's (``/usr/bin/chromium``, or ``XH_CHROMIUM``), driven by Playwright's
Python package; no browser download is needed.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from simulators.mosquitto import MosquittoBroker

# The harness sits beside this file; tests import it by name (tests/ is not a package).
sys.path.insert(0, str(Path(__file__).parent))
from browser_harness import CHROMIUM, CHROMIUM_ARGS, HubThread

DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    """One Mosquitto for the browser session."""
    with MosquittoBroker(tmp_path_factory.mktemp("browser-broker")) as running:
        yield running


@pytest.fixture(scope="module")
def hub_server(
    broker: MosquittoBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HubThread]:
    """The whole hub (ingest, commands, API, console) on SQLite, serving on a free port."""
    server = HubThread(data_dir=tmp_path_factory.mktemp("browser-hub"), mqtt_port=broker.port)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium, headless."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "the playwright package is not installed (it is in the dev extra; run make test)"
        )
    if not Path(CHROMIUM).exists() and shutil.which(CHROMIUM) is None:
        pytest.fail(
            f"no Chromium at {CHROMIUM} (make test installs Debian's chromium; or set XH_CHROMIUM)"
        )
    pw = sync_playwright().start()
    try:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    finally:
        pw.stop()


def login(page: object, base: str, name: str, token: str) -> None:
    """Fill and send the login form; wait for the map."""
    page.goto(base + "/console/login")  # type: ignore[attr-defined]
    page.fill('input[name="name"]', name)  # type: ignore[attr-defined]
    page.fill('input[name="token"]', token)  # type: ignore[attr-defined]
    page.click('button[type="submit"]')  # type: ignore[attr-defined]
    page.wait_for_url(base + "/console/")  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def contexts(browser: object, hub_server: HubThread) -> Iterator[Callable[..., object]]:
    """``contexts(role, phone=False)``: a browser context logged in as that role (cached)."""
    made: dict[tuple[str, bool], object] = {}

    def get(role: str, phone: bool = False) -> object:
        key = (role, phone)
        if key not in made:
            ctx = browser.new_context(  # type: ignore[attr-defined]
                viewport=PHONE if phone else DESKTOP,
                locale="zh-CN",
                is_mobile=phone,
                has_touch=phone,
            )
            ctx.set_default_timeout(15_000)
            page = ctx.new_page()
            login(page, hub_server.base_url, role, hub_server.tokens[role])
            page.close()
            made[key] = ctx
        return made[key]

    yield get
    for ctx in made.values():
        ctx.close()  # type: ignore[attr-defined]


@pytest.fixture
def shot(tmp_path: Path) -> Iterator[Callable[[object, str], Path]]:
    """``shot(page, name)`` saves a full-page screenshot in the test's output folder."""
    taken: list[Path] = []

    def take(page: object, name: str) -> Path:
        path = tmp_path / f"{len(taken):02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
        taken.append(path)
        return path

    yield take
    for path in taken:
        assert path.stat().st_size > 1000, f"{path} is not a screenshot"
