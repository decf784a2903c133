"""Edge vision pipeline benchmark.

1. ``raw_fps``: a bare onnxruntime loop (``session.run`` on already letterboxed inputs)
   over the same rendered 1280x720 scenario frames and the same model and thread counts
   as ``pipeline_fps``: the full per-frame chain (letterbox, inference, decode and NMS,
   tracker, rules, evidence when a rule fires). ``ratio`` = pipeline / raw (goal >= 0.90).
   The two alternate in blocks of 5 frames so both see the same load on a shared box.
2. ``cameras_at_5fps``: the most cameras the box sustains at 5 fps each with under 1% of
   frames lost, each camera reading its own 1280x720 video file rendered from a scenario
   and paced in real time (so decoding costs what a stream costs), through the real
   :class:`VisionService` in a child process that imports only what the agent does and
   applies the agent's memory settings first. The search starts at 8 cameras and bounds
   its own time.
3. Memory, as the kernel reports it for that child process (``/proc/PID/status``):

   - ``rss_mb``: peak resident memory (``VmHWM``: the highest ``VmRSS`` over the child's
     whole life: start-up, model load, warm-up and the measured seconds) with the goal's
     8 cameras at 5 fps each (goal <= 300 MB). ``rss_anon_mb`` and ``rss_file_mb`` split
     the highest once-a-second ``VmRSS`` sample of that run into private memory and
     mapped files (shared libraries, whose resident share also depends on the page cache).
   - ``rss_mb_at_max``: the same peak at ``cameras_at_5fps`` cameras.
   - ``loss_at_8`` / ``loss_at_max``: frames lost in those two runs;
     ``cpu_ms_per_frame_at_8``: the child's CPU time per processed frame at 8 cameras.

Prints one JSON line at the end::

    {"bench":"edge_pipeline","raw_fps":..,"pipeline_fps":..,"ratio":..,"cameras_at_5fps":..,
     "rss_mb":..,"rss_anon_mb":..,"rss_file_mb":..,"loss_at_8":..,"cpu_ms_per_frame_at_8":..,
     "rss_mb_at_max":..,"loss_at_max":..,...}

Usage: ``.venv/bin/python bench/edge_pipeline.py [--model models/street-detector]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DETECT_FPS = 5.0
CLIP_SCENARIOS = ("market_street", "parking_street", "shop_front", "passers_by")


def log(message: str) -> None:
    print(f"[edge_pipeline] {message}", file=sys.stderr, flush=True)


def rss_mb(field: str = "VmRSS") -> float:
    """Resident memory of this process in MB: ``VmRSS`` now, ``VmHWM`` at its peak."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


# --------------------------------------------------------------------------- part 1


def measure_throughput(model: Path, frames: int, threads: int, rounds: int) -> dict[str, float]:
    import numpy as np
    import onnxruntime as ort

    from edge_agent.vision.config import DetectorConfig, VisionConfig
    from edge_agent.vision.decode import letterbox
    from edge_agent.vision.frames import Frame
    from edge_agent.vision.memory import apply_memory_settings
    from edge_agent.vision.onnx_detector import OnnxDetector
    from edge_agent.vision.pipeline import CameraPipeline, EventFactory
    from edge_agent.vision.scenario_cameras import scenario_camera
    from simulators import scenarios

    apply_memory_settings(VisionConfig().memory)  # the agent's defaults, as at its start
    sc = scenarios.load("market_street", width=1280, height=720, fps=DETECT_FPS)
    step = max(1, sc.frame_count() // frames)
    images = [sc.frame_at(i).image for i in range(0, step * frames, step)][:frames]
    log(f"rendered {len(images)} frames of market_street at 1280x720")

    detector_cfg = DetectorConfig(model=model, intra_threads=threads, inter_threads=1)
    detector = OnnxDetector(detector_cfg)
    manifest = detector.manifest

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(
        str(manifest.model_path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    name = session.get_inputs()[0].name
    tensors = [letterbox(img, manifest.input_size, rgb=manifest.rgb)[0] for img in images]

    camera = scenario_camera(sc, camera_id="bench")
    config = VisionConfig(cameras=(camera,))
    seq = iter(range(1, 1 << 40))
    factory = EventFactory(
        config,
        device_id="bench",
        next_seq=lambda: next(seq),
        location=lambda: None,
        model=detector.model_ref,
    )
    start_ts = datetime(2026, 5, 1, 1, 0, tzinfo=UTC)

    block = 5
    pipe = CameraPipeline(camera, timezone=config.timezone)
    events = 0
    counter = 0

    def raw_block(start: int) -> float:
        began = time.perf_counter()
        for tensor in tensors[start : start + block]:
            session.run(None, {name: tensor})
        return time.perf_counter() - began

    def pipeline_block(start: int) -> float:
        nonlocal events, counter
        began = time.perf_counter()
        for img in images[start : start + block]:
            ts = start_ts + timedelta(seconds=counter / DETECT_FPS)
            frame = Frame("bench", counter, ts, img)
            counter += 1
            [dets] = detector.detect([frame])
            for violation in pipe.step(frame, dets):
                if factory.build(violation, camera) is not None:
                    events += 1
        return time.perf_counter() - began

    for start in range(0, len(images), block):  # warm-up
        raw_block(start)
        pipeline_block(start)
    # Small blocks, alternating: the box is shared with other work, and alternating
    # makes both loops see the same load. Best of the rounds for each.
    raws, pipes = [], []
    for _ in range(rounds):
        raw_s = pipe_s = 0.0
        for start in range(0, len(images), block):
            raw_s += raw_block(start)
            pipe_s += pipeline_block(start)
        raws.append(len(images) / raw_s)
        pipes.append(len(images) / pipe_s)
    raw_fps, pipe_fps = max(raws), max(pipes)
    log(
        f"raw {np.round(raws, 1).tolist()} fps, pipeline {np.round(pipes, 1).tolist()} fps, "
        f"{events} event(s) built"
    )
    return {"raw_fps": raw_fps, "pipeline_fps": pipe_fps}


# --------------------------------------------------------------------------- part 2


def render_clips(folder: Path, seconds: float) -> list[Path]:
    from simulators import scenarios

    clips = []
    for name in CLIP_SCENARIOS:
        sc = scenarios.load(name, width=1280, height=720, fps=DETECT_FPS)
        path = folder / f"{name}.mp4"
        n = scenarios.write_video(sc, path, max_frames=int(seconds * DETECT_FPS))
        clips.append(path)
        log(f"rendered {path.name}: {n} frames")
    return clips


def trial_config(
    n: int, clips: list[Path], folder: Path, model: Path, threads: int, max_batch: int, workers: int
) -> Any:
    from edge_agent.vision.config import VisionConfig
    from edge_agent.vision.scenario_cameras import scenario_camera
    from simulators import scenarios

    cams = []
    for i in range(n):
        clip = clips[i % len(clips)]
        own = folder / f"cam{i}.mp4"  # every camera reads its own file, with its own decoder
        if not own.exists():
            shutil.copyfile(clip, own)
        sc = scenarios.load(clip.stem, width=1280, height=720, fps=DETECT_FPS)
        cams.append(
            scenario_camera(sc, camera_id=f"cam{i}", source=str(own), detect_fps=DETECT_FPS)
        )
    return VisionConfig.model_validate(
        {
            "detector": {
                "model": str(model),
                "intra_threads": threads,
                "inter_threads": 1,
                "max_batch": max_batch,
                "workers": workers,
            },
            "cameras": [c.model_dump() for c in cams],
        }
    )


async def run_trial(config: Any, warmup: float, seconds: float) -> dict[str, Any]:
    from edge_agent import protocol
    from edge_agent.vision.pipeline import VisionService

    seq = iter(range(1, 1 << 40))
    service = VisionService(
        config,
        device_id="bench",
        next_seq=lambda: next(seq),
        location=lambda: protocol.Location(lat=28.6, lon=121.2, source="gps"),
        plate_reader=None,
    )
    events: list[protocol.Event] = []

    async def sink(event: protocol.Event) -> None:
        events.append(event)

    task = asyncio.create_task(service.run(sink))
    await asyncio.sleep(warmup)
    before = service.stats()
    t0 = time.monotonic()
    cpu0 = time.process_time()
    samples = []  # (VmRSS, RssAnon, RssFile) once a second
    for _ in range(int(seconds)):
        await asyncio.sleep(1.0)
        samples.append((rss_mb(), rss_mb("RssAnon"), rss_mb("RssFile")))
    await asyncio.sleep(seconds - int(seconds))
    after = service.stats()
    elapsed = time.monotonic() - t0
    cpu_s = time.process_time() - cpu0
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    n = len(config.cameras)
    expected = n * DETECT_FPS * elapsed
    processed = after.frames - before.frames
    top = max(samples)
    return {
        "cameras": n,
        "expected": round(expected, 1),
        "processed": processed,
        "loss": round(max(0.0, 1.0 - processed / expected), 4),
        "board_dropped": after.dropped_frames - before.dropped_frames,
        "inference_ms": after.inference_ms,
        # CPU time of the whole process per processed frame: what each frame costs,
        # steadier than the loss on a shared box.
        "cpu_ms_per_frame": round(1000.0 * cpu_s / max(processed, 1), 1),
        "events": len(events),
        # The peak over the process's whole life, as the kernel counts it.
        "rss_peak_mb": round(rss_mb("VmHWM"), 1),
        # The highest once-a-second sample while measuring, split into private memory
        # and mapped files (libraries).
        "rss_sampled_mb": round(top[0], 1),
        "rss_anon_mb": round(top[1], 1),
        "rss_file_mb": round(top[2], 1),
    }


def trial_in_child(args: argparse.Namespace, n: int, videos: Path) -> dict[str, Any]:
    clips = [videos / f"{name}.mp4" for name in CLIP_SCENARIOS]
    config = trial_config(
        n, clips, videos, args.model, args.service_threads, args.max_batch, args.workers
    )
    (videos / f"config-{n}.json").write_text(config.model_dump_json())
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--trial",
        str(n),
        "--videos",
        str(videos),
        "--trial-seconds",
        str(args.trial_seconds),
    ]
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=args.trial_seconds + 120, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"trial with {n} cameras failed:\n{out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    log(f"trial {n} cameras: {result}")
    return result


def search_cameras(
    args: argparse.Namespace, videos: Path
) -> tuple[int, dict[str, Any], dict[str, Any]]:
    deadline = time.monotonic() + args.budget_s
    results: dict[int, dict[str, Any]] = {}

    def passes(n: int) -> bool:
        if n not in results:
            results[n] = trial_in_child(args, n, videos)
            if results[n]["loss"] >= 0.01 and time.monotonic() + args.trial_seconds < deadline:
                # The box is shared: a load spike from elsewhere should not decide alone.
                again = trial_in_child(args, n, videos)
                if again["loss"] < results[n]["loss"]:
                    results[n] = again
        return bool(results[n]["loss"] < 0.01)

    n = 8
    good, bad = 0, None
    while time.monotonic() + args.trial_seconds + 15 < deadline:
        if passes(n):
            good = n
            n = n * 2 if bad is None else (n + bad) // 2
        else:
            bad = n
            n = (good + n) // 2
        if n <= good or (bad is not None and n >= bad) or n < 1:
            break
    best = results[good] if good else min(results.values(), key=lambda r: r["cameras"])
    return good, best, results[8]  # the search starts at 8: the goal's camera count


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "street-detector")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    parser.add_argument("--max-batch", type=int, default=4, help="frames per inference")
    parser.add_argument(
        "--workers", type=int, default=2, help="inference workers in the camera trials"
    )
    parser.add_argument(
        "--service-threads", type=int, default=1, help="intra-op threads per worker in trials"
    )
    parser.add_argument("--frames", type=int, default=100, help="frames for the fps comparison")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clip-seconds", type=float, default=30.0)
    parser.add_argument("--trial-seconds", type=float, default=12.0)
    parser.add_argument("--budget-s", type=float, default=150.0, help="time for the search")
    parser.add_argument("--trial", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--videos", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.trial is not None:  # child: one camera-count trial, only the agent's imports
        from edge_agent.vision.config import VisionConfig
        from edge_agent.vision.memory import apply_memory_settings

        text = (args.videos / f"config-{args.trial}.json").read_text()
        config = VisionConfig.model_validate_json(text)
        # As the agent does at start, before any thread exists (edge_agent.runner).
        apply_memory_settings(config.memory)
        result = asyncio.run(run_trial(config, warmup=4.0, seconds=args.trial_seconds))
        print(json.dumps(result))
        return 0

    if not (args.model / "model.onnx").is_file() and not args.model.is_file():
        log(f"no model at {args.model}")
        return 2
    began = time.monotonic()
    figures = measure_throughput(args.model, args.frames, args.threads, args.rounds)
    with tempfile.TemporaryDirectory(prefix="xh-bench-") as tmp:
        videos = Path(tmp)
        render_clips(videos, args.clip_seconds)
        cameras, best, at8 = search_cameras(args, videos)
    out = {
        "bench": "edge_pipeline",
        "raw_fps": round(figures["raw_fps"], 1),
        "pipeline_fps": round(figures["pipeline_fps"], 1),
        "ratio": round(figures["pipeline_fps"] / figures["raw_fps"], 3),
        "cameras_at_5fps": cameras,
        # The memory goal is stated at 8 cameras: peak RSS of the agent process there.
        "rss_mb": at8["rss_peak_mb"],
        "rss_anon_mb": at8["rss_anon_mb"],
        "rss_file_mb": at8["rss_file_mb"],
        "loss_at_8": at8["loss"],
        "cpu_ms_per_frame_at_8": at8["cpu_ms_per_frame"],
        # The same peak at the most cameras that passed.
        "rss_mb_at_max": best["rss_peak_mb"],
        "loss_at_max": best["loss"],
        "model": str(args.model.name),
        "threads": args.threads,
        "trial_workers": args.workers,
        "trial_threads": args.service_threads,
        "max_batch": args.max_batch,
        "cpus": os.cpu_count(),
        "seconds": round(time.monotonic() - began, 1),
    }
    print(json.dumps(out, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
