"""Where a workload's JWT comes from (file, variable, GitHub Actions runner) and the login that
trades it for a machine: against a fake runner over real HTTP and a fake machine plane."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from sikker.cli import identity as identities
from sikker.cli import machine, workload
from sikker.cli.workload import JwtSource, github_actions_token, read_jwt
from sikker.errors import InvalidInput, SikkerError, Unauthenticated, Unavailable

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOmFjbWUvYXBpIn0.c2lnbmF0dXJl"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SIKKERKEY_HOME", str(tmp_path / "home"))
    for var in (
        "SIKKERKEY_IDENTITY",
        "SIKKERKEY_VAULT",
        "SIKKERKEY_API_URL",
        "SIKKERKEY_ENROLL_TOKEN",
        workload.GITHUB_URL_ENV,
        workload.GITHUB_TOKEN_ENV,
    ):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "home"


@pytest.fixture
def runner_env(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> HTTPServer:
    """The two variables a GitHub Actions runner sets when the job may ask for an ID token."""
    url = httpserver.url_for("/_apis/distributedtask/token") + "?api-version=2.0"
    monkeypatch.setenv(workload.GITHUB_URL_ENV, url)
    monkeypatch.setenv(workload.GITHUB_TOKEN_ENV, "runner-bearer")
    return httpserver


# -- reading the JWT ---------------------------------------------------------------------
def test_a_jwt_file_is_read_and_stripped(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(JWT + "\n")
    assert read_jwt(JwtSource(jwt_file=str(path))) == JWT


def test_a_jwt_file_is_read_again_at_each_call(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(JWT)
    source = JwtSource(jwt_file=str(path))
    assert read_jwt(source) == JWT
    path.write_text(JWT.replace("c2ln", "bmV3"))  # the kubelet rotated the projected token
    assert read_jwt(source) != JWT


def test_a_jwt_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_JOB_JWT_V2", JWT)
    assert read_jwt(JwtSource(jwt_env="CI_JOB_JWT_V2")) == JWT


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "does not hold a JWT"),
        ("not a token", "does not hold a JWT"),
        ("a.b", "does not hold a JWT"),
        ("a.b.c.d", "does not hold a JWT"),
        ("x" * (workload.MAX_JWT_BYTES + 1), "larger than"),
    ],
)
def test_a_file_that_is_not_a_jwt_is_refused_without_echoing_it(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "token"
    path.write_text(content)
    with pytest.raises(InvalidInput, match=message) as caught:
        read_jwt(JwtSource(jwt_file=str(path)))
    assert content[:20] not in caught.value.message or not content


def test_a_missing_file_or_variable_is_invalid_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidInput, match="cannot read the JWT"):
        read_jwt(JwtSource(jwt_file=str(tmp_path / "absent")))
    monkeypatch.delenv("NO_SUCH_JWT", raising=False)
    with pytest.raises(InvalidInput, match="NO_SUCH_JWT is not set"):
        read_jwt(JwtSource(jwt_env="NO_SUCH_JWT"))


def test_two_sources_at_once_are_refused() -> None:
    with pytest.raises(InvalidInput, match="one of"):
        read_jwt(JwtSource(jwt_file="f", jwt_env="V"))


# -- GitHub Actions --------------------------------------------------------------------------
def test_github_actions_token_asks_the_runner_for_the_audience(runner_env: HTTPServer) -> None:
    seen: list[Request] = []

    def answer(request: Request) -> Response:
        seen.append(request)
        return Response(json.dumps({"count": 1, "value": JWT}), content_type="application/json")

    runner_env.expect_request("/_apis/distributedtask/token").respond_with_handler(answer)
    assert github_actions_token("https://sikker.example.com/x y") == JWT
    request = seen[0]
    assert request.headers["Authorization"] == "Bearer runner-bearer"
    assert request.args["api-version"] == "2.0"
    assert request.args["audience"] == "https://sikker.example.com/x y"
    assert "audience=https%3A%2F%2Fsikker.example.com%2Fx%20y" in request.query_string.decode()


def test_github_actions_without_id_token_permission_says_what_to_add(home: Path) -> None:
    with pytest.raises(InvalidInput, match="id-token: write") as caught:
        github_actions_token("sikker")
    assert workload.GITHUB_URL_ENV in caught.value.message


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (500, "{}", Unavailable),
        (403, '{"message": "no"}', Unavailable),
        (200, "{}", SikkerError),
        (200, "not json", SikkerError),
        (200, '{"value": "garbage"}', InvalidInput),
    ],
)
def test_github_actions_bad_answers_are_clear_errors(
    runner_env: HTTPServer, status: int, body: str, error: type[Exception]
) -> None:
    runner_env.expect_request("/_apis/distributedtask/token").respond_with_data(body, status=status)
    with pytest.raises(error) as caught:
        github_actions_token("sikker")
    assert "runner-bearer" not in str(caught.value)


def test_github_actions_token_service_down_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(workload.GITHUB_URL_ENV, "http://127.0.0.1:9/token?api-version=2.0")
    monkeypatch.setenv(workload.GITHUB_TOKEN_ENV, "runner-bearer")

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(Unavailable, match="cannot reach the GitHub Actions token service"):
        github_actions_token("sikker", transport=httpx.MockTransport(slow))


# -- the commands ------------------------------------------------------------------------------
class FakeLogin:
    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.status != 200:
            return httpx.Response(self.status, json={"error": "invalid token"})
        return httpx.Response(
            200,
            json={
                "machineId": "5f1f7a2e-8f43-4c39-9d1c-3d2e7b0c9a11",
                "machineName": "repo-acme-api",
                "vaultId": "vault_abc",
                "expiresAt": 1,
                "apiUrl": "http://localhost:9999",
            },
        )


@pytest.fixture
def login_server(home: Path, monkeypatch: pytest.MonkeyPatch) -> FakeLogin:
    fake = FakeLogin()
    original = workload.jwt_login

    def jwt_login(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return original(*args, **kwargs, transport=httpx.MockTransport(fake))

    monkeypatch.setattr(workload, "jwt_login", jwt_login)
    return fake


def invoke(command: Any, *args: str) -> Any:
    return CliRunner().invoke(command, list(args))


def test_bootstrap_with_a_jwt_file_logs_in_through_the_role(
    login_server: FakeLogin, home: Path, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text(JWT)
    result = invoke(
        machine.bootstrap_command, "--url", "http://localhost:8300", "--vault", "abc",
        "--role", "deploy", "--jwt-file", str(token), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    request = login_server.requests[0]
    assert str(request.url) == "http://localhost:8300/v1/vault_abc/auth/jwt/login"
    body = json.loads(request.content)
    assert set(body) == {"role", "jwt", "publicKey", "hostname"}
    assert (body["role"], body["jwt"]) == ("deploy", JWT)
    assert JWT not in result.output
    identity, _ = identities.load(Path(json.loads(result.output)["identityPath"]))
    assert identity.machine_name == "repo-acme-api"


def test_bootstrap_with_github_actions_fetches_the_token_first(
    login_server: FakeLogin, runner_env: HTTPServer
) -> None:
    runner_env.expect_request("/_apis/distributedtask/token", query_string={
        "api-version": "2.0", "audience": "my-aud"
    }).respond_with_json({"value": JWT})  # fmt: skip
    result = invoke(
        machine.bootstrap_command, "--url", "http://localhost:8300", "--vault", "abc",
        "--role", "deploy", "--github-actions", "--audience", "my-aud",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(login_server.requests[0].content)["jwt"] == JWT


def test_a_refused_login_is_unauthenticated_and_writes_nothing(login_server: FakeLogin, home: Path) -> None:
    login_server.status = 401
    result = invoke(
        machine.bootstrap_command, "--url", "http://localhost:8300", "--vault", "abc",
        "--role", "deploy", "--jwt-env", "THE_JWT",
    )  # fmt: skip
    assert isinstance(result.exception, InvalidInput)  # THE_JWT is not set: nothing was sent
    assert login_server.requests == []
    result = CliRunner().invoke(
        machine.bootstrap_command,
        ["--url", "http://localhost:8300", "--vault", "abc", "--role", "deploy", "--jwt-env", "THE_JWT"],
        env={"THE_JWT": JWT},
    )
    assert isinstance(result.exception, Unauthenticated)
    assert not home.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--jwt", JWT], "command line"),
        (["--role", "r"], "--role needs a JWT"),
        (["--jwt-file", "f"], "needs --role"),
        (["--role", "r", "--jwt-file", "f", "--jwt-env", "V"], "one of"),
        (["--role", "r", "--jwt-file", "f", "--audience", "x"], "only with --github-actions"),
        (["--role", "r", "--jwt-file", "f", "--token", "t"], "not both"),
    ],
)
def test_bootstrap_refuses_bad_combinations(login_server: FakeLogin, args: list[str], message: str) -> None:
    result = invoke(machine.bootstrap_command, "--url", "http://localhost:8300", "--vault", "abc", *args)
    assert isinstance(result.exception, InvalidInput), result.output
    assert message in str(result.exception)
    assert JWT not in str(result.exception)
    assert login_server.requests == []


def test_run_with_a_jwt_needs_the_server_url_and_the_vault(login_server: FakeLogin, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(JWT)
    result = invoke(machine.run_cmd, "--role", "r", "--jwt-file", str(token), "--all", "--", "true")
    assert isinstance(result.exception, InvalidInput) and "--url" in str(result.exception)
    result = invoke(
        machine.run_cmd, "--url", "http://localhost:8300", "--role", "r", "--jwt-file", str(token),
        "--all", "--", "true",
    )  # fmt: skip
    assert isinstance(result.exception, InvalidInput) and "--vault" in str(result.exception)
    assert login_server.requests == []


def test_run_refuses_url_without_a_jwt(home: Path) -> None:
    result = invoke(machine.run_cmd, "--url", "http://localhost:8300", "--all", "--", "true")
    assert isinstance(result.exception, InvalidInput) and "only with a JWT" in str(result.exception)
