"""The server's logs as an operator reads them: JSON lines, one access line per request with a
request id that is also in the audit records the request wrote (which still verify), and no
token, value or query string anywhere in the output."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sikker.core import audit_verify
from tests.support import Api, Machine, Server, init_and_unseal

VALUE = "hunter2-value-never-logged"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("logs")
    server = Server(f"sqlite:///{base / 'a.db'}", base / "data", extra=["--log-format", "json"]).start()
    try:
        _, token = init_and_unseal(server.url)
        root = Api(server.url, token)
        vault = root.ok("POST", "/api/vaults", {"name": "v"})["id"]
        project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "p"})["id"]
        secret = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "s", "value": VALUE})["id"]
        enroll = root.ok(
            "POST", f"/api/vaults/{vault}/enrollment-tokens", {"projectIds": [project], "secretIds": [secret]}
        )["token"]
        machine = Machine.enroll(server, vault, enroll)
        yield {
            "server": server,
            "token": token,
            "enroll": enroll,
            "root": root,
            "vault": vault,
            "secret": secret,
            "machine": machine,
        }
    finally:
        server.stop()


def access_lines(server: Server) -> list[dict[str, Any]]:
    lines = []
    for raw in server.output().splitlines():
        if raw.startswith("{"):
            line = json.loads(raw)
            if line.get("logger") == "sikker.access":
                lines.append(line)
    return lines


def line_for(server: Server, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [line for line in access_lines(server) if line["request_id"] == request_id]
        if found:
            assert len(found) == 1
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no access line for {request_id}")


def test_every_line_of_a_json_server_is_json(world: dict[str, Any]) -> None:
    world["root"].ok("GET", "/api/vaults")
    out = world["server"].output()
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines and all(json.loads(line)["level"] for line in lines), out[-2000:]


def test_a_plain_request_id_is_kept_and_returned(world: dict[str, Any]) -> None:
    response = world["root"].raw("GET", "/api/vaults", headers={"X-Request-Id": "lb-1234.abc_Z"})
    assert response.headers["x-request-id"] == "lb-1234.abc_Z"
    line = line_for(world["server"], "lb-1234.abc_Z")
    assert line["method"] == "GET" and line["path"] == "/api/vaults" and line["route"] == "/api/vaults"
    assert line["status"] == 200 and line["bytes"] == len(response.content)
    assert line["client"] == "127.0.0.1" and line["duration_ms"] >= 0
    assert line["principal_kind"] == "root" and line["principal_id"].startswith("tok_")


@pytest.mark.parametrize("given", ["x" * 65, "a b", "id;rm", "é", ""])
def test_an_unsafe_request_id_is_replaced(world: dict[str, Any], given: str) -> None:
    response = world["root"].raw("GET", "/api/sys/status", headers={"X-Request-Id": given.encode()})
    returned = response.headers["x-request-id"]
    assert returned != given and len(returned) == 16
    assert line_for(world["server"], returned)["route"] == "/api/sys/status"


def test_the_request_id_is_in_the_audit_records_and_the_chain_still_verifies(
    world: dict[str, Any],
) -> None:
    machine, secret, root = world["machine"], world["secret"], world["root"]
    read = machine.request("GET", f"/v1/secret/{secret}")  # the read lane (group commit)
    assert read.status_code == 200
    read_id = read.headers["x-request-id"]
    line = line_for(world["server"], read_id)
    assert line["route"] == "/v1/secret/{secret}" and line["path"] == f"/v1/secret/{secret}"
    assert line["principal_kind"] == "machine" and line["principal_id"] == machine.id
    update = root.raw(
        "PUT", f"/api/secrets/{secret}", json={"value": "v2"}, headers={"X-Request-Id": "chg-1"}
    )
    assert update.status_code == 200
    records = root.ok("GET", f"/api/audit/{world['vault']}", params={"limit": 1000})["records"]
    by_request = {r["target"].get("request_id"): r for r in records}
    assert by_request[read_id]["action"] == "machine:secret:read"
    assert by_request["chg-1"]["action"] == "admin:secret:update"
    export = root.raw("GET", f"/api/audit/{world['vault']}/export")
    assert export.status_code == 200
    lines = [json.loads(x) for x in export.text.splitlines()]
    assert any(x.get("target", {}).get("request_id") == "chg-1" for x in lines)
    report = audit_verify.verify(lines, from_start=True)
    assert report.ok, report


def test_no_token_value_or_query_string_reaches_the_log(world: dict[str, Any]) -> None:
    server, root = world["server"], world["root"]
    root.ok("GET", f"/api/secrets/{world['secret']}")  # the value is in the response only
    httpx.get(f"{server.url}/v1/bootstrap/{world['enroll']}", timeout=10)
    httpx.get(f"{server.url}/v1/bootstrap/{world['enroll']}/x", timeout=10)  # unmatched
    root.raw("GET", f"/api/audit/{world['vault']}", params={"limit": "5", "q": "query-secret-text"})
    httpx.get(f"{server.url}/api/vaults", headers={"Cookie": "sikker_session=cookie-secret"}, timeout=10)
    time.sleep(0.3)
    out = server.output()
    for secret in (world["token"], world["enroll"], VALUE, "query-secret-text", "cookie-secret"):
        assert secret not in out
    assert any(line["path"] == "/v1/bootstrap/{token}" for line in access_lines(server))


def test_log_level_warning_turns_the_access_log_off(tmp_path: Path) -> None:
    server = Server(
        f"sqlite:///{tmp_path / 'a.db'}",
        tmp_path / "data",
        extra=["--log-format", "text"],
        env={"SIKKER_LOG_LEVEL": "warning"},
    ).start()
    try:
        Api(server.url).ok("GET", "/api/sys/status")
    finally:
        server.stop()
    assert "sikker.access" not in server.output()


def test_text_format_writes_key_value_access_lines(tmp_path: Path) -> None:
    server = Server(
        f"sqlite:///{tmp_path / 'a.db'}", tmp_path / "data", extra=["--log-format", "text"]
    ).start()
    try:
        Api(server.url).raw("GET", "/api/sys/status", headers={"X-Request-Id": "text-1"})
        time.sleep(0.3)
    finally:
        server.stop()
    line = next(x for x in server.output().splitlines() if "request_id=text-1" in x)
    assert "INFO sikker.access: request" in line and "route=/api/sys/status" in line and "status=200" in line
