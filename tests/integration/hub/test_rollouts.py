"""Rollout campaigns at the hub: canary then the rest, outcomes from acks, thresholds,
rollback, one-time download tokens with Range, and config campaigns (SQLite and
PostgreSQL); the units are played by hand through the acks they would send."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from central_hub.api import create_app
from central_hub.db.schema import devices
from central_hub.domain.rollout import Phase, Policy, UnitState
from central_hub.errors import AuthError, ConflictError, InvalidInputError, NotFoundError
from central_hub.hub import Hub, build_hub
from central_hub.services.commands import apply_ack
from central_hub.services.packages import RangeError, pack_archive, parse_range
from central_hub.services.rollouts import Target
from central_hub.settings import HubSettings
from central_hub.testing import FakeClock, RecordingPublisher
from edge_agent.protocol import CommandAck
from edge_agent.vision.package import sign_package
from simulators.polling import eventually

pytestmark = pytest.mark.integration

UNITS = [f"pole-{i:02d}" for i in range(6)]


def make_package(root: Path, key: Ed25519PrivateKey, version: str = "1.1.0") -> Path:
    pkg = root / f"street-{version}"
    pkg.mkdir(parents=True)
    (pkg / "model.onnx").write_bytes(bytes(range(256)) * 300)
    (pkg / "manifest.yaml").write_text(
        f"name: street-detector\nversion: '{version}'\nlabels: [person, stall]\n", encoding="utf-8"
    )
    sign_package(pkg, key)
    return pkg


async def online(hub: Hub, *ids: str) -> None:
    for device_id in ids:
        await hub.devices.register(device_id, "pole")
    async with hub.engine.begin() as conn:
        await conn.execute(
            devices.update().where(devices.c.device_id.in_(ids)).values(state="online")
        )


async def ack(hub: Hub, device_id: str, cmd_id: str, state: str, detail: str = "") -> None:
    async with hub.engine.begin() as conn:
        await apply_ack(
            conn,
            CommandAck(
                cmd_id=cmd_id, device_id=device_id, state=state, detail=detail, ts=hub.clock()
            ),
            hub.clock(),
        )


async def install_commands(hub: Hub) -> dict[str, tuple[str, dict[str, Any]]]:
    found: dict[str, tuple[str, dict[str, Any], str]] = {}
    for device_id in UNITS:
        for cmd in await hub.commands.list_for(device_id):
            if cmd.kind in ("model.install", "config.apply", "model.rollback"):
                found.setdefault(device_id, (cmd.cmd_id, cmd.params, cmd.kind))
    return {d: (c, p) for d, (c, p, _k) in found.items()}


async def published(hub: Hub, tmp_path: Path, version: str = "1.1.0") -> str:
    key = Ed25519PrivateKey.generate()
    pkg = make_package(tmp_path, key, version)
    view = await hub.packages.publish(pkg, key.public_key(), by="admin")
    assert view.size == hub.packages.path(view.sha256).stat().st_size
    assert view.sha256 == hashlib.sha256(hub.packages.path(view.sha256).read_bytes()).hexdigest()
    return view.sha256


async def test_a_model_goes_to_the_canary_then_to_all(
    hub: Hub, clock: FakeClock, tmp_path: Path
) -> None:
    await online(hub, *UNITS)
    sha = await published(hub, tmp_path)
    policy = Policy(canary=1, rate_per_min=60, soak_s=30)
    view = await hub.rollouts.create(
        target=Target(kinds=["pole"]), policy=policy, by="admin", package_sha256=sha, slot="street"
    )
    assert [u.device_id for u in view.units if u.canary] == ["pole-00"]
    await hub.rollouts.tick()
    sent = await install_commands(hub)
    assert list(sent) == ["pole-00"]  # the canary alone
    cmd_id, params = sent["pole-00"]
    assert params["slot"] == "street"
    assert params["sha256"] == sha
    assert params["version"] == "1.1.0"
    assert params["url"].endswith(f"/api/v1/packages/{sha}")
    await ack(hub, "pole-00", cmd_id, "succeeded", "installed")
    clock.advance(seconds=5)
    await hub.rollouts.tick()
    view = await hub.rollouts.get(view.id)
    assert view.phase is Phase.CANARY
    assert view.count(UnitState.SUCCEEDED) == 1
    clock.advance(seconds=31)
    await hub.rollouts.tick()
    view = await hub.rollouts.get(view.id)
    assert view.phase is Phase.ROLLING, view.reason
    # The hub restarts: a new process's services on the same database carry on.
    hub = await build_hub(
        HubSettings(data_dir=tmp_path / "hub"),
        clock=clock,
        mqtt=False,
        engine=hub.engine,
        run_migrations=False,
        publisher=RecordingPublisher(),
    )
    await hub.rollouts.tick()  # one a second: the first of the rest starts at once
    assert len(await install_commands(hub)) == 2
    for _ in range(6):
        clock.advance(seconds=1)
        await hub.rollouts.tick()
    sent = await install_commands(hub)
    assert sorted(sent) == UNITS
    for device_id, (cmd_id, _params) in sent.items():
        await ack(hub, device_id, cmd_id, "succeeded")
    await hub.rollouts.tick()
    view = await hub.rollouts.get(view.id)
    assert view.phase is Phase.COMPLETED
    assert view.count(UnitState.SUCCEEDED) == 6


async def test_a_failing_canary_is_rolled_back_and_the_campaign_stops(
    hub: Hub, tmp_path: Path
) -> None:
    await online(hub, *UNITS)
    sha = await published(hub, tmp_path)
    view = await hub.rollouts.create(
        target=Target(devices=UNITS),
        policy=Policy(canary=2, max_failed_share=0.3),
        by="admin",
        package_sha256=sha,
        slot="street",
    )
    await hub.rollouts.tick()
    sent = await install_commands(hub)
    assert sorted(sent) == ["pole-00", "pole-01"]
    await ack(hub, "pole-00", sent["pole-00"][0], "succeeded")
    await ack(
        hub, "pole-01", sent["pole-01"][0], "rejected", "package: the signature does not verify"
    )
    await hub.rollouts.tick()
    view = await hub.rollouts.get(view.id)
    assert view.phase is Phase.ABORTED
    assert "canary rolled back" in view.reason
    units = {u.device_id: u for u in view.units}
    assert units["pole-01"].state is UnitState.REJECTED
    assert "signature" in units["pole-01"].detail
    back = [c for c in await hub.commands.list_for("pole-00") if c.kind == "model.rollback"]
    assert len(back) == 1
    assert back[0].params == {"slot": "street"}
    await ack(hub, "pole-00", back[0].cmd_id, "succeeded", "street back to 1.0.0")
    await hub.rollouts.tick()  # a finished campaign still takes its rollbacks' outcomes
    view = await hub.rollouts.get(view.id)
    assert {u.device_id: u.state for u in view.units}["pole-00"] is UnitState.ROLLED_BACK
    assert all(u.state is UnitState.QUEUED for u in view.units if not u.canary)
    assert sorted(await install_commands(hub)) == ["pole-00", "pole-01"]  # nobody else


async def test_units_offline_wait_and_units_silent_time_out(
    hub: Hub, clock: FakeClock, tmp_path: Path
) -> None:
    await online(hub, "pole-00")
    await hub.devices.register("pole-01", "pole")  # never online
    sha = await published(hub, tmp_path)
    view = await hub.rollouts.create(
        target=Target(devices=["pole-00", "pole-01"]),
        policy=Policy(canary=1, unit_timeout_s=60),
        by="admin",
        package_sha256=sha,
        slot="street",
    )
    assert [u.device_id for u in view.units if u.canary] == ["pole-00"]  # online first
    await hub.rollouts.tick()
    clock.advance(seconds=61)
    await hub.rollouts.tick()
    view = await hub.rollouts.get(view.id)
    assert view.units[0].state is UnitState.TIMED_OUT
    assert view.phase is Phase.ABORTED  # 1 of 1 canary units failed


async def test_download_tokens_are_per_unit_spent_when_done_and_resume_with_range(
    hub: Hub, tmp_path: Path
) -> None:
    await online(hub, "pole-00", "pole-01")
    sha = await published(hub, tmp_path)
    view = await hub.rollouts.create(
        target=Target(devices=["pole-00", "pole-01"]),
        policy=Policy(canary=2),
        by="admin",
        package_sha256=sha,
        slot="street",
    )
    await hub.rollouts.tick()
    sent = await install_commands(hub)
    archive = hub.packages.path(sha).read_bytes()
    app = create_app(hub)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub"
    ) as client:
        url = f"/api/v1/packages/{sha}"
        token = sent["pole-00"][1]["token"]
        assert (await client.get(url)).status_code == 401
        assert (await client.get(url, headers={"Authorization": "Bearer nope"})).status_code == 401
        other = await published(hub, tmp_path / "b", "1.2.0")
        resp = await client.get(
            f"/api/v1/packages/{other}", headers={"Authorization": f"Bearer {token}"}
        )
        assert resp.status_code == 401  # a token fetches its own package only
        auth = {"Authorization": f"Bearer {token}"}
        first = await client.get(url, headers={**auth, "Range": "bytes=0-999"})
        assert first.status_code == 206
        assert first.content == archive[:1000]
        assert first.headers["content-range"] == f"bytes 0-999/{len(archive)}"
        rest = await client.get(url, headers={**auth, "Range": "bytes=1000-"})
        assert rest.status_code == 206
        assert first.content + rest.content == archive
        bad = await client.get(url, headers={**auth, "Range": f"bytes={len(archive)}-"})
        assert bad.status_code == 416
        await ack(hub, "pole-00", sent["pole-00"][0], "succeeded")
        await hub.rollouts.tick()
        spent = await client.get(url, headers=auth)
        assert spent.status_code == 401
        assert "spent" in spent.json()["detail"]
        whole = await client.get(
            url, headers={"Authorization": f"Bearer {sent['pole-01'][1]['token']}"}
        )
        assert whole.status_code == 200
        assert whole.content == archive
    # Bytes are counted by a task of their own once a body ends (it may end by a hang-up).
    expected = {"pole-00": len(archive), "pole-01": len(archive)}

    async def counted() -> bool:
        units = (await hub.rollouts.get(view.id)).units
        return {u.device_id: u.bytes_served for u in units} == expected

    assert await eventually(counted, 10)


async def test_a_config_campaign_pushes_the_next_version_and_rolls_back_to_the_last(
    hub: Hub, tmp_path: Path
) -> None:
    await online(hub, "pole-00", "pole-01")
    await hub.devices.set_desired("pole-00", {"telemetry": {"interval_s": 30}})
    view = await hub.rollouts.create(
        target=Target(devices=["pole-00", "pole-01"]),
        policy=Policy(canary=1),
        by="admin",
        config={"telemetry": {"interval_s": 5}},
    )
    await hub.rollouts.tick()
    sent = await install_commands(hub)
    cmd_id, params = sent["pole-00"]
    assert params == {"version": 2, "config": {"telemetry": {"interval_s": 5}}}
    await ack(hub, "pole-00", cmd_id, "succeeded")
    await hub.rollouts.tick()
    await hub.rollouts.tick()
    sent = await install_commands(hub)
    assert sent["pole-01"][1]["version"] == 1
    await ack(hub, "pole-01", sent["pole-01"][0], "succeeded")
    await hub.rollouts.tick()
    view = await hub.rollouts.abort(view.id, by="admin", rollback=True)
    back = [c for c in await hub.commands.list_for("pole-00") if c.params.get("version") == 3]
    assert back
    assert back[0].params["config"] == {"telemetry": {"interval_s": 30}}
    units = {u.device_id: u for u in view.units}
    assert "no earlier pushed config" in units["pole-01"].detail


async def test_bad_campaigns_are_refused_with_reasons(hub: Hub, tmp_path: Path) -> None:
    await online(hub, "pole-00")
    sha = await published(hub, tmp_path)
    with pytest.raises(InvalidInputError, match="slot"):
        await hub.rollouts.create(
            target=Target(devices=["pole-00"]), policy=Policy(), by="a", package_sha256=sha
        )
    with pytest.raises(InvalidInputError, match="reaches no registered device"):
        await hub.rollouts.create(
            target=Target(kinds=["truck"]), policy=Policy(), by="a", package_sha256=sha, slot="s"
        )
    with pytest.raises(InvalidInputError, match="not both"):
        await hub.rollouts.create(
            target=Target(devices=["pole-00"]),
            policy=Policy(),
            by="a",
            package_sha256=sha,
            slot="s",
            config={},
        )
    await hub.rollouts.create(
        target=Target(devices=["pole-00"]), policy=Policy(), by="a", package_sha256=sha, slot="s"
    )
    with pytest.raises(ConflictError, match="pole-00 are in a campaign still running"):
        await hub.rollouts.create(
            target=Target(devices=["pole-00"]),
            policy=Policy(),
            by="a",
            package_sha256=sha,
            slot="s",
        )
    unsigned = tmp_path / "unsigned"
    unsigned.mkdir()
    (unsigned / "model.onnx").write_bytes(b"x")
    (unsigned / "manifest.yaml").write_text("name: x\nversion: '1'\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"not published: .* is not signed"):
        await hub.packages.publish(unsigned, Ed25519PrivateKey.generate().public_key(), by="a")
    with pytest.raises(AuthError):
        await hub.rollouts.authorize_download(sha, None)


def test_archives_are_the_same_bytes_for_the_same_files(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    a = make_package(tmp_path / "a", key)
    b = make_package(tmp_path / "b", key)
    (b / "model.onnx").touch()  # a newer mtime
    assert (a / "manifest.yaml").read_bytes() == (b / "manifest.yaml").read_bytes()
    assert pack_archive(a) == pack_archive(b)


def test_range_headers() -> None:
    assert parse_range(None, 100) is None
    assert parse_range("bytes=10-", 100) == (10, 100)
    assert parse_range("bytes=10-19", 100) == (10, 20)
    assert parse_range("bytes=90-500", 100) == (90, 100)
    assert parse_range("bytes=-10", 100) == (90, 100)
    for bad in ("bytes=100-", "items=1-2", "bytes=5-2", "bytes=1-2,4-5", "bytes=-"):
        with pytest.raises(RangeError):
            parse_range(bad, 100)


async def test_a_shadow_campaign_installs_beside_the_slot_and_stops_it(
    hub: Hub, tmp_path: Path
) -> None:
    await online(hub, "pole-00")
    sha = await published(hub, tmp_path)
    with pytest.raises(InvalidInputError, match="never filed"):
        await hub.rollouts.create(
            target=Target(devices=["pole-00"]),
            policy=Policy(canary=1, max_false_alarm_rate=0.2),
            by="admin",
            package_sha256=sha,
            slot="street",
            shadow_cameras=["mast"],
        )
    view = await hub.rollouts.create(
        target=Target(devices=["pole-00"]),
        policy=Policy(canary=1),
        by="admin",
        package_sha256=sha,
        slot="street",
        shadow_cameras=["mast"],
    )
    assert view.shadow == {"cameras": ["mast"]}
    await hub.rollouts.tick()
    cmd_id, params = (await install_commands(hub))["pole-00"]
    assert params["shadow"] == {"cameras": ["mast"]}
    await ack(hub, "pole-00", cmd_id, "succeeded", "shadowing slot street")
    await hub.rollouts.tick()
    view = await hub.rollouts.abort(view.id, by="admin", rollback=True)
    stops = [c for c in await hub.commands.list_for("pole-00") if c.kind == "model.shadow_stop"]
    assert len(stops) == 1
    assert stops[0].params == {"slot": "street"}


async def test_a_grid_area_reaches_the_units_whose_latest_event_lies_in_it(
    hub: Hub, clock: FakeClock, tmp_path: Path
) -> None:
    from central_hub.testing import ListSource, inbound, make_event
    from central_hub.workers.ingest import IngestWorker

    await online(hub, "pole-00", "pole-01", "pole-02")
    worker = IngestWorker(hub.engine, ListSource(), hub.evidence, hub.filer, clock)
    market = make_event("pole-00", at=clock())
    cell = hub.grid.locate(market.location.lat, market.location.lon)
    assert cell is not None
    assert cell.parent_id is not None
    elsewhere = make_event("pole-01", at=clock(), lat=30.0, lon=120.0)  # outside the district
    # pole-02 moved: its latest event is outside, an older one inside.
    old = make_event("pole-02", seq=1, at=clock() - timedelta(hours=1))
    new = make_event("pole-02", seq=2, at=clock(), lat=30.0, lon=120.0)
    await worker.process([inbound(e) for e in (market, elsewhere, old, new)])
    assert await hub.rollouts.resolve(Target(areas=[cell.id])) == ["pole-00"]
    assert await hub.rollouts.resolve(Target(areas=[cell.parent_id])) == ["pole-00"]
    both = Target(areas=[cell.parent_id], devices=["pole-02"])
    assert await hub.rollouts.resolve(both) == ["pole-00", "pole-02"]
    with pytest.raises(NotFoundError, match="no grid cell 'nowhere'"):
        await hub.rollouts.resolve(Target(areas=["nowhere"]))
