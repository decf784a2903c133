"""A unit through a hub key rotation, with its real command handler, outbox and trust file:
it trusts the next key once a ``keys.trust`` signed by the current one arrives, both keys
during the overlap, only the next one after it, and remembers all of it across restarts
(issue #17: signing-key rotation)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent import protocol
from edge_agent.link.commands import CommandFailed, CommandHandler
from edge_agent.link.outbox import Outbox
from edge_agent.link.trust import TrustStore

DEVICE = "pole-unit-01"
START = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def _say(key: Ed25519PrivateKey, at: datetime) -> bytes:
    cmd = protocol.sign_command(
        key, device_id=DEVICE, kind="speaker.say", params={"text": "请勿占道"}, issued_at=at
    )
    return protocol.encode(cmd)


async def test_a_unit_goes_through_a_rotation(tmp_path: Path) -> None:
    old, new, stranger = (protocol.generate_signing_key() for _ in range(3))
    clock = Clock()
    trust_file = tmp_path / "trusted_keys.json"
    trust = TrustStore(trust_file, lambda: protocol.public_key_b64(old), clock)
    box = await Outbox.open(tmp_path / "o.db")
    said: list[str] = []

    async def say(command: protocol.Command) -> str:
        said.append(command.params["text"])
        return "said"

    handler = CommandHandler(
        device_id=DEVICE,
        public_key=trust.keys,
        outbox=box,
        executors={"speaker.say": say, "keys.trust": trust.trust},
        clock=clock,
    )

    async def state(payload: bytes) -> str:
        ack = await handler.handle(payload)
        assert ack is not None
        return ack.state

    assert await state(_say(new, clock.now)) == "rejected"  # not trusted yet
    until = START + timedelta(days=14)
    forged = protocol.sign_command(
        stranger,
        device_id=DEVICE,
        kind="keys.trust",
        params=protocol.trust_params(stranger, until),
        issued_at=clock.now,
    )
    assert await state(protocol.encode(forged)) == "rejected"  # only a trusted key may add one
    trust_cmd = protocol.sign_command(
        old,
        device_id=DEVICE,
        kind="keys.trust",
        params=protocol.trust_params(new, until),
        issued_at=clock.now,
    )
    assert await state(protocol.encode(trust_cmd)) == "succeeded"
    assert trust.trusted() == [protocol.public_key_b64(old), protocol.public_key_b64(new)]
    assert trust_file.stat().st_mode & 0o077 == 0
    # The overlap: both keys verify, and the hub may switch at any moment within it.
    assert await state(_say(old, clock.now)) == "succeeded"
    assert await state(_say(new, clock.now)) == "succeeded"
    # A restart (power cut) changes nothing.
    again = TrustStore(trust_file, lambda: protocol.public_key_b64(old), clock)
    assert again.trusted() == trust.trusted()
    # After the overlap only the next key; the config file still names the old one, but it
    # stays retired.
    clock.now = until + timedelta(seconds=1)
    assert await state(_say(old, clock.now)) == "rejected"
    assert await state(_say(new, clock.now)) == "succeeded"
    after = TrustStore(trust_file, lambda: protocol.public_key_b64(old), clock)
    assert after.trusted() == [protocol.public_key_b64(new)]
    assert said == ["请勿占道"] * 3
    await box.close()


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({}, "public_key"),
        ({"public_key": "bm90IGEga2V5", "previous_until": "2026-12-10T00:00:00+00:00"}, "32 bytes"),
        ({"public_key": None, "previous_until": None}, "public_key"),
        ("past", "after now"),
        ("too far", "within 90 days"),
        ("naive", "time zone"),
    ],
)
def test_bad_trust_parameters_are_refused_naming_what_is_wrong(params: object, needle: str) -> None:
    key = protocol.public_key_b64(protocol.generate_signing_key())
    until = {
        "past": START - timedelta(hours=1),
        "too far": START + timedelta(days=91),
    }
    if isinstance(params, str) and params in until:
        params = {"public_key": key, "previous_until": until[params].isoformat()}
    elif params == "naive":
        params = {"public_key": key, "previous_until": "2026-12-10T00:00:00"}
    assert isinstance(params, dict)
    with pytest.raises(protocol.ProtocolError, match=needle):
        protocol.parse_trust_params(params, START)


def test_a_damaged_trust_file_falls_back_to_the_configured_key(tmp_path: Path) -> None:
    path = tmp_path / "trusted_keys.json"
    path.write_text("{not json", encoding="utf-8")
    key = protocol.public_key_b64(protocol.generate_signing_key())
    assert TrustStore(path, lambda: key, Clock()).trusted() == [key]


async def test_a_trust_file_that_cannot_be_written_changes_nothing(tmp_path: Path) -> None:
    old, new = protocol.generate_signing_key(), protocol.generate_signing_key()
    clock = Clock()
    # A folder where the file should be (root ignores permissions, so no chmod here).
    (tmp_path / "trusted_keys.json" / "x").mkdir(parents=True)
    trust = TrustStore(tmp_path / "trusted_keys.json", lambda: protocol.public_key_b64(old), clock)
    cmd = protocol.sign_command(
        old,
        device_id=DEVICE,
        kind="keys.trust",
        params=protocol.trust_params(new, START + timedelta(days=3)),
        issued_at=START,
    )
    with pytest.raises(CommandFailed, match="cannot keep the trusted keys"):
        await trust.trust(cmd)
    assert trust.trusted() == [protocol.public_key_b64(old)]  # the ack says failed: so it is
