"""10,000 fuzzed payloads: every one lands in the dead-letter table, the worker keeps running."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from central_hub.adapters.evidence import EvidenceStore
from central_hub.adapters.mqtt import Inbound
from central_hub.app import run_hub
from central_hub.db.schema import dead_letters, events
from central_hub.hub import Hub, build_hub
from central_hub.services.throttle import RateBudget
from central_hub.settings import HubSettings
from central_hub.testing import ListSource, inbound, make_event
from central_hub.workers.ingest import DEAD_LETTER_BURST, MAX_DEAD_LETTER_BYTES, IngestWorker
from edge_agent.protocol import Channel, encode, topic
from simulators.mosquitto import MosquittoBroker
from simulators.polling import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DIRECT = 9_500
THROUGH_BROKER = 500

_VALID: dict[str, Any] = json.loads(encode(make_event("pole-1")))
_REQUIRED = [
    "event_id", "device_id", "camera_id", "seq", "kind", "code", "started_at",
    "detected_at", "dwell_s", "confidence", "objects", "zone", "location", "model",
]  # fmt: skip
_TEXT_FIELDS = ["camera_id", "kind", "zone", "code", "event_id", "device_id"]

_wrong_value = st.one_of(
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


@st.composite
def wrong_type(draw: st.DrawFn) -> bytes:
    field = draw(st.sampled_from(_REQUIRED))
    return _dump({**_VALID, field: draw(_wrong_value)})


@st.composite
def missing_field(draw: st.DrawFn) -> bytes:
    drop = draw(st.sets(st.sampled_from(_REQUIRED), min_size=1, max_size=4))
    return _dump({k: v for k, v in _VALID.items() if k not in drop})


@st.composite
def huge_string(draw: st.DrawFn) -> bytes:
    field = draw(st.sampled_from(_TEXT_FIELDS))
    size = draw(st.sampled_from([65, 300, 3_000, 30_000, 200_001]))
    char = "x" if size > 30_000 else draw(st.sampled_from(["x", "é", "中", "\x00"]))
    return _dump({**_VALID, field: char * size})


@st.composite
def deep_nesting(draw: st.DrawFn) -> bytes:
    depth = draw(st.sampled_from([50, 500, 1_000, 5_000, 50_000]))
    if draw(st.booleans()):
        return b"[" * depth + b"]" * depth
    inner = "[" * min(depth, 5_000) + "]" * min(depth, 5_000)
    return _dump({**_VALID, "objects": "@"}).replace(b'"@"', inner.encode())


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=20,
)

payloads = st.one_of(
    st.binary(max_size=2_000),
    wrong_type(),
    missing_field(),
    huge_string(),
    deep_nesting(),
    _json.map(_dump),
)
# Live frames never reach ingest (the live view drops a bad one with a warning), so they
# are not fuzzed into dead letters here.
channels = st.sampled_from([c for c in Channel if c.from_device and c is not Channel.LIVE])


def _collect(n: int, per_example: int = 50) -> list[tuple[Channel, bytes]]:
    """``n`` payloads from hypothesis, drawn ``per_example`` at a time (much faster)."""
    out: list[tuple[Channel, bytes]] = []

    @settings(
        max_examples=-(-n // per_example),
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(st.tuples(channels, payloads), min_size=per_example, max_size=per_example))
    def gen(items: list[tuple[Channel, bytes]]) -> None:
        out.extend(items)

    gen()
    assert len(out) >= n
    return out[:n]


async def _count(hub_engine: Any, table: sa.Table) -> int:
    async with hub_engine.connect() as conn:
        q = sa.select(sa.func.count()).select_from(table)
        return int((await conn.execute(q)).scalar_one())


async def test_fuzzed_payloads_all_dead_lettered(sqlite_hub: Hub, tmp_path: Path) -> None:
    hub = sqlite_hub
    fuzz = _collect(DIRECT)
    source = ListSource()
    # One "device" sends all of it: lift its dead-letter budget to see every one kept.
    worker = IngestWorker(
        hub.engine,
        source,
        EvidenceStore(tmp_path / "ev"),
        hub.filer,
        hub.clock,
        batch_size=500,
        dead_letter_budget=RateBudget(per_minute=1e9, burst=10**9),
    )
    task = asyncio.create_task(worker.run())
    source.put(
        *(
            Inbound(topic("pole-1", ch), payload, 1, False, i)
            for i, (ch, payload) in enumerate(fuzz)
        )
    )
    assert await eventually(lambda: len(source.acked) == DIRECT, 120)
    assert not task.done(), "the worker stopped"
    # Still working: a valid event afterwards is filed.
    hub.clock.now = make_event().detected_at  # type: ignore[attr-defined]
    source.put(inbound(make_event("pole-1")))
    assert await eventually(lambda: worker.stats.events_new == 1, 10)
    task.cancel()
    assert await _count(hub.engine, dead_letters) == DIRECT
    assert await _count(hub.engine, events) == 1
    assert worker.stats.dead_lettered == DIRECT
    async with hub.engine.connect() as conn:
        rows = (await conn.execute(sa.select(dead_letters.c.raw, dead_letters.c.reason))).all()
    assert all(r.reason for r in rows)
    # Kept whole, or the first MAX_DEAD_LETTER_BYTES of a larger one.
    assert sorted(r.raw for r in rows) == sorted(p[:MAX_DEAD_LETTER_BYTES] for _, p in fuzz)


async def test_fuzzed_payloads_through_the_broker(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    settings_ = HubSettings(
        data_dir=tmp_path / "hub", mqtt_port=mosquitto.port, mqtt_client_id="hub-fuzz"
    )
    hub = await build_hub(settings_)
    stop = asyncio.Event()
    task = asyncio.create_task(run_hub(hub, settings_, api=False, stop=stop))
    assert hub.mqtt is not None
    async with asyncio.timeout(10):
        await hub.mqtt.wait_subscribed()
    fuzz = _collect(THROUGH_BROKER)
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="fuzzer")
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    try:
        infos = [client.publish(topic("pole-1", ch), p, qos=1) for ch, p in fuzz]
        valid = client.publish(topic("pole-1", Channel.EVENT), encode(make_event("pole-1")), qos=1)
        await asyncio.to_thread(valid.wait_for_publish, 30)
        assert all(i.is_published() for i in infos)
        assert hub.ingest is not None
        ingest = hub.ingest
        assert await eventually(lambda: ingest.stats.received == THROUGH_BROKER + 1, 60)
        assert ingest.stats.dead_lettered == THROUGH_BROKER
        assert ingest.stats.events_new == 1
        assert not task.done()
        # One device's refusals are kept up to its budget (a burst and a trickle), the
        # rest counted: a broken or hostile unit cannot fill the table.
        kept = await _count(hub.engine, dead_letters)
        assert DEAD_LETTER_BURST <= kept <= DEAD_LETTER_BURST + 5
        assert kept + ingest.stats.dead_letters_not_kept == THROUGH_BROKER
    finally:
        client.disconnect()
        client.loop_stop()
        stop.set()
        await asyncio.wait_for(task, 10)
        await hub.close()
