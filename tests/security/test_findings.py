"""Issue #17's findings, each reproduced from outside against one city set up as a real
one is: Mosquitto configured by ``provision_device`` (TLS, client certificates, passwords,
ACL, client ids bound to users), ``central-hub serve`` as a process with its API, and a
real edge agent (``edge_agent.run_command``) on its provisioned ``agent.yaml``. The
attackers hold real credentials: one unit's password and client certificate, or (for the
desired config, which only a hub user may publish) a second hub user's, as a man in the
middle or anyone with the broker's hub credentials would.

Each test shows the attack does no harm (nothing applied, no event lost, nothing frozen,
a 4xx and never a 5xx) and that the legitimate way still works, so it can fail either
way. Findings 2 (client-id takeover) and 3 (shared-subscription hijack) are shown in
``test_broker_identity.py`` and not repeated here.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from PIL import Image

from central_hub.services.provision import ProvisionResult, ensure_hub_user, provision_device
from central_hub.testing import hub_cli, make_event, make_status
from central_hub.workers.ingest import (
    DEAD_LETTER_BURST,
    DEAD_LETTERS_PER_MIN,
    MAX_DEAD_LETTER_BYTES,
)
from edge_agent.protocol import (
    Channel,
    encode,
    generate_signing_key,
    sign_desired,
    topic,
)
from simulators.mosquitto import MosquittoBroker, free_port
from simulators.polling import eventually_sync

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
#: The unit that runs the real agent; the attacker's unit; a flooding unit; a bystander
#: whose events must still be filed.
AGENT, EVIL, FLOOD, BYSTANDER = "pole-good", "pole-evil", "pole-flood", "pole-bystander"
#: A second hub user: what a man in the middle at the broker, or a leaked hub password,
#: gives (it may publish the retained desired configs; no unit may).
MITM_USER = "hub-mitm"
#: The far future a unit's clock (or an attacker) may claim.
YEAR_9999 = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)


class Mqtt:
    """A paho client logged in over TLS with real credentials (the broker names the
    client after its user); keeps what it receives."""

    def __init__(self, port: int, user: str, password: str, ca: Path, cert: Path, key: Path):
        self.user = user
        self.received: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.c = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=user,
            protocol=paho.MQTTv311,
        )
        self.c.username_pw_set(user, password)
        self.c.tls_set(
            ca_certs=str(ca),
            certfile=str(cert),
            keyfile=str(key),
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        self.c.max_queued_messages_set(0)
        self.c.max_inflight_messages_set(100)
        up, self._subscribed = threading.Event(), threading.Event()

        def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if not reason.is_failure:
                up.set()

        def on_message(_c: Any, _u: Any, msg: Any) -> None:
            with self._lock:
                self.received.append((msg.topic, bytes(msg.payload)))

        self.c.on_connect = on_connect
        self.c.on_message = on_message
        self.c.on_subscribe = lambda *_a: self._subscribed.set()
        self.c.connect("localhost", port, keepalive=30)
        self.c.loop_start()
        assert up.wait(10), f"{user} could not log in"

    def publish(self, where: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish at QoS 1 and wait for the broker's acknowledgement."""
        info = self.c.publish(where, payload, qos=1, retain=retain)
        info.wait_for_publish(10)
        assert info.is_published(), f"the broker did not acknowledge {where}"

    def subscribe(self, where: str) -> None:
        self._subscribed.clear()
        self.c.subscribe(where, qos=1)
        assert self._subscribed.wait(10)

    def got(self, where: str) -> list[bytes]:
        with self._lock:
            return [p for t, p in self.received if t == where]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@dataclass
class City:
    """The provisioned broker, the hub process and the agent process, and how to reach
    them as their users do."""

    tmp: Path
    broker: MosquittoBroker
    devices: dict[str, ProvisionResult]
    data: Path
    api_port: int
    tokens: dict[str, str]
    agent_log: Path
    mitm_password: str
    hub_log: Path
    clients: list[Mqtt] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/api/v1"

    def api(self, method: str, path: str, role: str = "admin", **kw: Any) -> httpx.Response:
        """The REST API as ``role`` (from 127.0.0.1)."""
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        return httpx.request(method, self.base + path, headers=headers, timeout=10, **kw)

    def device(self, device_id: str) -> dict[str, Any]:
        r = self.api("GET", f"/devices/{device_id}")
        assert r.status_code in (200, 404), r.text
        return r.json() if r.status_code == 200 else {}

    def login(self, device_id: str) -> Mqtt:
        """A client with ``device_id``'s own password and client certificate (one per
        unit: the broker names clients after their users, so a second login would end
        the first)."""
        for client in self.clients:
            if client.user == device_id:
                return client
        result = self.devices[device_id]
        folder = result.config_path.parent
        password = result.password_path.read_text(encoding="utf-8").strip()
        client = Mqtt(
            self.broker.tls_port or 0,
            device_id,
            password,
            folder / "ca.crt",
            folder / "client.crt",
            folder / "client.key",
        )
        self.clients.append(client)
        return client

    def login_mitm(self) -> Mqtt:
        """A client with the second hub user's password and the hub's certificate."""
        for client in self.clients:
            if client.user == MITM_USER:
                return client
        tls = self.devices[AGENT].broker_tls
        assert tls is not None
        client = Mqtt(
            self.broker.tls_port or 0,
            MITM_USER,
            self.mitm_password,
            tls.ca,
            tls.hub.cert,
            tls.hub.key,
        )
        self.clients.append(client)
        return client

    def dead_letters(self, device_id: str) -> list[dict[str, Any]]:
        r = self.api("GET", "/dead-letters", params={"limit": 1000})
        assert r.status_code == 200, r.text
        return [d for d in r.json()["items"] if d["device_id"] == device_id]

    def stats(self) -> dict[str, Any]:
        r = self.api("GET", "/ingest/stats")
        assert r.status_code == 200, r.text
        stats: dict[str, Any] = r.json()
        return stats

    def filed(self, event_id: str) -> bool:
        return self.api("GET", f"/events/{event_id}", role="operator").status_code == 200

    def agent_refusals(self) -> list[str]:
        text = self.agent_log.read_text(encoding="utf-8", errors="replace")
        return re.findall(r"refused a config/desired message: (.*)", text)


def _stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    assert "Traceback" not in log.read_text(errors="replace"), log.read_text()[-4000:]


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    tmp = tmp_path_factory.mktemp("city")
    data = tmp / "hub"
    # The hub's key, as `central-hub keygen` makes it; units trust its public half.
    public_key = hub_cli(data, "keygen", cwd=REPO).splitlines()[-1]
    tokens = {
        "operator": hub_cli(
            data, "user", "add", "li.na", "--role", "operator", cwd=REPO
        ).splitlines()[-1],
        "admin": hub_cli(data, "user", "add", "wang.wei", "--role", "admin", cwd=REPO).splitlines()[
            -1
        ],
    }
    tls_port, plain_port = free_port(), free_port()
    broker_dir = tmp / "broker"
    devices = {
        device: provision_device(
            device,
            kind="pole",
            broker_dir=broker_dir,
            out_dir=tmp / "devices",
            public_key=public_key,
            mqtt_host="localhost",
            mqtt_port=tls_port,
            plain_port=plain_port,
        )
        for device in (AGENT, EVIL, FLOOD, BYSTANDER)
    }
    mitm_password = ensure_hub_user(broker_dir, MITM_USER).read_text(encoding="utf-8").strip()
    tls = devices[AGENT].broker_tls
    assert tls is not None
    broker = MosquittoBroker(tmp / "mosquitto", listeners_file=devices[AGENT].broker_config)
    api_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XH_")}
    env.update(
        PYTHONUNBUFFERED="1",
        XH_HUB_MQTT_USERNAME="hub",
        XH_HUB_MQTT_PASSWORD_FILE=str(devices[AGENT].hub_password_path),
        XH_HUB_MQTT_TLS_CA=str(tls.ca),
        XH_HUB_MQTT_TLS_CERT=str(tls.hub.cert),
        XH_HUB_MQTT_TLS_KEY=str(tls.hub.key),
        XH_HUB_COMMAND_TICK_S="0.2",
    )
    hub_log, agent_log = tmp / "hub.log", tmp / "agent.log"
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    city = City(tmp, broker, devices, data, api_port, tokens, agent_log, mitm_password, hub_log)
    with broker:
        try:
            with hub_log.open("wb") as out:
                hub = subprocess.Popen(
                    [
                        sys.executable, "-m", "central_hub.cli", "--data-dir", str(data),
                        "serve", "--port", str(api_port), "--mqtt-host", "localhost",
                        "--mqtt-port", str(tls_port), "--client-id", "hub-sec",
                    ],
                    stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                )  # fmt: skip
            procs.append((hub, hub_log))
            with agent_log.open("wb") as out:
                agent = subprocess.Popen(
                    [
                        sys.executable, "-m", "edge_agent.run_command",
                        "--config", str(devices[AGENT].config_path),
                    ],
                    stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                )  # fmt: skip
            procs.append((agent, agent_log))
            bystander = city.login(BYSTANDER)
            bystander.publish(
                topic(BYSTANDER, Channel.STATUS), encode(make_status(BYSTANDER)), retain=True
            )

            def up() -> bool:
                try:
                    return all(city.device(d).get("state") == "online" for d in (AGENT, BYSTANDER))
                except httpx.TransportError:
                    return False

            assert eventually_sync(up, 40, every_s=0.3), (
                hub_log.read_text()[-3000:] + agent_log.read_text()[-3000:]
            )
            yield city
        finally:
            for client in city.clients:
                client.close()
            for proc, log in reversed(procs):
                _stop(proc, log)


def _agent_file(city: City) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        city.devices[AGENT].config_path.read_text(encoding="utf-8")
    )
    return loaded


def test_finding_1_unsigned_or_forged_desired_config_is_not_applied(city: City) -> None:
    where = topic(AGENT, Channel.CONFIG_DESIRED)
    harmful = {"telemetry": {"interval_s": 3600}, "selftest": {"events": 50}}
    before = city.device(AGENT)
    assert before["config_version"] in (0, None), before
    assert city.agent_refusals() == []
    mitm = city.login_mitm()
    # Unsigned, as desired configs were before the fix.
    mitm.publish(
        where,
        json.dumps(
            {"schema": "xh.config_desired/1", "device_id": AGENT, "version": 7, "config": harmful}
        ).encode(),
        retain=True,
    )
    # Signed, but with the attacker's own key.
    forged = sign_desired(generate_signing_key(), device_id=AGENT, version=8, config=harmful)
    mitm.publish(where, encode(forged), retain=True)
    # The hub's real signature on another unit's config, captured and replayed here...
    r = city.api("PUT", f"/devices/{BYSTANDER}/config", json={"config": harmful})
    assert r.status_code == 200, r.text
    mitm.subscribe(topic(BYSTANDER, Channel.CONFIG_DESIRED))
    captured = eventually_sync(lambda: mitm.got(topic(BYSTANDER, Channel.CONFIG_DESIRED)), 10)
    assert captured, "the hub did not publish the bystander's desired config"
    mitm.publish(where, captured[-1], retain=True)
    # ...and re-addressed to this unit.
    readdressed = json.loads(captured[-1])
    readdressed["device_id"] = AGENT
    mitm.publish(where, json.dumps(readdressed).encode(), retain=True)

    def settled() -> bool:
        reported = city.device(AGENT)["reported_version"] is not None
        return reported or len(city.agent_refusals()) >= 4

    eventually_sync(settled, 15, 0.2)
    # Each of the four was refused, so none was tried: nothing changed on the unit.
    after = city.device(AGENT)
    assert after["config_version"] in (0, None), after
    assert after["reported_version"] is None, after
    refusals = city.agent_refusals()
    said = " | ".join(refusals)
    assert len(refusals) == 4, said or city.agent_log.read_text()[-3000:]
    assert "no signature" in said, said
    assert "does not verify" in said, said
    assert f"for {BYSTANDER}, not {AGENT}" in said, said
    assert "config_version" not in _agent_file(city)
    assert "selftest" not in _agent_file(city)

    # The hub's own desired config is applied, reported and kept.
    r = city.api(
        "PUT", f"/devices/{AGENT}/config", json={"config": {"telemetry": {"interval_s": 20}}}
    )
    assert r.status_code == 200, r.text
    version = r.json()["version"]

    def applied() -> dict[str, Any] | None:
        found = city.device(AGENT)
        ok = found["reported_version"] == version and found["config_version"] == version
        return found if ok else None

    found = eventually_sync(applied, 15, every_s=0.2)
    assert found, (city.device(AGENT), city.agent_log.read_text()[-3000:])
    assert found["reported_state"] == "applied", found
    assert found["config_in_sync"], found
    kept = _agent_file(city)
    assert kept["config_version"] == version
    assert kept["telemetry"]["interval_s"] == 20
    assert "selftest" not in kept
    assert len(city.agent_refusals()) == 4


def test_finding_4_operator_cannot_apply_config_through_commands(city: City) -> None:
    def send(role: str, kind: str, params: dict[str, Any]) -> httpx.Response:
        return city.api(
            "POST", f"/devices/{AGENT}/commands", role, json={"kind": kind, "params": params}
        )

    for role in ("operator", "admin"):
        r = send(role, "config.apply", {"version": 99, "config": {"selftest": {"events": 50}}})
        assert r.status_code == 422, r.text
        assert "PUT /api/v1/devices/{id}/config" in r.json()["detail"]
    assert send("operator", "model.install", {"slot": "street"}).status_code == 422
    assert send("operator", "model.rollback", {"slot": "street"}).status_code == 403
    commands = city.api("GET", f"/devices/{AGENT}/commands").json()
    assert not [c for c in commands if c["kind"] in ("config.apply", "model.install")], commands

    # An operator's own command reaches the real unit and is carried out.
    r = send("operator", "speaker.say", {"text": "请勿占道经营"})
    assert r.status_code == 202, r.text
    cmd_id = r.json()["cmd_id"]
    done = eventually_sync(
        lambda: city.api("GET", f"/commands/{cmd_id}").json()["state"] == "succeeded", 15, 0.2
    )
    assert done, city.api("GET", f"/commands/{cmd_id}").json()


def test_finding_5_a_status_from_year_9999_does_not_freeze_a_unit_online(city: City) -> None:
    evil = city.login(EVIL)
    status_topic = topic(EVIL, Channel.STATUS)
    evil.publish(status_topic, encode(make_status(EVIL, "online", YEAR_9999)), retain=True)
    telemetry = {
        "schema": "xh.telemetry/1",
        "device_id": EVIL,
        "ts": YEAR_9999.isoformat(),
        "uptime_s": 1.0,
        "fps": 0.0,
        "inference_ms": 0.0,
        "outbox_depth": 0,
        "outbox_bytes": 0,
        "evicted": 0,
    }
    evil.publish(topic(EVIL, Channel.TELEMETRY), json.dumps(telemetry).encode())

    def refused() -> list[dict[str, Any]]:
        found = [d for d in city.dead_letters(EVIL) if "9999" in d["reason"]]
        return found if len(found) >= 2 else []

    letters = eventually_sync(refused, 10, every_s=0.2)
    assert letters, city.dead_letters(EVIL)
    assert {d["topic"] for d in letters} == {status_topic, topic(EVIL, Channel.TELEMETRY)}
    assert all(d["fields"] == ["ts"] for d in letters), letters
    # The unit stops (what its last will says): the hub believes it.
    evil.publish(status_topic, encode(make_status(EVIL, "offline")), retain=True)
    offline = eventually_sync(lambda: city.device(EVIL).get("state") == "offline", 10, 0.2)
    assert offline, city.device(EVIL)
    view = city.device(EVIL)
    assert view["status_ts"] is not None, view
    assert not view["status_ts"].startswith("9999"), view
    assert view["telemetry_at"] is None, view
    # It comes back: a real status counts again.
    evil.publish(
        status_topic,
        encode(make_status(EVIL, "online", datetime.now(UTC), boot_id="boot-2")),
        retain=True,
    )
    online = eventually_sync(lambda: city.device(EVIL).get("boot_id") == "boot-2", 10, 0.2)
    assert online, city.device(EVIL)
    assert city.device(EVIL)["state"] == "online"


def test_finding_6_unbounded_sizes_are_refused_or_capped(city: City) -> None:
    # A command the broker would drop is refused before it is queued.
    r = city.api(
        "POST",
        f"/devices/{BYSTANDER}/commands",
        "operator",
        json={"kind": "speaker.say", "params": {"text": "请" * 2_000_000}},
    )
    assert r.status_code == 422, r.text[:500]
    assert "at most 262144" in r.json()["detail"]
    r = city.api(
        "POST",
        f"/devices/{BYSTANDER}/commands",
        "operator",
        json={"kind": "speaker.say", "params": {"text": "请" * 2_000}},
    )
    assert r.status_code == 202, r.text[:500]

    # One unit floods the hub with malformed messages while another reports real events.
    flood, bystander = city.login(FLOOD), city.login(BYSTANDER)
    flooded = 250
    before, started = city.stats(), time.monotonic()
    good = [make_event(BYSTANDER, seq=100 + i, at=datetime.now(UTC)) for i in range(5)]
    infos = [
        flood.c.publish(topic(FLOOD, Channel.EVENT), b"{" + b"x" * 200_000, qos=1)
    ]  # one big: kept truncated
    for i in range(1, flooded):
        infos.append(flood.c.publish(topic(FLOOD, Channel.EVENT), b'{"seq": %d,' % i, qos=1))
        if i % 50 == 0:
            bystander.publish(topic(BYSTANDER, Channel.EVENT), encode(good[i // 50 - 1]))
    bystander.publish(topic(BYSTANDER, Channel.EVENT), encode(good[-1]))
    for info in infos:
        info.wait_for_publish(20)
        assert info.is_published()

    def all_refused() -> dict[str, Any] | None:
        now = city.stats()
        return now if now["dead_lettered"] - before["dead_lettered"] >= flooded else None

    after = eventually_sync(all_refused, 30, every_s=0.3)
    assert after, (before, city.stats())
    refill = (time.monotonic() - started) * DEAD_LETTERS_PER_MIN / 60
    kept = city.dead_letters(FLOOD)
    # The burst, and what refilled while the flood lasted.
    assert DEAD_LETTER_BURST <= len(kept) <= DEAD_LETTER_BURST + refill + 1, (len(kept), refill)
    not_kept = after["dead_letters_not_kept"] - before["dead_letters_not_kept"]
    assert not_kept == flooded - len(kept), (not_kept, len(kept))
    assert all(d["raw_size"] <= MAX_DEAD_LETTER_BYTES for d in kept)
    big = [d for d in kept if "kept truncated" in d["reason"]]
    assert len(big) == 1, big
    assert big[0]["raw_size"] == MAX_DEAD_LETTER_BYTES, big
    # Nothing of the other unit's was lost.
    waiting = {e.event_id for e in good}

    def all_filed() -> bool:
        waiting.difference_update({i for i in waiting if city.filed(i)})
        return not waiting

    assert eventually_sync(all_filed, 10, 0.2), f"events lost: {waiting}"


def test_finding_7_wrong_types_and_numbers_are_dead_lettered_with_the_field(city: City) -> None:
    evil = city.login(EVIL)
    cases: list[tuple[str, Any]] = [
        ("dwell_s", "28.6"),
        ("seq", True),
        ("seq", 2**63),
        ("confidence", float("inf")),
    ]
    sent: list[tuple[str, str]] = []
    for i, (name, value) in enumerate(cases):
        event = make_event(EVIL, seq=10 + i, at=datetime.now(UTC))
        wire = json.loads(encode(event))
        wire[name] = value
        evil.publish(topic(EVIL, Channel.EVENT), json.dumps(wire).encode())  # Infinity as is
        sent.append((event.event_id, name))
    real = make_event(EVIL, seq=20, at=datetime.now(UTC))
    evil.publish(topic(EVIL, Channel.EVENT), encode(real))
    assert eventually_sync(lambda: city.filed(real.event_id), 15, 0.2), "a valid event was lost"

    def letters() -> dict[str, dict[str, Any]]:
        found = {}
        for d in city.dead_letters(EVIL):
            for event_id, _ in sent:
                if event_id.encode() in base64.b64decode(d["raw_b64"]):
                    found[event_id] = d
        return found if len(found) == len(sent) else {}

    found = eventually_sync(letters, 10, 0.2)
    assert found, city.dead_letters(EVIL)
    for event_id, name in sent:
        assert found[event_id]["fields"] == [name], found[event_id]
        assert name in found[event_id]["reason"], found[event_id]
        assert not city.filed(event_id), f"{name}: filed"

    # Query parameters: bounds and zones are a 422, never a 500.
    naive, aware = "2026-01-01T00:00:00", "2026-01-01T00:00:00Z"
    for path, params in [
        ("/events", {"offset": 2**63}),
        ("/events", {"since": naive}),
        ("/events", {"until": naive}),
        ("/events", {"case_id": 2**63}),
        ("/dead-letters", {"offset": 2**63}),
    ]:
        r = city.api("GET", path, params=params)
        assert r.status_code == 422, (path, params, r.status_code, r.text[:300])
    assert city.api("GET", "/cases/9223372036854775808").status_code == 422
    r = city.api("GET", "/events", params={"offset": 0, "since": aware, "device_id": EVIL})
    assert r.status_code == 200, r.text
    assert real.event_id in {e["event_id"] for e in r.json()}


def _photo_with_gps() -> bytes:
    exif = Image.Exif()
    gps = exif.get_ifd(0x8825)  # GPSInfo
    gps.update({1: "N", 2: (28.0, 38.0, 50.0), 3: "E", 4: (121.0, 15.0, 41.0)})
    out = io.BytesIO()
    Image.new("RGB", (96, 64), (90, 120, 60)).save(out, format="JPEG", exif=exif)
    return out.getvalue()


def test_finding_8_uploads_are_decoded_and_stripped(city: City) -> None:
    def upload(data: bytes) -> httpx.Response:
        return city.api(
            "POST", "/evidence", "operator", files={"file": ("photo.jpg", data, "image/jpeg")}
        )

    fake = b"\xff\xd8\xff" + os.urandom(4000)
    r = upload(fake)
    assert r.status_code == 422, r.text

    photo = _photo_with_gps()
    with Image.open(io.BytesIO(photo)) as sent:
        assert sent.getexif().get_ifd(0x8825), "the test photo carries no GPS position"
    r = upload(photo)
    assert r.status_code == 200, r.text
    stored = city.api("GET", f"/evidence/{r.json()['sha256']}", "operator")
    assert stored.status_code == 200
    with Image.open(io.BytesIO(stored.content)) as kept:
        assert kept.format == "JPEG"
        assert kept.size == (96, 64)
        assert not kept.getexif(), dict(kept.getexif())
    assert b"Exif" not in stored.content


def test_finding_9_token_guessing_is_throttled_and_hub_files_are_private(city: City) -> None:
    # Another address on this host: the guesser's, counted apart from the operators'.
    guesser = httpx.Client(
        transport=httpx.HTTPTransport(local_address="127.0.0.2"), base_url=city.base, timeout=10
    )
    with guesser:
        for i in range(10):
            r = guesser.get("/me", headers={"Authorization": f"Bearer xh_guess{i}"})
            assert r.status_code == 401, (i, r.status_code, r.text)
        r = guesser.get("/me", headers={"Authorization": "Bearer xh_guess10"})
        assert r.status_code == 429, r.text
        assert int(r.headers["Retry-After"]) > 0, r.headers
        # Even a right token from that address waits.
        r = guesser.get("/me", headers={"Authorization": f"Bearer {city.tokens['operator']}"})
        assert r.status_code == 429
    # The operators' address is not held up.
    assert city.api("GET", "/me", "operator").json()["name"] == "li.na"
    audit = city.api("GET", "/auth-failures").json()
    assert [a for a in audit if a["source"] == "127.0.0.2" and a["reason"] == "blocked"], audit

    # What the hub wrote is its user's alone.
    assert (city.data / "hub.db").exists()
    loose = [
        f"{p} {oct(p.stat().st_mode & 0o777)}"
        for p in [city.data, *city.data.rglob("*")]
        if p.stat().st_mode & 0o077
    ]
    assert loose == [], loose


def test_the_attacks_left_the_hub_and_unit_running(city: City) -> None:
    """No 5xx was answered and nothing crashed: the unit is online and its events filed."""
    assert city.device(AGENT)["state"] == "online"
    event = make_event(BYSTANDER, seq=500, at=datetime.now(UTC) - timedelta(seconds=1))
    city.login(BYSTANDER).publish(topic(BYSTANDER, Channel.EVENT), encode(event))
    assert eventually_sync(lambda: city.filed(event.event_id), 10, 0.2)
    served = city.hub_log.read_text(errors="replace")
    assert not re.findall(r'HTTP/1\.1" 5\d\d', served), served[-3000:]
    assert "Traceback" not in served, served[-3000:]
