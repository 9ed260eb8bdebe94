"""Audit streams through a real server: a vault admin cannot write files or reach internal
addresses, and a webhook's credentials never reach the server log."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support import Api, Server, init_and_unseal

MARKER = "SECRET-e2e-5b1c"


@pytest.fixture
def hook() -> Iterator[tuple[int, queue.Queue[str]]]:
    received: queue.Queue[str] = queue.Queue()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            received.put(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    http = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield http.server_port, received
    finally:
        http.shutdown()
        http.server_close()
        thread.join(5)


def start(tmp_path: Path, env: dict[str, str] | None = None) -> tuple[Server, Api, str, Api]:
    server = Server(f"sqlite:///{tmp_path / 'a.db'}", tmp_path / "data", env=env).start()
    _, token = init_and_unseal(server.url)
    root = Api(server.url, token)
    vault = root.ok("POST", "/api/vaults", {"name": "v"})["id"]
    admin = Api(server.url, root.ok("POST", "/api/tokens", {"vaultId": vault})["token"])
    return server, root, vault, admin


def test_vault_admins_get_no_file_streams_and_no_internal_addresses(
    tmp_path: Path, hook: tuple[int, queue.Queue[str]]
) -> None:
    port, received = hook
    seal_key = tmp_path / "seal.key"
    seal_key.write_bytes(b"k" * 32)
    server, root, vault, admin = start(tmp_path)
    try:
        status, body = admin.call(
            "POST", "/api/audit-streams", {"vaultId": vault, "kind": "jsonl", "path": str(seal_key)}
        )
        assert status == 403 and "root token" in body["error"], body
        status, body = admin.call(
            "POST",
            "/api/audit-streams",
            {"vaultId": vault, "kind": "webhook", "url": f"http://127.0.0.1:{port}/hook"},
        )
        assert status == 403 and "stream_allowed_networks" in body["error"], body
        status, body = root.call(
            "POST", "/api/audit-streams", {"vaultId": vault, "kind": "jsonl", "path": "../escape.jsonl"}
        )
        assert status == 400 and "stream directory" in body["error"], body
        made = root.ok("POST", "/api/audit-streams", {"vaultId": vault, "kind": "jsonl", "path": "v.jsonl"})
        assert made["config"] == {"path": "v.jsonl"}
        root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "p"})
        stream_file = tmp_path / "data" / "audit-streams" / "v.jsonl"
        deadline = time.monotonic() + 20
        while not (stream_file.exists() and b"admin:project:create" in stream_file.read_bytes()):
            assert time.monotonic() < deadline, server.output()[-2000:]
            time.sleep(0.1)
    finally:
        server.stop()
    assert seal_key.read_bytes() == b"k" * 32
    assert received.empty()
    assert not (tmp_path / "data" / "escape.jsonl").exists()


def test_webhook_credentials_stay_out_of_the_server_log(
    tmp_path: Path, hook: tuple[int, queue.Queue[str]]
) -> None:
    port, received = hook
    env = {"SIKKER_STREAM_ALLOWED_NETWORKS": "127.0.0.0/8"}
    server, _, vault, admin = start(tmp_path, env)
    try:
        url = f"http://user:{MARKER}@127.0.0.1:{port}/hook/{MARKER}?token={MARKER}"
        made: dict[str, Any] = admin.ok(
            "POST", "/api/audit-streams", {"vaultId": vault, "kind": "webhook", "url": url}
        )
        path = received.get(timeout=20)
        assert MARKER in path
        deadline = time.monotonic() + 20
        while admin.ok("GET", f"/api/audit-streams/{made['id']}/deliveries")["deliveries"] == []:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        server.stop()
    log = server.output()
    assert "Sikker listening" in log  # the log is the server's own output
    assert MARKER not in log
