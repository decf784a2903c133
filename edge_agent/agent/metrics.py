"""The unit's figures in Prometheus' text format, on a port of its own (``metrics.port``).

A fleet's operations team scrapes each unit (over the VPN the units already sit on) for
what the heartbeat summarises: frames, fps and drops per camera, inference time and
failures per model, the outbox's depth, bytes and evictions, whether the broker link is
up, the speaker, and stage restarts. Names start with ``xh_edge_``.

The figures are gathered on the agent's event loop (the HTTP server runs in its own
thread and asks the loop for a snapshot), so nothing is read while the loop changes it.
:func:`families` is the pure part: a snapshot in, metric families out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edge_agent.link.outbox import OutboxStats

if TYPE_CHECKING:
    from edge_agent.vision.pipeline import VisionStats

__all__ = ["AgentFigures", "MetricsServer", "families"]

#: How long a scrape waits for the event loop before it answers without figures.
GATHER_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class AgentFigures:
    """A snapshot of the unit, taken on the event loop."""

    uptime_s: float
    outbox: OutboxStats
    link_connected: bool
    vision: VisionStats | None = None
    speaker_playing: bool = False
    speaker_plays: int = 0
    restarts: dict[str, int] = field(default_factory=dict)


def families(figures: AgentFigures) -> Iterator[Any]:
    """The metric families of a snapshot (pure: no I/O, no clock)."""
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        SummaryMetricFamily,
    )

    yield GaugeMetricFamily(
        "xh_edge_uptime_seconds", "Seconds since the agent started", figures.uptime_s
    )
    yield GaugeMetricFamily(
        "xh_edge_link_connected",
        "1 while the broker has accepted the link",
        int(figures.link_connected),
    )
    box = figures.outbox
    yield GaugeMetricFamily("xh_edge_outbox_depth", "Messages waiting in the outbox", box.depth)
    yield GaugeMetricFamily("xh_edge_outbox_bytes", "Bytes waiting in the outbox", box.bytes)
    yield CounterMetricFamily(
        "xh_edge_outbox_evicted", "Messages dropped because the outbox was full", box.evicted
    )
    yield CounterMetricFamily(
        "xh_edge_outbox_expired", "Messages dropped because they outlived the TTL", box.expired
    )
    yield GaugeMetricFamily(
        "xh_edge_speaker_playing", "1 while the speaker plays", int(figures.speaker_playing)
    )
    yield CounterMetricFamily(
        "xh_edge_speaker_plays", "Playbacks started since the agent started", figures.speaker_plays
    )
    restarts = CounterMetricFamily(
        "xh_edge_stage_restarts", "Restarts of a crashed stage", labels=["stage"]
    )
    for stage, n in sorted(figures.restarts.items()):
        restarts.add_metric([stage], n)
    yield restarts
    vision = figures.vision
    if vision is None:
        return
    yield CounterMetricFamily("xh_edge_frames", "Frames the detector processed", vision.frames)
    yield CounterMetricFamily("xh_edge_events", "Events the rules raised", vision.events)
    yield GaugeMetricFamily("xh_edge_fps", "Frames processed per second (last 10 s)", vision.fps)
    yield GaugeMetricFamily(
        "xh_edge_inference_ms", "Mean inference time per frame (recent frames)", vision.inference_ms
    )
    fps = GaugeMetricFamily(
        "xh_edge_camera_fps", "Frames a camera delivers per second", labels=["camera"]
    )
    dropped = CounterMetricFamily(
        "xh_edge_camera_dropped_frames",
        "Frames dropped because inference was behind",
        labels=["camera"],
    )
    up = GaugeMetricFamily(
        "xh_edge_camera_up",
        "1 while the camera delivers frames (state: ok, stalled, reconnecting, stopped)",
        labels=["camera", "state"],
    )
    for camera, health in sorted(vision.cameras.items()):
        fps.add_metric([camera], health.fps)
        dropped.add_metric([camera], health.dropped)
        up.add_metric([camera, health.state], int(health.state == "ok"))
    yield fps
    yield dropped
    yield up
    exempted = GaugeMetricFamily(
        "xh_edge_rule_exempted",
        "1 while a service day (an exemption the hub pushed) keeps a rule silent",
        labels=["camera", "rule", "service_day"],
    )
    for key, name in sorted(vision.exempted.items()):
        camera, _, rule = key.partition("/")
        exempted.add_metric([camera, rule, name], 1)
    yield exempted
    if vision.models:
        seconds = SummaryMetricFamily(
            "xh_edge_model_inference_seconds",
            "Inference time per model (sum) over the frames and tiles it ran on (count)",
            labels=["model"],
        )
        failures = CounterMetricFamily(
            "xh_edge_model_failures", "Inferences a model failed", labels=["model"]
        )
        for name, model in sorted(vision.models.items()):
            seconds.add_metric([name], count_value=model.frames, sum_value=model.seconds)
            failures.add_metric([name], model.errors)
        yield seconds
        yield failures


class _Collector:
    def __init__(self, gather: Callable[[], AgentFigures | None]) -> None:
        self._gather = gather

    def collect(self) -> Iterator[Any]:
        figures = self._gather()
        if figures is not None:
            yield from families(figures)


class MetricsServer:
    """The HTTP endpoint (prometheus_client's server in a thread) for one agent."""

    def __init__(
        self,
        snapshot: Callable[[], AgentFigures],
        loop: asyncio.AbstractEventLoop,
        *,
        host: str,
        port: int,
    ) -> None:
        from prometheus_client import CollectorRegistry, start_http_server

        self._snapshot = snapshot
        self._loop = loop
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self._gather))
        self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        self.port = int(self._server.server_address[1])

    def _gather(self) -> AgentFigures | None:
        async def take() -> AgentFigures:
            return self._snapshot()

        try:
            future = asyncio.run_coroutine_threadsafe(take(), self._loop)
            return future.result(GATHER_TIMEOUT_S)
        except (TimeoutError, RuntimeError):
            return None  # the loop is busy or stopping: answer with no figures

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
