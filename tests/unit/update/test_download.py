"""Downloading a model archive from a real local HTTP server: resume, restart, refusals."""

from __future__ import annotations

import hashlib
import random
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from edge_agent.backoff import Backoff
from edge_agent.update.download import (
    DownloadError,
    fetch_archive,
    fetch_with_retries,
    part_path,
)

TOKEN = "s3cret-token"
DATA = random.Random(13).randbytes(300_000)
SHA = hashlib.sha256(DATA).hexdigest()


@dataclass
class Served:
    """What the server serves and how it misbehaves; what it saw."""

    data: bytes = DATA
    token: str = TOKEN
    #: Drop the connection after this many body bytes, for the next ``cuts`` requests.
    cut_after: int | None = None
    cuts: int = 1
    ignore_range: bool = False
    #: Send no Content-Length: the body runs until the connection closes.
    send_length: bool = True
    #: Answer the next ``fail_times`` requests with this status.
    fail_status: int | None = None
    fail_times: int = 0
    ranges: list[str | None] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)


class _Server(ThreadingHTTPServer):
    served: Served

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hung up between requests is not news; anything else is."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""

    def _answer(
        self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.served().sent.append(len(body))

    def served(self) -> Served:
        assert isinstance(self.server, _Server)
        return self.server.served

    def do_GET(self) -> None:
        served = self.served()
        served.ranges.append(self.headers.get("Range"))
        if self.headers.get("Authorization") != f"Bearer {served.token}":
            self._answer(401, b"bad token")
            return
        if served.fail_times > 0 and served.fail_status is not None:
            served.fail_times -= 1
            self._answer(served.fail_status, b"busy")
            return
        data, start, status = served.data, 0, 200
        headers: dict[str, str] = {}
        wanted = self.headers.get("Range")
        if wanted and not served.ignore_range:
            start = int(wanted.removeprefix("bytes=").rstrip("-"))
            if start >= len(data):
                self._answer(416, headers={"Content-Range": f"bytes */{len(data)}"})
                return
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        if not served.send_length:
            self.send_response(status)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            served.sent.append(len(body))
            self.close_connection = True
            return
        if served.cut_after is not None and served.cuts > 0:
            served.cuts -= 1
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: served.cut_after])
            self.wfile.flush()
            served.sent.append(min(served.cut_after, len(body)))
            self.close_connection = True  # the power goes off: the rest never comes
            return
        self._answer(status, body, headers)


@pytest.fixture
def server() -> Iterator[tuple[Served, str]]:
    """A local HTTP server with Range support on a free port; yields (its state, the url)."""
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.served = Served()
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, name="test-http", daemon=True
    )
    thread.start()
    try:
        yield httpd.served, f"http://127.0.0.1:{httpd.server_address[1]}/api/v1/packages/{SHA}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


async def test_full_download_lands_whole_and_checked(
    server: tuple[Served, str], tmp_path: Path
) -> None:
    served, url = server
    dest = tmp_path / "incoming" / f"{SHA}.tar"
    got = await fetch_archive(url, TOKEN, dest, sha256=SHA, size=len(DATA), chunk=4096)
    assert got == dest
    assert dest.read_bytes() == DATA
    assert not part_path(dest).exists()
    assert served.ranges == [None]


async def test_a_cut_download_resumes_from_the_part(
    server: tuple[Served, str], tmp_path: Path
) -> None:
    served, url = server
    served.cut_after = 100_000
    dest = tmp_path / f"{SHA}.tar"
    with pytest.raises(DownloadError) as cut:
        await fetch_archive(url, TOKEN, dest, sha256=SHA, size=len(DATA))
    assert cut.value.retry
    assert part_path(dest).read_bytes() == DATA[:100_000]
    assert not dest.exists()

    await fetch_archive(url, TOKEN, dest, sha256=SHA, size=len(DATA))
    assert dest.read_bytes() == DATA
    assert served.ranges == [None, "bytes=100000-"]
    assert served.sent == [100_000, len(DATA) - 100_000]


async def test_a_server_ignoring_range_restarts_cleanly(
    server: tuple[Served, str], tmp_path: Path
) -> None:
    served, url = server
    served.ignore_range = True
    dest = tmp_path / f"{SHA}.tar"
    part_path(dest).write_bytes(b"stale bytes of another try")
    await fetch_archive(url, TOKEN, dest, sha256=SHA, size=len(DATA))
    assert dest.read_bytes() == DATA
    assert served.ranges == ["bytes=26-"]
    assert served.sent == [len(DATA)]


async def test_a_complete_part_is_only_verified(server: tuple[Served, str], tmp_path: Path) -> None:
    served, url = server
    dest = tmp_path / f"{SHA}.tar"
    part_path(dest).write_bytes(DATA)
    await fetch_archive(url, TOKEN, dest, sha256=SHA, size=len(DATA))
    assert dest.read_bytes() == DATA
    assert served.ranges == [], "nothing left to ask the server for"


async def test_416_for_a_shorter_file_is_final(server: tuple[Served, str], tmp_path: Path) -> None:
    served, url = server
    served.data = DATA[:1000]
    dest = tmp_path / f"{SHA}.tar"
    part_path(dest).write_bytes(DATA[:2000])
    with pytest.raises(DownloadError, match=r"416.*1000 bytes") as refused:
        await fetch_archive(url, TOKEN, dest, sha256=SHA, size=len(DATA))
    assert not refused.value.retry
    assert not part_path(dest).exists()


async def test_a_wrong_token_is_not_worth_retrying(
    server: tuple[Served, str], tmp_path: Path
) -> None:
    served, url = server
    dest = tmp_path / f"{SHA}.tar"
    with pytest.raises(DownloadError, match="401") as refused:
        await fetch_with_retries(url, "wrong", dest, sha256=SHA, size=len(DATA))
    assert not refused.value.retry
    assert url in str(refused.value)
    assert "wrong" not in str(refused.value), "the token never goes into a message"
    assert len(served.ranges) == 1, "a 401 is not tried again"


async def test_a_sha_mismatch_deletes_the_part(server: tuple[Served, str], tmp_path: Path) -> None:
    _, url = server
    dest = tmp_path / f"{SHA}.tar"
    with pytest.raises(DownloadError, match="sha256") as wrong:
        await fetch_archive(url, TOKEN, dest, sha256="0" * 64, size=len(DATA))
    assert not wrong.value.retry
    assert not part_path(dest).exists()
    assert not dest.exists()


async def test_a_body_longer_than_size_is_refused(
    server: tuple[Served, str], tmp_path: Path
) -> None:
    _, url = server
    dest = tmp_path / f"{SHA}.tar"
    with pytest.raises(DownloadError, match="larger than") as refused:
        await fetch_archive(url, TOKEN, dest, sha256=SHA, size=len(DATA) - 10)
    assert not refused.value.retry
    assert not part_path(dest).exists()


async def test_a_body_running_past_size_without_length_is_refused(
    server: tuple[Served, str], tmp_path: Path
) -> None:
    """A body longer than announced is cut off while streaming, not only by its header."""
    served, url = server
    served.send_length = False
    dest = tmp_path / f"{SHA}.tar"
    with pytest.raises(DownloadError, match="runs past") as refused:
        await fetch_archive(url, TOKEN, dest, sha256=SHA, size=1000, chunk=4096)
    assert not refused.value.retry
    assert not part_path(dest).exists()


async def test_retries_recover_from_cuts_and_a_503(
    server: tuple[Served, str], tmp_path: Path
) -> None:
    served, url = server
    served.fail_status, served.fail_times = 503, 1
    served.cut_after, served.cuts = 120_000, 2
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    dest = tmp_path / f"{SHA}.tar"
    got = await fetch_with_retries(
        url,
        TOKEN,
        dest,
        sha256=SHA,
        size=len(DATA),
        attempts=2,
        backoff=Backoff(1.0, 8.0, uniform=lambda lo, hi: hi),
        sleep=sleep,
    )
    assert got.read_bytes() == DATA
    assert served.ranges == [None, None, "bytes=120000-", "bytes=240000-"]
    # the 503 moved nothing (1 s), each cut moved the part on and reset the backoff
    assert slept == [1.0, 1.0, 1.0]


async def test_retries_give_up_after_attempts_without_progress(
    server: tuple[Served, str], tmp_path: Path
) -> None:
    served, url = server
    served.fail_status, served.fail_times = 503, 10
    slept: list[float] = []

    async def sleep(delay: float) -> None:
        slept.append(delay)

    dest = tmp_path / f"{SHA}.tar"
    with pytest.raises(DownloadError, match="503") as busy:
        await fetch_with_retries(
            url,
            TOKEN,
            dest,
            sha256=SHA,
            size=len(DATA),
            attempts=3,
            backoff=Backoff(1.0, 8.0, uniform=lambda lo, hi: hi),
            sleep=sleep,
        )
    assert busy.value.retry
    assert len(served.ranges) == 3
    assert slept == [1.0, 2.0]


async def test_connection_refused_is_worth_retrying(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="ConnectError") as refused:
        await fetch_archive("http://127.0.0.1:9/x", TOKEN, tmp_path / "a.tar", sha256=SHA, size=10)
    assert refused.value.retry
