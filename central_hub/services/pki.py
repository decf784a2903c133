"""The city's certificates for MQTT over TLS: a CA, the broker's certificate, clients'.

Two layers. The pure one builds certificates from keys, names and a time given to it
(:func:`make_ca`, :func:`make_server_cert`, :func:`make_client_cert`) and judges them
(:func:`still_good`); no files, no clock. The edge (:func:`load_or_create_ca`,
:func:`ensure_server_cert`, :func:`issue_client_cert`) reads and writes PEM files, keys
with mode 0600.

Keys are ECDSA P-256: small, fast to make, and accepted by every OpenSSL that Mosquitto,
NATS and Python link against. A client certificate's common name is its broker user (the
device id, or the hub's user); the broker checks that a client's certificate was signed by
the city's CA and then asks for the user's password as well.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from central_hub.errors import ProvisionError

log = logging.getLogger(__name__)

__all__ = [
    "CA_DAYS",
    "CLIENT_DAYS",
    "RENEW_BEFORE",
    "SERVER_DAYS",
    "Authority",
    "CertFiles",
    "ensure_server_cert",
    "host_names",
    "issue_client_cert",
    "load_or_create_ca",
    "make_ca",
    "make_client_cert",
    "make_server_cert",
    "new_key",
    "san_names",
    "still_good",
]

#: Lifetimes. Nothing rotates certificates automatically yet: re-running ``provision``
#: reissues a device's, and the broker's once it is within ``RENEW_BEFORE`` of expiry.
CA_DAYS = 20 * 365
SERVER_DAYS = 5 * 365
CLIENT_DAYS = 5 * 365
RENEW_BEFORE = timedelta(days=30)
#: Certificates are valid from a little before they are made (clocks differ).
BACKDATE = timedelta(minutes=5)

Key = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Authority:
    """The city's CA: its certificate and key (the key may live outside ``tls/``)."""

    cert: x509.Certificate
    key: Key
    cert_path: Path


@dataclass(frozen=True)
class CertFiles:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


# ---------------------------------------------------------------------- pure


def new_key() -> Key:
    """A new ECDSA P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def host_names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    """Subject alternative names for these host names and IP addresses (sorted, unique)."""
    names: list[x509.GeneralName] = []
    for host in sorted({h.strip().lower() for h in hosts if h.strip()}):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def san_names(cert: x509.Certificate) -> set[str]:
    """The host names and addresses a certificate is valid for."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {n.lower() for n in ext.get_values_for_type(x509.DNSName)} | {
        str(a) for a in ext.get_values_for_type(x509.IPAddress)
    }


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "xiuhua"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, key: Key, now: datetime, days: int
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1)
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def make_ca(key: Key, common_name: str, now: datetime, days: int = CA_DAYS) -> x509.Certificate:
    """A self-signed CA certificate that may sign end certificates only (path length 0)."""
    name = _name(common_name)
    return (
        _builder(name, name, key, now, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )


def _end_cert(
    ca: Authority,
    key: Key,
    common_name: str,
    now: datetime,
    days: int,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName],
) -> x509.Certificate:
    builder = (
        _builder(_name(common_name), ca.cert.subject, key, now, days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert: x509.Certificate = builder.sign(ca.key, hashes.SHA256())
    return cert


def make_server_cert(
    ca: Authority, key: Key, hosts: Iterable[str], now: datetime, days: int = SERVER_DAYS
) -> x509.Certificate:
    """The broker's certificate, valid for ``hosts`` (names and IP addresses)."""
    names = host_names(hosts)
    if not names:
        raise ProvisionError("the broker's certificate needs at least one host name")
    first = names[0].value
    return _end_cert(ca, key, str(first), now, days, ExtendedKeyUsageOID.SERVER_AUTH, names)


def make_client_cert(
    ca: Authority, key: Key, common_name: str, now: datetime, days: int = CLIENT_DAYS
) -> x509.Certificate:
    """A client certificate whose common name is the broker user (device id or hub user)."""
    return _end_cert(ca, key, common_name, now, days, ExtendedKeyUsageOID.CLIENT_AUTH, [])


def still_good(
    cert: x509.Certificate,
    ca_cert: x509.Certificate,
    now: datetime,
    hosts: Iterable[str] = (),
) -> bool:
    """Whether ``cert`` was signed by ``ca_cert``, is valid from now until well after
    (``RENEW_BEFORE``), and names every one of ``hosts``."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc - RENEW_BEFORE:
        return False
    wanted = {h.strip().lower() for h in hosts if h.strip()}
    wanted = {str(ipaddress.ip_address(h)) if _is_ip(h) else h for h in wanted}
    return wanted <= san_names(cert)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------- files


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, mode)  # an existing temp file keeps its mode through O_CREAT
    os.replace(tmp, path)


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _read_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ProvisionError(f"cannot read certificate {path}: {exc}") from exc


def _read_key(path: Path) -> Key:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ProvisionError(f"cannot read private key {path}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ProvisionError(f"{path}: the CA key must be an EC key (P-256), not {type(key)}")
    return key


def _same_key(cert: x509.Certificate, key: Key) -> bool:
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    return cert.public_key().public_bytes(enc, pub) == key.public_key().public_bytes(enc, pub)


def load_or_create_ca(
    tls_dir: Path,
    now: datetime,
    *,
    ca_cert: Path | None = None,
    ca_key: Path | None = None,
    common_name: str = "xiuhua city CA",
) -> Authority:
    """The city's CA, kept as ``tls_dir/ca.crt`` (what brokers and clients trust).

    Given ``ca_cert`` and ``ca_key`` (the city's own CA), its certificate is copied to
    ``ca.crt`` and its key is used where it lies, never copied. Otherwise the CA made
    here on the first run is reused (``ca.key``, mode 0600); a ``ca.crt`` whose key is
    not here (a city's CA) needs ``ca_key`` again on every run.
    """
    tls_dir = Path(tls_dir)
    cert_path, key_path = tls_dir / "ca.crt", tls_dir / "ca.key"
    if (ca_cert is None) != (ca_key is None):
        raise ProvisionError("give both --ca-cert and --ca-key, or neither")
    if ca_cert is not None and ca_key is not None:
        cert, key = _read_cert(ca_cert), _read_key(ca_key)
        if not _same_key(cert, key):
            raise ProvisionError(f"{ca_key} is not the key of {ca_cert}")
        try:
            constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        if constraints is None or not constraints.ca:
            raise ProvisionError(f"{ca_cert} is not a CA certificate (basicConstraints CA:TRUE)")
        if cert_path.exists() and _read_cert(cert_path) != cert:
            log.warning(
                "%s replaced by the CA from %s: units provisioned before trust the old one "
                "and must be provisioned again",
                cert_path,
                ca_cert,
            )
        if key_path.exists() and not _same_key(cert, _read_key(key_path)):
            # The CA made here before: kept aside, so later runs ask for the city's key.
            key_path.replace(key_path.with_name("ca.key.replaced"))
        _write(cert_path, _cert_pem(cert), 0o644)
        return Authority(cert=cert, key=key, cert_path=cert_path)
    if cert_path.exists():
        if not key_path.exists():
            raise ProvisionError(
                f"{cert_path} is a CA whose key is kept elsewhere: pass --ca-cert and --ca-key"
            )
        cert, key = _read_cert(cert_path), _read_key(key_path)
        if not _same_key(cert, key):
            raise ProvisionError(f"{key_path} is not the key of {cert_path}")
        return Authority(cert=cert, key=key, cert_path=cert_path)
    key = new_key()
    cert = make_ca(key, common_name, now)
    _write(key_path, _key_pem(key), 0o600)
    _write(cert_path, _cert_pem(cert), 0o644)
    log.info("created the city's CA in %s", tls_dir)
    return Authority(cert=cert, key=key, cert_path=cert_path)


def ensure_server_cert(
    files: CertFiles, ca: Authority, hosts: Iterable[str], now: datetime
) -> CertFiles:
    """The broker's certificate: kept while :func:`still_good` for ``hosts``, otherwise
    reissued for those hosts and every host the old one named (units may use either)."""
    hosts = list(hosts)
    old: set[str] = set()
    if files.cert.exists() and files.key.exists():
        cert = _read_cert(files.cert)
        if still_good(cert, ca.cert, now, hosts) and _same_key(cert, _read_key(files.key)):
            return files
        old = san_names(cert)
    key = new_key()
    cert = make_server_cert(ca, key, [*hosts, *old], now)
    _write(files.key, _key_pem(key), 0o600)
    _write(files.cert, _cert_pem(cert), 0o644)
    log.info("issued the broker's certificate for %s", ", ".join(sorted(san_names(cert))))
    return files


def issue_client_cert(
    files: CertFiles, ca: Authority, common_name: str, now: datetime, *, reuse: bool = False
) -> CertFiles:
    """A client certificate and a new key for ``common_name``; with ``reuse`` an existing
    pair that is still good (and names the same client) is kept."""
    if reuse and files.cert.exists() and files.key.exists():
        cert = _read_cert(files.cert)
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if (
            still_good(cert, ca.cert, now)
            and [n.value for n in names] == [common_name]
            and _same_key(cert, _read_key(files.key))
        ):
            return files
    key = new_key()
    cert = make_client_cert(ca, key, common_name, now)
    _write(files.key, _key_pem(key), 0o600)
    _write(files.cert, _cert_pem(cert), 0o644)
    return files
