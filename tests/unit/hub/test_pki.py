"""The city's certificates: chains verify, names and usages are right, keys are private,
and re-provisioning keeps the CA and the broker's certificate but reissues a device's."""

from __future__ import annotations

import ssl
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from central_hub.errors import ProvisionError
from central_hub.services import pki
from central_hub.services.provision import provision_device, render_listeners
from edge_agent.config import load_config
from edge_agent.protocol import generate_signing_key, public_key_b64

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _cn(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def _usage(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def _provision(tmp_path: Path, device: str, *, now: datetime = NOW, **kw: Any) -> object:
    return provision_device(
        device,
        kind="pole",
        broker_dir=tmp_path / "broker",
        out_dir=tmp_path / "devices",
        public_key=public_key_b64(generate_signing_key()),
        mqtt_host=str(kw.pop("mqtt_host", "mqtt.city.example")),
        mqtt_port=8883,
        now=now,
        **kw,
    )


def test_chain_verifies_and_names_and_usages_are_right(tmp_path: Path) -> None:
    _provision(tmp_path, "pole-a", broker_hosts=["10.0.0.5"])
    tls = tmp_path / "broker" / "tls"
    ca, broker = _cert(tls / "ca.crt"), _cert(tls / "broker.crt")
    device = _cert(tmp_path / "devices" / "pole-a" / "client.crt")
    hub = _cert(tls / "hub.crt")
    for cert in (ca, broker, device, hub):
        cert.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert pki.san_names(broker) == {"localhost", "127.0.0.1", "mqtt.city.example", "10.0.0.5"}
    assert _usage(broker) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert (_cn(device), _cn(hub)) == ("pole-a", "hub")
    assert _usage(device) == _usage(hub) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not device.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # The device's CA file is the broker's CA.
    assert (tmp_path / "devices" / "pole-a" / "ca.crt").read_bytes() == (
        tls / "ca.crt"
    ).read_bytes()


def test_python_ssl_accepts_the_chain_for_the_broker_names(tmp_path: Path) -> None:
    """What paho does on a unit: load the CA and its own pair; the broker's certificate
    checks against the CA with hostname checking (OpenSSL's strict mode included)."""
    _provision(tmp_path, "pole-a", now=datetime.now(UTC))
    dev = tmp_path / "devices" / "pole-a"
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    ctx.load_verify_locations(dev / "ca.crt")
    ctx.load_cert_chain(dev / "client.crt", dev / "client.key")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls = tmp_path / "broker" / "tls"
    server.load_cert_chain(tls / "broker.crt", tls / "broker.key")
    for host in ("localhost", "127.0.0.1", "mqtt.city.example"):
        assert _handshake(ctx, server, host) is None
    assert "mismatch" in str(_handshake(ctx, server, "other.example")).lower()


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext, host: str) -> Exception | None:
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    cs = client.wrap_bio(c_in, c_out, server_hostname=host)
    ss = server.wrap_bio(s_in, s_out, server_side=True)
    done: set[int] = set()
    for _ in range(10):
        for n, (side, out, into) in enumerate(((cs, c_out, s_in), (ss, s_out, c_in))):
            try:
                side.do_handshake()
                done.add(n)
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as exc:
                return exc
            data = out.read()
            if data:
                into.write(data)
        if done == {0, 1}:
            return None
    return RuntimeError("the handshake did not finish")


def test_keys_are_private_and_certificates_readable(tmp_path: Path) -> None:
    _provision(tmp_path, "pole-a")
    tls = tmp_path / "broker" / "tls"
    dev = tmp_path / "devices" / "pole-a"
    for key in (tls / "ca.key", tls / "broker.key", tls / "hub.key", dev / "client.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    for cert in (tls / "ca.crt", tls / "broker.crt", dev / "client.crt"):
        assert stat.S_IMODE(cert.stat().st_mode) == 0o644, cert


def test_reprovisioning_reuses_ca_and_broker_but_reissues_the_device(tmp_path: Path) -> None:
    _provision(tmp_path, "pole-a")
    tls = tmp_path / "broker" / "tls"
    dev = tmp_path / "devices" / "pole-a"
    before = {p: p.read_bytes() for p in (tls / "ca.crt", tls / "ca.key", tls / "broker.crt")}
    hub_before = (tls / "hub.crt").read_bytes()
    device_before = (dev / "client.crt").read_bytes(), (dev / "client.key").read_bytes()
    _provision(tmp_path, "pole-a", now=NOW + timedelta(days=1))
    _provision(tmp_path, "pole-b", now=NOW + timedelta(days=1))
    assert {p: p.read_bytes() for p in before} == before
    assert (tls / "hub.crt").read_bytes() == hub_before
    after = (dev / "client.crt").read_bytes(), (dev / "client.key").read_bytes()
    assert after[0] != device_before[0]
    assert after[1] != device_before[1]
    _cert(dev / "client.crt").verify_directly_issued_by(_cert(tls / "ca.crt"))


def test_broker_certificate_reissued_for_a_new_name_or_near_expiry(tmp_path: Path) -> None:
    _provision(tmp_path, "pole-a")
    path = tmp_path / "broker" / "tls" / "broker.crt"
    first = path.read_bytes()
    _provision(tmp_path, "pole-b", mqtt_host="mqtt2.city.example")
    second = path.read_bytes()
    assert second != first
    # The new one names the new host and keeps the old one (units may use either).
    assert {"mqtt.city.example", "mqtt2.city.example"} <= pki.san_names(_cert(path))
    late = NOW + timedelta(days=pki.SERVER_DAYS) - pki.RENEW_BEFORE + timedelta(days=1)
    _provision(tmp_path, "pole-c", now=late, mqtt_host="mqtt2.city.example")
    assert path.read_bytes() != second
    assert _cert(path).not_valid_after_utc > late + timedelta(days=365)


def test_still_good_judges_signer_dates_and_names() -> None:
    ca_key, other_key = pki.new_key(), pki.new_key()
    ca = pki.Authority(pki.make_ca(ca_key, "city", NOW), ca_key, Path("ca.crt"))
    other = pki.Authority(pki.make_ca(other_key, "city", NOW), other_key, Path("x.crt"))
    cert = pki.make_server_cert(ca, pki.new_key(), ["broker.example"], NOW)
    assert pki.still_good(cert, ca.cert, NOW, ["broker.example"])
    assert not pki.still_good(cert, other.cert, NOW, ["broker.example"])  # same name, other key
    assert not pki.still_good(cert, ca.cert, NOW, ["elsewhere.example"])
    assert not pki.still_good(cert, ca.cert, NOW - timedelta(days=1))
    assert not pki.still_good(cert, ca.cert, NOW + timedelta(days=pki.SERVER_DAYS))


def test_a_given_ca_is_used_and_its_key_never_copied(tmp_path: Path) -> None:
    key = pki.new_key()
    city = tmp_path / "city"
    city.mkdir()
    (city / "ca.crt").write_bytes(pki._cert_pem(pki.make_ca(key, "Linhai city CA", NOW)))
    (city / "ca.key").write_bytes(pki._key_pem(key))
    given: dict[str, Any] = {"ca_cert": city / "ca.crt", "ca_key": city / "ca.key"}
    _provision(tmp_path, "pole-0")  # first with a CA made here, then the city's replaces it
    _provision(tmp_path, "pole-a", **given)
    tls = tmp_path / "broker" / "tls"
    assert (tls / "ca.crt").read_bytes() == (city / "ca.crt").read_bytes()
    assert not (tls / "ca.key").exists()
    assert (tls / "ca.key.replaced").exists()
    # The broker's certificate was reissued by the city's CA.
    _cert(tls / "broker.crt").verify_directly_issued_by(_cert(city / "ca.crt"))
    _cert(tls / "hub.crt").verify_directly_issued_by(_cert(city / "ca.crt"))
    _cert(tmp_path / "devices" / "pole-a" / "client.crt").verify_directly_issued_by(
        _cert(city / "ca.crt")
    )
    # Without the key again, re-provisioning says where it went.
    with pytest.raises(ProvisionError, match="--ca-key"):
        _provision(tmp_path, "pole-b")
    _provision(tmp_path, "pole-b", **given)


def test_a_given_ca_must_be_a_ca_with_its_own_key(tmp_path: Path) -> None:
    key = pki.new_key()
    ca = pki.Authority(pki.make_ca(key, "city", NOW), key, Path("ca.crt"))
    leaf_key = pki.new_key()
    leaf = pki.make_client_cert(ca, leaf_key, "not-a-ca", NOW)
    (tmp_path / "leaf.crt").write_bytes(pki._cert_pem(leaf))
    (tmp_path / "leaf.key").write_bytes(pki._key_pem(leaf_key))
    (tmp_path / "ca.crt").write_bytes(pki._cert_pem(ca.cert))
    with pytest.raises(ProvisionError, match="not a CA"):
        _provision(tmp_path, "pole-a", ca_cert=tmp_path / "leaf.crt", ca_key=tmp_path / "leaf.key")
    with pytest.raises(ProvisionError, match="is not the key of"):
        _provision(tmp_path, "pole-a", ca_cert=tmp_path / "ca.crt", ca_key=tmp_path / "leaf.key")
    with pytest.raises(ProvisionError, match="both"):
        _provision(tmp_path, "pole-a", ca_cert=tmp_path / "ca.crt")


def test_device_config_names_its_tls_files_and_loads(tmp_path: Path) -> None:
    result = _provision(tmp_path, "pole-a")
    dev = tmp_path / "devices" / "pole-a"
    config = load_config(dev / "agent.yaml")
    assert config.mqtt.port == 8883
    assert config.mqtt.tls is not None
    assert (config.mqtt.tls.ca, config.mqtt.tls.cert, config.mqtt.tls.key) == (
        (dev / "ca.crt").resolve(),
        (dev / "client.crt").resolve(),
        (dev / "client.key").resolve(),
    )
    assert result is not None


def test_no_tls_writes_no_certificates_and_a_plain_listener(tmp_path: Path) -> None:
    _provision(tmp_path, "pole-a", tls=False)
    raw = yaml.safe_load((tmp_path / "devices" / "pole-a" / "agent.yaml").read_text())
    assert "tls" not in raw["mqtt"]
    assert not (tmp_path / "broker" / "tls").exists()
    text = (tmp_path / "broker" / "conf.d" / "listeners.conf").read_text()
    assert "listener 8883\n" in text
    assert "certfile" not in text


def test_listeners_plain_on_loopback_tls_everywhere_both_bound_to_users(tmp_path: Path) -> None:
    text = render_listeners(tmp_path, port=8883, plain_port=1883)
    blocks = text.split("\nlistener ")[1:]
    assert [b.splitlines()[0] for b in blocks] == ["1883 127.0.0.1", "8883"]
    for block in blocks:
        assert "use_username_as_clientid true" in block.splitlines()
    tls = blocks[1].splitlines()
    assert "require_certificate true" in tls
    for item in ("cafile", "certfile", "keyfile"):
        assert any(line.startswith(f"{item} {tmp_path.resolve()}/tls/") for line in tls)
    assert "allow_anonymous false" in text.splitlines()
    assert not any(line.startswith("listener") and "0.0.0.0" in line for line in text.splitlines())


def test_cli_provision_defaults_to_tls_and_says_how_the_hub_connects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from central_hub.cli import main

    args = ["--data-dir", str(tmp_path / "hub"), "provision", "pole-3"]
    args += ["--broker-dir", str(tmp_path / "b"), "--out", str(tmp_path / "d")]
    assert main([*args, "--broker-host", "mqtt.city.example", "--broker-name", "10.1.2.3"]) == 0
    out = capsys.readouterr().out
    config = load_config(tmp_path / "d" / "pole-3" / "agent.yaml")
    assert config.mqtt.port == 8883
    assert config.mqtt.tls is not None
    assert config.mqtt.tls.cert == (tmp_path / "d" / "pole-3" / "client.crt").resolve()
    tls = tmp_path / "b" / "tls"
    assert f"XH_HUB_MQTT_TLS_CA={tls / 'ca.crt'}" in out
    assert f"XH_HUB_MQTT_TLS_KEY={tls / 'hub.key'}" in out
    assert "XH_HUB_MQTT_PORT=8883" in out
    assert {"mqtt.city.example", "10.1.2.3"} <= pki.san_names(_cert(tls / "broker.crt"))
    listeners = (tmp_path / "b" / "conf.d" / "listeners.conf").read_text()
    assert "listener 1883 127.0.0.1\n" in listeners
    assert "listener 8883\n" in listeners
    assert main([*args, "--ca-cert", str(tls / "ca.crt")]) == 1
    assert "--ca-key" in capsys.readouterr().err
    assert main([*args.copy()[:3], "pole-4", *args[4:], "--no-tls"]) == 0
    assert load_config(tmp_path / "d" / "pole-4" / "agent.yaml").mqtt.tls is None
