"""The embedded MQTT 3.1.1 broker, in asyncio: the demo's fallback when Mosquitto is absent.

Enough of MQTT for xiuhua's demo and tests, tested against paho:

* CONNECT with username/password (Mosquitto password files) or anonymous, keepalive,
  client-id takeover, last will (published when a client vanishes without DISCONNECT);
* PUBLISH at QoS 0 and 1 (QoS 2 is accepted and delivered at QoS 1), retained messages
  (an empty retained payload clears the topic);
* SUBSCRIBE/UNSUBSCRIBE with ``+``/``#`` wildcards, granted QoS at most 1, retained
  messages sent on subscribe;
* persistent sessions: a ``clean_session=False`` client keeps its subscriptions, and QoS 1
  messages for it queue while it is away and are sent (unacknowledged ones again, with
  DUP) when it returns;
* shared subscriptions ``$share/{group}/{filter}``: each message goes to one member of
  the group, round robin, preferring connected members;
* an optional Mosquitto ACL (publish needs ``write``, delivery needs ``read``).

State lives in memory: a restarted embedded broker forgets sessions and retained
messages (the agents' outboxes and the hub's command queue cover that).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections import deque
from dataclasses import dataclass, field

from simulators.broker import codec
from simulators.broker.access import Acl, check_password, split_shared, topic_matches, valid_filter
from simulators.broker.codec import MalformedPacket, Publish

log = logging.getLogger(__name__)

__all__ = ["Broker", "BrokerSettings"]

#: QoS 1 messages kept for one offline persistent session before the oldest are dropped.
MAX_QUEUED = 100_000
#: Most bytes one packet may have (the demo's events stay under 400 KB).
MAX_PACKET = 16 * 1024 * 1024


@dataclass(frozen=True)
class BrokerSettings:
    """Where to listen and who may do what."""

    host: str = "127.0.0.1"
    port: int = 0
    passwords: dict[str, str] | None = None
    acl: Acl | None = None
    allow_anonymous: bool = True


@dataclass
class _Session:
    client_id: str
    clean: bool
    username: str | None = None
    subscriptions: dict[str, int] = field(default_factory=dict)
    queue: deque[Publish] = field(default_factory=deque)
    inflight: dict[int, Publish] = field(default_factory=dict)
    conn: _Connection | None = None
    dropped: int = 0
    _ids: itertools.cycle[int] = field(default_factory=lambda: itertools.cycle(range(1, 65536)))

    def next_id(self) -> int:
        for pid in self._ids:
            if pid not in self.inflight:
                return pid
        raise AssertionError("unreachable: the cycle never ends")  # pragma: no cover


@dataclass
class _Connection:
    writer: asyncio.StreamWriter
    session: _Session
    will: Publish | None
    closing: bool = False

    def send(self, data: bytes) -> None:
        if not self.closing:
            self.writer.write(data)


class Broker:
    """One broker instance: ``await start()``, then ``await close()`` (see module docs)."""

    def __init__(self, settings: BrokerSettings) -> None:
        self.settings = settings
        self._server: asyncio.Server | None = None
        self._sessions: dict[str, _Session] = {}
        self._retained: dict[str, Publish] = {}
        self._shared_next: dict[tuple[str, str], int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: Messages received from clients, and copies delivered or queued to sessions.
        self.received = 0
        self.delivered = 0

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("broker not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Listen on the configured address."""
        self._server = await asyncio.start_server(
            self._accept, self.settings.host, self.settings.port, limit=MAX_PACKET
        )
        log.info("embedded broker listening on %s:%d", self.settings.host, self.port)

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
        for session in self._sessions.values():
            if session.conn is not None:
                session.conn.closing = True
                session.conn.writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # ------------------------------------------------------------------ connections

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # The broker is stopping. Python 3.11's StreamReaderProtocol asks a finished
            # connection task for its exception, which for a cancelled task raises and
            # gets logged as an error; ending the task normally keeps shutdown quiet.
            return
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(ConnectionError, RuntimeError):
                writer.close()

    @staticmethod
    async def _read_packet(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
        first = (await reader.readexactly(1))[0]
        length, shift = 0, 0
        for _ in range(4):
            byte = (await reader.readexactly(1))[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        else:
            raise MalformedPacket("remaining length longer than 4 bytes")
        if length > MAX_PACKET:
            raise MalformedPacket(f"packet of {length} bytes is over the limit")
        body = await reader.readexactly(length) if length else b""
        return first >> 4, first & 0x0F, body

    def _authenticate(self, connect: codec.Connect) -> int:
        """0 to accept, else the CONNACK return code."""
        if connect.protocol_level not in (3, 4):
            return 1
        if connect.username is None:
            return 0 if self.settings.allow_anonymous else 5
        passwords = self.settings.passwords
        if passwords is None:
            return 0
        hashed = passwords.get(connect.username)
        if hashed is None or not check_password(connect.password or b"", hashed):
            return 4
        return 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            kind, _, body = await asyncio.wait_for(self._read_packet(reader), 10.0)
        except (TimeoutError, MalformedPacket):
            return
        if kind != codec.CONNECT:
            return
        try:
            connect = codec.decode_connect(body)
        except MalformedPacket as exc:
            log.info("bad CONNECT from %s: %s", writer.get_extra_info("peername"), exc)
            return
        code = self._authenticate(connect)
        client_id = connect.client_id
        if code == 0 and not client_id:
            if connect.clean_session:
                client_id = f"auto-{uuid.uuid4().hex[:12]}"
            else:
                code = 2
        if code:
            log.info("refused %r (user %r): code %d", client_id, connect.username, code)
            writer.write(codec.packet(codec.CONNACK, 0, bytes([0, code])))
            await writer.drain()
            return
        conn, present = self._attach(client_id, connect, writer)
        writer.write(codec.packet(codec.CONNACK, 0, bytes([1 if present else 0, 0])))
        self._resume(conn.session)
        clean_exit = False
        try:
            keepalive = connect.keepalive * 1.5 if connect.keepalive else None
            while True:
                kind, flags, body = await asyncio.wait_for(self._read_packet(reader), keepalive)
                if kind == codec.DISCONNECT:
                    clean_exit = True
                    return
                self._handle(conn, kind, flags, body)
                await writer.drain()
        except (TimeoutError, MalformedPacket, ConnectionError, asyncio.IncompleteReadError) as exc:
            log.info("client %s dropped: %s", client_id, type(exc).__name__)
        finally:
            self._detach(conn, publish_will=not clean_exit)

    def _attach(
        self, client_id: str, connect: codec.Connect, writer: asyncio.StreamWriter
    ) -> tuple[_Connection, bool]:
        session = self._sessions.get(client_id)
        if session is not None and session.conn is not None:
            old = session.conn
            old.closing = True  # taken over: the old connection goes without its will
            old.will = None
            old.writer.close()
            session.conn = None
        present = session is not None and not connect.clean_session and not session.clean
        if not present:
            if session is not None:
                self._sessions.pop(client_id, None)
            session = _Session(client_id, connect.clean_session)
            self._sessions[client_id] = session
        assert session is not None
        session.username = connect.username
        conn = _Connection(writer, session, connect.will)
        session.conn = conn
        return conn, present

    def _detach(self, conn: _Connection, *, publish_will: bool) -> None:
        session = conn.session
        if session.conn is conn:
            session.conn = None
            if session.clean:
                self._sessions.pop(session.client_id, None)
        conn.closing = True
        if publish_will and conn.will is not None:
            will, conn.will = conn.will, None
            if self._may(session, will.topic, "write"):
                self._route(will)

    def _resume(self, session: _Session) -> None:
        """Resend unacknowledged messages (DUP) and the queue to a returning session."""
        conn = session.conn
        assert conn is not None
        for pid, msg in session.inflight.items():
            conn.send(codec.publish_packet(Publish(msg.topic, msg.payload, 1, False, pid, True)))
        while session.queue:
            self._send(session, session.queue.popleft())

    # ------------------------------------------------------------------ packets

    def _handle(self, conn: _Connection, kind: int, flags: int, body: bytes) -> None:
        session = conn.session
        if kind == codec.PUBLISH:
            msg = codec.decode_publish(flags, body)
            if msg.qos == 1:
                assert msg.packet_id is not None
                conn.send(codec.packet(codec.PUBACK, 0, codec.packet_id_body(msg.packet_id)))
            elif msg.qos == 2:
                assert msg.packet_id is not None
                conn.send(codec.packet(codec.PUBREC, 0, codec.packet_id_body(msg.packet_id)))
            self.received += 1
            if self._may(session, msg.topic, "write"):
                self._publish(msg)
            else:
                log.info("denied publish by %s to %s", session.client_id, msg.topic)
        elif kind == codec.PUBACK:
            session.inflight.pop(int.from_bytes(body[:2], "big"), None)
        elif kind == codec.PUBREL:
            conn.send(codec.packet(codec.PUBCOMP, 0, body[:2]))
        elif kind in (codec.PUBREC, codec.PUBCOMP):
            pass  # we never send QoS 2, so nothing waits on these
        elif kind == codec.SUBSCRIBE:
            self._subscribe(conn, codec.decode_subscribe(body))
        elif kind == codec.UNSUBSCRIBE:
            packet_id, filters = codec.decode_unsubscribe(body)
            for flt in filters:
                session.subscriptions.pop(flt, None)
            conn.send(codec.packet(codec.UNSUBACK, 0, codec.packet_id_body(packet_id)))
        elif kind == codec.PINGREQ:
            conn.send(codec.packet(codec.PINGRESP, 0))
        else:
            raise MalformedPacket(f"unexpected packet type {kind} from a client")

    def _subscribe(self, conn: _Connection, sub: codec.Subscribe) -> None:
        session = conn.session
        granted = []
        fresh: list[tuple[str, int]] = []
        for flt, asked in sub.topics:
            try:
                group, inner = split_shared(flt)
            except ValueError:
                granted.append(0x80)
                continue
            if not valid_filter(inner):
                granted.append(0x80)
                continue
            qos = min(asked, 1)
            session.subscriptions[flt] = qos
            granted.append(qos)
            if group is None:
                fresh.append((inner, qos))
        conn.send(
            codec.packet(codec.SUBACK, 0, codec.packet_id_body(sub.packet_id) + bytes(granted))
        )
        for inner, qos in fresh:
            for topic, msg in list(self._retained.items()):
                if topic_matches(inner, topic) and self._may(session, topic, "read"):
                    self._send(session, Publish(topic, msg.payload, min(qos, msg.qos), True))

    # ------------------------------------------------------------------ routing

    def _may(self, session: _Session, topic: str, want: str) -> bool:
        acl = self.settings.acl
        return acl is None or acl.allows(session.username, session.client_id, topic, want)

    def _publish(self, msg: Publish) -> None:
        if msg.retain:
            if msg.payload:
                self._retained[msg.topic] = Publish(msg.topic, msg.payload, min(msg.qos, 1), True)
            else:
                self._retained.pop(msg.topic, None)
        self._route(msg)

    def _route(self, msg: Publish) -> None:
        groups: dict[tuple[str, str], list[tuple[_Session, int]]] = {}
        for session in list(self._sessions.values()):
            best = -1
            for flt, qos in session.subscriptions.items():
                group, inner = split_shared(flt)
                if not topic_matches(inner, msg.topic):
                    continue
                if group is None:
                    best = max(best, qos)
                else:
                    groups.setdefault((group, inner), []).append((session, qos))
            if best >= 0 and self._may(session, msg.topic, "read"):
                self._send(session, Publish(msg.topic, msg.payload, min(msg.qos, best)))
        for key, subscribed in groups.items():
            members = [(s, q) for s, q in subscribed if self._may(s, msg.topic, "read")]
            if not members:
                continue
            online = [(s, q) for s, q in members if s.conn is not None] or members
            online.sort(key=lambda m: m[0].client_id)
            index = self._shared_next.get(key, 0) % len(online)
            self._shared_next[key] = index + 1
            session, qos = online[index]
            self._send(session, Publish(msg.topic, msg.payload, min(msg.qos, qos)))

    def _send(self, session: _Session, msg: Publish) -> None:
        qos = min(msg.qos, 1)
        conn = session.conn
        self.delivered += 1
        if conn is None or conn.closing:
            if qos == 1 and not session.clean:
                if len(session.queue) >= MAX_QUEUED:
                    session.queue.popleft()
                    session.dropped += 1
                session.queue.append(msg)
            return
        if qos == 0:
            conn.send(codec.publish_packet(Publish(msg.topic, msg.payload, 0, msg.retain)))
            return
        pid = session.next_id()
        out = Publish(msg.topic, msg.payload, 1, msg.retain, pid)
        session.inflight[pid] = out
        conn.send(codec.publish_packet(out))
