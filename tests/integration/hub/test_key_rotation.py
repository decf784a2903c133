"""The hub's side of a key rotation on a real database, with the unit's real trust file
and command handler answering the commands it queues: ``keys rotate`` asks every unit to
trust the next key (signed by the current one), ``status`` tells who confirmed,
``finish`` refuses while a unit has not (unless forced), then makes the next key the
hub's, keeps the workers' MQTT identity, and the desired configs are re-signed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from central_hub.db.schema import commands
from central_hub.errors import ConflictError
from central_hub.hub import Hub, build_hub, hub_client_id, load_or_create_key
from central_hub.services.commands import apply_ack
from central_hub.services.keys import (
    finish_rotation,
    identity_key,
    resign_marker,
    rotation_status,
    start_rotation,
)
from central_hub.settings import HubSettings
from central_hub.testing import FakeClock, RecordingPublisher
from edge_agent import protocol
from edge_agent.link.commands import CommandHandler
from edge_agent.link.outbox import Outbox
from edge_agent.link.trust import TrustStore

pytestmark = pytest.mark.integration


async def test_rotate_confirm_finish(hub: Hub, clock: FakeClock, tmp_path: Path) -> None:
    settings = HubSettings(data_dir=tmp_path / "hub")
    old_public = protocol.public_key_b64(hub.key)
    client_id = hub_client_id("hub-1", identity_key(settings, hub.key))
    for device in ("pole-1", "pole-2"):
        await hub.devices.register(device, "pole")
    await hub.devices.set_desired("pole-1", {"speaker": {"volume": 0.6}})
    rotation, queued = await start_rotation(
        settings, hub.commands, overlap=timedelta(days=14), now=clock.now, by="root"
    )
    assert queued == ["pole-1", "pole-2"]
    with pytest.raises(ConflictError, match="under way"):
        await start_rotation(
            settings, hub.commands, overlap=timedelta(days=14), now=clock.now, by="root"
        )
    async with hub.engine.connect() as conn:
        payloads = dict(
            (
                await conn.execute(
                    sa.select(commands.c.device_id, commands.c.payload).where(
                        commands.c.kind == "keys.trust"
                    )
                )
            ).all()
        )

    # pole-1 answers with its real handler; its trust file now holds the next key.
    trust = TrustStore(
        tmp_path / "unit" / "trusted_keys.json", lambda: old_public, lambda: clock.now
    )
    box = await Outbox.open(tmp_path / "unit" / "o.db")
    handler = CommandHandler(
        device_id="pole-1",
        public_key=trust.keys,
        outbox=box,
        executors={"keys.trust": trust.trust},
        clock=lambda: clock.now,
    )
    ack = await handler.handle(payloads["pole-1"].encode())
    assert ack is not None
    assert ack.state == "succeeded", ack.detail
    assert trust.trusted() == [old_public, rotation.next_public_key]
    async with hub.engine.begin() as conn:
        await apply_ack(conn, ack, clock.now)
    status = await rotation_status(settings, hub.commands)
    assert status.confirmed == ["pole-1"]
    assert status.waiting == ["pole-2"]
    with pytest.raises(ConflictError, match="pole-2"):
        await finish_rotation(settings, hub.commands, now=clock.now)

    retired = await finish_rotation(settings, hub.commands, now=clock.now, force=True)
    assert retired.exists()
    assert protocol.public_key_b64(load_or_create_key(retired, create=False)) == old_public
    new_key = load_or_create_key(settings.hub_key_path, create=False)
    assert protocol.public_key_b64(new_key) == rotation.next_public_key
    # The workers keep their client id and share group: no persistent session orphaned.
    assert hub_client_id("hub-1", identity_key(settings, new_key)) == client_id
    assert resign_marker(settings).exists()

    # The hub started again signs with the next key, and the unit takes it.
    publisher = RecordingPublisher()
    again = await build_hub(
        settings,
        clock=clock,
        mqtt=False,
        engine=hub.engine,
        run_migrations=False,
        publisher=publisher,
    )
    cmd = await again.commands.enqueue("pole-1", "speaker.stop", {}, actor="op")
    async with hub.engine.connect() as conn:
        payload = (
            await conn.execute(sa.select(commands.c.payload).where(commands.c.cmd_id == cmd.cmd_id))
        ).scalar_one()
    protocol.verify_command(
        payload,
        public_key=trust.keys(),
        device_id="pole-1",
        now=clock.now,
        replay=protocol.MemoryReplayGuard(),
    )
    assert await again.devices.resign_desired() == 1
    topic_, body, _, retain = publisher.sent[-1]
    assert retain
    assert topic_ == protocol.topic("pole-1", protocol.Channel.CONFIG_DESIRED)
    desired = protocol.verify_desired(body, public_key=new_key.public_key(), device_id="pole-1")
    assert desired.version == 1  # the same version: no unit re-applies it
    await box.close()
