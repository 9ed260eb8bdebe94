"""Canary secrets: a stolen key reads a decoy, its project freezes, alerts go out."""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from sikker.service.streams.formats import verify_webhook
from tests.support import Api, Machine, Server, free_port, init_and_unseal


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content)
        return "250 OK"


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    """The shared fixture's server, allowed to stream to the loopback webhook and SMTP here."""
    srv = Server(database_url, tmp_path / "data", env={"SIKKER_STREAM_ALLOWED_NETWORKS": "127.0.0.0/8"})
    try:
        yield srv.start()
    finally:
        srv.stop()


@pytest.fixture
def world(server: Server) -> Iterator[dict[str, Any]]:
    _, token = init_and_unseal(server.url)
    root = Api(server.url, token)
    vault = root.ok("POST", "/api/vaults", {"name": "v"})["id"]
    project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "payments"})["id"]
    other = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "billing"})["id"]
    real = root.ok(
        "POST", f"/api/projects/{project}/secrets", {"name": "STRIPE_KEY", "value": "sk_live_REAL"}
    )["id"]
    canary = root.ok(
        "POST",
        f"/api/projects/{project}/canaries",
        {"name": "STRIPE_BACKUP_KEY", "looksLike": "api-token", "freezeRelated": [other]},
    )["id"]
    enroll = root.ok(
        "POST",
        f"/api/vaults/{vault}/enrollment-tokens",
        {"projectIds": [project], "secretIds": [real, canary], "maxUses": 10},
    )["token"]
    yield {
        "server": server,
        "root": root,
        "token": token,
        "vault": vault,
        "project": project,
        "other": other,
        "real": real,
        "canary": canary,
        "enroll": enroll,
    }


def test_reading_a_canary_freezes_the_project_and_alerts_within_seconds(world: dict[str, Any]) -> None:
    server, root = world["server"], world["root"]
    hooks: list[tuple[dict[str, str], bytes, float]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            hooks.append((dict(self.headers), body, time.time()))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    http = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        hook = root.ok(
            "POST",
            "/api/audit-streams",
            {
                "vaultId": world["vault"],
                "kind": "webhook",
                "url": f"http://127.0.0.1:{http.server_port}/",
                "actions": ["canary:*"],
            },
        )
        root.ok(
            "POST",
            "/api/audit-streams",
            {
                "vaultId": world["vault"],
                "kind": "email",
                "host": "127.0.0.1",
                "port": smtp.port,
                "sender": "sikker@example.test",
                "recipients": ["secops@example.test"],
                "minSeverity": "critical",
            },
        )
        thief = Machine.enroll(server, world["vault"], world["enroll"])
        innocent = Machine.enroll(server, world["vault"], world["enroll"])
        assert thief.request("GET", f"/v1/secret/{world['real']}").status_code == 200

        read_at = time.time()
        r = thief.request("GET", f"/v1/secret/{world['canary']}")
        assert r.status_code == 200 and r.json()["value"].startswith("sk_live_")  # the reader learns nothing
        decoy = r.json()["value"]
        for machine in (thief, innocent):
            locked = machine.request("GET", f"/v1/secret/{world['real']}")
            assert locked.status_code == 423 and list(locked.json()) == ["error"]
            assert machine.request("GET", "/v1/secrets").status_code == 423

        deadline = time.monotonic() + 5
        while (not hooks or not mailbox.messages) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        http.shutdown()
        http.server_close()
        smtp.stop()

    assert hooks and mailbox.messages, "alerts did not arrive within 5 seconds"
    headers, body, arrived = hooks[0]
    assert arrived - read_at < 5
    assert verify_webhook(
        hook["secret"].encode(),
        headers["X-Sikker-Timestamp"],
        body,
        headers["X-Sikker-Signature"],
        time.time(),
    )
    (alert,) = [r for r in json.loads(body)["records"] if r["action"] == "canary:secret:trip"]
    assert (
        alert["actor_id"] == thief.id
        and alert["source_ip"] == "127.0.0.1"
        and alert["severity"] == "critical"
    )
    assert alert["target"]["project"] == world["project"] and world["other"] in alert["target"]["frozen"]
    mail = message_from_bytes(mailbox.messages[0])
    assert "CRITICAL" in mail["Subject"] and "canary:secret:trip" in mail["Subject"]
    text = mail.get_payload()
    assert thief.id in text and "127.0.0.1" in text
    assert decoy not in body.decode() and decoy not in text  # never the value

    # Admins: reads of the frozen project's secrets are refused, management works, unfreeze is audited.
    assert root.call("GET", f"/api/secrets/{world['real']}")[0] == 423
    assert root.call("GET", f"/api/projects/{world['project']}/secrets")[0] == 200
    shown = root.ok("GET", f"/api/canaries/{world['canary']}")
    assert shown["trips"][0]["actorId"] == thief.id and shown["trips"][0]["sourceIp"] == "127.0.0.1"
    assert root.call("POST", f"/api/projects/{world['project']}/unfreeze", {"reason": ""})[0] == 400
    root.ok("POST", f"/api/projects/{world['project']}/unfreeze", {"reason": "thief machine revoked"})
    root.ok("POST", f"/api/machines/{thief.id}/revoke")
    projects = {p["id"]: p for p in root.ok("GET", f"/api/vaults/{world['vault']}/projects")["projects"]}
    assert projects[world["project"]]["frozenAt"] is None and projects[world["other"]]["frozenAt"]
    root.ok("POST", f"/api/projects/{world['other']}/unfreeze", {"reason": "checked"})
    assert innocent.request("GET", f"/v1/secret/{world['real']}").json() == {"value": "sk_live_REAL"}

    env = os.environ | {"SIKKER_ADDR": world["server"].url, "SIKKER_TOKEN": world["token"]}
    verify = subprocess.run(
        [sys.executable, "-m", "sikker", "audit", "verify", "--vault", world["vault"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stderr


def test_no_real_value_is_served_after_the_freeze_commits(world: dict[str, Any], tmp_path: Path) -> None:
    machines = [Machine.enroll(world["server"], world["vault"], world["enroll"]) for _ in range(5)]
    start = threading.Barrier(51)

    def read(i: int) -> int:
        start.wait()
        return machines[i % 5].request("GET", f"/v1/secret/{world['real']}").status_code

    def trip() -> int:
        start.wait()
        time.sleep(0.01)
        return machines[0].request("GET", f"/v1/secret/{world['canary']}").status_code

    with concurrent.futures.ThreadPoolExecutor(51) as pool:
        reads = [pool.submit(read, i) for i in range(50)]
        tripped = pool.submit(trip)
        statuses = [f.result() for f in reads]
    assert tripped.result() == 200
    assert set(statuses) <= {200, 423}
    records = world["root"].ok("GET", f"/api/audit/{world['vault']}", params={"limit": 1000})["records"]
    freeze = next(r for r in records if r["action"] == "canary:secret:trip")
    served = [
        r
        for r in records
        if r["action"] == "machine:secret:read"
        and r["result"] == "ok"
        and r["target"]["secret"] == world["real"]
    ]
    after = [r for r in served if r["seq"] > freeze["seq"]]
    print(
        f"\nrace: {len(served)} real reads served before the freeze, {statuses.count(423)} refused, "
        f"{len(after)} served after it"
    )
    assert after == []
    assert len(served) == statuses.count(200)


def test_an_export_that_includes_a_canary_trips_it(world: dict[str, Any]) -> None:
    machine = Machine.enroll(world["server"], world["vault"], world["enroll"])
    export = machine.request("POST", "/v1/secrets/export")
    assert export.status_code == 200 and len(export.json()["secrets"]) == 2
    assert machine.request("POST", "/v1/secrets/export").status_code == 423


def test_a_canary_looks_like_any_other_secret_to_a_machine(world: dict[str, Any]) -> None:
    root = world["root"]
    real = root.ok(
        "POST",
        f"/api/projects/{world['project']}/secrets",
        {"name": "API_TOKEN", "value": "sk_live_" + "x" * 32},
    )["id"]
    machine = Machine.enroll(world["server"], world["vault"], world["enroll"])
    root.ok("POST", f"/api/machines/{machine.id}/grants", {"secretIds": [real]})
    for path in ("/v1/secrets", "/v1/cli/secrets"):
        entries = {e["id"]: e for e in machine.request("GET", path).json()["secrets"]}
        canary, twin = dict(entries[world["canary"]]), dict(entries[real])
        for entry in (canary, twin):
            del entry["id"], entry["name"]
        assert canary == twin
    assert machine.request("GET", f"/v1/secret/{real}").status_code == 200  # nothing tripped by listing
