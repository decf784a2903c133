"""TLS: the link verifies the broker against the configured CA and presents a client cert."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from edge_agent.backoff import Backoff
from edge_agent.link.errors import LinkConfigError
from edge_agent.link.mqtt import BrokerLink, LinkSettings, TlsFiles
from simulators.mosquitto import MosquittoBroker, free_port

pytestmark = pytest.mark.integration


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_pki(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it."""
    folder.mkdir()
    f = {
        n: folder / n
        for n in (
            "ca.key",
            "ca.crt",
            "srv.key",
            "srv.csr",
            "srv.crt",
            "cli.key",
            "cli.csr",
            "cli.crt",
            "ext.cnf",
        )
    }
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        str(f["ca.key"]),
        "-out",
        str(f["ca.crt"]),
        "-days",
        "2",
        "-subj",
        "/CN=xiuhua test CA",
    )
    f["ext.cnf"].write_text("subjectAltName=IP:127.0.0.1\n")
    for name, cn in (("srv", "127.0.0.1"), ("cli", "pole-test-01")):
        _openssl(
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(f[f"{name}.key"]),
            "-out",
            str(f[f"{name}.csr"]),
            "-subj",
            f"/CN={cn}",
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            str(f[f"{name}.csr"]),
            "-CA",
            str(f["ca.crt"]),
            "-CAkey",
            str(f["ca.key"]),
            "-CAcreateserial",
            "-out",
            str(f[f"{name}.crt"]),
            "-days",
            "2",
            "-extfile",
            str(f["ext.cnf"]),
        )
    for key in ("ca.key", "srv.key", "cli.key"):
        f[key].chmod(0o644)  # the broker runs as this user and must read its key
    return f


class Listener:
    def __init__(self) -> None:
        self.up = asyncio.Event()

    def link_up(self) -> None:
        self.up.set()

    def link_down(self, reason: str) -> None:
        pass

    def message(self, topic: str, payload: bytes) -> None:
        pass

    def published(self, mids: list[int]) -> None:
        pass


async def test_tls_with_client_certificate(tmp_path: Path) -> None:
    pki = await asyncio.to_thread(make_pki, tmp_path / "pki")
    tls_port = free_port()
    broker = MosquittoBroker(
        tmp_path / "broker",
        extra_config=(
            f"listener {tls_port} 127.0.0.1\n"
            f"cafile {pki['ca.crt']}\ncertfile {pki['srv.crt']}\nkeyfile {pki['srv.key']}\n"
            "require_certificate true\n"
        ),
    )
    await asyncio.to_thread(broker.start)
    try:
        good = LinkSettings(
            host="127.0.0.1",
            port=tls_port,
            client_id="pole-test-01",
            tls=TlsFiles(pki["ca.crt"], pki["cli.crt"], pki["cli.key"]),
        )
        link = BrokerLink(good)
        listener = Listener()
        link.start(listener)
        await asyncio.wait_for(listener.up.wait(), 10)
        await link.stop()
        # Without the client certificate the broker refuses the handshake.
        bare = LinkSettings(
            host="127.0.0.1",
            port=tls_port,
            client_id="pole-test-02",
            tls=TlsFiles(pki["ca.crt"]),
        )
        link = BrokerLink(bare, backoff=Backoff(0.3, 0.5))
        listener = Listener()
        link.start(listener)
        await asyncio.sleep(1.0)
        await link.stop()
        assert not listener.up.is_set()
        assert link.last_error is not None
    finally:
        await asyncio.to_thread(broker.stop)


def test_missing_tls_files_are_named(tmp_path: Path) -> None:
    settings = LinkSettings(
        host="127.0.0.1", port=8883, client_id="pole-test-01", tls=TlsFiles(tmp_path / "ca.crt")
    )
    with pytest.raises(LinkConfigError, match=r"mqtt\.tls\.ca: no such file"):
        BrokerLink(settings)
