"""The pure workload-identity decisions (src/sikker/core/jwt_roles.py): parsing, globs, claim
paths, value matching, times, bindings, and which roles a token may be meant for."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import pytest

from sikker.core import jwt_roles as j
from sikker.core.model import JwtRole
from tests.workload import kubernetes_claims

NOW = 1_800_000_000.0
ROLE = JwtRole(
    id="jr_0123456789abcdef",
    vault_id="vault_0123456789abcdef",
    name="ci",
    issuer="https://token.actions.githubusercontent.com",
    discovery_url=None,
    jwks_url="https://token.actions.githubusercontent.com/.well-known/jwks",
    public_keys=None,
    bound_audiences=("sikker",),
    bound_subject="repo:acme/*:ref:refs/heads/main",
    bound_claims={"repository": ("acme/api",), "run_attempt": ("1",)},
    name_claim=None,
    project_ids=(),
    secret_ids=(),
    machine_ttl_s=3600,
    source_cidrs=None,
    kubernetes_mode=None,
    kubernetes_cluster=None,
    enabled=True,
    created_ms=0,
    updated_ms=0,
)


def _segment(data: Any) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _token(claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    return f"{_segment(header or {'alg': 'RS256', 'kid': 'k'})}.{_segment(claims)}.c2ln"


def _claims(**extra: Any) -> dict[str, Any]:
    base = {
        "iss": ROLE.issuer,
        "aud": "sikker",
        "sub": "repo:acme/api:ref:refs/heads/main",
        "repository": "acme/api",
        "run_attempt": "1",
        "iat": NOW - 5,
        "nbf": NOW - 5,
        "exp": NOW + 300,
    }
    return base | extra


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("acme/api", "acme/api", True),
        ("acme/api", "acme/apix", False),
        ("acme/*", "acme/api", True),
        ("acme/*", "acme/", True),
        ("acme/*", "other/api", False),
        ("a?c", "abc", True),
        ("a?c", "ac", False),
        ("*", "", True),
        ("a.c", "abc", False),  # regex characters are literal
        ("a[b]c", "abc", False),  # no bracket classes: literal too
        ("a[b]c", "a[b]c", True),
        ("*.yml@refs/heads/main", "acme/.github/workflows/x.yml@refs/heads/main", True),
        ("refs/heads/*", "refs/heads/a\nb", True),  # * crosses newlines like fnmatch
        ("Acme", "acme", False),  # case-sensitive
    ],
)
def test_globs_match_like_fnmatchcase_without_brackets(pattern: str, value: str, expected: bool) -> None:
    assert j.glob_match(pattern, value) is expected


def test_a_glob_runs_in_linear_time_and_long_patterns_match_nothing() -> None:
    # A backtracking matcher would not finish this before the test's timeout; RE2 is linear.
    assert j.glob_match("*a*a*a*a*a*a*a*a*a*a*a*b", "a" * 8000) is False
    assert j.glob_match("*" * (j.GLOB_MAX + 1), "x") is False


@pytest.mark.parametrize(
    ("actual", "allowed", "expected"),
    [
        ("main", ["main"], True),
        ("main", ["dev", "ma*"], True),
        (1, ["1"], True),
        (1, ["1.0"], True),
        (2, ["1"], False),
        (1.5, ["1.5"], True),
        (1, ["one"], False),
        (True, ["true"], True),
        (False, ["true"], False),
        (True, ["1"], False),  # a boolean is not a number
        (["a", "b"], ["b"], True),
        (["a", "b"], ["c"], False),
        ([1, 2], ["2"], True),
        ({"x": 1}, ["*"], False),
        (None, ["*"], False),
        ([["nested"]], ["nested"], False),
    ],
)
def test_claim_values_match_as_string_glob_number_boolean_or_list(
    actual: Any, allowed: list[str], expected: bool
) -> None:
    assert j.value_matches(actual, allowed) is expected


def test_claim_paths_walk_keys_that_hold_dots() -> None:
    claims = kubernetes_claims(namespace="payments", account="api")
    assert j.claim_at(claims, "kubernetes.io.namespace") == (True, "payments")
    assert j.claim_at(claims, "kubernetes.io.serviceaccount.name") == (True, "api")
    assert j.claim_at(claims, "kubernetes.io.pod.missing") == (False, None)
    assert j.claim_at({"a.b": {"c": 1}, "a": {"b": {"c": 2}}}, "a.b.c") == (True, 1)  # longest key first


def test_a_flat_service_account_subject_stands_in_for_the_nested_claims() -> None:
    claims = {"sub": "system:serviceaccount:payments:api"}
    assert j.claim_at(claims, "kubernetes.io.namespace") == (True, "payments")
    assert j.claim_at(claims, "kubernetes.io.serviceaccount.name") == (True, "api")
    assert j.claim_at(claims, "kubernetes.io.serviceaccount.uid") == (False, None)


@pytest.mark.parametrize(
    ("token", "check"),
    [
        ("x" * (j.MAX_TOKEN_BYTES + 1), "size"),
        ("garbage", "format"),
        ("a.b", "format"),
        ("a.b.c.d", "format"),
        ("eyJ.eyJ.sig", "format"),
        (f"{_segment([1])}.{_segment({})}.sig", "format"),  # header not an object
        (f"{_segment({'alg': 'RS256'})}.{_segment(b'not json')}.sig", "format"),
    ],
)
def test_what_is_not_a_jwt_is_refused_by_size_or_format(token: str, check: str) -> None:
    with pytest.raises(j.Malformed) as caught:
        j.parse(token)
    assert caught.value.check == check


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ({"alg": "RS256"}, True),
        ({"alg": "ES256"}, True),
        ({"alg": "EdDSA"}, True),
        ({"alg": "none"}, False),
        ({"alg": "NONE"}, False),
        ({"alg": "HS256"}, False),
        ({"alg": "hs512"}, False),
        ({"alg": "RS384"}, False),  # asymmetric, but not one a role accepts
        ({"alg": "PS256"}, False),
        ({}, False),
        ({"alg": 5}, False),
    ],
)
def test_only_rs256_es256_and_eddsa_pass_the_header(header: dict[str, Any], ok: bool) -> None:
    assert j.check_alg(header).ok is ok


@pytest.mark.parametrize(
    ("changes", "failing"),
    [
        ({}, set()),
        ({"exp": NOW - 61}, {"expired"}),
        ({"exp": NOW - 59}, set()),  # within the leeway
        ({"exp": "soon"}, {"expired"}),
        ({"nbf": NOW + 61}, {"not_yet_valid"}),
        ({"nbf": NOW + 59}, set()),
        ({"iat": NOW + 61}, {"issued_in_future"}),
        ({"iat": True}, {"issued_in_future"}),
    ],
)
def test_times_allow_sixty_seconds_of_skew_and_require_exp(
    changes: dict[str, Any], failing: set[str]
) -> None:
    found = j.check_times(_claims(**changes), NOW)
    assert {c.check for c in found if not c.ok} == failing
    assert not j.check_times({k: v for k, v in _claims().items() if k != "exp"}, NOW)[0].ok


def test_a_leeway_above_sixty_seconds_is_capped() -> None:
    assert not j.check_times(_claims(exp=NOW - 120), NOW, leeway=3600)[0].ok


@pytest.mark.parametrize(
    ("changes", "failing"),
    [
        ({}, set()),
        ({"iss": "https://evil.example"}, {"issuer"}),
        ({"aud": ["other", "sikker"]}, set()),
        ({"aud": "other"}, {"audience"}),
        ({"aud": None}, {"audience"}),
        ({"sub": "repo:evil/api:ref:refs/heads/main"}, {"subject"}),
        ({"sub": None}, {"subject"}),
        ({"repository": "acme/web"}, {"claim:repository"}),
        ({"repository": None}, {"claim:repository"}),
        ({"run_attempt": "2"}, {"claim:run_attempt"}),
    ],
)
def test_bindings_name_the_check_that_failed(changes: dict[str, Any], failing: set[str]) -> None:
    claims = {k: v for k, v in _claims(**changes).items() if v is not None}
    assert {c.check for c in j.check_bindings(ROLE, claims) if not c.ok} == failing


def test_a_missing_claim_fails_its_binding() -> None:
    claims = {k: v for k, v in _claims().items() if k != "run_attempt"}
    failed = [c for c in j.check_bindings(ROLE, claims) if not c.ok]
    assert [c.check for c in failed] == ["claim:run_attempt"] and "no claim" in (failed[0].reason or "")


def test_evaluate_runs_the_cheap_checks_in_order() -> None:
    parsed = j.parse(_token(_claims()))
    names = [c.check for c in j.evaluate(ROLE, parsed, "10.0.0.1", NOW)]
    assert names[:4] == ["role_disabled", "alg", "issuer", "audience"]
    assert names[-1] == "source_cidr" and all(c.ok for c in j.evaluate(ROLE, parsed, "10.0.0.1", NOW))
    off = replace(ROLE, enabled=False, source_cidrs=("192.168.0.0/16",))
    failing = [c.check for c in j.evaluate(off, parsed, "10.0.0.1", NOW) if not c.ok]
    assert failing == ["role_disabled", "source_cidr"]


def test_a_token_fits_the_enabled_roles_of_its_issuer_and_audience() -> None:
    other_issuer = replace(ROLE, id="jr_1", issuer="https://gitlab.example")
    other_audience = replace(ROLE, id="jr_2", bound_audiences=("vault",))
    disabled = replace(ROLE, id="jr_3", enabled=False)
    both = replace(ROLE, id="jr_4", bound_audiences=("x", "sikker"))
    found = j.candidates([ROLE, other_issuer, other_audience, disabled, both], _claims())
    assert [r.id for r in found] == [ROLE.id, "jr_4"]


def test_the_replay_key_is_the_jti_per_issuer_else_the_whole_token() -> None:
    a = j.replay_key(_claims(jti="1"), "token-a")
    assert a == j.replay_key(_claims(jti="1"), "token-b")
    assert a != j.replay_key(_claims(jti="1", iss="https://other"), "token-a")
    assert j.replay_key(_claims(), "token-a") != j.replay_key(_claims(), "token-b")
    assert j.replay_expiry_ms(_claims(), 0) == int((NOW + 300) * 1000) + 60_000


def test_the_machine_name_comes_from_the_name_claim_then_sub() -> None:
    assert j.machine_name(_claims(), "repository") == "acme/api"
    assert j.machine_name(_claims(), "missing") == "repo:acme/api:ref:refs/heads/main"
    assert j.machine_name(_claims(), None) == "repo:acme/api:ref:refs/heads/main"
    assert j.machine_name(kubernetes_claims(), "kubernetes.io.pod.name").startswith("api-")
    assert j.machine_name({}, None) is None


def test_jwt_shaped_tokens_are_told_from_enrollment_tokens() -> None:
    assert j.looks_like_jwt(_token(_claims()))
    assert j.looks_like_jwt("a.b.")
    assert not j.looks_like_jwt("sikker_enroll_abc-DEF_123")
    assert not j.looks_like_jwt("a..c")
    assert not j.looks_like_jwt("a.b.c d")


def test_audit_text_of_a_claim_is_short_and_printable() -> None:
    assert j.text_claim({"sub": "a\nb" + "x" * 500}, "sub") == "a?b" + "x" * 197
    assert j.text_claim({"sub": 5}, "sub") == ""
