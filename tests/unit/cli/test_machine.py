"""Machine-side commands against a fake machine plane (no server, no network)."""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sikker.cli import identity as identities
from sikker.cli import machine
from sikker.cli.machine_client import MachineClient
from sikker.errors import InvalidInput, NotFound, Unauthenticated

DB = {"id": "sk_db", "name": "db-main", "fieldNames": '["user","password"]', "projectId": "proj_a"}
TOKEN = {"id": "sk_tok", "name": "api.token", "fieldNames": None, "projectId": "proj_a"}
VALUES = {"sk_db": '{"user":"app","password":"p\'w$d"}', "sk_tok": "t0ken"}


class FakePlane:
    """Answers the machine routes from in-memory data and records the paths asked for."""

    def __init__(self) -> None:
        self.values = dict(VALUES)
        self.paths: list[str] = []
        self.bodies: list[bytes] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.paths.append(path)
        self.bodies.append(request.content)
        meta = [DB, TOKEN]
        if path.startswith("/v1/secret/"):
            secret_id = path.rsplit("/", 1)[1]
            if secret_id not in self.values:
                return httpx.Response(404, json={"error": "secret not found"})
            return httpx.Response(200, json={"value": self.values[secret_id]})
        if path == "/v1/secrets":
            return httpx.Response(200, json={"secrets": meta})
        if path == "/v1/secrets/export":
            exported = [
                {k: m[k] for k in ("id", "name", "fieldNames")} | {"value": self.values[m["id"]]}
                for m in meta
            ]
            return httpx.Response(200, json={"secrets": exported})
        if path == "/v1/cli/projects":
            return httpx.Response(200, json={"projects": [{"projectId": "proj_a", "projectName": "api"}]})
        if path == "/v1/cli/secrets":
            enriched = [
                m | {"projectName": "api", "type": "structured" if m["fieldNames"] else "secret"}
                for m in meta
            ]
            return httpx.Response(200, json={"secrets": enriched})
        return httpx.Response(404, json={"error": f"no route {path}"})


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SIKKERKEY_HOME", str(tmp_path / "home"))
    for var in ("SIKKERKEY_IDENTITY", "SIKKERKEY_VAULT", "SIKKERKEY_API_URL", "SIKKERKEY_ENROLL_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "home"


@pytest.fixture
def plane(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePlane]:
    fake = FakePlane()
    identities.write("vault_abc", "m-1", "worker", "http://localhost:8300", Ed25519PrivateKey.generate())

    def open_client(vault: str | None, ca_cert: str | None = None) -> MachineClient:
        identity, key = identities.load(identities.resolve(vault))
        return MachineClient(identity, key, transport=httpx.MockTransport(fake))

    monkeypatch.setattr(machine, "open_client", open_client)
    yield fake


def invoke(command: Any, *args: str) -> Any:
    return CliRunner().invoke(command, list(args))


def test_get_prints_the_value(plane: FakePlane) -> None:
    result = invoke(machine.get_cmd, "sk_tok")
    assert result.exit_code == 0 and result.output == "t0ken\n"
    assert plane.paths == ["/v1/secret/sk_tok"]


def test_get_with_field_prints_one_field_of_a_structured_secret(plane: FakePlane) -> None:
    assert invoke(machine.get_cmd, "sk_db", "password").output == "p'w$d\n"


def test_get_field_of_a_plain_secret_is_invalid_input(plane: FakePlane) -> None:
    result = invoke(machine.get_cmd, "sk_tok", "password")
    assert isinstance(result.exception, InvalidInput) and "not structured" in str(result.exception)


def test_get_missing_field_is_not_found_and_lists_the_fields(plane: FakePlane) -> None:
    result = invoke(machine.get_cmd, "sk_db", "host")
    assert isinstance(result.exception, NotFound) and "user, password" in str(result.exception)


def test_get_missing_secret_is_not_found(plane: FakePlane) -> None:
    assert isinstance(invoke(machine.get_cmd, "sk_nope").exception, NotFound)


def test_list_json_is_the_enriched_listing(plane: FakePlane) -> None:
    result = invoke(machine.list_cmd, "--json")
    assert [s["type"] for s in json.loads(result.output)] == ["structured", "secret"]
    assert plane.paths == ["/v1/cli/secrets"]


def test_list_table_shows_id_name_type_and_project(plane: FakePlane) -> None:
    result = invoke(machine.list_cmd)
    assert result.exit_code == 0
    for text in ("sk_db", "db-main", "structured", "api"):
        assert text in result.output


def test_export_prints_flattened_env_lines(plane: FakePlane) -> None:
    result = invoke(machine.export_cmd)
    assert result.output.splitlines() == [
        "export DB_MAIN_USER='app'",
        "export DB_MAIN_PASSWORD='p'\\''w$d'",
        "export API_TOKEN='t0ken'",
    ]
    assert plane.bodies == [b""]


def test_export_project_name_is_resolved_to_its_id(plane: FakePlane) -> None:
    result = invoke(machine.export_cmd, "--project", "api", "--format", "json")
    assert json.loads(result.output)["API_TOKEN"] == "t0ken"
    assert plane.paths == ["/v1/cli/projects", "/v1/secrets/export"]
    assert json.loads(plane.bodies[-1]) == {"projectId": "proj_a"}


def test_export_unknown_project_name_is_not_found(plane: FakePlane) -> None:
    assert isinstance(invoke(machine.export_cmd, "--project", "web").exception, NotFound)


def test_run_with_secrets_injects_them_and_exits_with_the_child_code(
    plane: FakePlane, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = invoke(
        machine.run_cmd, "--secret", "sk_db", "--secret", "sk_tok", "--",
        "sh", "-c", f'printf "%s|%s|%s" "$DB_MAIN_USER" "$DB_MAIN_PASSWORD" "$API_TOKEN" > {out}; exit 6',
    )  # fmt: skip
    assert result.exit_code == 6
    assert out.read_text() == "app|p'w$d|t0ken"


def test_run_all_uses_one_export(plane: FakePlane, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke(machine.run_cmd, "--all", "sh", "-c", f'printf %s "$API_TOKEN" > {out}')
    assert result.exit_code == 0 and out.read_text() == "t0ken"
    assert plane.paths == ["/v1/secrets/export"]


@pytest.mark.parametrize(
    "args",
    [["true"], ["--all", "--secret", "sk_db", "true"], ["--secret", "sk_db", "--project", "api", "true"]],
)
def test_run_needs_exactly_one_of_secret_or_all(plane: FakePlane, args: list[str]) -> None:
    assert isinstance(invoke(machine.run_cmd, *args).exception, InvalidInput)


def test_run_interval_below_ten_seconds_is_refused(plane: FakePlane) -> None:
    assert invoke(machine.run_cmd, "--all", "--watch", "--interval", "5", "true").exit_code == 2


def test_run_missing_command_exits_127(plane: FakePlane) -> None:
    assert invoke(machine.run_cmd, "--all", "/nonexistent/cmd").exit_code == 127


def test_identity_status_reports_reachability_and_count(plane: FakePlane) -> None:
    report = machine.identity_status("vault_abc", transport=httpx.MockTransport(plane))
    assert report == {
        "machineId": "m-1",
        "machineName": "worker",
        "vaultId": "vault_abc",
        "apiUrl": "http://localhost:8300",
        "reachable": True,
        "secrets": 2,
        "error": None,
    }


def test_identity_status_separates_refusal_from_unreachable(plane: FakePlane) -> None:
    refused = machine.identity_status(
        None, httpx.MockTransport(lambda r: httpx.Response(401, json={"error": "no"}))
    )
    assert (refused["reachable"], refused["error"], refused["secrets"]) == (True, "no", None)

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    unreachable = machine.identity_status(None, httpx.MockTransport(down))
    assert unreachable["reachable"] is False and "cannot reach" in unreachable["error"]


# -- bootstrap ------------------------------------------------------------------------
class FakeEnroll:
    def __init__(self, status: int = 200, answer: dict[str, Any] | None = None) -> None:
        self.status = status
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = json.loads(request.content)
        answer = self.answer or {
            "machineId": "0b6c2c1e-1f7a-4d8e-9a56-8b0f8a1f7c11",
            "machineName": body.get("name", "host"),
            "vaultId": "vault_abc",
            "expiresAt": 0,
            "apiUrl": "http://localhost:9999",
        }
        return httpx.Response(self.status, json=answer)


@pytest.fixture
def enroll_server(home: Path, monkeypatch: pytest.MonkeyPatch) -> FakeEnroll:
    fake = FakeEnroll()
    monkeypatch.setattr(
        machine, "enroll", functools.partial(machine.enroll, transport=httpx.MockTransport(fake))
    )
    return fake


def test_bootstrap_registers_the_public_key_and_writes_a_working_identity(enroll_server: FakeEnroll) -> None:
    result = invoke(
        machine.bootstrap_command, "--url", "http://localhost:8300/", "--vault", "abc",
        "--token", "enr-secret", "--name", "web-1", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    request = enroll_server.requests[0]
    assert str(request.url) == "http://localhost:8300/v1/vault_abc/enroll/register"
    assert request.headers["content-type"] == "application/json"
    assert not any(h.startswith("x-") for h in request.headers)
    body = json.loads(request.content)
    assert set(body) == {"token", "publicKey", "hostname", "name", "kind"}
    assert (body["token"], body["name"], body["kind"]) == ("enr-secret", "web-1", "standard")

    printed = json.loads(result.output)
    identity, key = identities.load(Path(printed["identityPath"]))
    assert identity.machine_id == printed["machineId"] == "0b6c2c1e-1f7a-4d8e-9a56-8b0f8a1f7c11"
    assert (identity.machine_name, identity.api_url) == ("web-1", "http://localhost:9999")
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(body["publicKey"]))
    public.verify(key.sign(b"proof"), b"proof")
    assert "enr-secret" not in result.output


def test_bootstrap_falls_back_to_the_url_when_the_answer_has_no_api_url(
    enroll_server: FakeEnroll, home: Path
) -> None:
    enroll_server.answer = {"machineId": "m-2", "vaultId": "vault_abc"}
    result = invoke(
        machine.bootstrap_command, "--url", "http://localhost:8300", "--vault", "vault_abc", "--token", "t"
    )
    assert result.exit_code == 0, result.output
    identity, _ = identities.load(home / "vaults" / "vault_abc" / "identity.json")
    assert identity.api_url == "http://localhost:8300"
    assert "name" not in json.loads(enroll_server.requests[0].content)


def test_bootstrap_rejected_token_is_unauthenticated_and_writes_nothing(
    enroll_server: FakeEnroll, home: Path
) -> None:
    enroll_server.status, enroll_server.answer = 401, {"error": "invalid enrollment token"}
    result = invoke(
        machine.bootstrap_command, "--url", "http://localhost:8300", "--vault", "abc", "--token", "t"
    )
    assert isinstance(result.exception, Unauthenticated)
    assert not home.exists()


@pytest.mark.parametrize("answer", [{"machineId": "m"}, {"machineId": "m", "vaultId": "../../etc"}])
def test_bootstrap_refuses_malformed_answers(
    enroll_server: FakeEnroll, home: Path, answer: dict[str, Any]
) -> None:
    enroll_server.answer = answer
    result = invoke(
        machine.bootstrap_command, "--url", "http://localhost:8300", "--vault", "abc", "--token", "t"
    )
    assert "malformed" in str(result.exception)
    assert not home.exists()


def test_bootstrap_refuses_plain_http_to_a_remote_host(enroll_server: FakeEnroll) -> None:
    result = invoke(
        machine.bootstrap_command, "--url", "http://sikker.example.com", "--vault", "a", "--token", "t"
    )
    assert isinstance(result.exception, InvalidInput)
    assert enroll_server.requests == []


def test_commands_have_the_expected_click_names() -> None:
    names = [c.name for c in (machine.get_cmd, machine.list_cmd, machine.export_cmd, machine.run_cmd)]
    assert names == ["get", "list", "export", "run"]
    assert machine.bootstrap_command.name == "bootstrap"
    assert machine.machine_local.commands["bootstrap"] is machine.bootstrap_command
