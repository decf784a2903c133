"""Fixtures for the vision integration tests: an MJPEG camera over HTTP, clips, models."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.vision.testing import write_constant_model

LABELS = ("person", "car", "bus", "truck", "stall", "goods", "garbage", "bin", "bin_overflow",
          "clothes", "debris")  # fmt: skip


class MjpegCamera:
    """A fake IP camera serving MJPEG over HTTP on a fixed port; stop and start at will."""

    def __init__(self, port: int, fps: float = 10.0) -> None:
        self.port = port
        self.fps = fps
        self._server: ThreadingHTTPServer | None = None
        self._stopping = threading.Event()
        image = np.full((360, 640, 3), 90, np.uint8)
        self._jpeg = cv2.imencode(".jpg", image)[1].tobytes()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> None:
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                try:
                    while not camera._stopping.is_set():
                        self.wfile.write(head % len(camera._jpeg))
                        self.wfile.write(camera._jpeg + b"\r\n")
                        time.sleep(1.0 / camera.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._stopping.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._stopping.set()
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mjpeg_camera() -> Iterator[MjpegCamera]:
    """A fake MJPEG camera on a free port, not started."""
    cam = MjpegCamera(free_port())
    yield cam
    cam.stop()


@pytest.fixture
def stall_model(tmp_path: Path) -> Path:
    """A constant ONNX model that always sees one stall, low in the frame's left half."""
    out = np.zeros((1, 4 + len(LABELS), 20), np.float32)
    out[0, :4, 0] = (100, 200, 60, 40)  # input pixels; bottom-centre well inside 'pavement'
    out[0, 4 + LABELS.index("stall"), 0] = 0.9
    return write_constant_model(tmp_path / "model", out, LABELS)


@pytest.fixture
def gray_clip(tmp_path: Path) -> Path:
    """A 2-second 320x240 clip at 5 fps."""
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 5.0, (320, 240))
    for i in range(10):
        writer.write(np.full((240, 320, 3), 60 + i * 10, np.uint8))
    writer.release()
    return path


PAVEMENT = [[0.0, 0.4], [1.0, 0.4], [1.0, 1.0], [0.0, 1.0]]
