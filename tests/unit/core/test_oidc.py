from __future__ import annotations

from typing import Any

import pytest

from sikker.core import oidc
from sikker.core.model import RoleBinding
from sikker.core.oidc import GroupRole, Pending
from sikker.errors import IdentityProviderError, SsoRejected

NOW = 1_800_000_000
ISS = "https://idp.example.com"
GOOD = {"iss": ISS, "aud": "sikker", "sub": "u-1", "iat": NOW, "exp": NOW + 300, "nonce": "n"}


def check(claims: dict[str, Any], nonce: str | None = "n", leeway: int = 60) -> None:
    oidc.check_claims(claims, issuer=ISS, client_id="sikker", nonce=nonce, now=NOW, leeway=leeway)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"aud": ["sikker"]},
        {"aud": ["sikker", "other"], "azp": "sikker"},
        {"azp": "sikker"},
        {"exp": NOW - 60},  # the leeway's edge
        {"iat": NOW + 60, "nbf": NOW + 60},
        {"exp": NOW + 1.5},
    ],
)
def test_claims_that_pass(changes: dict[str, Any]) -> None:
    check(GOOD | changes)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"iss": ISS + "/"}, "iss"),
        ({"iss": None}, "iss"),
        ({"aud": "other"}, "aud"),
        ({"aud": ["other"]}, "aud"),
        ({"aud": None}, "aud"),
        ({"aud": {"sikker": 1}}, "aud"),
        ({"aud": ["sikker", "other"]}, "azp"),
        ({"azp": "other"}, "azp"),
        ({"exp": NOW - 61}, "exp"),
        ({"exp": None}, "exp"),
        ({"exp": "9999999999"}, "exp"),
        ({"exp": True}, "exp"),
        ({"iat": None}, "iat"),
        ({"iat": NOW + 61}, "iat"),
        ({"nbf": NOW + 61}, "nbf"),
        ({"nonce": "m"}, "nonce"),
        ({"nonce": None}, "nonce"),
        ({"nonce": 1}, "nonce"),
        ({"sub": None}, "sub"),
        ({"sub": ""}, "sub"),
        ({"sub": "x" * 256}, "sub"),
    ],
)
def test_claims_that_are_refused_name_the_claim(changes: dict[str, Any], reason: str) -> None:
    claims = {k: v for k, v in (GOOD | changes).items() if v is not None}
    with pytest.raises(SsoRejected) as refused:
        check(claims)
    assert refused.value.reason == reason


def test_the_leeway_is_capped_at_sixty_seconds() -> None:
    with pytest.raises(SsoRejected, match="expired"):
        check(GOOD | {"exp": NOW - 120}, leeway=3600)


def test_the_device_flow_checks_no_nonce() -> None:
    check({k: v for k, v in GOOD.items() if k != "nonce"}, nonce=None)


@pytest.mark.parametrize(
    ("header", "allowed", "result"),
    [
        ({"alg": "RS256"}, oidc.ASYMMETRIC_ALGORITHMS, "RS256"),
        ({"alg": "EdDSA"}, oidc.ASYMMETRIC_ALGORITHMS, "EdDSA"),
        ({"alg": "none"}, oidc.ASYMMETRIC_ALGORITHMS, "alg_none"),
        ({"alg": "nOnE"}, ("none",), "alg_none"),
        ({}, oidc.ASYMMETRIC_ALGORITHMS, "alg_none"),
        ({"alg": "HS256"}, ("HS256",), "alg_hmac"),
        ({"alg": "hs512"}, oidc.ASYMMETRIC_ALGORITHMS, "alg_hmac"),
        ({"alg": "RS256"}, ("ES256",), "alg_not_allowed"),
        ({"alg": "ES256K"}, ("ES256K",), "alg_not_allowed"),
    ],
)
def test_header_algorithms(header: dict[str, Any], allowed: tuple[str, ...], result: str) -> None:
    try:
        assert oidc.check_header(header, allowed) == result
    except SsoRejected as refused:
        assert refused.reason == result


RSA = {"kty": "RSA", "kid": "r1", "n": "x", "e": "AQAB"}
EC = {"kty": "EC", "kid": "e1", "crv": "P-256", "x": "x", "y": "y"}


@pytest.mark.parametrize(
    ("keys", "kid", "alg", "found"),
    [
        ([RSA, EC], "r1", "RS256", 0),
        ([RSA, EC], "e1", "ES256", 1),
        ([RSA, EC], "r1", "ES256", None),  # a kid naming a key of another type
        ([RSA, EC], "zz", "RS256", None),
        ([RSA, EC], None, "RS256", 0),  # no kid: the only RSA key
        ([{k: v for k, v in RSA.items() if k != "kid"}], None, "PS256", 0),  # one key, no kid
        ([RSA, RSA | {"kid": "r2"}], None, "RS256", None),  # no kid, two candidates
        ([RSA | {"use": "enc"}], "r1", "RS256", None),
        ([RSA | {"alg": "RS512"}], "r1", "RS256", None),
        ([EC], "e1", "ES384", None),  # wrong curve
    ],
)
def test_key_selection(keys: list[dict[str, Any]], kid: str | None, alg: str, found: int | None) -> None:
    assert oidc.select_key(keys, kid, alg) == (None if found is None else keys[found])


def test_pkce_challenge_matches_rfc_7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert oidc.pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


PENDING = Pending("corp", "https://s.example/cb", "st", "no", "ve" * 30, NOW * 1000)


def test_a_pending_login_round_trips_as_a_dict_and_hides_its_secrets_in_repr() -> None:
    assert Pending.from_dict(PENDING.to_dict()) == PENDING
    assert "st" not in repr(PENDING).replace("https", "") and "veve" not in repr(PENDING)
    with pytest.raises(SsoRejected, match="damaged"):
        Pending.from_dict({"provider": "corp"})


@pytest.mark.parametrize(
    ("state", "now", "reason"),
    [("st", NOW + 600, None), ("sx", NOW, "state"), ("", NOW, "state"), ("st", NOW + 601, "pending_expired")],
)
def test_callback_checks(state: str, now: int, reason: str | None) -> None:
    if reason is None:
        oidc.check_callback(PENDING, state, now)
        return
    with pytest.raises(SsoRejected) as refused:
        oidc.check_callback(PENDING, state, now)
    assert refused.value.reason == reason


def test_the_authorization_url_keeps_the_endpoints_own_query() -> None:
    url = oidc.authorization_url("https://idp/auth?tenant=a", "sikker", ("openid", "email"), PENDING)
    assert url.startswith("https://idp/auth?tenant=a&response_type=code&")
    assert "scope=openid+email" in url and "code_challenge_method=S256" in url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://idp.example.com/x", None),
        ("http://127.0.0.1:9000", None),
        ("http://localhost/x", None),
        ("http://idp.example.com", "not an https:// URL"),
        ("ftp://idp.example.com", "not an https:// URL"),
        ("https://", "not an https:// URL"),
        ("", "missing"),
        (None, "missing"),
    ],
)
def test_endpoint_problems(url: object, problem: str | None) -> None:
    assert oidc.endpoint_problem(url) == problem


DOC = {
    "issuer": ISS,
    "authorization_endpoint": ISS + "/auth",
    "token_endpoint": ISS + "/token",
    "jwks_uri": ISS + "/jwks",
}


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({}, None),
        ({"code_challenge_methods_supported": ["plain", "S256"]}, None),
        ({"issuer": "https://evil.example.com"}, "issuer"),
        ({"token_endpoint": "http://idp.example.com/token"}, "token_endpoint"),
        ({"jwks_uri": None}, "jwks_uri"),
        ({"code_challenge_methods_supported": ["plain"]}, "PKCE"),
    ],
)
def test_discovery_checks(changes: dict[str, Any], problem: str | None) -> None:
    document = DOC | changes
    if problem is None:
        oidc.check_discovery(document, ISS)
        return
    with pytest.raises(IdentityProviderError, match=problem):
        oidc.check_discovery(document, ISS)


@pytest.mark.parametrize(
    ("methods", "chosen"),
    [
        (None, "client_secret_basic"),
        (["client_secret_post", "client_secret_basic"], "client_secret_basic"),
        (["client_secret_post"], "client_secret_post"),
        (["private_key_jwt"], None),
    ],
)
def test_token_endpoint_authentication(methods: list[str] | None, chosen: str | None) -> None:
    document = {} if methods is None else {"token_endpoint_auth_methods_supported": methods}
    if chosen is None:
        with pytest.raises(IdentityProviderError):
            oidc.token_auth_method(document)
    else:
        assert oidc.token_auth_method(document) == chosen


@pytest.mark.parametrize(
    ("raw", "groups"),
    [
        (["a", "b", "a"], ("a", "b")),
        ("solo", ("solo",)),
        (["a", 1, None, "", "b"], ("a", "b")),
        ({"a": 1}, ()),
        (None, ()),
    ],
)
def test_groups_from_the_claim(raw: object, groups: tuple[str, ...]) -> None:
    claims = GOOD | {"roles": raw, "email": "a@x", "email_verified": "true"}
    found = oidc.identity(claims, "roles")
    assert found.groups == groups
    assert (found.email, found.email_verified) == ("a@x", False)  # only a JSON true counts


ROLES = (
    GroupRole("platform", "admin", "v1"),
    GroupRole("platform", "viewer", "v2", "p9"),
    GroupRole("contractors", "developer", "v1", "p1"),
    GroupRole("everyone", "viewer", "v1"),
    GroupRole("admins", "admin", "v1"),
)


@pytest.mark.parametrize(
    ("groups", "bindings"),
    [
        ((), ()),
        (("nobody",), ()),
        (("platform",), (RoleBinding("admin", "v1"), RoleBinding("viewer", "v2", "p9"))),
        (("contractors",), (RoleBinding("developer", "v1", "p1"),)),
        (
            ("everyone", "contractors"),
            (RoleBinding("developer", "v1", "p1"), RoleBinding("viewer", "v1")),
        ),
        (("Platform",), ()),  # group names are exact
        (("platform", "admins"), (RoleBinding("admin", "v1"), RoleBinding("viewer", "v2", "p9"))),
    ],
)
def test_groups_map_to_role_bindings(groups: tuple[str, ...], bindings: tuple[RoleBinding, ...]) -> None:
    assert oidc.bindings_for_groups(groups, ROLES) == bindings
