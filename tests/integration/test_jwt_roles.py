"""Workload identity end to end (docs/security.md "Workloads"): JWT roles, logins with tokens
shaped like GitHub Actions' and Kubernetes', keys served over real HTTP on loopback
(pytest-httpserver), key rotation, a JWKS that is down or hangs, TokenReview, revocation of a
role's machines (on a second node too, on PostgreSQL), replay, and the refusal matrix: every
bad token is a 401 with an audit record naming the failing check.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.support import Api, Machine, Server, free_port, init_and_unseal
from tests.workload import (
    GITHUB_ISSUER,
    KUBERNETES_ISSUER,
    SigningKey,
    github_claims,
    hmac_with_public_key,
    jwks,
    kubernetes_claims,
    unsigned,
)

QUIET = {
    "SIKKER_JWKS_ALLOWED_NETWORKS": "127.0.0.1/32",
    "SIKKER_JWKS_TIMEOUT_SECONDS": "1",
    "SIKKER_AUTH_LOCKOUT_FAILURES": "100000",  # the matrix below refuses many logins from 127.0.0.1
    "SIKKER_JWT_LOGIN_ATTEMPTS_PER_MINUTE": "100000",
}
LOGIN_KEYS = {"machineId", "machineName", "vaultId", "expiresAt", "apiUrl"}
REFUSALS: Counter[str] = Counter()  # check -> refused, over the matrix
ACCEPTED: Counter[str] = Counter()  # check -> accepted (must stay empty)


@dataclass
class Issuers:
    """What the loopback issuer serves; tests change it while the server runs."""

    http: HTTPServer
    documents: dict[str, Any] = field(default_factory=dict)
    reviews: list[dict[str, Any]] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return self.http.url_for(path)

    def serve(self, path: str, document: Any) -> str:
        self.documents[path] = document
        return self.url(path)


@dataclass
class World:
    server: Server
    root: Api
    vault: str
    project: str
    secret: str
    issuers: Issuers
    reviewer_token: Path
    nodes: list[Server]
    gh: SigningKey = field(default_factory=lambda: SigningKey("RS256"))

    def new_vault(self) -> tuple[str, str, str]:
        vault = self.root.ok("POST", "/api/vaults", {"name": f"v-{uuid.uuid4().hex[:6]}"})["id"]
        project = self.root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "p"})["id"]
        secret = self.root.ok("POST", f"/api/projects/{project}/secrets", {"name": "DB", "value": "s3cret"})[
            "id"
        ]
        return vault, project, secret

    def role(self, vault: str | None = None, **spec: Any) -> dict[str, Any]:
        body = {
            "name": f"r-{uuid.uuid4().hex[:8]}",
            "issuer": GITHUB_ISSUER,
            "jwksUrl": self.issuers.url("/gh/jwks"),
            "boundAudiences": ["sikker"],
            "projects": [self.project],
            "secrets": [self.secret],
        } | spec
        return dict(self.root.ok("POST", f"/api/vaults/{vault or self.vault}/jwt-roles", body))

    def login(self, role: str, token: str, vault: str | None = None, **extra: Any) -> tuple[int, Any, Any]:
        """(status, body, private key) of a login."""
        key = Ed25519PrivateKey.generate()
        public = base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
        body = {"role": role, "jwt": token, "publicKey": public, "hostname": "runner-1"} | extra
        response = httpx.post(
            f"{self.server.url}/v1/{vault or self.vault}/auth/jwt/login", json=body, timeout=30
        )
        return response.status_code, response.json(), key

    def machine(self, answer: dict[str, Any], key: Any, node: Server | None = None) -> Machine:
        return Machine((node or self.server).url, answer["machineId"], key)

    def last_login_record(self, chain: str | None = None) -> dict[str, Any]:
        found = self.root.ok(
            "GET", f"/api/audit/{chain or self.vault}", params={"action": "machine:jwt:login", "limit": 1}
        )["records"]
        return dict(found[0])


@pytest.fixture(scope="module")
def issuers() -> Iterator[Issuers]:
    http = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    http.start()
    state = Issuers(http)

    def document(request: Request) -> Response:
        found = state.documents.get(request.path)
        if found is None:
            return Response("not found", status=404)
        return Response(json.dumps(found), content_type="application/json")

    def hang(_request: Request) -> Response:
        state.entered.set()
        state.release.wait(20)
        return Response(json.dumps({"keys": []}), content_type="application/json")

    def review(request: Request) -> Response:
        body = request.get_json()
        state.reviews.append({"authorization": request.headers.get("Authorization"), "body": body})
        token = body["spec"]["token"]
        status = {"authenticated": token not in state.revoked, "audiences": body["spec"]["audiences"]}
        return Response(
            json.dumps({"kind": "TokenReview", "status": status}), content_type="application/json"
        )

    # Handlers match in the order they were added: the catch-all document server goes last.
    http.expect_request("/slow/jwks").respond_with_handler(hang)
    http.expect_request("/apis/authentication.k8s.io/v1/tokenreviews", method="POST").respond_with_handler(
        review
    )
    http.expect_request(re.compile(r"/.*"), method="GET").respond_with_handler(document)
    try:
        yield state
    finally:
        state.release.set()
        http.clear()
        http.stop()


@pytest.fixture(scope="module")
def world(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory, issuers: Issuers
) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("jwt")
    reviewer = directory / "reviewer-token"
    reviewer.write_text("reviewer-1\n")
    config = directory / "sikker.toml"
    config.write_text(
        f'[kubernetes_clusters.test]\napi_url = "{issuers.url("")}"\ntoken_file = "{reviewer}"\n'
        f'[kubernetes_clusters.self]\napi_url = "{issuers.url("")}"\n'
    )
    extra = ["--config", str(config)]
    server = Server(module_database_url, directory / "node1", extra, QUIET).start()
    nodes = [server]
    try:
        shares, token = init_and_unseal(server.url, 1, 1)
        if module_database_url.startswith("postgresql"):
            second = Server(module_database_url, directory / "node2", extra, QUIET).start()
            nodes.append(second)
            Api(second.url).ok("POST", "/api/sys/unseal", {"share": shares[0]})
        root = Api(server.url, token)
        w = World(server, root, "", "", "", issuers, reviewer, nodes)
        w.vault, w.project, w.secret = w.new_vault()
        issuers.serve("/gh/jwks", jwks(w.gh))
        yield w
    finally:
        for node in nodes:
            node.stop()


def test_a_github_actions_job_logs_in_and_reads_its_granted_secret(world: World) -> None:
    role = world.role(
        boundSubject="repo:acme/api:ref:refs/heads/*",
        boundClaims={
            "repository": ["acme/api"],
            "environment": ["production", "staging"],
            "run_attempt": ["1"],
        },
        nameClaim="repository",
    )
    assert role["id"].startswith("jr_") and role["machineTtl"] == 3600 and role["kubernetes"] is None
    status, answer, key = world.login(role["name"], world.gh.sign(github_claims()))
    assert status == 200, answer
    assert (
        set(answer) == LOGIN_KEYS and answer["vaultId"] == world.vault and answer["machineName"] == "acme/api"
    )
    machine = world.machine(answer, key)
    read = machine.request("GET", f"/v1/secret/{world.secret}")
    assert read.status_code == 200 and read.json() == {"value": "s3cret"}
    record = world.last_login_record()
    assert record["result"] == "ok" and record["target"]["role"] == role["name"]
    assert record["target"]["issuer"] == GITHUB_ISSUER and record["target"]["subject"].startswith(
        "repo:acme/api"
    )
    listed = world.root.ok("GET", f"/api/vaults/{world.vault}/machines")["machines"]
    mine = next(m for m in listed if m["id"] == answer["machineId"])
    assert mine["kind"] == "ephemeral" and mine["expiresAt"] == answer["expiresAt"]


def test_the_role_id_works_as_its_name_and_the_admin_routes_answer_the_role_object(world: World) -> None:
    role = world.role(sourceCidrs=["127.0.0.0/8"], machineTtl=600)
    status, answer, _ = world.login(role["id"], world.gh.sign(github_claims()))
    assert status == 200, answer
    shown = world.root.ok("GET", f"/api/jwt-roles/{role['id']}")
    assert shown == role
    listed = world.root.ok("GET", f"/api/vaults/{world.vault}/jwt-roles")["roles"]
    assert role["id"] in {r["id"] for r in listed}
    changed = world.root.ok(
        "PUT", f"/api/jwt-roles/{role['id']}", {"boundSubject": "repo:acme/*", "machineTtl": 900}
    )
    assert (changed["boundSubject"], changed["machineTtl"], changed["sourceCidrs"]) == (
        "repo:acme/*",
        900,
        ["127.0.0.0/8"],
    )
    cleared = world.root.ok("PUT", f"/api/jwt-roles/{role['id']}", {"boundSubject": None})
    assert cleared["boundSubject"] is None
    status, body = world.root.call(
        "POST",
        f"/api/vaults/{world.vault}/jwt-roles",
        {"name": role["name"]}
        | {"issuer": GITHUB_ISSUER, "jwksUrl": world.issuers.url("/gh/jwks"), "boundAudiences": ["x"]},
    )
    assert status == 409, body


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"boundAudiences": []}, "boundAudiences"),
        ({"jwksUrl": None}, "one of discoveryUrl"),
        (
            {
                "publicKeys": ["-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n"],
                "jwksUrl": None,
            },
            "PEM",
        ),
        ({"discoveryUrl": "https://issuer.invalid/.well-known/openid-configuration"}, "exactly one"),
        ({"machineTtl": 86_401}, "machineTtl"),
        ({"kubernetes": {"mode": "tokenreview", "cluster": "nowhere"}}, "cluster"),
        ({"jwksUrl": "ftp://example.org/keys"}, "https"),
    ],
)
def test_a_role_that_cannot_work_is_not_saved(world: World, spec: dict[str, Any], message: str) -> None:
    body = {
        "name": f"bad-{uuid.uuid4().hex[:6]}",
        "issuer": GITHUB_ISSUER,
        "jwksUrl": world.issuers.url("/gh/jwks"),
        "boundAudiences": ["sikker"],
        "projects": [],
        "secrets": [],
    } | spec
    status, answer = world.root.call("POST", f"/api/vaults/{world.vault}/jwt-roles", body)
    assert status == 400 and message in answer["error"], answer


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_every_key_source_and_algorithm_verifies(world: World, alg: str) -> None:
    """JWKS URL (one key, no kid), discovery document, pasted PEM: each with RS256, ES256, EdDSA."""
    issuer = f"https://issuer-{alg.lower()}.example"
    nokid = SigningKey(alg, kid=None)
    world.issuers.serve(f"/nokid-{alg}/jwks", jwks(nokid))
    via_jwks = world.role(issuer=issuer, jwksUrl=world.issuers.url(f"/nokid-{alg}/jwks"))
    discovered = SigningKey(alg)
    world.issuers.serve(f"/disc-{alg}/jwks", jwks(discovered))
    document = {"issuer": issuer, "jwks_uri": world.issuers.url(f"/disc-{alg}/jwks")}
    via_discovery = world.role(
        issuer=issuer, jwksUrl=None, discoveryUrl=world.issuers.serve(f"/disc-{alg}/openid", document)
    )
    pasted = SigningKey(alg)
    via_pem = world.role(
        issuer=issuer, jwksUrl=None, publicKeys=[SigningKey(alg).public_pem, pasted.public_pem]
    )
    for role, key in ((via_jwks, nokid), (via_discovery, discovered), (via_pem, pasted)):
        status, answer, _ = world.login(role["name"], key.sign(github_claims(iss=issuer)))
        assert status == 200, (role, answer)


def test_a_discovery_document_for_another_issuer_gives_no_keys(world: World) -> None:
    key = SigningKey("ES256")
    world.issuers.serve("/liar/jwks", jwks(key))
    document = {"issuer": "https://someone-else.example", "jwks_uri": world.issuers.url("/liar/jwks")}
    role = world.role(
        issuer="https://liar.example",
        jwksUrl=None,
        discoveryUrl=world.issuers.serve("/liar/openid", document),
    )
    status, _, _ = world.login(role["name"], key.sign(github_claims(iss="https://liar.example")))
    assert status == 401 and world.last_login_record()["target"]["check"] == "keys_unavailable"


def test_key_rotation_at_the_issuer(world: World) -> None:
    """A new kid makes the server refetch; a key the issuer removed is refused."""
    old, new = SigningKey("RS256"), SigningKey("RS256")
    role = world.role(jwksUrl=world.issuers.serve("/rotating/jwks", jwks(old)))
    assert world.login(role["name"], old.sign(github_claims()))[0] == 200
    world.issuers.serve("/rotating/jwks", jwks(new))  # rotated: the old key is gone at once
    status, answer, _ = world.login(role["name"], new.sign(github_claims()))
    assert status == 200, answer
    status, answer, _ = world.login(role["name"], old.sign(github_claims()))
    assert status == 401 and answer == {"error": "JWT login refused"}
    assert world.last_login_record()["target"]["check"] == "kid"


def test_a_new_key_source_drops_the_cached_keys(world: World) -> None:
    first, second = SigningKey("ES256"), SigningKey("ES256")
    role = world.role(jwksUrl=world.issuers.serve("/src-a/jwks", jwks(first)))
    assert world.login(role["name"], first.sign(github_claims()))[0] == 200
    world.root.ok(
        "PUT", f"/api/jwt-roles/{role['id']}", {"jwksUrl": world.issuers.serve("/src-b/jwks", jwks(second))}
    )
    assert world.login(role["name"], first.sign(github_claims()))[0] == 401
    assert world.last_login_record()["target"]["check"] == "kid"
    assert world.login(role["name"], second.sign(github_claims()))[0] == 200


def test_a_jwks_that_is_down_refuses(world: World) -> None:
    role = world.role(jwksUrl=f"http://127.0.0.1:{free_port()}/jwks")  # nothing listens there
    status, _, _ = world.login(role["name"], world.gh.sign(github_claims()))
    assert status == 401 and world.last_login_record()["target"]["check"] == "keys_unavailable"


def test_a_jwks_that_hangs_times_out_and_blocks_nobody(world: World) -> None:
    """The issuer never answers: the login is refused once the server's own bound passes (the
    handler is still held when the refusal arrives), and a machine read made meanwhile is served."""
    role = world.role(jwksUrl=world.issuers.url("/slow/jwks"))
    status, answer, key = world.login(world.role()["name"], world.gh.sign(github_claims()))
    assert status == 200
    machine = world.machine(answer, key)
    world.issuers.entered.clear()
    world.issuers.release.clear()
    outcome: list[int] = []
    slow = threading.Thread(
        target=lambda: outcome.append(world.login(role["name"], world.gh.sign(github_claims()))[0])
    )
    slow.start()
    try:
        assert world.issuers.entered.wait(20), "the server never asked the issuer"
        assert machine.request("GET", f"/v1/secret/{world.secret}").status_code == 200
        slow.join(30)
        assert outcome == [401] and not world.issuers.release.is_set()
    finally:
        world.issuers.release.set()
        slow.join(30)
    assert world.last_login_record()["target"]["check"] == "keys_unavailable"


def test_disabling_or_deleting_a_role_revokes_its_machines_on_every_node(world: World) -> None:
    for how in ("disable", "delete"):
        role = world.role()
        status, answer, key = world.login(role["name"], world.gh.sign(github_claims()))
        assert status == 200
        machines = [world.machine(answer, key, node) for node in world.nodes]
        for m in machines:  # every node has served (and cached) this machine's read
            assert m.request("GET", f"/v1/secret/{world.secret}").status_code == 200
        if how == "disable":
            world.root.ok("POST", f"/api/jwt-roles/{role['id']}/disable")
        else:
            world.root.ok("DELETE", f"/api/jwt-roles/{role['id']}")
        for m in machines:
            assert m.request("GET", f"/v1/secret/{world.secret}").status_code == 401, how
        listed = world.root.ok("GET", f"/api/vaults/{world.vault}/machines")["machines"]
        assert next(m for m in listed if m["id"] == answer["machineId"])["revoked"] is True
    status, _, _ = world.login(role["name"], world.gh.sign(github_claims()))
    assert status == 401 and world.last_login_record()["target"]["check"] == "role"


def test_a_jwt_enrolls_at_most_once(world: World) -> None:
    role = world.role()
    token = world.gh.sign(github_claims())
    assert world.login(role["name"], token)[0] == 200
    assert world.login(role["name"], token)[0] == 401
    assert world.last_login_record()["target"]["check"] == "replay"
    k8s = SigningKey("ES256")
    k8s_role = world.role(issuer=KUBERNETES_ISSUER, jwksUrl=world.issuers.serve("/k8s-once/jwks", jwks(k8s)))
    no_jti = k8s.sign(kubernetes_claims())  # no jti: the whole token is remembered
    assert world.login(k8s_role["name"], no_jti)[0] == 200
    assert world.login(k8s_role["name"], no_jti)[0] == 401
    assert world.last_login_record()["target"]["check"] == "replay"


def test_tokenreview_rereads_the_reviewer_token_and_binds_namespace_and_account(world: World) -> None:
    k8s = SigningKey("RS256")
    bindings = {
        "kubernetes.io.namespace": ["payments"],
        "kubernetes.io.serviceaccount.name": ["api", "worker"],
        "kubernetes.io.serviceaccount.uid": ["0c9a2f3e-8d1b-4f5a-9c6e-2b7d4e1f0a3c"],
    }
    role = world.role(
        issuer=KUBERNETES_ISSUER,
        jwksUrl=world.issuers.serve("/k8s-review/jwks", jwks(k8s)),
        boundClaims=bindings,
        kubernetes={"mode": "tokenreview", "cluster": "test"},
    )
    world.issuers.reviews.clear()
    world.reviewer_token.write_text("reviewer-1\n")
    assert world.login(role["name"], k8s.sign(kubernetes_claims()))[0] == 200
    world.reviewer_token.write_text("reviewer-2\n")  # the kubelet rotated the projected token
    assert world.login(role["name"], k8s.sign(kubernetes_claims(account="worker")))[0] == 200
    assert [r["authorization"] for r in world.issuers.reviews] == ["Bearer reviewer-1", "Bearer reviewer-2"]
    sent = world.issuers.reviews[0]["body"]
    assert sent["apiVersion"] == "authentication.k8s.io/v1" and sent["kind"] == "TokenReview"
    assert sent["spec"]["audiences"] == ["sikker"]
    revoked = k8s.sign(kubernetes_claims())
    world.issuers.revoked.add(revoked)  # the pod is gone: Kubernetes no longer accepts it
    assert world.login(role["name"], revoked)[0] == 401
    assert world.last_login_record()["target"]["check"] == "tokenreview"
    assert world.login(role["name"], k8s.sign(kubernetes_claims(namespace="other")))[0] == 401
    assert world.last_login_record()["target"]["check"] == "claim:kubernetes.io.namespace"


def test_tokenreview_without_keys_uses_the_token_as_its_own_bearer(world: World) -> None:
    k8s = SigningKey("RS256")  # never published: the API server vouches for the token
    role = world.role(
        issuer=KUBERNETES_ISSUER,
        jwksUrl=None,
        boundClaims={"kubernetes.io.namespace": ["payments"]},
        kubernetes={"mode": "tokenreview", "cluster": "self"},
    )
    assert role["jwksUrl"] is None and role["kubernetes"] == {"mode": "tokenreview", "cluster": "self"}
    world.issuers.reviews.clear()
    token = k8s.sign(kubernetes_claims())
    assert world.login(role["name"], token)[0] == 200
    assert world.issuers.reviews[-1]["authorization"] == f"Bearer {token}"


def test_enroll_register_takes_a_jwt_when_exactly_one_role_fits(world: World) -> None:
    vault, project, secret = world.new_vault()
    world.role(vault, projects=[project], secrets=[secret], boundAudiences=["sdk"])
    token = world.gh.sign(github_claims(audience="sdk"))
    machine = Machine.enroll(world.server, vault, token)
    assert machine.request("GET", f"/v1/secret/{secret}").json() == {"value": "s3cret"}
    world.role(vault, projects=[project], secrets=[], boundAudiences=["sdk", "other"])
    key = base64.b64encode(
        Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ).decode()
    body = {"token": world.gh.sign(github_claims(audience="sdk")), "publicKey": key}
    response = httpx.post(f"{world.server.url}/v1/{vault}/enroll/register", json=body, timeout=30)
    assert response.status_code == 401
    record = world.last_login_record(vault)
    assert record["target"]["check"] == "role" and "2 enabled JWT roles" in record["reason"]


def test_the_test_endpoint_reports_each_check_and_uses_nothing(world: World) -> None:
    role = world.role(boundClaims={"environment": ["production"]})
    token = world.gh.sign(github_claims())
    report = world.root.ok("POST", f"/api/jwt-roles/{role['id']}/test", {"jwt": token})
    assert report["ok"] is True
    names = [c["check"] for c in report["checks"]]
    for expected in (
        "size",
        "format",
        "alg",
        "issuer",
        "audience",
        "expired",
        "claim:environment",
        "signature",
        "replay",
    ):
        assert expected in names
    bad = world.gh.sign(github_claims(audience="nope", environment="dev"))
    report = world.root.ok("POST", f"/api/jwt-roles/{role['id']}/test", {"jwt": bad})
    failing = {c["check"]: c["reason"] for c in report["checks"] if not c["ok"]}
    assert report["ok"] is False and set(failing) == {"audience", "claim:environment"}
    assert world.login(role["name"], token)[0] == 200  # test used no jti


def test_an_unknown_vault_refusal_goes_to_the_system_chain(world: World) -> None:
    status, _, _ = world.login("whatever", world.gh.sign(github_claims()), vault="vault_0000000000000000")
    assert status == 401
    record = world.last_login_record("system")
    assert record["target"]["vault"] == "vault_0000000000000000" and record["target"]["check"] == "role"


# -- the refusal matrix ---------------------------------------------------------------------------
BOUND = {
    "repository": ["acme/api"],
    "repository_owner": ["acme"],
    "ref": ["refs/heads/main"],
    "environment": ["production"],
    "event_name": ["push", "workflow_dispatch"],
    "job_workflow_ref": ["acme/api/.github/workflows/*.yml@refs/heads/main"],
    "run_attempt": ["1"],
    "actor": ["octocat"],
}
WRONG = {
    "repository": "acme/other",
    "repository_owner": "evil",
    "ref": "refs/heads/feature",
    "environment": "staging",
    "event_name": "pull_request",
    "job_workflow_ref": "evil/api/.github/workflows/deploy.yml@refs/heads/main",
    "run_attempt": "2",
    "actor": "mallory",
}


@dataclass
class Matrix:
    roles: dict[str, dict[str, Any]]
    key: SigningKey


@pytest.fixture(scope="module")
def matrix(world: World) -> Matrix:
    key = SigningKey("RS256")
    url = world.issuers.serve("/matrix/jwks", jwks(key))
    spec = {"jwksUrl": url, "boundSubject": "repo:acme/api:ref:refs/heads/main", "boundClaims": BOUND}
    roles = {
        "a": world.role(**spec),
        "b": world.role(**(spec | {"boundAudiences": ["sikker-b"]})),
        "cidr": world.role(**(spec | {"sourceCidrs": ["10.0.0.0/8"]})),
        "off": world.role(**spec),
    }
    world.root.ok("POST", f"/api/jwt-roles/{roles['off']['id']}/disable")
    return Matrix(roles, key)


def _truncated(token: str) -> str:
    head, body, sig = token.split(".")
    return f"{head}.{body}.{sig[: len(sig) // 2]}"


def _cases() -> list[tuple[str, str, str, Any]]:
    """(case, role, expected check, token maker(matrix, now))."""
    good = github_claims
    cases: list[tuple[str, str, str, Any]] = [
        (
            f"claim {name} wrong",
            "a",
            f"claim:{name}",
            lambda m, name=name: m.key.sign(good(**{name: WRONG[name]})),
        )
        for name in BOUND
    ]
    missing = {k: v for k, v in github_claims().items() if k != "environment"}
    cases += [
        (
            "claim missing",
            "a",
            "claim:environment",
            lambda m: m.key.sign(missing | {"jti": str(uuid.uuid4())}),
        ),
        ("subject wrong", "a", "subject", lambda m: m.key.sign(good(sub="repo:acme/api:ref:refs/heads/dev"))),
        ("expired", "a", "expired", lambda m: m.key.sign(good(exp=int(good()["iat"]) - 120))),
        ("not yet valid", "a", "not_yet_valid", lambda m: m.key.sign(good(nbf=int(good()["iat"]) + 600))),
        (
            "iat in the future",
            "a",
            "issued_in_future",
            lambda m: m.key.sign(good(iat=int(good()["iat"]) + 600)),
        ),
        ("wrong issuer", "a", "issuer", lambda m: m.key.sign(good(iss="https://token.actions.evil.example"))),
        ("wrong audience", "a", "audience", lambda m: m.key.sign(good(audience="someone-else"))),
        (
            "missing audience",
            "a",
            "audience",
            lambda m: m.key.sign({k: v for k, v in good().items() if k != "aud"}),
        ),
        ("alg none", "a", "alg", lambda m: unsigned(good())),
        ("HS256 with the public key", "a", "alg", lambda m: hmac_with_public_key(m.key, good())),
        ("unknown kid", "a", "kid", lambda m: SigningKey("RS256").sign(good())),
        (
            "signed by another key, same kid",
            "a",
            "signature",
            lambda m: SigningKey("RS256", kid=m.key.kid).sign(good()),
        ),
        ("truncated signature", "a", "signature", lambda m: _truncated(m.key.sign(good()))),
        ("role A's JWT at role B", "b", "audience", lambda m: m.key.sign(good())),
        ("oversized", "a", "size", lambda m: m.key.sign(good(padding="x" * 9000))),
        ("garbage", "a", "format", lambda m: "not-a-jwt"),
        ("garbage segments", "a", "format", lambda m: "eyJ.eyJ.sig"),
        ("wrong source CIDR", "cidr", "source_cidr", lambda m: m.key.sign(good())),
        ("disabled role", "off", "role_disabled", lambda m: m.key.sign(good())),
        ("unknown role", "nope", "role", lambda m: m.key.sign(good())),
        ("JWT reused", "a", "replay", None),
    ]
    return cases


@pytest.mark.parametrize(("case", "role", "check", "make"), _cases(), ids=[c[0] for c in _cases()])
def test_refusal_matrix(world: World, matrix: Matrix, case: str, role: str, check: str, make: Any) -> None:
    name = matrix.roles[role]["name"] if role in matrix.roles else role
    if make is None:  # the reuse case: accepted once, then refused
        token = matrix.key.sign(github_claims())
        assert world.login(name, token)[0] == 200
    else:
        token = make(matrix)
    status, answer, _ = world.login(name, token)
    (REFUSALS if status == 401 else ACCEPTED)[check] += 1
    assert status == 401 and answer == {"error": "JWT login refused"}, (case, status, answer)
    record = world.last_login_record()
    assert record["result"] == "denied" and record["target"]["check"] == check, record
    assert token not in json.dumps(record)


def test_the_matrix_refused_everything(world: World) -> None:
    """Runs after the matrix of each store: N refused, 0 accepted (printed for the report)."""
    rows = "\n".join(
        f"  {check:28} refused {REFUSALS[check]:3}  accepted {ACCEPTED[check]}" for check in sorted(REFUSALS)
    )
    total = f"total refused {sum(REFUSALS.values())}, accepted {sum(ACCEPTED.values())}"
    print(f"\nrefusal matrix (cumulative over stores):\n{rows}\n  {total}")
    assert sum(REFUSALS.values()) >= len(_cases()) and not ACCEPTED


def test_a_loopback_jwks_url_is_refused_unless_the_operator_allows_it(tmp_path: Path) -> None:
    server = Server(f"sqlite:///{tmp_path / 'ssrf.db'}", tmp_path / "data").start()
    try:
        _, token = init_and_unseal(server.url, 1, 1)
        root = Api(server.url, token)
        vault = root.ok("POST", "/api/vaults", {"name": "v"})["id"]
        for url in (
            "http://127.0.0.1:9/jwks",
            "https://127.0.0.1/jwks",
            "https://169.254.169.254/jwks",
            "https://[::1]/jwks",
            "https://10.1.2.3/jwks",
        ):
            body = {"name": "r", "issuer": GITHUB_ISSUER, "jwksUrl": url, "boundAudiences": ["a"]}
            status, answer = root.call("POST", f"/api/vaults/{vault}/jwt-roles", body)
            assert status == 400 and "jwks_allowed_networks" in answer["error"], (url, answer)
    finally:
        server.stop()
