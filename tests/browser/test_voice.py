"""高空喊话 end to end: Chromium with a fake microphone holds the device page's talk button,
releases it, and the real agent (its own process, WAV-file speaker) fetches the message
from the hub with the command's one-time token and plays it: its WAV sink holds the
message and the panel shows ``succeeded`` (the space bar works the button too; a page
opened from an unknown case sends nothing). A clip damaged on the hub's disk is rejected by
the unit and never played; an operator's message pre-empts an automatic warning playing
(its command fails as interrupted). The unit's WAV speaker plays in real time here."""

from __future__ import annotations

import hashlib
import math
import os
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from browser_harness import CHROMIUM, CHROMIUM_ARGS, HubThread

from central_hub.adapters.audio_convert import pcm_wav
from edge_agent.speaker.audio import read_wav
from simulators.mosquitto import MosquittoBroker
from simulators.polling import eventually_sync

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]
DEVICE = "pole-voice-1"
FAKE_MEDIA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium with a fake camera and microphone (a beeping tone), no prompts."""
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + FAKE_MEDIA)
        yield chromium
        chromium.close()
    finally:
        pw.stop()


@pytest.fixture(scope="module")
def unit(
    broker: MosquittoBroker, hub_server: HubThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """The real agent with a WAV-file speaker; yields the folder its speaker writes."""
    folder = tmp_path_factory.mktemp("voice-unit")
    config = folder / "agent.yaml"
    (folder / "long-warning.wav").write_bytes(tone(8.0))
    config.write_text(
        yaml.safe_dump(
            {
                "device": {"id": DEVICE, "kind": "pole", "location": {"lat": 30.27, "lon": 120.15}},
                "mqtt": {"host": "127.0.0.1", "port": broker.port, "keepalive": 5},
                "hub": {"public_key": hub_server.public_key},
                "outbox": {"path": "state/outbox.db"},
                "speaker": {
                    "backend": "wav",
                    "wav_dir": "spoken",
                    "tts_cache": "state/tts",
                    "volume": 1.0,
                    "wav_pace": 1.0,  # a playback lasts as long as on a real speaker
                    "clips": {"long-warning": str(folder / "long-warning.wav")},
                },
                "telemetry": {"interval_s": 0.5},
            }
        )
    )
    with (folder / "agent.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge_agent.run_command", "--config", str(config)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:

        def online() -> bool:
            r = hub_server.api("GET", f"/devices/{DEVICE}")
            return r.status_code == 200 and r.json()["state"] == "online"

        assert eventually_sync(online, 20), (folder / "agent.log").read_text()
        yield folder / "spoken"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def tone(seconds: float, step: float = 8.0) -> bytes:
    """A 16 kHz mono WAV of a tone: what units play as it is."""
    n = int(16_000 * seconds)
    return pcm_wav(struct.pack(f"<{n}h", *(int(6000 * math.sin(i / step)) for i in range(n))))


def played(folder: Path) -> list[Path]:
    return sorted(folder.glob("*-voice-*.wav")) if folder.exists() else []


def test_hold_to_talk_release_and_the_unit_plays_the_message(
    contexts: Callable[..., Any], hub_server: HubThread, unit: Path
) -> None:
    base = hub_server.base_url
    ctx = contexts("operator")
    page = ctx.new_page()
    try:
        page.goto(f"{base}/console/devices/{DEVICE}")
        # The phrase picker lists the library by violation type; a pick fills the sentence.
        page.wait_for_selector('#phrase-pick optgroup[label^="0505"]', state="attached")
        page.select_option("#phrase-pick", "此处禁止停车，请尽快将车辆驶离。")
        assert (
            page.input_value('#speak-form input[name="text"]') == "此处禁止停车，请尽快将车辆驶离。"
        )
        button = page.locator("#talk-button")
        button.hover()
        page.mouse.down()
        page.wait_for_selector('#talk-status[data-cmd-state="recording"]')
        time.sleep(1.5)  # speaking
        page.mouse.up()
        page.wait_for_selector('#talk-status[data-cmd-state="succeeded"]', timeout=20_000)
        cmd_id = page.get_attribute("#talk-status", "data-cmd-id")
        page.wait_for_selector(f'tr[data-cmd-id="{cmd_id}"][data-cmd-state="succeeded"]')
        row = page.inner_text(f'tr[data-cmd-id="{cmd_id}"]')
        assert "operator" in row  # who said it
        # The space bar works the button too (a technician's keyboard).
        button.focus()
        page.keyboard.down("Space")
        page.wait_for_selector('#talk-status[data-cmd-state="recording"]')
        time.sleep(0.8)
        page.keyboard.up("Space")
        page.wait_for_function(
            "id => { const s = document.getElementById('talk-status');"
            " return s.dataset.cmdId !== id && s.dataset.cmdState === 'succeeded'; }",
            arg=cmd_id,
            timeout=20_000,
        )
        # Opened from a case page (?case=N) the message is kept with the case: one that
        # does not exist is refused by name, and nothing is sent.
        page.goto(f"{base}/console/devices/{DEVICE}?case=999999")
        page.locator("#talk-button").focus()
        page.keyboard.down("Space")
        page.wait_for_selector('#talk-status[data-cmd-state="recording"]')
        time.sleep(0.5)
        page.keyboard.up("Space")
        page.wait_for_selector('#talk-status[data-cmd-state="error"]')
        assert "no case 999999" in page.inner_text("#talk-status")
    finally:
        page.close()
    clip, by_keyboard = played(unit)
    assert 0.5 <= read_wav(by_keyboard).duration_s <= 2.0
    audio = read_wav(clip)
    assert (audio.rate, audio.channels) == (16_000, 1)
    assert 1.0 <= audio.duration_s <= 3.0  # about as long as the button was held
    assert audio.peak() > 1000  # the fake microphone's beeps, not silence
    cmd = hub_server.api("GET", f"/commands/{cmd_id}").json()
    assert cmd["kind"] == "speaker.play_clip"
    assert cmd["created_by"] == "operator"
    stored = hub_server.data_dir / "voice" / f"{cmd['params']['sha256']}.wav"
    assert read_wav(stored).pcm == audio.pcm  # the same samples the hub stored


def test_a_clip_damaged_on_the_hub_is_rejected_and_not_played(
    hub_server: HubThread, unit: Path
) -> None:
    before = played(unit)
    message = tone(1.0)
    # A WAV the units play as it is is stored as sent, by its sha256; a damaged file is put
    # in its place on the hub's disk first (same size, other samples), as a disk fault would.
    sha = hashlib.sha256(message).hexdigest()
    stored = hub_server.data_dir / "voice" / f"{sha}.wav"
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(message[:-100] + bytes(100))
    r = hub_server.api("POST", f"/devices/{DEVICE}/voice", role="operator", content=message)
    assert r.status_code == 202, r.text
    cmd = r.json()
    assert cmd["params"]["sha256"] == sha

    def final() -> dict[str, Any] | None:
        got = hub_server.api("GET", f"/commands/{cmd['cmd_id']}").json()
        return got if got["state"] in ("succeeded", "failed", "rejected") else None

    done = eventually_sync(final, 20)
    assert done is not None
    assert done["state"] == "rejected", done
    assert "sha256" in done["detail"]
    assert played(unit) == before


def test_an_operators_message_pre_empts_an_automatic_warning(
    hub_server: HubThread, unit: Path
) -> None:
    auto = hub_server.api(
        "POST",
        f"/devices/{DEVICE}/commands",
        role="operator",
        json={"kind": "speaker.play", "params": {"clip": "long-warning", "priority": "auto"}},
    ).json()
    assert eventually_sync(lambda: list(unit.glob("*-clip-long-warning.wav")), 10)
    r = hub_server.api("POST", f"/devices/{DEVICE}/voice", role="operator", content=tone(0.5, 5))
    assert r.status_code == 202, r.text
    voice = r.json()

    def state(cmd_id: str) -> str:
        return str(hub_server.api("GET", f"/commands/{cmd_id}").json()["state"])

    assert eventually_sync(lambda: state(voice["cmd_id"]) == "succeeded", 15)
    assert state(auto["cmd_id"]) == "failed"  # interrupted, well before its 8 s were up
    assert "interrupted" in hub_server.api("GET", f"/commands/{auto['cmd_id']}").json()["detail"]
    assert list(unit.glob("*-clip-long-warning.stopped.wav"))
    assert list(unit.glob(f"*-voice-{voice['params']['sha256'][:12]}.wav"))
