"""The refusal matrix of workload identity (docs/security.md "Workload"): one bad token per
check and per bound claim, each a 401 with an audit record naming the check, on both stores;
the counts are printed as a table (N refused, 0 accepted)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.jwt_world import Issuers, World, serve_issuers, start_world
from tests.workload import (
    SigningKey,
    github_claims,
    hmac_with_public_key,
    jwks,
    unsigned,
)

REFUSALS: Counter[str] = Counter()  # check -> refused, over the matrix
ACCEPTED: Counter[str] = Counter()  # check -> accepted (must stay empty)

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
    cases += [
        (
            "claim missing",
            "a",
            "claim:environment",
            # Claims built when the case runs (not at collection: they would have expired).
            lambda m: m.key.sign({k: v for k, v in good().items() if k != "environment"}),
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
