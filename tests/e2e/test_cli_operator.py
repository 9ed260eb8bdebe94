"""``sikker status``, ``operator init/seal/unseal`` and connection errors, as a newcomer meets
them: the real CLI against a real server on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Api, Server, free_port


def sikker(
    addr: str | None, *args: str, token: str | None = None, columns: int = 200
) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"COLUMNS": str(columns)}
    for name in ("SIKKER_ADDR", "SIKKER_TOKEN", "SIKKER_TOKEN_FILE", "SIKKER_CACERT"):
        env.pop(name, None)
    if addr:
        env["SIKKER_ADDR"] = addr
    if token:
        env["SIKKER_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "sikker", *args], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def shamir_server(tmp_path: Path) -> Iterator[Server]:
    server = Server(f"sqlite:///{tmp_path / 'a.db'}", tmp_path / "data").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def keyfile_server(tmp_path: Path) -> Iterator[Server]:
    key = tmp_path / "keys" / "unseal.key"
    server = Server(
        f"sqlite:///{tmp_path / 'k.db'}", tmp_path / "data", extra=["--seal-key-file", str(key)]
    ).start()
    try:
        yield server
    finally:
        server.stop()


def test_status_exits_2_while_not_initialised_or_sealed_and_0_when_unsealed(shamir_server: Server) -> None:
    url = shamir_server.url
    fresh = sikker(url, "status")
    assert fresh.returncode == 2, fresh.stderr
    assert "Not initialised" in fresh.stdout
    as_json = sikker(url, "status", "--json")
    assert as_json.returncode == 2 and json.loads(as_json.stdout)["initialized"] is False

    init = json.loads(sikker(url, "operator", "init", "--shares", "1", "--threshold", "1", "--json").stdout)
    sealed = sikker(url, "status")
    assert sealed.returncode == 2 and "Sealed" in sealed.stdout

    assert sikker(url, "operator", "unseal", init["shares"][0]).returncode == 0
    unsealed = sikker(url, "status")
    assert unsealed.returncode == 0 and "Unsealed" in unsealed.stdout


def test_status_help_documents_its_exit_codes() -> None:
    text = " ".join(sikker(None, "status", "--help").stdout.split())
    assert "Exits 0 when the server is unsealed, 2 when it is sealed or not initialised" in text


def test_init_with_a_key_file_seal_prints_the_key_file_path_never_its_content(
    keyfile_server: Server, tmp_path: Path
) -> None:
    result = sikker(keyfile_server.url, "operator", "init")
    assert result.returncode == 0, result.stderr
    key = tmp_path / "keys" / "unseal.key"
    assert str(key) in result.stdout
    assert key.read_text().strip() not in result.stdout + result.stderr
    assert "Initial root token:" in result.stdout
    as_json = json.loads(sikker(keyfile_server.url, "status", "--json").stdout)
    assert as_json["kind"] == "keyfile" and as_json["sealed"] is False


@pytest.mark.parametrize("flag", ["--shares", "--threshold"])
def test_init_refuses_shares_and_threshold_with_a_key_file_seal(keyfile_server: Server, flag: str) -> None:
    result = sikker(keyfile_server.url, "operator", "init", flag, "3")
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "key file" in message and "--shares" in message and "--threshold" in message
    assert Api(keyfile_server.url).ok("GET", "/api/sys/status")["initialized"] is False


def test_a_key_file_server_sealed_by_hand_says_a_restart_unseals_it(keyfile_server: Server) -> None:
    url = keyfile_server.url
    root = json.loads(sikker(url, "operator", "init", "--json").stdout)["rootToken"]
    assert sikker(url, "operator", "seal", token=root).returncode == 0

    refused = sikker(url, "vault", "list", token=root)
    assert refused.returncode == 7
    for text in (refused.stderr, Api(url).raw("GET", "/v1/secrets").json()["error"]):
        assert "restart" in text and "key file" in text and "operator unseal" not in text

    status = sikker(url, "status")
    assert status.returncode == 2
    assert "restart" in status.stdout + status.stderr
    assert "operator unseal" not in status.stdout + status.stderr

    unseal = sikker(url, "operator", "unseal")  # no prompt for shares it does not have
    assert unseal.returncode == 5 and "restart" in unseal.stderr and "Unseal share" not in unseal.stdout

    keyfile_server.restart()
    assert sikker(url, "status").returncode == 0


def test_the_sealed_message_of_a_shamir_server_still_says_operator_unseal(shamir_server: Server) -> None:
    url = shamir_server.url
    Api(url).ok("POST", "/api/sys/init", {"shares": 1, "threshold": 1})
    refused = Api(url).raw("GET", "/api/vaults")
    assert refused.status_code == 503 and "sikker operator unseal" in refused.json()["error"]


def test_a_server_not_initialised_answers_503_saying_operator_init(shamir_server: Server) -> None:
    refused = Api(shamir_server.url).raw("GET", "/api/vaults")
    assert refused.status_code == 503 and "sikker operator init" in refused.json()["error"]


def _one_line(stderr: str, needle: str) -> str:
    lines = [line for line in stderr.splitlines() if needle in line]
    assert len(lines) == 1, stderr
    return lines[0]


def test_the_connection_error_names_the_address_from_sikker_addr_on_one_line() -> None:
    addr = f"http://127.0.0.1:{free_port()}"
    result = sikker(addr, "vault", "list", token="t", columns=40)
    assert result.returncode == 7
    line = _one_line(result.stderr, "cannot reach")
    assert addr in line and "SIKKER_ADDR" in line


def test_the_connection_error_names_the_address_from_addr() -> None:
    addr = f"http://127.0.0.1:{free_port()}"
    result = sikker(None, "vault", "list", "--addr", addr, token="t", columns=40)
    assert result.returncode == 7
    line = _one_line(result.stderr, "cannot reach")
    assert addr in line and "--addr" in line


def test_the_connection_error_says_the_default_address_was_used_and_how_to_change_it() -> None:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 8300)) == 0:
            pytest.skip("something listens on 127.0.0.1:8300")
    result = sikker(None, "vault", "list", token="t", columns=40)
    assert result.returncode == 7
    line = _one_line(result.stderr, "cannot reach")
    assert "http://127.0.0.1:8300" in line and "default" in line
    assert "SIKKER_ADDR" in line and "--addr" in line


def test_server_start_up_messages_are_not_wrapped(tmp_path: Path) -> None:
    server = Server(f"sqlite:///{tmp_path / 'a.db'}", tmp_path / "data", env={"COLUMNS": "40"}).start()
    server.stop()
    expected = f"Sikker listening on {server.public_url} (not initialised: run 'sikker operator init')"
    assert expected in server.output()
