"""Build the examples of docs/protocol.md with the real code and write the page.

    .venv/bin/python docs/protocol/examples.py [--key HUB_KEY.pem] [--out PATH]

Every message on the page is made here by ``edge_agent.protocol`` (and the ``keys.trust``
ack by the unit's own :class:`~edge_agent.link.trust.TrustStore`), pretty-printed, and put
into the template ``docs/protocol/protocol.md.in`` in place of its ``@@name@@``
placeholders. The commands and the desired config are signed with a fresh throwaway key
each run (never written anywhere), so changing or adding one signed example means running
this script, which re-signs them all; ``--key`` signs with a PEM key of your own instead.
Ids are derived from the examples' names and times, so a run changes only the keys and
signatures of what did not change. ``tests/unit/protocol/test_protocol_doc.py`` checks
the page it writes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import io
import json
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image, ImageDraw
from pydantic import BaseModel

from central_hub.services.provision import render_acl
from edge_agent import protocol as p
from edge_agent.link.trust import TrustStore

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TEMPLATE = HERE / "protocol.md.in"
PAGE = ROOT / "docs" / "protocol.md"

#: The pole unit and the truck unit of the examples.
POLE, TRUCK = "pole-market-01", "truck-07"
#: Pretty-printed lines are at most this wide.
WIDTH = 96
#: The overlap of the ``keys.trust`` example (the default of ``central-hub keys rotate``).
TRUST_OVERLAP = timedelta(days=14)

SPEAKER_CONFIG: dict[str, Any] = {
    "speaker": {
        "backend": "pyaudio",
        "volume": 0.6,
        "phrases": {"no-vending": "请勿占道经营，请尽快离开。"},
        "quiet_hours": {"start": "22:00", "end": "07:00", "min_priority": "operator"},
    },
    "telemetry": {"interval_s": 15},
}
PACKAGE_SHA = "3f" * 32
PACKAGE_URL = "https://hub.example.org/api/v1/packages/" + PACKAGE_SHA


# --------------------------------------------------------------------------- helpers


def at(text: str) -> datetime:
    """A UTC time from ``2026-11-26T08:30:05Z``."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def uuid7(when: str, name: str) -> str:
    """A UUIDv7 for time ``when`` whose random bits come from ``name`` (stable across runs)."""
    ms = int(at(when).timestamp() * 1000)
    rand = int.from_bytes(hashlib.sha256(name.encode()).digest()[:10], "big")
    value = (ms << 80) | (0x7 << 76) | ((rand >> 68) << 64) | (0b10 << 62) | (rand & (2**62 - 1))
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def jpeg(size: tuple[int, int], box: bool) -> str:
    """A small real JPEG (base64), with a red box when ``box`` (an evidence snapshot)."""
    image = Image.new("RGB", size, (90, 110, 120))
    if box:
        w, h = size
        ImageDraw.Draw(image).rectangle([w // 3, h // 2, w // 2, h - 2], outline=(255, 0, 0))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=20, optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def wire(message: BaseModel) -> dict[str, Any]:
    """A message as JSON data, the way the code writes it."""
    data: dict[str, Any] = message.model_dump(mode="json", by_alias=True)
    return data


def pretty(value: Any, indent: int = 0) -> str:
    """JSON with 2-space indents, keeping an object or array on one line when it fits."""
    flat = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    if not isinstance(value, dict | list) or not value or len(flat) + indent <= WIDTH:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, dict):
        items = [
            f"{pad}{json.dumps(k, ensure_ascii=False)}: {pretty(v, indent + 2)}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [pad + pretty(v, indent + 2) for v in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


# --------------------------------------------------------------------------- examples


class Examples:
    """The page's examples, signed with ``key``; :meth:`build` returns them by name."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self.key = key
        #: The next hub key of the ``keys.trust`` example (also throwaway).
        self.next_key = p.generate_signing_key()
        self.snapshot = jpeg((32, 18), box=True)
        self.frame = jpeg((32, 18), box=False)
        self.cmds: dict[str, p.Command] = {}

    def cmd(
        self,
        name: str,
        kind: str,
        params: Mapping[str, Any],
        when: str = "2026-11-26T08:31:00Z",
        ttl: timedelta = timedelta(minutes=10),
    ) -> p.Command:
        """Sign a command for the pole unit and keep it as ``cmd NAME``."""
        command = p.sign_command(
            self.key,
            device_id=POLE,
            kind=kind,
            params=params,
            issued_at=at(when),
            ttl=ttl,
            cmd_id=uuid7(when, f"cmd {name}"),
        )
        self.cmds[name] = command
        return command

    def build(self) -> dict[str, str]:
        """Every placeholder's text."""
        out: dict[str, Any] = {"public_key": p.public_key_b64(self.key)}
        out["event"] = wire(self.event())
        out["event_plate"] = wire(self.event_plate())
        self.commands()
        for name, command in self.cmds.items():
            out[f"cmd {name}"] = wire(command)
        out.update(self.acks())
        out.update(self.device_messages())
        out.update(self.configs())
        texts = {k: v if isinstance(v, str) else pretty(v) for k, v in out.items()}
        texts.update(self.worked_example(self.cmds["speaker.say"]))
        texts["acl"] = render_acl([POLE], ["hub"]).rstrip("\n")
        texts["subs"] = "\n".join(p.hub_subscriptions(None))
        return texts

    def event(self) -> p.Event:
        return p.Event(
            event_id=uuid7("2026-11-26T08:30:05Z", "event"),
            device_id=POLE,
            camera_id="cam-east",
            seq=1842,
            kind="vendor",
            code="0501",
            started_at=at("2026-11-26T08:24:53Z"),
            detected_at=at("2026-11-26T08:30:05.250Z"),
            dwell_s=312.25,
            confidence=0.91,
            objects=(
                p.DetectedObject(
                    label="stall", score=0.91, box=(0.412, 0.553, 0.538, 0.781), track_id=17
                ),
                p.DetectedObject(
                    label="person", score=0.84, box=(0.455, 0.402, 0.501, 0.77), track_id=18
                ),
            ),
            zone="pavement",
            location=p.Location(lat=28.6472, lon=121.2615, source="fixed"),
            snapshot=p.Snapshot(jpeg_b64=self.snapshot, width=32, height=18),
            frame=p.Snapshot(
                jpeg_b64=self.frame, width=32, height=18, faces=((0.46, 0.4, 0.49, 0.47),)
            ),
            model=p.ModelRef(name="street", version="1.2.0"),
            plate=None,
        )

    def event_plate(self) -> p.Event:
        return p.Event(
            event_id=uuid7("2026-11-26T09:12:40Z", "event_plate"),
            device_id=TRUCK,
            camera_id="rear",
            seq=311,
            kind="illegal_parking",
            code="0505",
            started_at=at("2026-11-26T09:02:10Z"),
            detected_at=at("2026-11-26T09:12:40Z"),
            dwell_s=630,
            confidence=0.88,
            objects=(
                p.DetectedObject(label="car", score=0.88, box=(0.21, 0.35, 0.64, 0.92), track_id=4),
            ),
            zone="bus-stop",
            location=p.Location(lat=28.6501, lon=121.2587, source="gps"),
            model=p.ModelRef(name="general", version="yolo11n-1"),
            plate=p.Plate(text="浙J·A1234", score=0.93),
        )

    def commands(self) -> None:
        say = {"text": "请勿占道经营，请尽快离开。", "priority": "operator", "volume": 0.9}
        self.cmd("speaker.say", "speaker.say", say)
        play = {"clip": "no-vending", "priority": "auto"}
        self.cmd("speaker.play", "speaker.play", play, "2026-11-26T08:31:02Z")
        clip = {
            "sha256": "5d41f0c2b7e94a1d3c8e0f6a2b9d4c7e1f3a5b8c0d2e4f6a8b0c2d4e6f8a0b1c",
            "size": 160044,
            "url": "https://hub.example.org/api/v1/voice/clips/"
            "5d41f0c2b7e94a1d3c8e0f6a2b9d4c7e1f3a5b8c0d2e4f6a8b0c2d4e6f8a0b1c",
            "token": "vT3kP9qL2mX7wR4nB8sJ1cF6hD0gZ5yA",
            "priority": "operator",
            "duration_s": 5.0,
            "case_id": 1042,
        }
        self.cmd(
            "speaker.play_clip",
            "speaker.play_clip",
            clip,
            "2026-11-26T08:31:10Z",
            timedelta(minutes=2),
        )
        self.cmd("speaker.stop", "speaker.stop", {}, "2026-11-26T08:31:20Z", timedelta(minutes=1))
        apply = {"version": 5, "config": SPEAKER_CONFIG}
        self.cmd("config.apply", "config.apply", apply, "2026-11-26T08:40:00Z", timedelta(hours=1))
        snap = {"camera_id": "cam-east"}
        self.cmd(
            "snapshot.request",
            "snapshot.request",
            snap,
            "2026-11-26T08:45:00Z",
            timedelta(minutes=2),
        )
        recheck = {
            "camera_id": "cam-parking",
            "zone": "no-parking-box",
            "plate": "浙JA1234",
            "box": [0.41, 0.52, 0.63, 0.81],
        }
        self.cmd(
            "spot.recheck",
            "spot.recheck",
            recheck,
            "2026-11-26T08:55:00Z",
            timedelta(minutes=5),
        )
        live = {"camera_id": "cam-east", "lease_s": 30, "fps": 5, "width": 640}
        self.cmd("live.start", "live.start", live, "2026-11-26T08:50:00Z", timedelta(seconds=30))
        stop = {"camera_id": "cam-east"}
        self.cmd("live.stop", "live.stop", stop, "2026-11-26T08:52:00Z", timedelta(seconds=30))
        install: dict[str, Any] = {
            "slot": "street",
            "url": PACKAGE_URL,
            "token": "Jq3x2mV8kQ0sX4tB7nYw5cR1pL6dF9hA",
            "sha256": PACKAGE_SHA,
            "size": 9512448,
            "name": "street",
            "version": "1.3.0",
        }
        hour = timedelta(hours=1)
        self.cmd("model.install", "model.install", install, "2026-11-26T10:00:00Z", hour)
        shadow = {
            **install,
            "token": "Zr8pQ2wE5tY7uI1oP4aS6dF3gH9jK0lX",
            "shadow": {"cameras": ["cam-east"]},
        }
        self.cmd("model.install+shadow", "model.install", shadow, "2026-11-26T10:05:00Z", hour)
        slot = {"slot": "street"}
        self.cmd("model.rollback", "model.rollback", slot, "2026-11-26T11:00:00Z")
        self.cmd("model.shadow_stop", "model.shadow_stop", slot, "2026-11-26T11:05:00Z")
        # What `central-hub keys rotate` queues: the next key, the current one kept for the
        # overlap, and the longest command life (an offline unit has a day to come back).
        issued = "2026-11-26T12:00:00Z"
        trust = p.trust_params(self.next_key, at(issued) + TRUST_OVERLAP)
        self.cmd("keys.trust", "keys.trust", trust, issued, p.MAX_COMMAND_TTL)

    def acks(self) -> dict[str, Any]:
        say, play = self.cmds["speaker.say"], self.cmds["speaker.play"]
        forged = uuid7("2026-11-26T08:30:00Z", "forged command")
        late = uuid7("2026-11-26T08:30:00Z", "late command")
        rows: list[tuple[str, str, str, str]] = [
            ("received", say.cmd_id, "speaker.say", "2026-11-26T08:31:01Z"),
            ("succeeded", say.cmd_id, "said 13 characters (3.2 s)", "2026-11-26T08:31:05Z"),
            (
                "failed",
                play.cmd_id,
                "speaker is playing say at operator priority, above auto",
                "2026-11-26T08:31:03Z",
            ),
            (
                "rejected",
                forged,
                "bad_signature: signature does not verify with the hub key",
                "2026-11-26T08:31:01Z",
            ),
            (
                "expired",
                late,
                "expired: expired at 2026-11-26T08:41:00+00:00",
                "2026-11-26T08:52:13Z",
            ),
        ]
        out: dict[str, Any] = {
            f"ack {state}": wire(
                p.CommandAck(cmd_id=cmd_id, device_id=POLE, state=state, detail=detail, ts=at(when))
            )
            for state, cmd_id, detail, when in rows
        }
        trust = self.cmds["keys.trust"]
        done = trust.issued_at + timedelta(seconds=2)
        out["ack keys.trust"] = wire(
            p.CommandAck(
                cmd_id=trust.cmd_id,
                device_id=POLE,
                state="succeeded",
                detail=self.trusted(trust, done),
                ts=done,
            )
        )
        return out

    def trusted(self, command: p.Command, now: datetime) -> str:
        """What the unit's own trust store answers to ``command`` (its ack's detail)."""
        configured = p.public_key_b64(self.key)
        with tempfile.TemporaryDirectory() as tmp:
            store = TrustStore(Path(tmp) / "trusted_keys.json", lambda: configured, lambda: now)
            detail = asyncio.run(store.trust(command))
            want = [configured, p.public_key_b64(self.next_key)]
            if store.trusted() != want:
                raise RuntimeError(f"the unit trusts {store.trusted()} after keys.trust")
        return detail

    def device_messages(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for state in ("online", "degraded", "offline"):
            out[f"status {state}"] = wire(
                p.Status(
                    device_id=POLE,
                    state=state,
                    boot_id="5d41c2a9e07b",
                    fw="0.9.4",
                    model="general=yolo11n@1, street=street@1.2.0",
                    config_version=4,
                    ts=at("2026-11-26T07:58:12Z"),
                )
            )
        fix = p.GpsFix(
            ts=at("2026-11-26T08:00:29Z"),
            lat=28.6491,
            lon=121.2602,
            speed_kmh=18.5,
            heading_deg=92.0,
            hdop=0.9,
        )
        out["telemetry"] = wire(
            p.Telemetry(
                device_id=TRUCK,
                ts=at("2026-11-26T08:00:30Z"),
                uptime_s=3600.5,
                fps=4.9,
                inference_ms=14.2,
                outbox_depth=12,
                outbox_bytes=48211,
                evicted=0,
                dropped_frames=3,
                disk_free_mb=5120.0,
                cpu_temp_c=51.5,
                gps=fix,
                cameras={"rear": p.CameraHealth(state="ok", fps=4.9, dropped=3)},
                restarts={"vision": 1},
            )
        )
        points = [
            p.GpsFix(
                ts=at("2026-11-26T08:00:00Z"),
                lat=28.6488,
                lon=121.2597,
                speed_kmh=17.0,
                heading_deg=88.5,
                hdop=0.9,
            ),
            fix.model_copy(update={"ts": at("2026-11-26T08:00:30Z")}),
            p.GpsFix(ts=at("2026-11-26T08:01:00Z"), lat=28.6493, lon=121.2611),
        ]
        track = wire(
            p.Track(device_id=TRUCK, batch_id=uuid7("2026-11-26T08:01:00Z", "track"), points=points)
        )
        # Optional members left out rather than sent as null, as a unit may.
        track["points"] = [{k: v for k, v in pt.items() if v is not None} for pt in track["points"]]
        out["track"] = track
        out["snapshot"] = wire(
            p.SnapshotReply(
                device_id=POLE,
                cmd_id=self.cmds["snapshot.request"].cmd_id,
                camera_id="cam-east",
                snapshot=p.Snapshot(jpeg_b64=self.frame, width=32, height=18),
                ts=at("2026-11-26T08:45:02Z"),
            )
        )
        out["live"] = wire(
            p.LiveFrame(
                device_id=POLE,
                camera_id="cam-east",
                seq=42,
                ts=at("2026-11-26T08:50:09.400Z"),
                jpeg_b64=self.frame,
                width=32,
                height=18,
                fps=5.0,
                zones={"pavement": ((0.0, 0.6), (1.0, 0.6), (1.0, 1.0), (0.0, 1.0))},
                objects=(p.LiveObject(label="stall", score=0.91, box=(0.12, 0.58, 0.4, 0.93)),),
            )
        )
        return out

    def configs(self) -> dict[str, Any]:
        desired = p.sign_desired(self.key, device_id=POLE, version=5, config=SPEAKER_CONFIG)
        reports: list[tuple[int, str, list[str], str]] = [
            (5, "applied", [], "2026-11-26T08:40:03Z"),
            (
                6,
                "rejected",
                [
                    "speaker.volume: Input should be less than or equal to 1 (got 1.5)",
                    "mqtt: cannot be changed by config.apply (re-provision the unit)",
                ],
                "2026-11-26T09:10:00Z",
            ),
            (
                7,
                "rolled_back",
                [
                    "vision: stage crashed within 2 s: camera cam-east: "
                    "cannot open rtsp://10.0.4.21/stream1"
                ],
                "2026-11-26T09:20:00Z",
            ),
        ]
        out: dict[str, Any] = {"config_desired": wire(desired)}
        for version, state, errors, when in reports:
            out[f"reported {state}"] = wire(
                p.ConfigReported(
                    device_id=POLE, version=version, state=state, errors=errors, ts=at(when)
                )
            )
        return out

    @staticmethod
    def worked_example(command: p.Command) -> dict[str, str]:
        """§8.2: the command as published, its signed bytes, their length and SHA-256."""
        signed = p.canonical_json(command.model_dump(mode="json", by_alias=True, exclude={"sig"}))
        return {
            "worked_wire": p.encode(command).decode("utf-8"),
            "worked_signed": signed.decode("utf-8"),
            "signed_len": str(len(signed)),
            "signed_sha256": hashlib.sha256(signed).hexdigest(),
        }


# --------------------------------------------------------------------------- page

_PLACEHOLDER = re.compile(r"@@([^@\n]+)@@")


def render(template: str, texts: Mapping[str, str]) -> str:
    """``template`` with every ``@@name@@`` replaced; every name must be known, and every
    example used (a new example needs its place in the template)."""
    names = _PLACEHOLDER.findall(template)
    unknown = sorted(set(names) - texts.keys())
    if unknown:
        raise SystemExit(f"{TEMPLATE.name}: unknown placeholders {unknown}")
    unused = sorted(texts.keys() - set(names))
    if unused:
        raise SystemExit(f"{TEMPLATE.name}: no placeholder for {unused}")
    return _PLACEHOLDER.sub(lambda m: texts[m.group(1)], template)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--key", type=Path, help="sign with this PEM key, not a fresh one")
    parser.add_argument("--out", type=Path, default=PAGE, help=f"default {PAGE}")
    parser.add_argument("--template", type=Path, default=TEMPLATE, help=f"default {TEMPLATE}")
    args = parser.parse_args(argv)
    key = p.load_private_key(args.key) if args.key else p.generate_signing_key()
    page = render(args.template.read_text(encoding="utf-8"), Examples(key).build())
    args.out.write_text(page, encoding="utf-8")
    print(f"wrote {args.out} ({len(page)} characters); run the check:", file=sys.stderr)
    print("  .venv/bin/pytest tests/unit/protocol/test_protocol_doc.py", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
