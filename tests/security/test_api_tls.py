"""The hub's API and console over HTTPS with a certificate ``central-hub provision
--api-name`` issues from the city's CA; a unit fetches model packages from it trusting
that CA (the ``ca.crt`` it verifies the broker with). Plain HTTP to the HTTPS port gets
nothing, and a client that does not trust the city's CA cannot talk to it."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from central_hub.services import pki
from central_hub.testing import hub_cli
from edge_agent.config import load_config
from edge_agent.model_install import download_client
from simulators.mosquitto import MosquittoBroker, free_port
from simulators.polling import eventually_sync

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


async def _fetch(client: httpx.AsyncClient, url: str) -> httpx.Response:
    async with client:
        return await client.get(url, headers={"Authorization": "Bearer nope"})


def test_the_api_speaks_https_with_the_citys_certificate(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    data, broker_dir, out = tmp_path / "hub", tmp_path / "broker", tmp_path / "devices"
    said = hub_cli(
        data, "provision", "pole-1", "--broker-dir", str(broker_dir), "--out", str(out),
        "--api-name", "hub.city.local",
    )  # fmt: skip
    assert "XH_HUB_API_TLS_CERT=" in said
    cert = pki._read_cert(broker_dir / "tls" / "api.crt")
    assert {"hub.city.local", "localhost", "127.0.0.1"} <= pki.san_names(cert)
    assert (broker_dir / "tls" / "api.key").stat().st_mode & 0o077 == 0
    token = hub_cli(data, "user", "add", "ops", "--role", "operator").strip().splitlines()[-1]
    port = free_port()
    env = {
        **os.environ,
        "XH_HUB_API_TLS_CERT": str(broker_dir / "tls" / "api.crt"),
        "XH_HUB_API_TLS_KEY": str(broker_dir / "tls" / "api.key"),
    }
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "central_hub.cli", "--data-dir", str(data), "serve",
            "--port", str(port), "--mqtt-port", str(mosquitto.port), "--client-id", "hub-tls",
        ],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    trust = ssl.create_default_context(cafile=str(broker_dir / "tls" / "ca.crt"))
    auth = {"Authorization": f"Bearer {token}"}
    base = f"https://localhost:{port}/api/v1"
    try:

        def up() -> bool:
            try:
                return httpx.get(f"{base}/me", headers=auth, verify=trust, timeout=2).is_success
            except httpx.TransportError:
                return False

        assert eventually_sync(up, 30, every_s=0.3), (tmp_path / "serve.log").read_text()
        # Plain HTTP to the HTTPS port gets no answer; a client without the city's CA
        # refuses the certificate.
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://localhost:{port}/api/v1/me", headers=auth, timeout=5)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{base}/me", headers=auth, timeout=5)
        # The unit's package client trusts the city's CA from its provisioned files.
        cfg = load_config(out / "pole-1" / "agent.yaml")
        client = download_client(cfg, f"{base}/packages/{'0' * 64}")
        assert client is not None
        refused = asyncio.run(_fetch(client, f"{base}/packages/{'0' * 64}"))
        assert refused.status_code == 401  # reached over TLS; the token is what is wrong
        assert download_client(cfg, "http://hub/x") is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        log.close()
