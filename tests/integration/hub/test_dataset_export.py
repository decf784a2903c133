"""Retraining sets from verdicts: what each verdict makes of an event, the camera-day
split, blurred faces, the audit of every frame read, and who may export."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
import sqlalchemy as sa
import yaml

from central_hub.db.schema import frame_reads
from central_hub.domain.labels import Verdict
from central_hub.domain.workflow import Action, Role
from central_hub.errors import InvalidInputError
from central_hub.hub import Hub
from central_hub.services.dataset import ExportOptions, export_dataset, split_of, yolo_lines
from central_hub.testing import FakeClock, ListSource, inbound, make_event
from central_hub.workers.ingest import IngestWorker
from edge_agent.protocol import Event

pytestmark = pytest.mark.integration

CLASSES = ("person", "car", "goods", "stall")
FACE = (0.0, 0.0, 0.5, 0.5)


def noisy_jpeg(seed: int) -> bytes:
    image = np.random.default_rng(seed).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return bytes(buf)


def with_faces(event: Event) -> Event:
    assert event.frame is not None
    return event.model_copy(update={"frame": event.frame.model_copy(update={"faces": (FACE,)})})


def test_a_camera_day_always_goes_to_one_side_and_the_share_holds() -> None:
    days = [date(2026, 11, 1) + timedelta(days=n) for n in range(60)]
    sides = {(c, d): split_of(c, d, 0.2) for c in ("pole-1/cam-1", "pole-2/cam-1") for d in days}
    assert all(split_of(c, d, 0.2) == s for (c, d), s in sides.items())  # stable
    share = sum(s == "val" for s in sides.values()) / len(sides)
    assert 0.08 < share < 0.35
    assert {split_of("pole-1/cam-1", d, 0.0) for d in days} == {"train"}


def test_yolo_lines_are_centre_and_size_in_the_models_classes() -> None:
    lines, dropped = yolo_lines(
        [
            {"label": "goods", "box": [0.1, 0.2, 0.3, 0.6]},
            {"label": "umbrella", "box": [0.0, 0.0, 1.0, 1.0]},
        ],
        CLASSES,
    )
    assert lines == ["2 0.200000 0.400000 0.200000 0.400000"]
    assert dropped == ["umbrella"]


async def test_export_from_verdicts(hub: Hub, clock: FakeClock, tmp_path: Path) -> None:
    worker = IngestWorker(
        hub.engine, ListSource(), hub.evidence, hub.filer, clock, frames=hub.frames
    )
    places = [(28.640 + 0.002 * n, 121.255) for n in range(5)]
    events = [
        with_faces(
            make_event(f"pole-{n}", seq=1, at=clock.now, lat=lat, lon=lon, frame=noisy_jpeg(n))
        )
        for n, (lat, lon) in enumerate(places)
    ]
    no_frame = make_event("pole-9", seq=1, at=clock.now, lat=28.650, lon=121.265)
    await worker.process([inbound(e) for e in [*events, no_frame]])
    admin, _ = await hub.users.add("root", Role.ADMIN)
    case_of = {e.event_id: (await hub.records.event(e.event_id)).case_id for e in events}

    async def decide(event: Event, action: Action, verdict: Verdict | None = None) -> None:
        case_id = case_of[event.event_id]
        assert case_id is not None
        await hub.cases.transition(case_id, Action.START_VERIFY, admin)
        await hub.cases.transition(case_id, action, admin, verdict=verdict)

    await decide(events[0], Action.VERIFY)
    await decide(events[1], Action.CANCEL, Verdict.WRONG_OBJECT)
    await decide(events[2], Action.CANCEL, Verdict.DUPLICATE)
    await decide(events[3], Action.CANCEL, Verdict.OTHER)
    no_frame_case = (await hub.records.event(no_frame.event_id)).case_id
    assert no_frame_case is not None
    await hub.cases.transition(no_frame_case, Action.START_VERIFY, admin)
    await hub.cases.transition(no_frame_case, Action.VERIFY, admin)
    # events[4] stays undecided: no label, not exported.

    out = tmp_path / "set"
    options = ExportOptions(
        since=clock.now - timedelta(hours=1),
        until=clock.now + timedelta(hours=1),
        out=out,
        classes=CLASSES,
        by="root",
    )
    report = await export_dataset(hub.engine, hub.frames, options, clock.now)
    exported = {p.stem: p for p in out.glob("images/*/*.jpg")}
    assert set(exported) == {events[0].event_id, events[1].event_id, events[2].event_id}
    labels = {p.stem: p.read_text() for p in out.glob("labels/*/*.txt")}
    assert labels[events[0].event_id] == "2 0.200000 0.250000 0.200000 0.300000\n"
    assert labels[events[2].event_id] == labels[events[0].event_id]  # duplicate: boxes real
    assert labels[events[1].event_id] == ""  # wrong object: a hard negative
    assert sum(report.negatives.values()) == 1
    assert report.left_out == {"verdict false_positive:other": 1, "no clean frame": 1}
    assert not report.groups["train"] & report.groups["val"]
    # Faces blurred where the unit said they are, the rest of the frame as it was.
    stored = cv2.imdecode(np.frombuffer(noisy_jpeg(0), np.uint8), 1).astype(float)
    got = cv2.imread(str(exported[events[0].event_id])).astype(float)
    assert np.std(got[:60, :80] - stored[:60, :80]) > 20  # the face region, blurred
    assert np.abs(got[70:, 90:] - stored[70:, 90:]).mean() < 6  # elsewhere: re-encoding only
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == dict(enumerate(CLASSES))
    card = (out / "DATA_CARD.md").read_text()
    assert "Exported" in card
    assert "by root" in card
    assert "| false_positive:wrong_object | 1 |" in card
    async with hub.engine.connect() as conn:
        reads = (await conn.execute(sa.select(frame_reads.c.user_name))).scalars().all()
    assert reads == ["dataset-export:root"] * 3
    with pytest.raises(InvalidInputError, match="not empty"):
        await export_dataset(hub.engine, hub.frames, options, clock.now)


def test_only_an_admin_exports_from_the_command_line(tmp_path: Path) -> None:
    data = tmp_path / "hub"
    hub = [sys.executable, "-m", "central_hub.cli", "--data-dir", str(data)]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*hub, *args], capture_output=True, text=True, timeout=120, check=False
        )

    assert run("user", "add", "li.na", "--role", "operator").returncode == 0
    assert run("user", "add", "root", "--role", "admin").returncode == 0
    export = ["dataset", "export", "--since", "2026-12-01", "--until", "2026-12-05"]
    refused = run(*export, "--out", str(tmp_path / "a"), "--by", "li.na")
    assert refused.returncode == 1
    assert "only admins export datasets" in refused.stderr
    done = run(*export, "--out", str(tmp_path / "b"), "--by", "root")
    assert done.returncode == 0, done.stderr
    assert "0 train and 0 val images" in done.stdout
    assert (tmp_path / "b" / "DATA_CARD.md").is_file()
