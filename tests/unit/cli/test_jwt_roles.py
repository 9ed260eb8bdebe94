"""``sikker jwt-role`` against a fake admin API over real HTTP: the bodies it sends, what it
prints, and the exit code of ``test``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from sikker.cli.jwt_roles import jwt_role
from sikker.errors import InvalidInput, VerificationFailed

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOmFjbWUvYXBpIn0.c2lnbmF0dXJl"
ROLE = {
    "id": "jwtrole_0123456789abcdef",
    "vaultId": "vault_abc",
    "name": "deploy",
    "issuer": "https://token.actions.githubusercontent.com",
    "discoveryUrl": "https://token.actions.githubusercontent.com",
    "jwksUrl": None,
    "publicKeys": [],
    "boundAudiences": ["sikker"],
    "boundSubject": "repo:acme/api:*",
    "boundClaims": {"repository_owner": ["acme"]},
    "nameClaim": None,
    "projects": ["proj_a"],
    "secrets": ["sk_a"],
    "machineTtl": 3600,
    "sourceCidrs": [],
    "kubernetes": None,
    "enabled": True,
    "createdAt": 0,
    "updatedAt": 0,
}


@pytest.fixture
def api(httpserver: HTTPServer) -> HTTPServer:
    return httpserver


def invoke(api: HTTPServer, *args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(
        jwt_role, [*args, "--addr", api.url_for("/").rstrip("/"), "--token", "root"], env=env
    )


def recording(store: list[dict[str, Any]], answer: Any) -> Any:
    def handler(request: Request) -> Response:
        store.append(json.loads(request.data or b"null"))
        return Response(json.dumps(answer), status=200, content_type="application/json")

    return handler


def test_create_sends_every_option(api: HTTPServer, tmp_path: Path) -> None:
    pem = tmp_path / "key.pem"
    pem.write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    bodies: list[dict[str, Any]] = []
    api.expect_request("/api/vaults/vault_abc/jwt-roles", method="POST").respond_with_handler(
        recording(bodies, ROLE)
    )
    result = invoke(
        api, "create", "--vault", "vault_abc", "deploy",
        "--issuer", "https://token.actions.githubusercontent.com", "--public-key-file", str(pem),
        "--bound-audience", "sikker", "--bound-subject", "repo:acme/api:*",
        "--bound-claim", "ref=refs/heads/main", "--bound-claim", "ref=refs/heads/release",
        "--name-claim", "repository", "--project", "proj_a", "--secret", "sk_a", "--secret", "sk_b",
        "--machine-ttl", "30m", "--source-cidr", "10.0.0.0/8",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert bodies == [
        {
            "name": "deploy",
            "issuer": "https://token.actions.githubusercontent.com",
            "publicKeys": [pem.read_text()],
            "boundAudiences": ["sikker"],
            "boundSubject": "repo:acme/api:*",
            "boundClaims": {"ref": ["refs/heads/main", "refs/heads/release"]},
            "nameClaim": "repository",
            "projects": ["proj_a"],
            "secrets": ["sk_a", "sk_b"],
            "machineTtl": 1800,
            "sourceCidrs": ["10.0.0.0/8"],
        }
    ]
    assert "jwtrole_0123456789abcdef" in result.output


def test_create_needs_a_key_source_and_an_audience(api: HTTPServer) -> None:
    result = invoke(api, "create", "--vault", "vault_abc", "r", "--issuer", "i", "--bound-audience", "a")
    assert isinstance(result.exception, InvalidInput) and "key" in str(result.exception)
    result = invoke(api, "create", "--vault", "vault_abc", "r", "--issuer", "i", "--jwks-url", "u")
    assert result.exit_code == 2 and "--bound-audience" in result.output


def test_update_by_name_sends_only_the_changes(api: HTTPServer) -> None:
    api.expect_request("/api/vaults/vault_abc/jwt-roles", method="GET").respond_with_json({"roles": [ROLE]})
    bodies: list[dict[str, Any]] = []
    api.expect_request(f"/api/jwt-roles/{ROLE['id']}", method="PUT").respond_with_handler(
        recording(bodies, ROLE)
    )
    result = invoke(
        api, "update", "deploy", "--vault", "vault_abc", "--machine-ttl", "2h", "--clear", "bound-claims"
    )
    assert result.exit_code == 0, result.output
    assert bodies == [{"machineTtl": 7200, "boundClaims": {}}]


def test_update_with_nothing_to_change_is_refused(api: HTTPServer) -> None:
    result = invoke(api, "update", ROLE["id"])
    assert isinstance(result.exception, InvalidInput)


def test_list_and_show_print_the_role(api: HTTPServer) -> None:
    api.expect_request("/api/vaults/vault_abc/jwt-roles").respond_with_json({"roles": [ROLE]})
    api.expect_request(f"/api/jwt-roles/{ROLE['id']}").respond_with_json(ROLE)
    listed = invoke(api, "list", "--vault", "vault_abc")
    assert listed.exit_code == 0 and ROLE["id"] in listed.output
    assert json.loads(invoke(api, "list", "--vault", "vault_abc", "--json").output) == [ROLE]
    shown = invoke(api, "show", ROLE["id"])
    assert shown.exit_code == 0 and "repository_owner=acme" in shown.output
    assert json.loads(invoke(api, "show", ROLE["id"], "--json").output) == ROLE


@pytest.mark.parametrize(
    ("action", "method"), [("disable", "POST"), ("enable", "POST"), ("delete", "DELETE")]
)
def test_state_changes_call_their_route(api: HTTPServer, action: str, method: str) -> None:
    path = f"/api/jwt-roles/{ROLE['id']}" + ("" if action == "delete" else f"/{action}")
    api.expect_request(path, method=method).respond_with_json({"ok": True})
    result = invoke(api, action, ROLE["id"])
    assert result.exit_code == 0, result.output
    assert f"{action}d" in result.output


def test_test_prints_each_check_and_fails_when_one_fails(api: HTTPServer, tmp_path: Path) -> None:
    token = tmp_path / "jwt"
    token.write_text(JWT)
    bodies: list[dict[str, Any]] = []
    answer = {
        "ok": False,
        "checks": [
            {"check": "signature", "ok": True, "reason": None},
            {"check": "claim:ref", "ok": False, "reason": "ref is refs/heads/dev"},
        ],
    }
    api.expect_request(f"/api/jwt-roles/{ROLE['id']}/test", method="POST").respond_with_handler(
        recording(bodies, answer)
    )
    result = invoke(api, "test", ROLE["id"], "--jwt-file", str(token))
    assert isinstance(result.exception, VerificationFailed) and "claim:ref" in str(result.exception)
    assert bodies == [{"jwt": JWT}]
    assert "signature" in result.output and "FAIL" in result.output and "refs/heads/dev" in result.output
    assert JWT not in result.output


def test_test_passes_when_every_check_passes(api: HTTPServer) -> None:
    answer = {"ok": True, "checks": [{"check": "signature", "ok": True, "reason": None}]}
    api.expect_request(f"/api/jwt-roles/{ROLE['id']}/test").respond_with_json(answer)
    result = invoke(api, "test", ROLE["id"], "--jwt-env", "THE_JWT", env={"THE_JWT": JWT})
    assert result.exit_code == 0, result.output
    assert "pass" in result.output


def test_test_refuses_a_jwt_on_the_command_line(api: HTTPServer) -> None:
    result = invoke(api, "test", ROLE["id"], "--jwt", JWT)
    assert isinstance(result.exception, InvalidInput) and "--jwt-file" in str(result.exception)
    assert JWT not in str(result.exception)


@pytest.mark.parametrize(
    ("seconds", "shown"), [(900, "15m"), (3600, "1h"), (86_400, "1d"), (90, "90s"), (None, "-")]
)
def test_ttls_are_shown_in_the_units_machine_ttl_takes(seconds: int | None, shown: str) -> None:
    from sikker.cli.jwt_roles import _duration

    assert _duration(seconds) == shown
