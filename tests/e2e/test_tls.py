"""HTTPS: the official SDKs refuse plain http:// to anything but localhost."""

from __future__ import annotations

import datetime
import json
import os
import ssl
import subprocess
import sys
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


def _tls_server(tmp_path: Path) -> tuple[Server, Path]:
    cert, key = self_signed(tmp_path)
    server = Server(
        f"sqlite:///{tmp_path / 'a.db'}",
        tmp_path / "data",
        extra=["--tls-cert", str(cert), "--tls-key", str(key)],
    )
    server.url = f"https://localhost:{server.port}"
    server.public_url = server.url
    server.verify = ssl.create_default_context(cafile=str(cert))
    return server.start(), cert


def _sikker(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {
        k: v for k, v in os.environ.items() if k not in ("SIKKER_CACERT", "SSL_CERT_FILE", "SIKKER_TOKEN")
    }
    base |= {"HOME": str(tmp_path / "home"), "SIKKERKEY_HOME": str(tmp_path / "home" / ".sikkerkey")}
    return subprocess.run(
        [sys.executable, "-m", "sikker", *args],
        env=base | (env or {}),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_admin_and_machine_cli_trust_a_self_signed_server_with_ca_cert(tmp_path: Path) -> None:
    server, cert = _tls_server(tmp_path)
    try:
        addr = {"SIKKER_ADDR": server.url}
        refused = _sikker(tmp_path, "operator", "init", "--shares", "1", "--threshold", "1", env=addr)
        assert refused.returncode == 7
        assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr and "--ca-cert" in refused.stderr

        init = _sikker(
            tmp_path,
            "operator",
            "init",
            "--shares",
            "1",
            "--threshold",
            "1",
            "--json",
            "--ca-cert",
            str(cert),
            env=addr,
        )
        assert init.returncode == 0, init.stderr
        shares, root = json.loads(init.stdout)["shares"], json.loads(init.stdout)["rootToken"]
        with_env = addr | {"SIKKER_CACERT": str(cert), "SIKKER_TOKEN": root}
        assert _sikker(tmp_path, "operator", "unseal", shares[0], env=with_env).returncode == 0
        assert _sikker(tmp_path, "status", env=with_env).returncode == 0

        vault = _sikker(tmp_path, "vault", "create", "v", env=with_env).stdout.strip()
        project = _sikker(tmp_path, "project", "create", "--vault", vault, "p", env=with_env).stdout.strip()
        auth = {"authorization": f"Bearer {root}"}
        secret = httpx.post(
            f"{server.url}/api/projects/{project}/secrets",
            json={"name": "s", "value": "x"},
            headers=auth,
            verify=server.verify,
            timeout=10,
        ).json()["id"]
        created = httpx.post(
            f"{server.url}/api/vaults/{vault}/enrollment-tokens",
            json={"projectIds": [project], "secretIds": [secret], "maxUses": 1},
            headers={"authorization": f"Bearer {root}"},
            verify=server.verify,
            timeout=10,
        )
        assert created.status_code == 201, created.text
        enroll = created.json()["token"]
        machine_env = {"SIKKERKEY_ENROLL_TOKEN": enroll}
        boot = _sikker(
            tmp_path, "machine", "bootstrap", "--url", server.url, "--vault", vault, env=machine_env
        )
        assert boot.returncode == 7 and "--ca-cert" in boot.stderr
        boot = _sikker(
            tmp_path,
            "machine",
            "bootstrap",
            "--url",
            server.url,
            "--vault",
            vault,
            "--ca-cert",
            str(cert),
            env=machine_env,
        )
        assert boot.returncode == 0, boot.stderr
        assert _sikker(tmp_path, "list").returncode == 7
        listed = _sikker(tmp_path, "list", "--json", env={"SIKKER_CACERT": str(cert)})
        assert listed.returncode == 0, listed.stderr
        assert _sikker(tmp_path, "list", "--ca-cert", str(cert)).returncode == 0
    finally:
        server.stop()
