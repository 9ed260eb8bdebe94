"""Audit as a security team uses it: list with filters, export, verify offline and live,
tamper detection, proofs, and streams that arrive at a webhook and a syslog collector."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from sikker.core import merkle
from sikker.service.streams.formats import verify_webhook
from tests.support import Api, Machine, Server, init_and_unseal


def sikker(server: Server, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"SIKKER_ADDR": server.url, "SIKKER_TOKEN": token, "COLUMNS": "250"}
    return subprocess.run(
        [sys.executable, "-m", "sikker", *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    server = Server(
        f"sqlite:///{tmp_path / 'a.db'}",
        tmp_path / "data",
        env={
            "SIKKER_AUDIT_CHECKPOINT_RECORDS": "10",
            "SIKKER_AUDIT_CHECKPOINT_SECONDS": "1",
            # The webhook and syslog receivers below are on loopback, which streams may not
            # reach unless the operator allows it.
            "SIKKER_STREAM_ALLOWED_NETWORKS": "127.0.0.0/8",
        },
    ).start()
    try:
        _, token = init_and_unseal(server.url)
        root = Api(server.url, token)
        vault = root.ok("POST", "/api/vaults", {"name": "v"})["id"]
        project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "p"})["id"]
        secret = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "s", "value": "x"})["id"]
        enroll = root.ok(
            "POST",
            f"/api/vaults/{vault}/enrollment-tokens",
            {"projectIds": [project], "secretIds": [secret], "maxUses": 2},
        )["token"]
        machine = Machine.enroll(server, vault, enroll)
        for _ in range(25):
            assert machine.request("GET", f"/v1/secret/{secret}").status_code == 200
        yield {
            "server": server,
            "token": token,
            "root": root,
            "vault": vault,
            "secret": secret,
            "machine": machine,
            "tmp": tmp_path,
        }
    finally:
        server.stop()


def wait_for_checkpoint(root: Api, vault: str, size: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        cps = root.ok("GET", f"/api/audit/{vault}/checkpoints")["checkpoints"]
        if cps and cps[-1]["treeSize"] >= size:
            return list(cps)
        time.sleep(0.3)
    raise AssertionError("no checkpoint was signed")


def test_list_filters_and_paginates(world: dict[str, Any]) -> None:
    out = sikker(
        world["server"],
        world["token"],
        "audit",
        "list",
        "--vault",
        world["vault"],
        "--action",
        "machine:secret:read",
        "--actor",
        world["machine"].id,
        "--limit",
        "30",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    records = json.loads(out.stdout)
    assert len(records) == 25 and all(r["action"] == "machine:secret:read" for r in records)
    assert [r["seq"] for r in records] == sorted((r["seq"] for r in records), reverse=True)
    page = world["root"].ok(
        "GET", f"/api/audit/{world['vault']}", params={"secret": world["secret"], "limit": 10}
    )
    assert len(page["records"]) == 10 and page["next"]
    rest = world["root"].ok(
        "GET",
        f"/api/audit/{world['vault']}",
        params={"secret": world["secret"], "limit": 1000, "before": page["next"]},
    )
    assert {r["seq"] for r in rest["records"]}.isdisjoint({r["seq"] for r in page["records"]})
    table = sikker(
        world["server"],
        world["token"],
        "audit",
        "list",
        "--vault",
        world["vault"],
        "--severity",
        "high",  # the root token made it: every root use is high
        "--since",
        "1h",
    )
    assert table.returncode == 0 and "admin:enroll-token:create" in table.stdout


def test_export_verifies_and_every_kind_of_tampering_is_named(world: dict[str, Any]) -> None:
    wait_for_checkpoint(world["root"], world["vault"], 20)
    export = world["tmp"] / "audit.jsonl"
    assert (
        sikker(
            world["server"], world["token"], "audit", "export", "--vault", world["vault"], "-o", str(export)
        ).returncode
        == 0
    )
    saved = world["tmp"] / "seen.json"
    ok = sikker(
        world["server"], world["token"], "audit", "verify", str(export), "--save-checkpoint", str(saved)
    )
    assert ok.returncode == 0 and ok.stdout.startswith("OK:"), ok.stdout + ok.stderr

    lines = export.read_text().splitlines()
    records = [i for i, line in enumerate(lines) if json.loads(line)["type"] == "record"]
    edited = list(lines)
    row = json.loads(edited[records[5]])
    row["source_ip"] = "10.6.6.6"
    edited[records[5]] = json.dumps(row)
    tampered = world["tmp"] / "tampered.jsonl"
    tampered.write_text("\n".join(edited) + "\n")
    bad = sikker(world["server"], world["token"], "audit", "verify", str(tampered))
    assert bad.returncode == 8 and "record 6" in bad.stderr, bad.stderr

    truncated = world["tmp"] / "truncated.jsonl"
    truncated.write_text("\n".join(lines[: records[3]]) + "\n")
    cut = sikker(
        world["server"], world["token"], "audit", "verify", str(truncated), "--checkpoint", str(saved)
    )
    assert cut.returncode == 8 and "truncated" in cut.stderr, cut.stderr

    live = sikker(world["server"], world["token"], "audit", "verify", "--vault", world["vault"])
    assert live.returncode == 0, live.stderr


def test_inclusion_and_consistency_proofs_verify(world: dict[str, Any]) -> None:
    cps = wait_for_checkpoint(world["root"], world["vault"], 20)
    size = cps[-1]["treeSize"]
    proof = world["root"].ok(
        "GET", f"/api/audit/{world['vault']}/proof/inclusion", params={"seq": 7, "treeSize": size}
    )
    assert proof["rootHash"] == cps[-1]["rootHash"]
    assert merkle.verify_inclusion(
        bytes.fromhex(proof["leafHash"]),
        6,
        size,
        [bytes.fromhex(p) for p in proof["auditPath"]],
        bytes.fromhex(proof["rootHash"]),
    )
    first = cps[0]["treeSize"]
    cons = world["root"].ok(
        "GET", f"/api/audit/{world['vault']}/proof/consistency", params={"first": first, "second": size}
    )
    assert cons["firstRoot"] == cps[0]["rootHash"]
    assert merkle.verify_consistency(
        first,
        size,
        bytes.fromhex(cons["firstRoot"]),
        bytes.fromhex(cons["secondRoot"]),
        [bytes.fromhex(p) for p in cons["proof"]],
    )
    key = Api(world["server"].url).ok("GET", "/api/audit/public-key")
    assert key["algorithm"] == "ed25519" and len(key["publicKey"]) == 44


def test_streams_reach_a_webhook_and_a_syslog_collector(world: dict[str, Any]) -> None:
    received: list[tuple[dict[str, str], bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append((dict(self.headers), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    http = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(20)
    try:
        hook = sikker(
            world["server"],
            world["token"],
            "audit",
            "stream",
            "add",
            "webhook",
            "--vault",
            world["vault"],
            "--url",
            f"http://127.0.0.1:{http.server_port}/hook",
            "--action",
            "machine:*",
            "--json",
        )
        assert hook.returncode == 0, hook.stderr
        secret = json.loads(hook.stdout)["secret"]
        log = sikker(
            world["server"],
            world["token"],
            "audit",
            "stream",
            "add",
            "syslog",
            "--vault",
            world["vault"],
            "--host",
            "127.0.0.1",
            "--port",
            str(udp.getsockname()[1]),
            "--min-severity",
            "medium",
        )
        assert log.returncode == 0, log.stderr
        machine = world["machine"]
        machine.request("GET", f"/v1/secret/{world['secret']}")
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        machine.request("GET", f"/v1/secret/{world['secret']}", key=Ed25519PrivateKey.generate())
        datagrams = [udp.recv(9000)]  # the stream's own creation record comes first
        while b"machine.auth.fail" not in datagrams[-1]:
            datagrams.append(udp.recv(9000))
        datagram = datagrams[-1]
        # Wait for the webhook to have BOTH records: a batch still on its way when the receiver
        # stops would fail and become the newest delivery checked below.
        deadline = time.monotonic() + 10
        while not any(b"machine:auth:fail" in body for _, body in received) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        http.shutdown()
        http.server_close()
        udp.close()
    assert datagram.startswith(b"<84>1 ") and b"machine.auth.fail" in datagram  # authpriv.warning
    headers, body = received[0]
    assert verify_webhook(
        secret.encode(), headers["X-Sikker-Timestamp"], body, headers["X-Sikker-Signature"], time.time()
    )
    actions = [r["action"] for r in json.loads(body)["records"]]
    assert actions and all(a.startswith("machine:") for a in actions)
    streams = json.loads(sikker(world["server"], world["token"], "audit", "stream", "list", "--json").stdout)
    assert len(streams) == 2
    log_out = sikker(
        world["server"], world["token"], "audit", "stream", "deliveries", streams[0]["id"], "--json"
    )
    assert json.loads(log_out.stdout)[0]["result"] == "ok"


def test_audit_list_action_takes_a_trailing_star_prefix_as_streams_do(server: Server) -> None:
    _, token = init_and_unseal(server.url)
    root = Api(server.url, token)
    vault = root.ok("POST", "/api/vaults", {"name": "v"})["id"]
    project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "p"})["id"]
    root.ok("POST", f"/api/projects/{project}/secrets", {"name": "s", "value": "x"})

    def listed(action: str) -> list[str]:
        result = sikker(server, token, "audit", "list", "--vault", vault, "--action", action, "--json")
        assert result.returncode == 0, result.stderr
        return [r["action"] for r in json.loads(result.stdout)]

    admin = listed("admin:*")
    assert admin and all(a.startswith("admin:") for a in admin)
    assert "admin:project:create" in admin and "admin:secret:create" in admin
    assert listed("admin:secret:*") == ["admin:secret:create"]
    assert sorted(listed("*")) == sorted(listed("admin:*"))
    assert listed("admin:project:create") == ["admin:project:create"]
    # LIKE wildcards are literal: '_' and '%' match only themselves.
    assert listed("admin_*") == [] and listed("%*") == []
    assert listed("ADMIN:*") == []  # case matters, on SQLite too

    refused = sikker(server, token, "audit", "list", "--vault", vault, "--action", "admin:*:create")
    assert refused.returncode == 2 and "only at the end" in refused.stderr


def test_verify_without_a_pinned_key_warns_and_shows_the_key_fingerprint(
    world: dict[str, Any], tmp_path: Path
) -> None:
    import base64
    import hashlib

    server, token = world["server"], world["token"]
    export = tmp_path / "audit.jsonl"
    assert (
        sikker(server, token, "audit", "export", "--vault", world["vault"], "-o", str(export)).returncode == 0
    )
    key = Api(server.url).ok("GET", "/api/audit/public-key")
    fingerprint = "sha256:" + hashlib.sha256(base64.b64decode(key["publicKey"])).hexdigest()
    assert key["fingerprint"] == fingerprint

    unpinned = sikker(server, token, "audit", "verify", str(export))
    assert unpinned.returncode == 0 and unpinned.stdout.startswith("OK")
    warning = " ".join(unpinned.stderr.split())
    assert "warning" in warning and "not pinned" in warning and fingerprint in warning

    as_json = json.loads(sikker(server, token, "audit", "verify", str(export), "--json").stdout)
    assert as_json["publicKeyPinned"] is False and as_json["publicKeyFingerprint"] == fingerprint

    pinned = sikker(server, token, "audit", "verify", str(export), "--public-key", key["publicKey"])
    assert pinned.returncode == 0 and "not pinned" not in pinned.stderr
