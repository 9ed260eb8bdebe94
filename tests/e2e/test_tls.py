"""HTTPS: the official SDKs refuse plain http:// to anything but localhost."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support import Server


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_server_speaks_https_with_the_given_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server = Server(
        f"sqlite:///{tmp_path / 'a.db'}",
        tmp_path / "data",
        extra=["--tls-cert", str(cert), "--tls-key", str(key)],
    )
    server.url = f"https://localhost:{server.port}"
    server.public_url = server.url
    server.verify = ssl.create_default_context(cafile=str(cert))
    try:
        server.start()
        status = httpx.get(f"{server.url}/api/sys/status", verify=server.verify, timeout=10)
        assert status.status_code == 200 and status.json()["initialized"] is False
    finally:
        server.stop()
