"""A stand-in SMS gateway: a real HTTP server (asyncio streams) that takes the hub's notice
webhook the way a provider would, for tests, benchmarks and the demo.

It checks every request's HMAC-SHA256 signature (``X-Xiuhua-Signature``) with the shared
secret (a bad one is a 401), drops repeats by ``Idempotency-Key`` as a real gateway does
(a repeat of an accepted key is answered 200 with the first ``message_id`` and counted in
``resent``, never accepted twice), and answers what ``script`` says for each new request
(default: 200 with ``{"message_id": "gw-N"}``). ``accepted`` counts each key's acceptances
after dedupe, so a value above 1 would be a duplicate that reached a phone.

    python -m simulators.sms_gateway --port 8025 --secret-file secret

serves until killed; ``GET /stats`` answers the counts as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["GatewayRequest", "SmsGateway", "main"]

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 503: "Busy"}


@dataclass(frozen=True)
class GatewayRequest:
    """One request as the gateway saw it (signature already checked)."""

    path: str
    key: str
    body: dict[str, Any]
    attempt: int  # how many requests with this key came, this one included


#: What the gateway answers a new request: a status code (200 accepts it).
Script = Callable[[GatewayRequest], int]


@dataclass
class SmsGateway:
    """See the module docstring."""

    secret: bytes
    script: Script | None = None
    #: Idempotency-Key -> times accepted (after dedupe: 1 each).
    accepted: dict[str, int] = field(default_factory=dict)
    #: Idempotency-Key -> message id given.
    message_ids: dict[str, str] = field(default_factory=dict)
    #: Every request with a good signature, in order.
    requests: list[GatewayRequest] = field(default_factory=list)
    #: (notice, to) of each accepted request: one notice reaching one number twice under
    #: two keys would be a duplicate the key dedupe cannot catch.
    recipients: set[tuple[str, str]] = field(default_factory=set)
    #: Requests repeating an accepted key (dropped by the dedupe).
    resent: int = 0
    bad_signatures: int = 0
    raw: int = 0
    keep_requests: bool = True
    _attempts: dict[str, int] = field(default_factory=dict)
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen; the port."""
        self._server = await asyncio.start_server(self._serve, host, port, backlog=1024)
        sock = self._server.sockets[0]
        bound: int = sock.getsockname()[1]
        return bound

    async def stop(self) -> None:
        """Stop listening and close connections."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            # Let each connection's handler see its end and return (3.11's wait_closed
            # does not wait for them, and a handler cancelled at loop close is logged).
            if self._handlers:
                await asyncio.wait(list(self._handlers), timeout=5)
            await self._server.wait_closed()

    def stats(self) -> dict[str, int]:
        """Counts: raw requests, unique keys accepted, duplicates after dedupe, resends."""
        return {
            "raw": self.raw,
            "accepted": len(self.accepted),
            "duplicated": sum(n - 1 for n in self.accepted.values() if n > 1)
            + len(self.accepted)
            - len(self.recipients),
            "resent": self.resent,
            "bad_signatures": self.bad_signatures,
        }

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        """The status and body for one request (the server's logic, without sockets)."""
        if path == "/stats":
            return 200, json.dumps(self.stats()).encode()
        self.raw += 1
        expected = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, headers.get("x-xiuhua-signature", "")):
            self.bad_signatures += 1
            return 401, b'{"error":"bad signature"}'
        key = headers.get("idempotency-key", "")
        if not key:
            return 400, b'{"error":"no Idempotency-Key"}'
        if key in self.accepted:
            self.resent += 1
            return 200, json.dumps({"message_id": self.message_ids[key]}).encode()
        attempt = self._attempts.get(key, 0) + 1
        self._attempts[key] = attempt
        try:
            parsed = json.loads(body)
        except ValueError:
            return 400, b'{"error":"not JSON"}'
        request = GatewayRequest(path, key, parsed, attempt)
        if self.keep_requests:
            self.requests.append(request)
        status = self.script(request) if self.script is not None else 200
        if status != 200:
            return status, json.dumps({"error": f"scripted {status}"}).encode()
        self.accepted[key] = self.accepted.get(key, 0) + 1
        self.recipients.add((str(parsed.get("notice")), str(parsed.get("to"))))
        message_id = f"gw-{len(self.message_ids) + 1}"
        self.message_ids[key] = message_id
        return 200, json.dumps({"message_id": message_id}).encode()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                _method, path, _version = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status, answer = self.answer(path, headers, body)
                reason = _REASONS.get(status, "Status")
                writer.write(
                    f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(answer)}\r\n\r\n".encode()
                    + answer
                )
                await writer.drain()
        except (
            asyncio.IncompleteReadError,
            ConnectionError,
            ValueError,
            asyncio.LimitOverrunError,
        ):
            pass
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._handlers.discard(task)
            writer.close()


def main() -> None:
    """Serve a gateway until killed (``--port``, ``--secret-file``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret-file", type=Path, required=True)
    args = parser.parse_args()
    gateway = SmsGateway(args.secret_file.read_bytes().strip(), keep_requests=False)

    async def serve() -> None:
        await gateway.start(args.host, args.port)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
