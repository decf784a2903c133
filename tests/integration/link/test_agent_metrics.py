"""The unit's /metrics: scraped from a running agent, its figures move with its work."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge_agent.agent.metrics import AgentFigures, families
from edge_agent.config import load_config
from edge_agent.link.outbox import OutboxStats
from edge_agent.protocol import CameraHealth
from edge_agent.runner import Agent
from edge_agent.vision.pipeline import ModelFigures, VisionStats
from simulators.mosquitto import free_port
from simulators.polling import eventually

pytestmark = pytest.mark.integration


def _model(folder: Path) -> Path:
    """A constant detector that sees one stall in every frame."""
    import numpy as np

    from edge_agent.vision.testing import write_constant_model

    out = np.zeros((1, 5, 20), np.float32)
    out[0, :5, 0] = (100, 200, 60, 40, 0.9)
    return Path(write_constant_model(folder, out, ("stall",)))


def _clip(path: Path) -> Path:
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 5.0, (320, 240))
    for i in range(150):  # 30 s at the camera's 5 fps: frames keep coming while we scrape
        writer.write(np.full((240, 320, 3), 60 + i % 10 * 10, np.uint8))
    writer.release()
    return path


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_families_name_every_camera_and_model() -> None:
    figures = AgentFigures(
        uptime_s=12.0,
        outbox=OutboxStats(depth=3, bytes=2048, evicted=1, expired=0),
        link_connected=False,
        vision=VisionStats(
            fps=4.0,
            inference_ms=38.0,
            dropped_frames=2,
            cameras={"mast": CameraHealth(state="ok", fps=5.0, dropped=2)},
            frames=120,
            events=1,
            models={"street": ModelFigures(100, 2.5, 0), "general": ModelFigures(40, 1.6, 3)},
        ),
        speaker_playing=True,
        speaker_plays=2,
        restarts={"gps": 1},
    )
    lines = "\n".join(
        f"{s.name}{s.labels} {s.value}" for family in families(figures) for s in family.samples
    )
    for expected in (
        "xh_edge_outbox_depth{} 3",
        "xh_edge_outbox_evicted_total{} 1",
        "xh_edge_link_connected{} 0",
        "xh_edge_camera_fps{'camera': 'mast'} 5.0",
        "xh_edge_camera_dropped_frames_total{'camera': 'mast'} 2",
        "xh_edge_camera_up{'camera': 'mast', 'state': 'ok'} 1",
        "xh_edge_model_inference_seconds_count{'model': 'general'} 40",
        "xh_edge_model_inference_seconds_sum{'model': 'street'} 2.5",
        "xh_edge_model_failures_total{'model': 'general'} 3",
        "xh_edge_stage_restarts_total{'stage': 'gps'} 1",
        "xh_edge_speaker_playing{} 1",
    ):
        assert expected in lines, expected


async def test_a_running_unit_serves_figures_that_move(
    mosquitto, agent_config, tmp_path: Path
) -> None:
    model = await asyncio.to_thread(_model, tmp_path / "model")
    clip = await asyncio.to_thread(_clip, tmp_path / "clip.avi")
    port = free_port()
    config = agent_config(
        mosquitto,
        metrics={"port": port},
        vision={
            "detector": {"model": str(model), "intra_threads": 1},
            "cameras": [{"id": "mast", "source": str(clip), "detect_fps": 5}],
        },
    )
    agent = Agent(load_config(config), config_path=config)
    task = asyncio.create_task(agent.run())
    try:

        async def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            try:
                return await asyncio.to_thread(_scrape, port)
            except httpx.HTTPError:
                return {}

        def frames(s: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
            return s.get(("xh_edge_frames_total", ()), 0.0)

        first = await eventually(
            lambda: _when(scrape(), lambda s: frames(s) > 0 and s[("xh_edge_link_connected", ())]),
            20,
            every_s=0.1,
        )
        assert first, "no frames counted or no link on /metrics"
        assert first[("xh_edge_camera_up", (("camera", "mast"), ("state", "ok")))] == 1
        assert ("xh_edge_outbox_depth", ()) in first
        later = await eventually(lambda: _when(scrape(), lambda s: frames(s) > frames(first)), 20)
        assert later, "the frame counter did not move"
        mosquitto.stop()
        offline = await eventually(
            lambda: _when(scrape(), lambda s: s.get(("xh_edge_link_connected", ())) == 0), 20
        )
        assert offline, "the link gauge did not drop with the broker"
    finally:
        agent.request_stop()
        await asyncio.wait_for(task, 20)
    with pytest.raises(httpx.HTTPError):
        await asyncio.to_thread(_scrape, port)  # the endpoint closes with the agent


async def _when(scraping, ok):  # type: ignore[no-untyped-def]
    """The scrape if ``ok`` holds for it, else an empty dict."""
    found = await scraping
    return found if found and ok(found) else {}


async def test_a_taken_port_leaves_the_unit_working_and_says_so(
    mosquitto, agent_config, recorder_factory
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = agent_config(mosquitto, metrics={"port": port})
        recorder = await asyncio.to_thread(recorder_factory, mosquitto)
        agent = Agent(load_config(config), config_path=config)
        task = asyncio.create_task(agent.run())
        try:
            status = await eventually(
                lambda: [s for s in recorder.on("status") if s["state"] == "degraded"], 20
            )
            assert status, "no degraded status"
            assert any(p.startswith("metrics: cannot serve") for p in agent.problems)
        finally:
            agent.request_stop()
            await asyncio.wait_for(task, 20)
