"""The ingest worker: validates every device message, stores it idempotently, files events.

Messages arrive in batches from :class:`central_hub.adapters.mqtt.HubMqtt`. A batch is written in
one transaction (its events together in one savepoint, every other message in its own)
and acknowledged to the broker only after the commit, so a hub killed mid-batch receives
the batch again and the unique keys (``event_id``, ``cmd_id``, ``batch_id``) make the
replay harmless. Anything that does not validate, or that the filing refuses (an unknown
catalogue code), goes to the ``dead_letters`` table with the reason and the raw bytes;
nothing stops the worker.

Events are stored and filed by one path, :meth:`IngestWorker._events`, which files with
:meth:`EventFiler.file_many`. An event that falls in a convenience service day
(``held_back``, :class:`central_hub.services.service_days.ServiceDayGate`) is stored with
the reason in ``events.not_filed_reason`` and not filed. When the database refuses a
batch, the same path runs on each event alone, so only the event at fault is
dead-lettered; when another worker stored some of the events meanwhile (a lost race), it
runs again and finds them stored.
"""

from __future__ import annotations

import asyncio
import binascii
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from central_hub.adapters.evidence import EvidenceStore
from central_hub.adapters.mqtt import Inbound
from central_hub.db.bulk import existing, insert_rows
from central_hub.db.engine import insert_ignore
from central_hub.db.schema import dead_letters, events, snapshots, tracks
from central_hub.domain.errors import DomainError
from central_hub.domain.filing import EventFacts
from central_hub.errors import HubError, StorageError
from central_hub.services.commands import apply_ack
from central_hub.services.devices import apply_config_reported, apply_status, apply_telemetry
from central_hub.services.throttle import RateBudget
from edge_agent.protocol import (
    SELFTEST_CODE,
    Channel,
    CommandAck,
    ConfigReported,
    Event,
    ProtocolError,
    SnapshotReply,
    Status,
    Telemetry,
    Track,
    decode_from_topic,
)

log = logging.getLogger(__name__)

__all__ = [
    "MAX_AHEAD",
    "MAX_DEAD_LETTER_BYTES",
    "EventFiler",
    "IngestStats",
    "IngestWorker",
    "MessageSource",
]

#: Raw payloads larger than this are kept truncated in the dead-letter table (enough to
#: see what was wrong; a flood of large refusals must not fill the database).
MAX_DEAD_LETTER_BYTES = 64 * 1024
#: Dead letters kept per device: a burst, then this many a minute; the rest are counted
#: (``dead_letters_not_kept``) and the next one kept says how many were dropped.
DEAD_LETTERS_PER_MIN = 30.0
DEAD_LETTER_BURST = 60
#: Seconds to wait before retrying a batch the database refused as a whole (doubling).
RETRY_DELAY_S = 1.0
RETRY_MAX_S = 30.0
#: Tries of one savepoint of events that loses races to other workers; then the whole
#: batch is retried like a database failure (each lost race means another worker
#: committed, so this bounds nothing a healthy hub reaches).
RACE_ATTEMPTS = 3
#: Failures of the database or the disk, not of the message: retry the batch.
_TRANSIENT = (sa.exc.OperationalError, sa.exc.InterfaceError, OSError)


class EventFiler(Protocol):
    """Turns newly stored events into cases (new or merged)."""

    async def file_many(
        self, conn: AsyncConnection, batch: list[EventFacts], now: datetime
    ) -> list[int | DomainError]:
        """File a batch in order; per report its case id or the DomainError refusing it.

        It runs inside the caller's transaction, and is the only way events are filed: a
        single event is filed as a batch of one.
        """
        ...


class MessageSource(Protocol):
    """Where messages come from: the MQTT link, or a list in tests."""

    async def receive(self, max_items: int) -> list[Inbound]:
        """Wait for and return up to ``max_items`` messages."""
        ...

    def ack(self, messages: list[Inbound]) -> None:
        """Acknowledge messages once stored."""
        ...


@dataclass
class IngestStats:
    """Counters since start; the dead-letter table holds the durable record."""

    received: int = 0
    stored: int = 0
    events_new: int = 0
    events_duplicate: int = 0
    dead_lettered: int = 0
    #: Refused messages not kept: their device was over its dead-letter budget.
    dead_letters_not_kept: int = 0
    batches: int = 0
    batch_retries: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)
    #: Seconds spent in the write transactions of committed batches.
    write_s: float = 0.0
    #: Age (clock time minus detection) of the oldest event of the last committed batch.
    lag_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The counters as a plain dict (for the API); seconds to the millisecond."""
        data = dataclasses.asdict(self)
        data["write_s"], data["lag_s"] = round(self.write_s, 3), round(self.lag_s, 3)
        return data


@dataclass(frozen=True, slots=True)
class _Stored:
    """Where a message's images went: the snapshot's and the clean frame's SHA-256."""

    snapshot: str | None = None
    frame: str | None = None


_NONE = _Stored()


@dataclass(frozen=True, slots=True)
class _Decoded:
    raw: Inbound
    device_id: str | None = None
    channel: Channel | None = None
    message: Any = None
    error: str | None = None
    fields: tuple[str, ...] = ()
    evidence: bytes | None = None
    frame: bytes | None = None


def _clean(text: str, limit: int = 4000) -> str:
    # PostgreSQL text cannot hold NUL; keep reasons readable and bounded.
    text = text.replace("\x00", "\\x00")
    return text if len(text) <= limit else text[:limit] + "…"


#: How far ahead of the hub's clock a unit's timestamps may run by default (drift, not
#: years): a status dated 9999 would otherwise keep a stopped unit "online" for ever.
MAX_AHEAD = timedelta(minutes=10)


def _stamps(message: Any) -> list[tuple[str, datetime]]:
    if isinstance(message, Event):
        return [("started_at", message.started_at), ("detected_at", message.detected_at)]
    if isinstance(message, Telemetry) and message.gps is not None:
        return [("ts", message.ts), ("gps.ts", message.gps.ts)]
    if isinstance(message, Status | Telemetry | CommandAck | ConfigReported | SnapshotReply):
        return [("ts", message.ts)]
    if isinstance(message, Track):
        return [(f"points.{i}.ts", p.ts) for i, p in enumerate(message.points)]
    return []


def _in_time(item: _Decoded, now: datetime, max_ahead: timedelta) -> _Decoded:
    """``item``, or a refusal when one of its timestamps is too far in the future."""
    limit = now + max_ahead
    for name, ts in _stamps(item.message):
        if ts > limit:
            return _Decoded(
                raw=item.raw,
                device_id=item.device_id,
                channel=item.channel,
                error=(
                    f"{name} {ts.isoformat()} is more than {max_ahead} after the hub's clock "
                    f"({now.isoformat(timespec='seconds')}): set the unit's clock (NTP)"
                ),
                fields=(name,),
            )
    return item


def _decode(msg: Inbound) -> _Decoded:
    try:
        device_id, channel, message = decode_from_topic(msg.topic, msg.payload)
    except ProtocolError as exc:
        return _Decoded(
            raw=msg,
            error=_clean(str(exc)) or type(exc).__name__,
            fields=tuple(_clean(f, 200) for f in getattr(exc, "fields", ())[:50]),
        )
    except RecursionError:
        return _Decoded(raw=msg, error="payload nested too deeply to parse")
    snap = message.snapshot if isinstance(message, Event | SnapshotReply) else None
    clean = message.frame if isinstance(message, Event) else None
    images: dict[str, bytes | None] = {"snapshot": None, "frame": None}
    for name, image in (("snapshot", snap), ("frame", clean)):
        if image is None:
            continue
        try:
            images[name] = image.jpeg_bytes()
        except (binascii.Error, ValueError) as exc:
            return _Decoded(
                raw=msg, error=f"{name}.jpeg_b64 is not valid base64: {exc}", fields=(name,)
            )
    return _Decoded(
        raw=msg,
        device_id=device_id,
        channel=channel,
        message=message,
        evidence=images["snapshot"],
        frame=images["frame"],
    )


class IngestWorker:
    """Consumes a :class:`MessageSource` until cancelled.

    ``on_device_reachable`` is called (with the device id) after a commit in which a
    device reported itself online, so the command sender can deliver what waits for it;
    ``on_committed`` with every batch once it is committed and acknowledged.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        source: MessageSource,
        evidence: EvidenceStore,
        filer: EventFiler | None,
        clock: Callable[[], datetime],
        *,
        batch_size: int = 200,
        on_device_reachable: Callable[[str], None] | None = None,
        on_committed: Callable[[list[Inbound]], None] | None = None,
        frames: EvidenceStore | None = None,
        max_ahead: timedelta = MAX_AHEAD,
        dead_letter_budget: RateBudget | None = None,
        held_back: Callable[[Event], str | None] | None = None,
    ) -> None:
        self.engine = engine
        #: Why an event is stored but not filed (a service day), or None to file it.
        self.held_back = held_back
        #: Dead letters kept per device (a broken or hostile unit cannot fill the table).
        self.dead_letter_budget = dead_letter_budget or RateBudget(
            per_minute=DEAD_LETTERS_PER_MIN, burst=DEAD_LETTER_BURST
        )
        #: How far ahead of the hub's clock a unit's timestamps may run.
        self.max_ahead = max_ahead
        self.source = source
        self.evidence = evidence
        self.frames = frames
        self.filer = filer
        self.clock = clock
        self.batch_size = batch_size
        self.on_device_reachable = on_device_reachable
        self.on_committed = on_committed
        self.stats = IngestStats()

    async def run(self) -> None:
        """Receive, store and acknowledge batches forever."""
        while True:
            batch = await self.source.receive(self.batch_size)
            await self.process(batch)

    async def process(self, batch: list[Inbound]) -> None:
        """Store one batch (retrying while the database is unavailable), then ack it."""
        now = self.clock()
        decoded = [_in_time(_decode(m), now, self.max_ahead) for m in batch]
        attempt = 0
        while True:
            try:
                shas = await self._store_evidence(decoded)
                started = time.perf_counter()
                reachable = await self._write(decoded, shas)
                self.stats.write_s += time.perf_counter() - started
                break
            except (*_TRANSIENT, StorageError) as exc:
                # Nothing is acked, so nothing is lost: wait and try the whole batch again.
                attempt += 1
                self.stats.batch_retries += 1
                delay = min(RETRY_DELAY_S * 2 ** (attempt - 1), RETRY_MAX_S)
                log.error(
                    "storage refused a batch of %d (attempt %d), retrying in %.1f s: %s",
                    len(batch),
                    attempt,
                    delay,
                    str(exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc)[:500],
                )
                await asyncio.sleep(delay)
        self.source.ack(batch)
        detected = [d.message.detected_at for d in decoded if isinstance(d.message, Event)]
        if detected:
            self.stats.lag_s = max(0.0, (self.clock() - min(detected)).total_seconds())
        if self.on_committed is not None:
            self.on_committed(batch)
        self.stats.batches += 1
        self.stats.received += len(batch)
        if self.on_device_reachable is not None:
            for device_id in reachable:
                self.on_device_reachable(device_id)

    async def _store_evidence(self, decoded: list[_Decoded]) -> dict[int, _Stored]:
        """Store snapshots in the evidence store and clean frames in the frames store
        (a worker given no frames store keeps none); their hashes by message index."""
        frames = self.frames
        wanted = [
            (i, d.evidence, d.frame if frames is not None else None)
            for i, d in enumerate(decoded)
            if d.evidence is not None or (d.frame is not None and frames is not None)
        ]
        if not wanted:
            return {}

        def _put_all() -> dict[int, _Stored]:
            out = {}
            for i, snap, frame in wanted:
                snap_sha = self.evidence.put_sync(snap) if snap is not None else None
                frame_sha = frames.put_sync(frame) if frames and frame is not None else None
                out[i] = _Stored(snap_sha, frame_sha)
            return out

        return await asyncio.to_thread(_put_all)

    async def _write(self, decoded: list[_Decoded], shas: dict[int, _Stored]) -> set[str]:
        now = self.clock()
        tally = _Tally()
        async with self.engine.begin() as conn:
            events_in: list[tuple[int, _Decoded]] = []
            for i, item in enumerate(decoded):
                if item.error is not None:
                    await self._dead_letter(conn, item, item.error, item.fields, now)
                    tally.dead += 1
                elif isinstance(item.message, Event):
                    events_in.append((i, item))
                else:
                    await self._one(conn, item, shas.get(i, _NONE).snapshot, now, tally)
            if events_in:
                await self._events(conn, events_in, shas, now, tally)
        # Count only what was committed.
        self.stats.stored += tally.stored
        self.stats.events_new += tally.new
        self.stats.events_duplicate += tally.dup
        self.stats.dead_lettered += tally.dead
        for k, v in tally.by_channel.items():
            self.stats.by_channel[k] = self.stats.by_channel.get(k, 0) + v
        return tally.reachable

    async def _one(
        self, conn: AsyncConnection, item: _Decoded, sha: str | None, now: datetime, tally: _Tally
    ) -> None:
        """Store a valid message (not an event) in its own savepoint; dead-letter it if refused."""
        try:
            async with conn.begin_nested():
                outcome = await self._handle(conn, item, sha, now)
        except _TRANSIENT:
            raise
        except Exception as exc:  # a bug must not stop ingest nor lose the message
            await self._refused(conn, item, exc, now, tally)
            return
        assert item.channel is not None
        tally.stored_one(item.channel.value)
        if outcome == "new":
            tally.new += 1
        elif outcome == "duplicate":
            tally.dup += 1
        elif outcome == "reachable" and item.device_id is not None:
            tally.reachable.add(item.device_id)

    async def _events(
        self,
        conn: AsyncConnection,
        items: list[tuple[int, _Decoded]],
        shas: dict[int, _Stored],
        now: datetime,
        tally: _Tally,
    ) -> None:
        """Store and file events in one savepoint: the only path by which events are filed.

        If the savepoint fails, each event runs through this same path alone, so the one at
        fault is dead-lettered and the others are filed. A lost race (another worker stored
        some of the events meanwhile: fewer rows stored than filed, or, for an event alone,
        the other worker's case holding its id) runs the same events again; the other
        worker has committed by then, so they count as duplicates.
        """
        for attempt in range(1, RACE_ATTEMPTS + 1):
            bulk = _Tally()
            try:
                async with conn.begin_nested():
                    await self._events_bulk(conn, items, shas, now, bulk)
            except _RaceLost as exc:
                log.info("%s (attempt %d); filing the events again", exc, attempt)
                continue
            except _TRANSIENT:
                raise
            except Exception as exc:  # any failure: isolate the event at fault
                if len(items) > 1:
                    log.warning(
                        "filing %d events failed (%s: %s); one by one",
                        len(items),
                        type(exc).__name__,
                        str(exc)[:300],
                    )
                    for one in items:
                        await self._events(conn, [one], shas, now, tally)
                elif isinstance(exc, sa.exc.IntegrityError) and attempt < RACE_ATTEMPTS:
                    # Maybe another worker's case for this event, committed now: retry.
                    log.info("storing an event refused (%s); trying again", str(exc.orig)[:300])
                    continue
                else:
                    await self._refused(conn, items[0][1], exc, now, tally)
                return
            tally.merge(bulk)
            return
        raise StorageError(f"{len(items)} events lost races to other workers {RACE_ATTEMPTS} times")

    async def _refused(
        self, conn: AsyncConnection, item: _Decoded, exc: Exception, now: datetime, tally: _Tally
    ) -> None:
        """Dead-letter a message whose savepoint failed, with the reason its failure gives."""
        if isinstance(exc, DomainError | HubError | ValueError):
            reason = f"refused: {exc}"
        elif isinstance(exc, sa.exc.IntegrityError | sa.exc.DataError):
            reason = f"storage refused: {exc.orig}"
        else:
            log.error("internal error storing a message on %r", item.raw.topic[:200], exc_info=exc)
            reason = f"internal error: {type(exc).__name__}: {exc}"
        await self._dead_letter(conn, item, _clean(reason), (), now)
        tally.dead += 1

    async def _events_bulk(
        self,
        conn: AsyncConnection,
        items: list[tuple[int, _Decoded]],
        shas: dict[int, _Stored],
        now: datetime,
        tally: _Tally,
    ) -> None:
        """Store and file a batch's events with a handful of multi-row statements."""
        fresh: list[tuple[int, _Decoded, Event]] = []
        seen: set[str] = set()
        for i, item in items:
            ev = item.message
            assert isinstance(ev, Event)
            if ev.event_id in seen:
                tally.dup += 1
                tally.stored_one(Channel.EVENT.value)
            else:
                seen.add(ev.event_id)
                fresh.append((i, item, ev))
        known = await existing(conn, events.c.event_id, sorted(seen))
        if known:
            tally.dup += sum(1 for _, _, ev in fresh if ev.event_id in known)
            for _ in known:
                tally.stored_one(Channel.EVENT.value)
            fresh = [f for f in fresh if f[2].event_id not in known]
        if not fresh:
            return
        outcomes: list[int | DomainError | None] = [None] * len(fresh)
        to_file = [n for n, (_, _, ev) in enumerate(fresh) if _filed(ev)]
        held: dict[int, str] = {}
        if self.held_back is not None and self.filer is not None:
            for n in to_file:
                reason = self.held_back(fresh[n][2])
                if reason is not None:
                    held[n] = _clean(reason, 2000)
            to_file = [n for n in to_file if n not in held]
        if self.filer is not None and to_file:
            facts = [EventFacts.from_event(fresh[n][2]) for n in to_file]
            filed = await self.filer.file_many(conn, facts, now)
            for n, case_or_refusal in zip(to_file, filed, strict=True):
                outcomes[n] = case_or_refusal
        rows = []
        for n, ((i, item, ev), outcome) in enumerate(zip(fresh, outcomes, strict=True)):
            if isinstance(outcome, DomainError):
                await self._dead_letter(conn, item, _clean(f"refused: {outcome}"), (), now)
                tally.dead += 1
                continue
            rows.append(_event_row(ev, shas.get(i, _NONE), now, outcome, held.get(n)))
        if not rows:
            return
        stored = await insert_rows(
            conn, events, rows, returning=["event_id"], ignore_conflicts_on=["event_id"]
        )
        inserted = len(stored)
        if inserted != len(rows):
            raise _RaceLost(
                f"{len(rows) - inserted} events were stored by another worker meanwhile"
            )
        tally.new += inserted
        for _ in rows:
            tally.stored_one(Channel.EVENT.value)

    async def _dead_letter(
        self,
        conn: AsyncConnection,
        item: _Decoded,
        reason: str,
        fields: tuple[str, ...],
        now: datetime,
    ) -> None:
        raw = item.raw.payload
        if len(raw) > MAX_DEAD_LETTER_BYTES:
            reason = f"{reason} (raw payload of {len(raw)} bytes kept truncated)"
            raw = raw[:MAX_DEAD_LETTER_BYTES]
        device_id = item.device_id or _device_of(item.raw.topic)
        kept, refused = self.dead_letter_budget.take(device_id or "?")
        if not kept:
            self.stats.dead_letters_not_kept += 1
            if refused == 1:
                log.warning("device %s is over its dead-letter budget: not keeping more", device_id)
            return
        if refused:
            reason = f"{reason} ({refused} more from this device were refused and not kept)"
        await conn.execute(
            dead_letters.insert().values(
                received_at=now,
                topic=_clean(item.raw.topic, 1000),
                device_id=device_id,
                reason=reason,
                fields=list(fields),
                raw=raw,
            )
        )
        log.warning("dead-lettered a message on %r: %s", item.raw.topic[:200], reason[:300])

    async def _handle(
        self, conn: AsyncConnection, item: _Decoded, sha: str | None, now: datetime
    ) -> str:
        msg = item.message
        if isinstance(msg, Status):
            return "reachable" if await apply_status(conn, msg, now) else "stored"
        if isinstance(msg, Telemetry):
            await apply_telemetry(conn, msg, now)
        elif isinstance(msg, ConfigReported):
            await apply_config_reported(conn, msg, now)
        elif isinstance(msg, CommandAck):
            await apply_ack(conn, msg, now)
        elif isinstance(msg, Track):
            await conn.execute(
                insert_ignore(tracks, conn.dialect, ["batch_id"]).values(
                    batch_id=msg.batch_id,
                    device_id=msg.device_id,
                    received_at=now,
                    first_ts=msg.points[0].ts,
                    last_ts=msg.points[-1].ts,
                    points=[p.model_dump(mode="json") for p in msg.points],
                )
            )
        elif isinstance(msg, SnapshotReply):
            assert sha is not None
            await conn.execute(
                insert_ignore(snapshots, conn.dialect, ["cmd_id"]).values(
                    cmd_id=msg.cmd_id,
                    device_id=msg.device_id,
                    camera_id=msg.camera_id,
                    sha256=sha,
                    width=msg.snapshot.width,
                    height=msg.snapshot.height,
                    received_at=now,
                )
            )
        else:
            raise HubError(f"no handler for {type(msg).__name__} on {item.raw.topic}")
        return "stored"


class _RaceLost(Exception):
    """Another worker stored some of these events first; file them again (see ``_events``)."""


@dataclass
class _Tally:
    stored: int = 0
    new: int = 0
    dup: int = 0
    dead: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)
    reachable: set[str] = field(default_factory=set)

    def stored_one(self, channel: str) -> None:
        """Count one stored message of ``channel``."""
        self.stored += 1
        self.by_channel[channel] = self.by_channel.get(channel, 0) + 1

    def merge(self, other: _Tally) -> None:
        """Add another tally's counts to this one."""
        self.stored += other.stored
        self.new += other.new
        self.dup += other.dup
        self.dead += other.dead
        for k, v in other.by_channel.items():
            self.by_channel[k] = self.by_channel.get(k, 0) + v
        self.reachable |= other.reachable


def _filed(ev: Event) -> bool:
    """Whether an event becomes a case: a unit's selftest events and a shadow candidate's
    would-be events are only stored."""
    return ev.code != SELFTEST_CODE and not ev.shadow


def _event_row(
    ev: Event, stored: _Stored, now: datetime, case_id: int | None, not_filed: str | None = None
) -> dict[str, Any]:
    return {
        "event_id": ev.event_id,
        "device_id": ev.device_id,
        "camera_id": ev.camera_id,
        "seq": ev.seq,
        "kind": ev.kind,
        "code": ev.code,
        "started_at": ev.started_at,
        "detected_at": ev.detected_at,
        "received_at": now,
        "dwell_s": ev.dwell_s,
        "confidence": ev.confidence,
        "lat": ev.location.lat,
        "lon": ev.location.lon,
        "location_source": ev.location.source,
        "zone": ev.zone,
        "model_name": ev.model.name,
        "model_version": ev.model.version,
        "plate_text": ev.plate.text if ev.plate else None,
        "snapshot_sha256": stored.snapshot,
        "frame_sha256": stored.frame,
        "frame_faces": [list(f) for f in ev.frame.faces] if stored.frame and ev.frame else None,
        "objects": [o.model_dump(mode="json") for o in ev.objects],
        "case_id": case_id,
        "shadow": ev.shadow,
        "not_filed_reason": not_filed,
    }


def _device_of(name: str) -> str | None:
    parts = name.split("/")
    if len(parts) >= 4 and parts[0] == "xh" and parts[2] == "dev":
        return _clean(parts[3], 64)
    return None
