"""docs/protocol.md against the code: every example is real, every kind and field is there.

Each fenced ``json`` block of the page must follow a marker ``<!-- example: NAME -->``
naming what it is (a message's schema stem: ``event``, ``cmd`` ...). The block is read
as the hub reads a message from that device's topic (``protocol.decode_from_topic``);
commands and desired configs must verify with the page's public key through the device's
own checks (``verify_command``, ``verify_desired``), and their parameters must pass the
unit's own parsers. The worked signature example is re-verified with ``cryptography``
alone. A message kind, command kind, ack, status or config state, field or limit that the
code has and the page lacks (or the other way round) fails a test, so the page cannot fall
behind the code unnoticed. The checkers return lists of problems, and the last tests feed
them broken copies of the page to show that they catch what they are meant to.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from pydantic import TypeAdapter, ValidationError

from central_hub.services.provision import render_acl
from central_hub.settings import HubSettings
from central_hub.workers.ingest import MAX_AHEAD, MAX_DEAD_LETTER_BYTES
from edge_agent import protocol
from edge_agent.agent.snapshot import jpeg_size
from edge_agent.config import ClipId, ConfigError, parse_config
from edge_agent.config_apply import apply_params, check_pushed, merge_pushed
from edge_agent.link.commands import CommandFailed, Executor
from edge_agent.model_install import install_params
from edge_agent.speaker.commands import SpeakerCommands
from edge_agent.speaker.voice import clip_params

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "protocol.md"
MOSQUITTO_CONF = ROOT / "firmware_config" / "broker" / "mosquitto.conf"

#: Schema stem (``cmd_ack``) -> channel, for every message kind the code defines.
STEMS: dict[str, protocol.Channel] = {
    kind.SCHEMA.removeprefix("xh.").split("/")[0]: channel
    for channel, kind in protocol.MESSAGE_TYPES.items()
}
#: Markers of the worked example and the other checked blocks (not messages).
SPECIAL = {
    "cmd-wire",
    "signed-bytes",
    "signed-bytes-sha256",
    "public-key",
    "acl",
    "hub-subscriptions",
}

# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Block:
    """A fenced block of the page and the example marker on the line before it."""

    marker: str | None
    lang: str
    body: str
    line: int

    @property
    def where(self) -> str:
        """Where the block is, for a problem's text."""
        return f"docs/protocol.md:{self.line} ({self.marker or 'no marker'})"


_FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```[ \t]*$", re.M | re.S)
_MARKER = re.compile(r"<!-- example: ([\w.-]+) -->")


def blocks(text: str) -> list[Block]:
    """Every fenced block, with the marker on the last non-blank line before it."""
    out = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip().rsplit("\n", 1)[-1].strip()
        marker = _MARKER.fullmatch(before)
        out.append(
            Block(
                marker=marker.group(1) if marker else None,
                lang=match.group(1),
                body=match.group(2).removesuffix("\n"),
                line=text.count("\n", 0, match.start()) + 1,
            )
        )
    return out


def _cells(line: str) -> list[str]:
    inner = line.strip().removeprefix("|").removesuffix("|")
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", inner)]


def tables(text: str) -> dict[str, list[list[str]]]:
    """Tables under a ``<!-- NAME -->`` marker (``fields: Event``, ``channels`` ...), by
    name, as rows of cells without the header and its separator."""
    lines = text.splitlines()
    out: dict[str, list[list[str]]] = {}
    for i, line in enumerate(lines):
        match = re.fullmatch(r"<!-- ((?:fields: \w+)|channels|limits|reasons) -->", line.strip())
        if match is None:
            continue
        rows = []
        for row in lines[i + 1 :]:
            if not row.startswith("|"):
                break
            rows.append(_cells(row))
        out[match.group(1)] = rows[2:]
    return out


def _name(cell: str) -> str:
    return cell.strip("`")


def _one(text: str, marker: str) -> str:
    found = [b.body for b in blocks(text) if b.marker == marker]
    if len(found) != 1:
        raise AssertionError(f"expected one block marked {marker!r}, found {len(found)}")
    return found[0]


def _public_key(text: str) -> Any:
    return protocol.load_public_key(_one(text, "public-key"))


# --------------------------------------------------------------------------- params

_CLIP_ID: TypeAdapter[str] = TypeAdapter(ClipId)


class _FakeSpeaker:
    """Plays nothing: lets the real speaker executors parse their parameters."""

    async def play_clip(self, clip: str, priority: Any, *, volume: float | None = None) -> Any:
        return SimpleNamespace(finished=True, duration_s=1.0)

    async def say(self, text: str, priority: Any, *, volume: float | None = None) -> Any:
        return SimpleNamespace(finished=True, duration_s=1.0)

    async def stop(self) -> bool:
        return True


def _base_config(device_id: str, public_key: str) -> dict[str, Any]:
    return {
        "device": {"id": device_id, "kind": "pole"},
        "mqtt": {"host": "broker.example.org", "username": device_id, "password": "x"},
        "hub": {"public_key": public_key},
    }


def config_problems(device_id: str, version: int, data: dict[str, Any], public_key: str) -> str:
    """Why the unit would reject ``data`` as config ``version`` (empty when it would not)."""
    raw = _base_config(device_id, public_key)
    current = parse_config(raw, DOC.parent)
    try:
        check_pushed(merge_pushed(raw, data, version), current, DOC.parent)
    except CommandFailed as exc:
        return f"{exc}: {getattr(exc, 'errors', '')}"
    except ConfigError as exc:
        return str(exc)
    return ""


async def _execute(executor: Executor, command: protocol.Command) -> str:
    return await executor(command)


def _slot(params: dict[str, Any]) -> None:
    slot = params.get("slot")
    if not isinstance(slot, str) or not slot:
        raise CommandFailed("params need slot (a non-empty string)")


def params_problem(command: protocol.Command, public_key: str) -> str:
    """Why the unit's own parser of ``command.kind`` refuses its params ('' if it does not)."""
    params = dict(command.params)
    try:
        if command.kind == "speaker.play_clip":
            clip_params(params)
        elif command.kind.startswith("speaker."):
            executors = SpeakerCommands(_FakeSpeaker).executors()  # type: ignore[arg-type]
            if command.kind == "speaker.play":
                _CLIP_ID.validate_python(params.get("clip"))
            asyncio.run(_execute(executors[command.kind], command))
        elif command.kind == "config.apply":
            version, data = apply_params(params)
            return config_problems(command.device_id, version, data, public_key)
        elif command.kind == "model.install":
            install_params(params)
        elif command.kind in ("model.rollback", "model.shadow_stop"):
            _slot(params)
        elif command.kind == "snapshot.request":
            if not isinstance(params.get("camera_id", ""), str):
                raise CommandFailed("params.camera_id must be a string")
        elif command.kind == "spot.recheck":
            from edge_agent.agent.recheck import RecheckParams

            RecheckParams.model_validate(params)
        elif command.kind == "live.start":
            from edge_agent.agent.live import parse_start
            from edge_agent.config import LiveSection

            parse_start(params, LiveSection())
        elif command.kind == "live.stop":
            if not isinstance(params.get("camera_id"), str) or not params["camera_id"]:
                raise CommandFailed("params.camera_id: a camera id is required")
        elif command.kind == "keys.trust":
            # The unit checks previous_until against its clock; the example's is issued_at.
            protocol.parse_trust_params(params, command.issued_at)
        else:
            return f"no parameter check for {command.kind!r}: add one to this test"
    except (CommandFailed, ValidationError, KeyError, ValueError, protocol.ProtocolError) as exc:
        return str(exc)
    return ""


# --------------------------------------------------------------------------- checks


def _images(message: Any) -> list[protocol.Snapshot]:
    found = [getattr(message, name, None) for name in ("snapshot", "frame")]
    return [s for s in found if isinstance(s, protocol.Snapshot)]


def _check_message(block: Block, public_key: Any, key_b64: str) -> list[str]:
    """Problems of one message example, read as the hub and the device read it."""
    stem = block.marker or ""
    try:
        data = json.loads(block.body)
        device_id = data["device_id"]
        _, _, message = protocol.decode_from_topic(
            protocol.topic(device_id, STEMS[stem]), block.body.encode("utf-8")
        )
    except (ValueError, KeyError, TypeError, protocol.ProtocolError) as exc:
        return [f"{block.where}: {type(exc).__name__}: {exc}"]
    problems = []
    for image in _images(message):
        try:
            size = jpeg_size(image.jpeg_bytes())
        except ValueError as exc:
            problems.append(f"{block.where}: not a JPEG: {exc}")
            continue
        if size != (image.width, image.height):
            problems.append(f"{block.where}: the JPEG is {size}, the message says so otherwise")
    if isinstance(message, protocol.Command):
        try:
            command = protocol.verify_command(
                block.body.encode("utf-8"),
                public_key=public_key,
                device_id=device_id,
                now=message.issued_at + timedelta(seconds=1),
                replay=protocol.MemoryReplayGuard(),
            )
        except protocol.CommandRejected as exc:
            return [*problems, f"{block.where}: the device refuses it: {exc}"]
        problem = params_problem(command, key_b64)
        if problem:
            problems.append(f"{block.where}: params of {command.kind}: {problem}")
    if isinstance(message, protocol.ConfigDesired):
        try:
            desired = protocol.verify_desired(
                block.body.encode("utf-8"), public_key=public_key, device_id=device_id
            )
        except protocol.CommandRejected as exc:
            return [*problems, f"{block.where}: the device refuses it: {exc}"]
        problem = config_problems(device_id, desired.version, dict(desired.config), key_b64)
        if problem:
            problems.append(f"{block.where}: config: {problem}")
    return problems


def example_problems(text: str) -> list[str]:
    """Every json block is marked, parses and (for signed kinds) verifies."""
    try:
        key_b64 = _one(text, "public-key")
        public_key = protocol.load_public_key(key_b64)
    except (AssertionError, protocol.ProtocolError) as exc:
        return [f"the page's public key: {exc}"]
    problems = []
    for block in blocks(text):
        if block.marker is None:
            if block.lang == "json":
                problems.append(f"{block.where}: a json block without <!-- example: ... -->")
            continue
        if block.marker in SPECIAL:
            continue
        if block.marker not in STEMS:
            problems.append(f"{block.where}: unknown example marker {block.marker!r}")
        elif block.lang != "json":
            problems.append(f"{block.where}: a message example must be a json block")
        else:
            problems += _check_message(block, public_key, key_b64)
    return problems


def _literals(model: type[Any], field: str) -> set[str]:
    return set(typing.get_args(model.model_fields[field].annotation))


def coverage_problems(text: str) -> list[str]:
    """Every message kind, command kind, ack state, status and config state has an example."""
    found: dict[str, list[dict[str, Any]]] = {stem: [] for stem in STEMS}
    for block in blocks(text):
        if block.marker in STEMS:
            try:
                found[block.marker].append(json.loads(block.body))
            except ValueError:
                continue  # example_problems reports it
    problems = [f"no example of {stem} (xh.{stem}/1)" for stem, got in found.items() if not got]
    wanted = [
        ("cmd", "kind", protocol.Command.KINDS),
        ("cmd_ack", "state", _literals(protocol.CommandAck, "state")),
        ("status", "state", _literals(protocol.Status, "state")),
        ("config_reported", "state", _literals(protocol.ConfigReported, "state")),
    ]
    for stem, field, values in wanted:
        shown = {example.get(field) for example in found[stem]}
        problems += [f"no {stem} example with {field} {v!r}" for v in sorted(values - shown)]
    return problems


def _models() -> dict[str, type[Any]]:
    base, message = protocol._Model, protocol._Message
    return {
        name: value
        for name, value in vars(protocol).items()
        if isinstance(value, type) and issubclass(value, base) and value not in (base, message)
    }


def field_problems(text: str) -> list[str]:
    """Each wire model has a field table naming exactly its fields, required as in the code."""
    found = tables(text)
    problems = []
    models = _models()
    for name, model in sorted(models.items()):
        rows = found.get(f"fields: {name}")
        if rows is None:
            problems.append(f"no field table <!-- fields: {name} -->")
            continue
        code = {(f.alias or n): f.is_required() for n, f in model.model_fields.items()}
        documented = {_name(row[0]): row[2] == "yes" for row in rows if len(row) >= 3}
        for field in sorted(code.keys() - documented.keys()):
            problems.append(f"{name}.{field} is not in its table")
        for field in sorted(documented.keys() - code.keys()):
            problems.append(f"{name}.{field} is in the table, not in the code")
        for field in sorted(code.keys() & documented.keys()):
            if code[field] != documented[field]:
                said = "yes" if documented[field] else "no"
                problems.append(f"{name}.{field}: the table says required {said}, the code not")
    for key in found:
        if key.startswith("fields: ") and key.removeprefix("fields: ") not in models:
            problems.append(f"a field table for {key.removeprefix('fields: ')}, not a wire model")
    return problems


def channel_problems(text: str) -> list[str]:
    """The channel table says what ``protocol.Channel`` says: direction, QoS, retained."""
    rows = {_name(row[0]): row for row in tables(text).get("channels", [])}
    problems = []
    for channel in protocol.Channel:
        row = rows.pop(channel.value, None)
        if row is None:
            problems.append(f"channel {channel.value} is not in the channel table")
            continue
        want = [
            "device → hub" if channel.from_device else "hub → device",
            str(channel.qos),
            "yes" if channel.retained else "no",
            protocol.MESSAGE_TYPES[channel].SCHEMA,
        ]
        got = [row[1], row[2], row[3], _name(row[4])]
        if got != want:
            problems.append(f"channel {channel.value}: the table says {got}, the code {want}")
    problems += [f"channel {name} is in the table, not in the code" for name in rows]
    return problems


def _broker_size_limit() -> int:
    match = re.search(r"^message_size_limit\s+(\d+)", MOSQUITTO_CONF.read_text(), re.M)
    assert match is not None, "the shipped mosquitto.conf sets no message_size_limit"
    return int(match.group(1))


def limit_problems(text: str) -> list[str]:
    """The limits table carries the code's values (and the broker config's)."""
    hub_default = HubSettings.model_fields["max_clock_ahead_s"].default
    assert hub_default == MAX_AHEAD.total_seconds()
    want = {
        "message_size_limit": _broker_size_limit(),
        "MAX_COMMAND_BYTES": protocol.MAX_COMMAND_BYTES,
        "MAX_SNAPSHOT_BYTES": protocol.MAX_SNAPSHOT_BYTES,
        "MAX_WIRE_INT": protocol.MAX_WIRE_INT,
        "MAX_COMMAND_TTL": int(protocol.MAX_COMMAND_TTL.total_seconds()),
        "CLOCK_SKEW": int(protocol.CLOCK_SKEW.total_seconds()),
        "XH_HUB_MAX_CLOCK_AHEAD_S": int(hub_default),
        "MAX_DEAD_LETTER_BYTES": MAX_DEAD_LETTER_BYTES,
    }
    got: dict[str, int] = {}
    for row in tables(text).get("limits", []):
        names = re.findall(r"`(\w+)`", row[0])  # the last one is the setting's name
        value = re.match(r"\d+", row[1])
        if names and value:
            got[names[-1]] = int(value.group(0))
    problems = [
        f"limit {name}: the table says {got.get(name)}, the code {value}"
        for name, value in want.items()
        if got.get(name) != value
    ]
    b64_max = next(
        m.max_length
        for m in protocol.Snapshot.model_fields["jpeg_b64"].metadata
        if hasattr(m, "max_length")
    )
    if f"at most {b64_max} base64 characters" not in text:
        problems.append(f"the page does not say jpeg_b64 holds at most {b64_max} characters")
    return problems


def reason_problems(text: str) -> list[str]:
    """Every reason a device refuses a command is in the table, with its ack state."""
    rows = {_name(row[0]): row[1] for row in tables(text).get("reasons", [])}
    problems = []
    for reason in protocol.RejectReason:
        state = protocol.CommandRejected(reason, "").ack_state
        if rows.pop(reason.value, None) != state:
            problems.append(f"reason {reason.value} (ack {state}) is not in the table as such")
    return problems + [f"reason {name} is in the table, not in the code" for name in rows]


def broker_problems(text: str) -> list[str]:
    """The ACL and the hub's topic filters are what provisioning and the hub produce."""
    problems = []
    acl = render_acl(["pole-market-01"], ["hub"]).rstrip("\n")
    if _one(text, "acl") != acl:
        problems.append("the ACL block is not what `central-hub provision` writes")
    if _one(text, "hub-subscriptions") != "\n".join(protocol.hub_subscriptions(None)):
        problems.append("the hub's topic filters are not protocol.hub_subscriptions()")
    return problems


def signature_problems(text: str) -> list[str]:
    """The worked example: its bytes are canonical and its signature verifies."""
    problems = []
    public_key = _public_key(text)
    wire = _one(text, "cmd-wire")
    signed = _one(text, "signed-bytes")
    data = json.loads(wire)
    signed_bytes = signed.encode("utf-8")
    if protocol.encode(protocol.decode(protocol.Command, wire)) != wire.encode("utf-8"):
        problems.append("the command as published is not canonical JSON")
    unsigned = {k: v for k, v in data.items() if k != "sig"}
    if protocol.canonical_json(unsigned) != signed_bytes:
        problems.append("the signed bytes are not the canonical JSON of the command without sig")
    if wire.replace(f',"sig":"{data["sig"]}"', "") != signed:
        problems.append("cutting the sig member out of the published bytes does not give them")
    if _one(text, "signed-bytes-sha256") != hashlib.sha256(signed_bytes).hexdigest():
        problems.append("the SHA-256 shown is not that of the signed bytes")
    if f"{len(signed_bytes)} bytes of UTF-8" not in text:
        problems.append(f"the page does not say the signed bytes are {len(signed_bytes)} bytes")
    if "\\u" in signed or signed.isascii():
        problems.append("the worked example should show non-ASCII text written unescaped")
    try:
        public_key.verify(base64.b64decode(data["sig"], validate=True), signed_bytes)
    except InvalidSignature:
        problems.append("the signature does not verify over the signed bytes")
    say = [json.loads(b.body) for b in blocks(text) if b.marker == "cmd"]
    if data not in say:
        problems.append("the worked example is not one of the command examples")
    return problems


CHECKS: list[Callable[[str], list[str]]] = [
    example_problems,
    coverage_problems,
    field_problems,
    channel_problems,
    limit_problems,
    reason_problems,
    broker_problems,
    signature_problems,
]


def all_problems(text: str) -> list[str]:
    """What every check finds wrong with ``text``; a check that cannot run is a problem."""
    problems = []
    for check in CHECKS:
        try:
            problems += check(text)
        except (AssertionError, ValueError, KeyError, IndexError, StopIteration) as exc:
            problems.append(f"{check.__name__}: {type(exc).__name__}: {exc}")
    return problems


# --------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _assert_none(problems: list[str]) -> None:
    assert not problems, "docs/protocol.md:\n" + "\n".join(problems)


def test_every_json_example_is_marked_and_valid(doc: str) -> None:
    assert sum(1 for b in blocks(doc) if b.lang == "json") >= len(STEMS)
    _assert_none(example_problems(doc))


def test_every_kind_and_state_has_an_example(doc: str) -> None:
    _assert_none(coverage_problems(doc))


def test_field_tables_match_the_models(doc: str) -> None:
    _assert_none(field_problems(doc))


def test_channel_table_matches_the_code(doc: str) -> None:
    _assert_none(channel_problems(doc))


def test_limits_match_the_code(doc: str) -> None:
    _assert_none(limit_problems(doc))


def test_reject_reasons_match_the_code(doc: str) -> None:
    _assert_none(reason_problems(doc))


def test_acl_and_hub_subscriptions_match_the_code(doc: str) -> None:
    _assert_none(broker_problems(doc))


def test_worked_signature_example_verifies(doc: str) -> None:
    _assert_none(signature_problems(doc))


@pytest.mark.parametrize(
    "change",
    [
        "a space after a comma",
        "an escaped character",
        "a timestamp written another way",
    ],
)
def test_worked_example_fails_when_one_byte_changes(doc: str, change: str) -> None:
    signed = _one(doc, "signed-bytes")
    altered = {
        "a space after a comma": signed.replace(",", ", ", 1),
        "an escaped character": signed.replace("请", "\\u8bf7", 1),
        "a timestamp written another way": signed.replace(":00Z", ":00.000Z", 1),
    }[change]
    assert altered != signed
    sig = json.loads(_one(doc, "cmd-wire"))["sig"]
    with pytest.raises(InvalidSignature):
        _public_key(doc).verify(base64.b64decode(sig), altered.encode("utf-8"))


def _first_block(doc: str, marker: str) -> str:
    return next(b.body for b in blocks(doc) if b.marker == marker)


def _drop_block(doc: str, marker: str, contains: str) -> str:
    body = next(b.body for b in blocks(doc) if b.marker == marker and contains in b.body)
    return doc.replace(f"<!-- example: {marker} -->\n```json\n{body}\n```\n", "", 1)


BREAKAGES: dict[str, tuple[Callable[[str], str], str]] = {
    "an event without device_id": (
        lambda d: d.replace(
            _first_block(d, "event"),
            _first_block(d, "event").replace('  "device_id": "pole-market-01",\n', "", 1),
        ),
        "device_id",
    ),
    "an event time without a zone": (
        lambda d: d.replace(
            '"started_at": "2026-11-26T08:24:53Z"', '"started_at": "2026-11-26T08:24:53"'
        ),
        "started_at",
    ),
    "a command whose params were changed after signing": (
        lambda d: d.replace('"volume": 0.9}', '"volume": 1.0}', 1),
        "bad_signature",
    ),
    "a desired config with another version": (
        lambda d: d.replace('\n  "version": 5,\n  "config"', '\n  "version": 6,\n  "config"', 1),
        "bad_signature",
    ),
    "a command kind without an example": (
        lambda d: _drop_block(d, "cmd", '"kind": "model.shadow_stop"'),
        "model.shadow_stop",
    ),
    "an ack state without an example": (
        lambda d: _drop_block(d, "cmd_ack", '"state": "expired"'),
        "expired",
    ),
    "a json block without a marker": (
        lambda d: d.replace("<!-- example: telemetry -->\n", "", 1),
        "without <!-- example",
    ),
    "a field missing from its table": (
        lambda d: "\n".join(line for line in d.split("\n") if not line.startswith("| `plate` |")),
        "Event.plate",
    ),
    "a wrong QoS in the channel table": (
        lambda d: d.replace(
            "| `telemetry` | device → hub | 0 |", "| `telemetry` | device → hub | 1 |"
        ),
        "channel telemetry",
    ),
    "a wrong limit": (
        lambda d: d.replace("| 262144 bytes |", "| 262145 bytes |"),
        "MAX_COMMAND_BYTES",
    ),
    "a reject reason missing": (
        lambda d: "\n".join(
            line for line in d.split("\n") if not line.startswith("| `replayed` |")
        ),
        "replayed",
    ),
    "signed bytes that are not canonical": (
        lambda d: d.replace(_one(d, "signed-bytes"), _one(d, "signed-bytes").replace(",", ", ", 1)),
        "signed bytes",
    ),
    "an ACL that is not provisioning's": (
        lambda d: d.replace("topic read xh/v1/dev/pole-market-01/cmd\n", "", 1),
        "ACL",
    ),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_the_checks_catch_a_broken_page(doc: str, breakage: str) -> None:
    """A page broken in one way fails the checks, naming what broke."""
    breaker, expect = BREAKAGES[breakage]
    broken = breaker(doc)
    assert broken != doc, "the breakage did not apply: update it to the page"
    problems = all_problems(broken)
    assert problems, f"{breakage}: no check noticed"
    assert any(expect in p for p in problems), problems


#: A key for bad ``keys.trust`` params (the page's own next key is in its example).
_NEXT_KEY = protocol.public_key_b64(protocol.generate_signing_key())


def _command(kind: str, params: dict[str, Any]) -> protocol.Command:
    return protocol.Command(
        cmd_id=protocol.uuid7(),
        device_id="pole-market-01",
        kind=kind,
        params=params,
        issued_at=protocol.utc_now(),
        expires_at=protocol.utc_now() + timedelta(minutes=1),
    )


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("speaker.say", {}),
        ("speaker.say", {"text": "请离开", "volume": 2}),
        ("speaker.say", {"text": "请离开", "priority": "loud"}),
        ("speaker.play", {"clip": "no vending"}),
        ("speaker.play_clip", {"sha256": "ab" * 32, "size": 10, "url": "file:///x", "token": "t"}),
        ("config.apply", {"version": 0, "config": {}}),
        ("config.apply", {"version": 5, "config": {"mqtt": {"host": "elsewhere"}}}),
        ("config.apply", {"version": 5, "config": {"telemetry": {"interval_s": 0}}}),
        ("model.install", {"slot": "street", "size": "1"}),
        ("model.rollback", {}),
        ("model.shadow_stop", {"slot": ""}),
        ("snapshot.request", {"camera_id": 3}),
        ("keys.trust", {"previous_until": "2999-01-01T00:00:00+00:00"}),
        ("keys.trust", {"public_key": "bm90IGEga2V5", "previous_until": "2999-01-01T00:00:00Z"}),
        ("keys.trust", {"public_key": _NEXT_KEY, "previous_until": "2020-01-01T00:00:00Z"}),
        ("keys.trust", {"public_key": _NEXT_KEY, "previous_until": "2999-01-01T00:00:00Z"}),
        ("keys.trust", {"public_key": _NEXT_KEY, "previous_until": "2999-01-01T00:00:00"}),
        ("keys.trust", {"public_key": _NEXT_KEY, "previous_until": "soon"}),
        ("speaker.sing", {}),
    ],
)
def test_params_check_refuses_bad_params(doc: str, kind: str, params: dict[str, Any]) -> None:
    """The parameter check behind the command examples refuses what the unit refuses."""
    assert params_problem(_command(kind, params), _one(doc, "public-key"))


def _trust_example(doc: str) -> protocol.Command:
    found = [
        protocol.decode(protocol.Command, b.body)
        for b in blocks(doc)
        if b.marker == "cmd" and '"kind": "keys.trust"' in b.body
    ]
    assert len(found) == 1, f"expected one keys.trust example, found {len(found)}"
    return found[0]


def test_keys_trust_example_is_what_the_unit_parses(doc: str) -> None:
    """The example's params are ``protocol.trust_params``'s and pass the unit's parser at
    the time it was issued; the ack shown answers it."""
    command = _trust_example(doc)
    key, until = protocol.parse_trust_params(command.params, command.issued_at)
    assert command.params == protocol.trust_params(protocol.load_public_key(key), until)
    assert key != _one(doc, "public-key"), "the example should trust a new key"
    assert command.issued_at < until <= command.issued_at + protocol.MAX_KEY_OVERLAP
    acks = [
        json.loads(b.body)
        for b in blocks(doc)
        if b.marker == "cmd_ack" and command.cmd_id in b.body
    ]
    assert [a["state"] for a in acks] == ["succeeded"]
    assert acks[0]["detail"].startswith(f"trusting {key[:12]}")


@pytest.mark.parametrize(
    ("previous_until", "expect"),
    [
        (timedelta(days=91), "within 90 days"),
        (timedelta(0), "after now"),
        (-timedelta(days=1), "after now"),
    ],
)
def test_params_check_refuses_the_keys_trust_example_out_of_range(
    doc: str, previous_until: timedelta, expect: str
) -> None:
    """The same example with its overlap out of the unit's limits (checked against
    ``issued_at``) is refused by the parameter check (unsigned here: the signature check
    would refuse the edited example first)."""
    command = _trust_example(doc)
    until = (command.issued_at + previous_until).isoformat()
    changed = command.model_copy(update={"params": {**command.params, "previous_until": until}})
    assert expect in params_problem(changed, _one(doc, "public-key"))
