"""MQTT 3.1.1 packets (pure): fixed header, remaining length, and the packets a broker uses.

Only what the embedded broker needs: it decodes CONNECT, PUBLISH, PUBACK, PUBREC, PUBREL,
PUBCOMP, SUBSCRIBE, UNSUBSCRIBE, PINGREQ and DISCONNECT, and encodes CONNACK, PUBLISH,
PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK and PINGRESP.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "CONNACK",
    "CONNECT",
    "DISCONNECT",
    "PINGREQ",
    "PINGRESP",
    "PUBACK",
    "PUBCOMP",
    "PUBLISH",
    "PUBREC",
    "PUBREL",
    "SUBACK",
    "SUBSCRIBE",
    "UNSUBACK",
    "UNSUBSCRIBE",
    "Connect",
    "MalformedPacket",
    "Publish",
    "Subscribe",
    "decode_connect",
    "decode_publish",
    "decode_subscribe",
    "decode_unsubscribe",
    "encode_remaining_length",
    "packet",
    "publish_packet",
]

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = (
    8,
    9,
    10,
    11,
    12,
    13,
    14,
)
#: Largest remaining length MQTT can express (256 MB).
MAX_REMAINING = 268_435_455


class MalformedPacket(ValueError):
    """A packet that does not follow MQTT 3.1.1; the broker closes the connection."""


@dataclass(frozen=True)
class Connect:
    """A decoded CONNECT."""

    protocol_level: int
    client_id: str
    clean_session: bool
    keepalive: int
    username: str | None
    password: bytes | None
    will: Publish | None


@dataclass(frozen=True)
class Publish:
    """A message: topic, payload, QoS, retain flag; ``packet_id`` for QoS > 0, ``dup``."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    packet_id: int | None = None
    dup: bool = False


@dataclass(frozen=True)
class Subscribe:
    """A decoded SUBSCRIBE: its packet id and ``(filter, qos)`` pairs."""

    packet_id: int
    topics: tuple[tuple[str, int], ...]


def encode_remaining_length(n: int) -> bytes:
    """The variable-length encoding of ``n`` (1 to 4 bytes)."""
    if not 0 <= n <= MAX_REMAINING:
        raise MalformedPacket(f"remaining length {n} out of range")
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet(kind: int, flags: int, body: bytes = b"") -> bytes:
    """A whole packet: fixed header (type, flags, length) then ``body``."""
    return bytes([(kind << 4) | flags]) + encode_remaining_length(len(body)) + body


def _string(data: bytes, pos: int) -> tuple[str, int]:
    raw, pos = _binary(data, pos)
    try:
        return raw.decode("utf-8"), pos
    except UnicodeDecodeError as exc:
        raise MalformedPacket("a string is not UTF-8") from exc


def _binary(data: bytes, pos: int) -> tuple[bytes, int]:
    if pos + 2 > len(data):
        raise MalformedPacket("packet ends inside a length prefix")
    (length,) = struct.unpack_from("!H", data, pos)
    pos += 2
    if pos + length > len(data):
        raise MalformedPacket("packet ends inside a string")
    return data[pos : pos + length], pos + length


def _enc_string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("!H", len(raw)) + raw


def decode_connect(body: bytes) -> Connect:
    """Decode a CONNECT body (MQTT 3.1.1, or 3.1's ``MQIsdp``)."""
    name, pos = _string(body, 0)
    if name not in ("MQTT", "MQIsdp") or pos + 4 > len(body):
        raise MalformedPacket(f"not an MQTT CONNECT (protocol name {name!r})")
    level, flags = body[pos], body[pos + 1]
    (keepalive,) = struct.unpack_from("!H", body, pos + 2)
    pos += 4
    if flags & 0x01:
        raise MalformedPacket("reserved CONNECT flag set")
    client_id, pos = _string(body, pos)
    will = None
    if flags & 0x04:
        topic, pos = _string(body, pos)
        message, pos = _binary(body, pos)
        will = Publish(topic, message, qos=(flags >> 3) & 0x03, retain=bool(flags & 0x20))
    username = password = None
    if flags & 0x80:
        username, pos = _string(body, pos)
    if flags & 0x40:
        password, pos = _binary(body, pos)
    return Connect(level, client_id, bool(flags & 0x02), keepalive, username, password, will)


def decode_publish(flags: int, body: bytes) -> Publish:
    """Decode a PUBLISH from its fixed-header flags and body."""
    qos = (flags >> 1) & 0x03
    if qos == 3:
        raise MalformedPacket("PUBLISH with QoS 3")
    topic, pos = _string(body, 0)
    if not topic or "+" in topic or "#" in topic:
        raise MalformedPacket(f"PUBLISH topic {topic!r} is empty or holds a wildcard")
    packet_id = None
    if qos:
        if pos + 2 > len(body):
            raise MalformedPacket("PUBLISH without its packet id")
        (packet_id,) = struct.unpack_from("!H", body, pos)
        pos += 2
    return Publish(topic, body[pos:], qos, bool(flags & 0x01), packet_id, bool(flags & 0x08))


def publish_packet(msg: Publish) -> bytes:
    """Encode a PUBLISH."""
    flags = (msg.qos << 1) | (0x01 if msg.retain else 0) | (0x08 if msg.dup else 0)
    body = _enc_string(msg.topic)
    if msg.qos:
        assert msg.packet_id is not None
        body += struct.pack("!H", msg.packet_id)
    return packet(PUBLISH, flags, body + msg.payload)


def decode_subscribe(body: bytes) -> Subscribe:
    """Decode a SUBSCRIBE body."""
    if len(body) < 2:
        raise MalformedPacket("SUBSCRIBE without a packet id")
    (packet_id,) = struct.unpack_from("!H", body, 0)
    pos, topics = 2, []
    while pos < len(body):
        flt, pos = _string(body, pos)
        if pos >= len(body):
            raise MalformedPacket("SUBSCRIBE topic without its QoS byte")
        topics.append((flt, body[pos] & 0x03))
        pos += 1
    if not topics:
        raise MalformedPacket("SUBSCRIBE with no topic")
    return Subscribe(packet_id, tuple(topics))


def decode_unsubscribe(body: bytes) -> tuple[int, tuple[str, ...]]:
    """Decode an UNSUBSCRIBE body: its packet id and filters."""
    if len(body) < 2:
        raise MalformedPacket("UNSUBSCRIBE without a packet id")
    (packet_id,) = struct.unpack_from("!H", body, 0)
    pos, filters = 2, []
    while pos < len(body):
        flt, pos = _string(body, pos)
        filters.append(flt)
    return packet_id, tuple(filters)


def packet_id_body(packet_id: int) -> bytes:
    """The two-byte body of PUBACK, PUBREC, PUBREL, PUBCOMP and UNSUBACK."""
    return struct.pack("!H", packet_id)


__all__ += ["packet_id_body"]
