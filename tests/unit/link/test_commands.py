"""The command handler with a real outbox and no broker: verify, remember, run, ack."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge_agent import protocol
from edge_agent.link.commands import CommandFailed, CommandHandler
from edge_agent.link.outbox import Outbox, Priority

DEVICE = "pole-unit-01"
NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


async def _acks(box: Outbox) -> list[dict[str, object]]:
    box.rewind()
    rows = await box.next_batch(100)
    assert all(r.priority == Priority.ACK for r in rows)
    return [json.loads(r.payload) for r in rows]


def _handler(box: Outbox, key, ran: list[str]) -> CommandHandler:  # type: ignore[no-untyped-def]
    async def say(command: protocol.Command) -> str:
        ran.append(command.params["text"])
        return "said"

    async def fail(command: protocol.Command) -> str:
        raise CommandFailed("no clip 'x'")

    async def crash(command: protocol.Command) -> str:
        raise ZeroDivisionError("oops")

    return CommandHandler(
        device_id=DEVICE,
        public_key=key.public_key(),
        outbox=box,
        executors={"speaker.say": say, "speaker.play": fail, "speaker.stop": crash},
        clock=lambda: NOW,
    )


async def test_good_command_runs_and_acks_received_then_succeeded(tmp_path: Path) -> None:
    key = protocol.generate_signing_key()
    box = await Outbox.open(tmp_path / "o.db")
    ran: list[str] = []
    handler = _handler(box, key, ran)
    cmd = protocol.sign_command(
        key, device_id=DEVICE, kind="speaker.say", params={"text": "hi"}, issued_at=NOW
    )
    ack = await handler.handle(protocol.encode(cmd))
    assert ack is not None
    assert ack.state == "succeeded"
    assert ran == ["hi"]
    assert [a["state"] for a in await _acks(box)] == ["received", "succeeded"]
    await box.close()


async def test_refusals_carry_their_reason_and_run_nothing(tmp_path: Path) -> None:
    key = protocol.generate_signing_key()
    other = protocol.generate_signing_key()
    box = await Outbox.open(tmp_path / "o.db")
    ran: list[str] = []
    handler = _handler(box, key, ran)

    def make(k, **kw):  # type: ignore[no-untyped-def]
        args = {
            "device_id": DEVICE,
            "kind": "speaker.say",
            "params": {"text": "x"},
            "issued_at": NOW,
        }
        return protocol.sign_command(k, **{**args, **kw})

    cases = [
        (protocol.encode(make(other)), "rejected", "bad_signature"),
        (protocol.encode(make(key, issued_at=NOW - timedelta(hours=1))), "expired", "expired"),
        (protocol.encode(make(key).model_copy(update={"sig": None})), "rejected", "unsigned"),
        (protocol.encode(make(key, device_id="pole-unit-02")), "rejected", "wrong_device"),
        (b"{not json", "rejected", "malformed"),
    ]
    for payload, state, reason in cases:
        ack = await handler.handle(payload)
        assert ack is not None
        assert ack.state == state
        assert ack.detail.startswith(reason), ack.detail
    assert ran == []
    await box.close()


async def test_replay_is_refused_also_after_reopening(tmp_path: Path) -> None:
    key = protocol.generate_signing_key()
    box = await Outbox.open(tmp_path / "o.db", clock_ms=lambda: NOW_MS)
    ran: list[str] = []
    cmd = protocol.sign_command(
        key, device_id=DEVICE, kind="speaker.say", params={"text": "once"}, issued_at=NOW
    )
    first = await _handler(box, key, ran).handle(protocol.encode(cmd))
    assert first is not None
    assert first.state == "succeeded"
    again = await _handler(box, key, ran).handle(protocol.encode(cmd))
    assert again is not None
    assert again.detail.startswith("replayed")
    await box.close()
    box = await Outbox.open(tmp_path / "o.db", clock_ms=lambda: NOW_MS)
    after = await _handler(box, key, ran).handle(protocol.encode(cmd))
    assert after is not None
    assert after.state == "rejected"
    assert after.detail.startswith("replayed")
    assert ran == ["once"]
    await box.close()


@pytest.mark.logs_exceptions("edge_agent.link.commands")
async def test_failures_and_crashes_ack_failed_and_unknown_kinds_too(tmp_path: Path) -> None:
    key = protocol.generate_signing_key()
    box = await Outbox.open(tmp_path / "o.db")
    handler = _handler(box, key, [])
    for kind, detail in (
        ("speaker.play", "no clip 'x'"),
        ("speaker.stop", "ZeroDivisionError: oops"),
        ("snapshot.request", "does not support 'snapshot.request'"),
    ):
        cmd = protocol.sign_command(key, device_id=DEVICE, kind=kind, issued_at=NOW)
        task = handler.submit(protocol.encode(cmd))
        ack = await asyncio.wait_for(task, 5)
        assert ack is not None
        assert ack.state == "failed"
        assert detail in ack.detail
    assert [a.state for a in handler.results] == ["failed"] * 3
    await box.close()
