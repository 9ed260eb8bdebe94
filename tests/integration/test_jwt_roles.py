"""Workload identity end to end (docs/security.md "Workload"): JWT roles, logins with tokens
shaped like GitHub Actions' and Kubernetes', keys served over real HTTP on loopback
(pytest-httpserver), key rotation, a JWKS that is down or hangs, TokenReview, revocation of a
role's machines (on a second node too, on PostgreSQL), replay, and the outbound network policy.
The refusal matrix is in test_jwt_refusals.py.
"""

from __future__ import annotations

import base64
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.jwt_world import LOGIN_KEYS, Issuers, World, serve_issuers, start_world
from tests.support import Api, Machine, Server, free_port, init_and_unseal
from tests.workload import (
    GITHUB_ISSUER,
    KUBERNETES_ISSUER,
    SigningKey,
    github_claims,
    jwks,
    kubernetes_claims,
)


@pytest.fixture(scope="module")
def issuers() -> Iterator[Issuers]:
    with serve_issuers() as found:
        yield found


@pytest.fixture(scope="module")
def world(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory, issuers: Issuers
) -> Iterator[World]:
    with start_world(module_database_url, tmp_path_factory.mktemp("jwt"), issuers) as found:
        yield found


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
    listed = world.root.ok("GET", f"/api/vaults/{world.vault}/machines")["machines"]
    mine = next(m for m in listed if m["id"] == answer["machineId"])
    assert mine["allowedCidr"] == "127.0.0.0/8"  # the role's one source CIDR binds the machine too
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
