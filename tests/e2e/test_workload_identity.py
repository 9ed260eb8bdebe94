"""Workload identity end to end: a real ``sikker server``, the real CLI in subprocesses, a JWKS
and a GitHub Actions runner token service served over loopback HTTP by pytest-httpserver, and
tokens signed here in the shape of GitHub Actions' OIDC token."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pytest_httpserver import HTTPServer
from sikkerkey import SikkerKey
from werkzeug import Request, Response

from tests.support import Server, init_and_unseal

ISSUER = "https://token.actions.githubusercontent.com"
AUDIENCE = "sikker"
SUBJECT = "repo:acme/api:ref:refs/heads/main"
KID = "gh-test-1"
RUNNER_BEARER = "runner-request-token"
PRINT_KEY = "import os; print(os.environ['API_KEY'])"


def github_claims(**override: Any) -> dict[str, Any]:
    """The claim set GitHub Actions puts in a job's OIDC token (documented by GitHub)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "jti": str(uuid.uuid4()),
        "sub": SUBJECT,
        "aud": AUDIENCE,
        "ref": "refs/heads/main",
        "sha": "a" * 40,
        "repository": "acme/api",
        "repository_owner": "acme",
        "repository_owner_id": "1001",
        "repository_id": "2002",
        "repository_visibility": "private",
        "run_id": "7700001",
        "run_number": "42",
        "run_attempt": "1",
        "actor": "octocat",
        "actor_id": "3003",
        "workflow": "deploy",
        "workflow_ref": "acme/api/.github/workflows/deploy.yml@refs/heads/main",
        "job_workflow_ref": "acme/api/.github/workflows/deploy.yml@refs/heads/main",
        "head_ref": "",
        "base_ref": "",
        "event_name": "push",
        "ref_type": "branch",
        "environment": "production",
        "runner_environment": "github-hosted",
        "iss": ISSUER,
        "nbf": now - 5,
        "iat": now - 5,
        "exp": now + 300,
    }
    return claims | override


@dataclass
class World:
    server: Server
    root: str
    base: Path
    issuer: HTTPServer
    key: rsa.RSAPrivateKey
    vault: str
    secret: str
    other_secret: str
    role: str

    def token(self, **override: Any) -> str:
        return jwt.encode(github_claims(**override), self.key, algorithm="RS256", headers={"kid": KID})

    def token_file(self, **override: Any) -> Path:
        path = self.base / f"jwt-{uuid.uuid4().hex[:8]}"
        path.write_text(self.token(**override))
        return path

    def sikker(
        self,
        *args: str,
        home: Path | None = None,
        env: dict[str, str] | None = None,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        home = home or self.base / f"home-{uuid.uuid4().hex[:8]}"
        full_env = os.environ | {
            "SIKKER_ADDR": self.server.url,
            "SIKKER_TOKEN": self.root,
            "SIKKERKEY_HOME": str(home),
            "HOME": str(home.parent),
            "COLUMNS": "200",
        }
        for name in ("SIKKERKEY_API_URL", "ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"):
            full_env.pop(name, None)
        return subprocess.run(
            [sys.executable, "-m", "sikker", *args],
            env=full_env | (env or {}),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def ok(self, *args: str, **kwargs: Any) -> str:
        result = self.sikker(*args, **kwargs)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout


def runner_token_service(world: World) -> Any:
    """The GitHub Actions runner's ID-token endpoint: ?audience=... in, {"value": JWT} out."""

    def handler(request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {RUNNER_BEARER}":
            return Response("{}", status=401, content_type="application/json")
        token = world.token(aud=request.args.get("audience", ISSUER))
        return Response(json.dumps({"count": 2000, "value": token}), content_type="application/json")

    return handler


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("workload")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())) | {
        "kid": KID,
        "use": "sig",
        "alg": "RS256",
    }
    issuer = HTTPServer(host="127.0.0.1", port=0)
    issuer.start()
    issuer.expect_request("/.well-known/jwks").respond_with_json({"keys": [jwk]})
    server = Server(
        f"sqlite:///{base / 'sikker.db'}",
        base / "data",
        # The refusal tests fail on purpose from 127.0.0.1: they must not throttle the address (429).
        env={"SIKKER_JWKS_ALLOWED_NETWORKS": "127.0.0.0/8", "SIKKER_AUTH_LOCKOUT_FAILURES": "1000"},
    ).start()
    try:
        _, root = init_and_unseal(server.url)
        w = World(server, root, base, issuer, key, "", "", "", "")
        w.vault = w.ok("vault", "create", "acme").strip()
        w.ok("project", "create", "--vault", "acme", "web")
        w.secret = w.ok(
            "secret", "create", "--project", "acme/web", "api-key", "--value-file", "-", stdin="s3cret"
        ).strip()
        w.other_secret = w.ok(
            "secret", "create", "--project", "acme/web", "other", "--field", "user=app"
        ).strip()
        created = w.ok(
            "jwt-role", "create", "--vault", "acme", "deploy", "--issuer", ISSUER,
            "--jwks-url", issuer.url_for("/.well-known/jwks"), "--bound-audience", AUDIENCE,
            "--bound-subject", "repo:acme/api:ref:refs/heads/*",
            "--bound-claim", "repository_owner=acme", "--bound-claim", "environment=production",
            "--bound-claim", "environment=staging", "--bound-claim", "run_attempt=1",
            "--name-claim", "repository", "--project", "acme/web", "--secret", "acme/web/api-key",
            "--machine-ttl", "15m", "--json",
        )  # fmt: skip
        w.role = json.loads(created)["id"]
        issuer.expect_request("/runner/token").respond_with_handler(runner_token_service(w))
        yield w
    finally:
        server.stop()
        issuer.clear()
        if issuer.is_running():
            issuer.stop()


def test_create_stores_the_role_as_given(world: World) -> None:
    role = json.loads(world.ok("jwt-role", "show", "deploy", "--vault", "acme", "--json"))
    assert role["id"] == world.role and role["vaultId"] == world.vault
    assert role["boundClaims"] == {
        "repository_owner": ["acme"],
        "environment": ["production", "staging"],
        "run_attempt": ["1"],
    }
    assert (role["secrets"], role["machineTtl"], role["enabled"]) == ([world.secret], 900, True)
    listed = world.ok("jwt-role", "list", "--vault", "acme")
    assert world.role in listed and "deploy" in listed


def test_run_with_a_jwt_file_injects_the_granted_secret_and_writes_nothing(world: World) -> None:
    home = world.base / "run-home"
    result = world.sikker(
        "run", "--url", world.server.public_url, "--vault", world.vault, "--role", "deploy",
        "--jwt-file", str(world.token_file()), "--secret", world.secret, "--",
        sys.executable, "-c", PRINT_KEY,
        home=home,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "s3cret\n"
    assert not home.exists()  # no identity, no key on disk


def test_run_exits_with_the_commands_exit_code(world: World) -> None:
    result = world.sikker(
        "run", "--url", world.server.public_url, "--vault", world.vault, "--role", world.role,
        "--jwt-env", "CI_JOB_JWT", "--all", "--", sys.executable, "-c", "raise SystemExit(7)",
        env={"CI_JOB_JWT": world.token()},
    )  # fmt: skip
    assert result.returncode == 7, result.stderr


def test_run_with_github_actions_asks_the_runner_for_the_token(world: World) -> None:
    runner = {
        "ACTIONS_ID_TOKEN_REQUEST_URL": world.issuer.url_for("/runner/token") + "?api-version=2.0",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": RUNNER_BEARER,
        "SIKKERKEY_API_URL": world.server.public_url,
    }
    result = world.sikker(
        "run", "--vault", world.vault, "--role", "deploy", "--github-actions", "--audience", AUDIENCE,
        "--secret", world.secret, "--", sys.executable, "-c", PRINT_KEY,
        env=runner,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "s3cret\n"
    # The runner's token for another audience is refused by the role: exit 3, the command never runs.
    refused = world.sikker(
        "run", "--vault", world.vault, "--role", "deploy", "--github-actions", "--audience", "other",
        "--secret", world.secret, "--", sys.executable, "-c", PRINT_KEY,
        env=runner,
    )  # fmt: skip
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "s3cret" not in refused.stdout


def test_github_actions_without_the_permission_says_so(world: World) -> None:
    result = world.sikker(
        "run", "--url", world.server.public_url, "--vault", world.vault, "--role", "deploy",
        "--github-actions", "--all", "--", "true",
    )  # fmt: skip
    assert result.returncode == 2
    assert "id-token: write" in result.stderr


def test_bootstrap_with_a_jwt_writes_an_identity_the_machine_commands_use(world: World) -> None:
    home = world.base / "bootstrap-home"
    printed = json.loads(
        world.ok(
            "machine", "bootstrap", "--url", world.server.public_url, "--vault", world.vault,
            "--role", "deploy", "--jwt-file", str(world.token_file()), "--json",
            home=home,
        )
    )  # fmt: skip
    assert printed["machineName"] == "acme/api" or "acme" in printed["machineName"]
    assert printed["expiresAt"] is not None
    assert Path(printed["identityPath"]).is_file()
    assert world.ok("get", world.secret, home=home) == "s3cret\n"
    listed = json.loads(world.ok("list", "--json", home=home))
    assert [s["id"] for s in listed] == [world.secret]  # only what the role grants
    denied = world.sikker("get", world.other_secret, home=home)
    assert denied.returncode == 3


def test_a_jwt_enrolls_once(world: World) -> None:
    token = world.token_file()
    args = ("machine", "bootstrap", "--url", world.server.public_url, "--vault", world.vault, "--role")
    world.ok(*args, "deploy", "--jwt-file", str(token))
    again = world.sikker(*args, "deploy", "--jwt-file", str(token))
    assert again.returncode == 3, again.stdout + again.stderr


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "repo:evil/api:ref:refs/heads/main"},
        {"aud": "someone-else"},
        {"environment": "dev"},
        {"repository_owner": "evil"},
        {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200, "nbf": int(time.time()) - 7200},
    ],
    ids=["subject", "audience", "claim", "owner", "expired"],
)
def test_a_token_the_role_does_not_bind_is_refused_and_writes_nothing(
    world: World, claims: dict[str, Any]
) -> None:
    home = world.base / f"refused-{uuid.uuid4().hex[:6]}"
    result = world.sikker(
        "machine", "bootstrap", "--url", world.server.public_url, "--vault", world.vault,
        "--role", "deploy", "--jwt-file", str(world.token_file(**claims)),
        home=home,
    )  # fmt: skip
    assert result.returncode == 3, result.stdout + result.stderr
    assert not home.exists()


def test_jwt_role_test_reports_each_check(world: World) -> None:
    good = world.sikker("jwt-role", "test", world.role, "--jwt-file", str(world.token_file()))
    assert good.returncode == 0, good.stdout + good.stderr
    assert "signature" in good.stdout and "FAIL" not in good.stdout

    bad = world.sikker(
        "jwt-role", "test", "deploy", "--vault", "acme", "--json",
        "--jwt-file", str(world.token_file(sub="repo:evil/api:ref:refs/heads/main", environment="dev")),
    )  # fmt: skip
    assert bad.returncode == 8, bad.stdout + bad.stderr
    report = json.loads(bad.stdout)
    failed = {c["check"] for c in report["checks"] if not c["ok"]}
    assert report["ok"] is False and {"subject", "claim:environment"} <= failed
    assert json.loads(bad.stderr)["code"] == 8

    table = world.sikker("jwt-role", "test", world.role, "--jwt-file", str(world.token_file(aud="x")))
    assert table.returncode == 8 and "audience" in table.stdout and "FAIL" in table.stdout


def test_the_official_sdk_enrolls_with_a_jwt_as_its_token(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIKKERKEY_API_URL", world.server.public_url)
    monkeypatch.setenv("SIKKERKEY_HOME", str(world.base / "sdk-home"))
    sk = SikkerKey.bootstrap_in_memory(world.vault, world.token(), name="sdk-job")
    assert sk.get_secret(world.secret) == "s3cret"


def test_disabling_the_role_revokes_its_machines(world: World) -> None:
    world.ok(
        "jwt-role", "create", "--vault", "acme", "short-lived", "--issuer", ISSUER,
        "--jwks-url", world.issuer.url_for("/.well-known/jwks"), "--bound-audience", "revocable",
        "--project", "acme/web", "--secret", "acme/web/api-key",
    )  # fmt: skip
    world.ok(
        "jwt-role", "update", "short-lived", "--vault", "acme", "--machine-ttl", "2m",
        "--bound-claim", "repository=acme/*", "--bound-claim", "repository=acme-labs/*",
        "--source-cidr", "127.0.0.0/8",
    )  # fmt: skip
    world.ok("jwt-role", "update", "short-lived", "--vault", "acme", "--clear", "source-cidrs")
    role = json.loads(world.ok("jwt-role", "show", "short-lived", "--vault", "acme", "--json"))
    assert role["machineTtl"] == 120 and role["boundClaims"] == {"repository": ["acme/*", "acme-labs/*"]}
    assert not role["sourceCidrs"]
    home = world.base / "revoked-home"
    world.ok(
        "machine", "bootstrap", "--url", world.server.public_url, "--vault", world.vault,
        "--role", "short-lived", "--jwt-file", str(world.token_file(aud="revocable")),
        home=home,
    )  # fmt: skip
    assert world.ok("get", world.secret, home=home) == "s3cret\n"
    world.ok("jwt-role", "disable", "short-lived", "--vault", "acme")
    assert world.sikker("get", world.secret, home=home).returncode == 3
    refused = world.sikker(
        "machine", "bootstrap", "--url", world.server.public_url, "--vault", world.vault,
        "--role", "short-lived", "--jwt-file", str(world.token_file(aud="revocable")),
    )  # fmt: skip
    assert refused.returncode == 3
    world.ok("jwt-role", "delete", "short-lived", "--vault", "acme")
    assert "short-lived" not in world.ok("jwt-role", "list", "--vault", "acme")


K8S_ISSUER = "https://kubernetes.default.svc.cluster.local"


def kubernetes_claims(namespace: str = "payments", account: str = "api") -> dict[str, Any]:
    """A projected service-account token's claims (audience set in the pod's volume)."""
    now = int(time.time())
    return {
        "aud": ["sikker-k8s"],
        "exp": now + 600,
        "iat": now,
        "nbf": now,
        "iss": K8S_ISSUER,
        "jti": str(uuid.uuid4()),
        "kubernetes.io": {
            "namespace": namespace,
            "node": {"name": "node-1", "uid": str(uuid.uuid4())},
            "pod": {"name": "api-7d9f8c-x2x1q", "uid": str(uuid.uuid4())},
            "serviceaccount": {"name": account, "uid": "0c8f3f4e-5a9b-4f0e-8a43-2b1d6c7e9f10"},
            "warnafter": now + 480,
        },
        "sub": f"system:serviceaccount:{namespace}:{account}",
    }


def test_a_kubernetes_service_account_token_logs_in_with_dotted_claim_bindings(world: World) -> None:
    cluster_key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(cluster_key.public_key())) | {"kid": "k8s-1"}
    world.issuer.expect_request("/k8s/openid/v1/jwks").respond_with_json({"keys": [jwk]})
    world.ok(
        "jwt-role", "create", "--vault", "acme", "payments-api", "--issuer", K8S_ISSUER,
        "--jwks-url", world.issuer.url_for("/k8s/openid/v1/jwks"), "--bound-audience", "sikker-k8s",
        "--bound-claim", "kubernetes.io.namespace=payments",
        "--bound-claim", "kubernetes.io.serviceaccount.name=api",
        "--name-claim", "kubernetes.io.pod.name", "--kubernetes-mode", "jwks",
        "--project", "acme/web", "--secret", "acme/web/api-key",
    )  # fmt: skip

    def token_file(**claims: str) -> Path:
        path = world.base / f"k8s-{uuid.uuid4().hex[:8]}"
        token = jwt.encode(
            kubernetes_claims(**claims), cluster_key, algorithm="ES256", headers={"kid": "k8s-1"}
        )
        path.write_text(token)
        return path

    home = world.base / "k8s-home"
    printed = json.loads(
        world.ok(
            "machine", "bootstrap", "--url", world.server.public_url, "--vault", world.vault,
            "--role", "payments-api", "--jwt-file", str(token_file()), "--json",
            home=home,
        )
    )  # fmt: skip
    assert printed["machineName"] == "api-7d9f8c-x2x1q"
    assert world.ok("get", world.secret, home=home) == "s3cret\n"

    other = token_file(namespace="default")
    report = world.sikker("jwt-role", "test", "payments-api", "--vault", "acme", "--jwt-file", str(other))
    assert report.returncode == 8
    assert "claim:kubernetes.io.namespace" in report.stdout and "FAIL" in report.stdout
    refused = world.sikker(
        "run", "--url", world.server.public_url, "--vault", world.vault, "--role", "payments-api",
        "--jwt-file", str(other), "--all", "--", sys.executable, "-c", PRINT_KEY,
    )  # fmt: skip
    assert refused.returncode == 3 and "s3cret" not in refused.stdout
