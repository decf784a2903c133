"""Recorded messages through the hub's API, on SQLite and PostgreSQL: a WebM/Opus upload
(as MediaRecorder makes it, here made by ffmpeg) becomes a 16 kHz mono WAV stored by its
sha256 and a signed ``speaker.play_clip`` naming it; the unit's download needs the
command's one-time token, which opens only that clip and only while the command is open;
broken, empty, too short uploads are refused naming why; dispatchers may not speak."""

from __future__ import annotations

import hashlib
import io
import subprocess
import wave
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from central_hub.api import create_app
from central_hub.db.schema import cases
from central_hub.domain.workflow import Role
from central_hub.hub import Hub
from central_hub.services.commands import apply_ack
from central_hub.testing import FakeClock, ListSource, inbound, make_event
from central_hub.workers.ingest import IngestWorker
from edge_agent.protocol import CommandAck

pytestmark = pytest.mark.integration


def recorded(tmp_path: Path, seconds: float, fmt: str = "webm") -> bytes:
    """A message as a browser records it: Opus in WebM (or Ogg), 48 kHz."""
    out = tmp_path / f"msg.{fmt}"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         f"sine=frequency=440:duration={seconds}:sample_rate=48000", "-c:a", "libopus",
         str(out)],
        check=True,
    )  # fmt: skip
    return out.read_bytes()


async def test_a_recorded_message_is_converted_stored_and_fetched_once(
    hub: Hub, tmp_path: Path, clock: FakeClock
) -> None:
    await hub.devices.register("pole-1", "pole")
    worker = IngestWorker(hub.engine, ListSource(), hub.evidence, hub.filer, clock)
    await worker.process([inbound(make_event("pole-1", at=clock.now))])
    async with hub.engine.connect() as conn:
        case_id = (await conn.execute(sa.select(cases.c.id))).scalar_one()
    _, operator = await hub.users.add("op", Role.OPERATOR)
    _, dispatcher = await hub.users.add("disp", Role.DISPATCHER)
    as_op = {"Authorization": f"Bearer {operator}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(hub)), base_url="http://hub"
    ) as http:
        r = await http.post(
            f"/api/v1/devices/pole-1/voice?case_id={case_id}",
            content=recorded(tmp_path, 1.5),
            headers={**as_op, "Content-Type": "audio/webm"},
        )
        assert r.status_code == 202, r.text
        cmd = r.json()
        assert cmd["kind"] == "speaker.play_clip"
        assert cmd["created_by"] == "op"  # who said it, to whom, from which case
        p = cmd["params"]
        assert p["case_id"] == case_id
        assert p["priority"] == "operator"
        assert p["url"].endswith(f"/api/v1/voice/clips/{p['sha256']}")

        got = await http.get(
            f"/api/v1/voice/clips/{p['sha256']}", headers={"Authorization": f"Bearer {p['token']}"}
        )
        assert got.status_code == 200
        assert hashlib.sha256(got.content).hexdigest() == p["sha256"]
        assert len(got.content) == p["size"]
        with wave.open(io.BytesIO(got.content)) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16_000, 1, 2)
            assert w.getnframes() / 16_000 == pytest.approx(1.5, abs=0.05)

        # Another token, or this token for another clip, opens nothing.
        for sha, token in ((p["sha256"], "not-the-token"), ("0" * 64, p["token"])):
            r = await http.get(
                f"/api/v1/voice/clips/{sha}", headers={"Authorization": f"Bearer {token}"}
            )
            assert r.status_code == 401, r.text
        assert (await http.get(f"/api/v1/voice/clips/{p['sha256']}")).status_code == 401

        # Once the unit has acked the command, its token is spent.
        async with hub.engine.begin() as conn:
            ack = CommandAck(
                cmd_id=cmd["cmd_id"], device_id="pole-1", state="succeeded", detail="played",
                ts=clock(),
            )  # fmt: skip
            assert await apply_ack(conn, ack, clock())
        r = await http.get(
            f"/api/v1/voice/clips/{p['sha256']}", headers={"Authorization": f"Bearer {p['token']}"}
        )
        assert r.status_code == 401

        # The same message again: the same clip (stored once), a new token.
        again = (
            await http.post(
                "/api/v1/devices/pole-1/voice", content=recorded(tmp_path, 1.5), headers=as_op
            )
        ).json()
        assert again["params"]["sha256"] == p["sha256"]
        assert again["params"]["token"] != p["token"]
        assert len(list((tmp_path / "hub" / "voice").glob("*.wav"))) == 1

        # Ogg from Firefox's MediaRecorder is taken too.
        ogg = await http.post(
            "/api/v1/devices/pole-1/voice", content=recorded(tmp_path, 1.0, "ogg"), headers=as_op
        )
        assert ogg.status_code == 202, ogg.text

        refusals = {
            b"": "empty",
            b"hello, this is no audio": "not WebM, Ogg or WAV",
            recorded(tmp_path, 1.0)[:300]: "could not be decoded",
            recorded(tmp_path, 0.1): "at least 0.3 s",
        }
        for body, reason in refusals.items():
            r = await http.post("/api/v1/devices/pole-1/voice", content=body, headers=as_op)
            assert r.status_code == 422, (reason, r.text)
            assert reason in r.json()["detail"]
        r = await http.post(
            "/api/v1/devices/pole-9/voice", content=recorded(tmp_path, 1.0), headers=as_op
        )
        assert r.status_code == 404
        r = await http.post(
            f"/api/v1/devices/pole-1/voice?case_id={case_id + 1}",
            content=recorded(tmp_path, 1.0),
            headers=as_op,
        )
        assert r.status_code == 404
        assert f"no case {case_id + 1}" in r.json()["detail"]
        r = await http.post(
            "/api/v1/devices/pole-1/voice",
            content=recorded(tmp_path, 1.0),
            headers={"Authorization": f"Bearer {dispatcher}"},
        )
        assert r.status_code == 403
        # The raw commands route cannot send a clip without its store and token.
        r = await http.post(
            "/api/v1/devices/pole-1/commands",
            headers=as_op,
            json={"kind": "speaker.play_clip", "params": {}},
        )
        assert r.status_code == 422
        assert "/voice" in r.json()["detail"]
