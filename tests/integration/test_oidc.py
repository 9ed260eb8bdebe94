"""The OIDC client against a real OpenID provider (panva/oidc-provider) on loopback: the code
flow with PKCE through its login and consent pages, the device flow, and every ID token check
with tokens built wrong one claim at a time and signed with the provider's own keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sikker.config import OidcProvider, SecretText
from sikker.core.model import RoleBinding
from sikker.core.oidc import GroupRole, Pending, bindings_for_groups, pkce_challenge
from sikker.errors import IdentityProviderError, SsoRejected
from sikker.service.oidc import OidcClient
from tests.helpers.oidc_provider import REDIRECT_URI, TestProvider, sign_in


class Clock:
    """Real time, plus whatever a test adds (the provider's tokens carry real times)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class Recorder:
    """Counts requests per path (JWKS fetches) through an injected httpx client."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def client(self) -> httpx.Client:
        return httpx.Client(event_hooks={"request": [lambda r: self.paths.append(r.url.path)]})

    def count(self, path: str) -> int:
        return self.paths.count(path)


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestProvider]:
    provider = TestProvider(tmp_path_factory.mktemp("oidc")).start()
    try:
        yield provider
    finally:
        provider.stop()


def settings_for(idp: TestProvider, client_id: str = "sikker", **extra: Any) -> OidcProvider:
    return OidcProvider(
        name="test",
        issuer=idp.issuer,
        client_id=client_id,
        client_secret=SecretText(idp.client_secret),
        scopes=("openid", "email", "profile", "groups"),
        group_roles=(
            GroupRole("platform", "admin", "vault_prod000000000001"),
            GroupRole("contractors", "developer", "vault_prod000000000001", "proj_web0000000000001"),
        ),
        redirect_uri=REDIRECT_URI,
        **extra,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def client(clock: Clock, recorder: Recorder) -> Iterator[OidcClient]:
    oidc = OidcClient(recorder.client(), clock=clock)
    yield oidc
    oidc.close()


# -- the authorization code flow, over real HTTP --------------------------------------------
def test_code_flow_signs_alice_in_with_her_claims_and_groups(idp: TestProvider, client: OidcClient) -> None:
    provider = settings_for(idp)
    url, pending = client.start(provider)
    query = sign_in(url, "alice")
    assert query["iss"] == idp.issuer and "code" in query
    # The caller keeps the pending login server-side as a small dict.
    stored = json.loads(json.dumps(pending.to_dict()))
    who = client.finish_callback(provider, Pending.from_dict(stored), query)
    assert (who.issuer, who.subject, who.email, who.email_verified) == (
        idp.issuer,
        "alice",
        "alice@example.com",
        True,
    )
    assert (who.name, who.preferred_username, who.groups) == (
        "Alice Admin",
        "alice",
        ("platform", "everyone"),
    )
    assert bindings_for_groups(who.groups, provider.group_roles) == (
        RoleBinding("admin", "vault_prod000000000001"),
    )


def test_code_flow_with_an_es256_signed_id_token(idp: TestProvider, client: OidcClient) -> None:
    provider = settings_for(idp, client_id="sikker-es")
    url, pending = client.start(provider)
    query = sign_in(url, "bob")
    who = client.finish(provider, pending, query["code"], query["state"], returned_issuer=query["iss"])
    assert (who.subject, who.groups) == ("bob", ("contractors",))
    assert bindings_for_groups(who.groups, provider.group_roles) == (
        RoleBinding("developer", "vault_prod000000000001", "proj_web0000000000001"),
    )


def test_the_authorization_request_carries_pkce_s256_state_and_nonce(
    idp: TestProvider, client: OidcClient
) -> None:
    url, pending = client.start(settings_for(idp))
    params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert params["code_challenge_method"] == "S256"
    assert params["code_challenge"] == pkce_challenge(pending.code_verifier)
    assert (params["state"], params["nonce"]) == (pending.state, pending.nonce)
    assert pending.code_verifier not in url
    assert params["redirect_uri"] == REDIRECT_URI and params["response_type"] == "code"


def test_a_tampered_state_is_refused_before_the_code_is_spent(idp: TestProvider, client: OidcClient) -> None:
    provider = settings_for(idp)
    url, pending = client.start(provider)
    query = sign_in(url, "alice")
    with pytest.raises(SsoRejected) as refused:
        client.finish_callback(provider, pending, query | {"state": query["state"] + "x"})
    assert refused.value.reason == "state"
    assert client.finish_callback(provider, pending, query).subject == "alice"  # still usable


def test_a_code_is_refused_with_another_pkce_verifier(idp: TestProvider, client: OidcClient) -> None:
    provider = settings_for(idp)
    url, pending = client.start(provider)
    query = sign_in(url, "alice")
    other = Pending.from_dict(pending.to_dict() | {"code_verifier": "x" * 64})
    with pytest.raises(SsoRejected) as refused:
        client.finish_callback(provider, other, query)
    assert refused.value.reason == "token_error" and "invalid_grant" in refused.value.message


def test_a_code_is_spent_once(idp: TestProvider, client: OidcClient) -> None:
    provider = settings_for(idp)
    url, pending = client.start(provider)
    query = sign_in(url, "bob")
    client.finish_callback(provider, pending, query)
    with pytest.raises(SsoRejected, match="invalid_grant"):
        client.finish_callback(provider, pending, query)


def test_a_callback_from_another_issuer_is_refused(idp: TestProvider, client: OidcClient) -> None:
    provider = settings_for(idp)
    url, pending = client.start(provider)
    query = sign_in(url, "alice")
    for iss, reason in ((idp.issuer + "/evil", "iss_mixup"), (None, "iss_missing")):
        changed = {k: v for k, v in (query | {"iss": iss}).items() if v is not None}
        with pytest.raises(SsoRejected) as refused:
            client.finish_callback(provider, pending, changed)
        assert refused.value.reason == reason


def test_an_expired_login_attempt_is_refused(idp: TestProvider, client: OidcClient, clock: Clock) -> None:
    provider = settings_for(idp)
    url, pending = client.start(provider)
    query = sign_in(url, "alice")
    clock.offset = 601
    with pytest.raises(SsoRejected) as refused:
        client.finish_callback(provider, pending, query)
    assert refused.value.reason == "pending_expired"


def test_a_wrong_client_secret_is_named_as_a_configuration_problem(
    idp: TestProvider, client: OidcClient
) -> None:
    provider = settings_for(idp)
    url, pending = client.start(provider)
    query = sign_in(url, "alice")
    bad = OidcProvider(**{**_fields(provider), "client_secret": SecretText("not-the-secret")})
    with pytest.raises(IdentityProviderError, match="client credentials") as refused:
        client.finish_callback(bad, pending, query)
    assert "not-the-secret" not in refused.value.message and query["code"] not in refused.value.message


def _fields(provider: OidcProvider) -> dict[str, Any]:
    return {name: getattr(provider, name) for name in OidcProvider.__dataclass_fields__}


def test_discovery_for_another_issuer_is_refused(idp: TestProvider, client: OidcClient) -> None:
    provider = OidcProvider(**{**_fields(settings_for(idp)), "issuer": idp.issuer + "/"})
    with pytest.raises(IdentityProviderError, match="issuer"):
        client.start(provider)


def test_an_unreachable_provider_is_unavailable(client: OidcClient) -> None:
    from tests.support import free_port

    provider = OidcProvider("down", f"http://127.0.0.1:{free_port()}", "c", SecretText("s"))
    with pytest.raises(IdentityProviderError, match="cannot reach the provider's discovery document"):
        client.start(provider, REDIRECT_URI)


# -- the device flow ------------------------------------------------------------------------
def test_device_flow_signs_bob_in(idp: TestProvider, client: OidcClient) -> None:
    provider = settings_for(idp)
    device = client.start_device(provider)
    assert device.user_code and device.verification_uri.startswith(idp.issuer)
    assert client.poll_device(provider, device) is None  # not approved yet
    page = sign_in(device.verification_uri_complete or "", "bob", stop_at="never")
    assert "Sign-in Success" in page["page"]
    who = client.wait_for_device(provider, device, sleep=lambda _: None)
    assert (who.subject, who.groups) == ("bob", ("contractors",))


# -- ID token checks: built wrong one claim at a time, signed with the provider's keys --------
def _private(idp: TestProvider, alg: str) -> dict[str, Any]:
    return next(k for k in idp.private_keys() if k["alg"] == alg)


def _token(jwk: dict[str, Any], claims: dict[str, Any], **header: Any) -> str:
    key = jwt.PyJWK(jwk).key
    headers = {"kid": jwk["kid"]} | header
    return jwt.encode(claims, key, algorithm=jwk["alg"], headers={k: v for k, v in headers.items() if v})


def _claims(idp: TestProvider, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": idp.issuer, "aud": "sikker", "sub": "alice", "iat": now, "exp": now + 300, "nonce": "n-1"}
    return {k: v for k, v in (base | changes).items() if v is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}.{_b64(signature)}"


WRONG_CLAIMS = [
    ("wrong issuer", {"iss": "http://127.0.0.1:1"}, "iss"),
    ("wrong audience", {"aud": "another-client"}, "aud"),
    ("several audiences without azp", {"aud": ["sikker", "another"]}, "azp"),
    ("azp of another party", {"aud": ["sikker", "another"], "azp": "another"}, "azp"),
    ("expired beyond the leeway", {"exp": -61}, "exp"),
    ("no exp", {"exp": None}, "exp"),
    ("issued in the future", {"iat": 120}, "iat"),
    ("not yet valid", {"nbf": 120}, "nbf"),
    ("wrong nonce", {"nonce": "n-2"}, "nonce"),
    ("no nonce", {"nonce": None}, "nonce"),
    ("no subject", {"sub": None}, "sub"),
]


@pytest.mark.parametrize(("case", "changes", "reason"), WRONG_CLAIMS, ids=[c[0] for c in WRONG_CLAIMS])
@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_an_id_token_wrong_in_one_claim_is_refused(
    idp: TestProvider, client: OidcClient, case: str, changes: dict[str, Any], reason: str, alg: str
) -> None:
    now = int(time.time())
    timed = {k: now + v if k in ("exp", "iat", "nbf") and v is not None else v for k, v in changes.items()}
    token = _token(_private(idp, alg), _claims(idp, **timed))
    with pytest.raises(SsoRejected) as refused:
        client.verify_id_token(settings_for(idp), token, nonce="n-1")
    assert refused.value.reason == reason, case
    assert token not in refused.value.message and "n-1" not in refused.value.message


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_a_well_formed_id_token_within_the_leeway_is_accepted(
    idp: TestProvider, client: OidcClient, alg: str
) -> None:
    now = int(time.time())
    token = _token(
        _private(idp, alg), _claims(idp, exp=now - 30, iat=now + 30, nbf=now + 30, groups="platform")
    )
    who = client.verify_id_token(settings_for(idp), token, nonce="n-1")
    assert (who.subject, who.groups) == ("alice", ("platform",))


def test_a_bad_signature_is_refused(idp: TestProvider, client: OidcClient) -> None:
    token = _token(_private(idp, "RS256"), _claims(idp))
    head, body, signature = token.split(".")
    flipped = _b64(bytes([base64.urlsafe_b64decode(signature + "==")[0] ^ 1]))[:2] + signature[2:]
    with pytest.raises(SsoRejected) as refused:
        client.verify_id_token(settings_for(idp), f"{head}.{body}.{flipped}", nonce="n-1")
    assert refused.value.reason == "bad_signature"


def test_a_token_signed_by_another_key_under_the_providers_kid_is_refused(
    idp: TestProvider, client: OidcClient
) -> None:
    real = _private(idp, "RS256")
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(_claims(idp), forger, algorithm="RS256", headers={"kid": real["kid"]})
    with pytest.raises(SsoRejected) as refused:
        client.verify_id_token(settings_for(idp), token, nonce="n-1")
    assert refused.value.reason == "bad_signature"


def test_alg_none_is_refused(idp: TestProvider, client: OidcClient) -> None:
    for alg in ("none", "None", "NONE"):
        token = _unsigned({"alg": alg, "kid": _private(idp, "RS256")["kid"]}, _claims(idp))
        with pytest.raises(SsoRejected) as refused:
            client.verify_id_token(settings_for(idp), token, nonce="n-1")
        assert refused.value.reason == "alg_none"


def test_hs256_with_the_providers_public_key_as_the_secret_is_refused(
    idp: TestProvider, client: OidcClient
) -> None:
    real = _private(idp, "RS256")
    public = jwt.PyJWK(real).key.public_key()  # type: ignore[union-attr]
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "kid": real["kid"], "typ": "JWT"}
    signing_input = _unsigned(header, _claims(idp)).rsplit(".", 1)[0]
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    with pytest.raises(SsoRejected) as refused:
        client.verify_id_token(settings_for(idp), f"{signing_input}.{_b64(signature)}", nonce="n-1")
    assert refused.value.reason == "alg_hmac"


def test_an_algorithm_the_provider_settings_do_not_allow_is_refused(
    idp: TestProvider, client: OidcClient
) -> None:
    token = _token(_private(idp, "RS256"), _claims(idp))
    with pytest.raises(SsoRejected) as refused:
        client.verify_id_token(settings_for(idp, algorithms=("ES256",)), token, nonce="n-1")
    assert refused.value.reason == "alg_not_allowed"


def test_an_ec_alg_naming_an_rsa_key_is_refused(idp: TestProvider, client: OidcClient) -> None:
    es = _private(idp, "ES256")
    token = _token(es, _claims(idp), kid=_private(idp, "RS256")["kid"])
    with pytest.raises(SsoRejected) as refused:
        client.verify_id_token(settings_for(idp), token, nonce="n-1")
    assert refused.value.reason == "unknown_kid"


def test_without_a_kid_the_only_key_of_that_type_is_used(idp: TestProvider, client: OidcClient) -> None:
    # The provider publishes one RSA and one EC key: a kid-less RS256 token has one candidate.
    jwk = _private(idp, "RS256")
    token = jwt.encode(_claims(idp), jwt.PyJWK(jwk).key, algorithm="RS256")
    assert "kid" not in jwt.get_unverified_header(token)
    assert client.verify_id_token(settings_for(idp), token, nonce="n-1").subject == "alice"


def test_an_unknown_kid_refetches_the_jwks_once_per_cooldown_then_is_refused(
    idp: TestProvider, client: OidcClient, clock: Clock, recorder: Recorder
) -> None:
    provider = settings_for(idp)
    good = _token(_private(idp, "RS256"), _claims(idp))
    client.verify_id_token(provider, good, nonce="n-1")
    assert recorder.count("/jwks") == 1
    unknown = _token(_private(idp, "RS256"), _claims(idp), kid="not-a-published-kid")
    with pytest.raises(SsoRejected) as refused:
        client.verify_id_token(provider, unknown, nonce="n-1")
    assert refused.value.reason == "unknown_kid"
    assert recorder.count("/jwks") == 2  # one refetch
    for _ in range(3):
        with pytest.raises(SsoRejected):
            client.verify_id_token(provider, unknown, nonce="n-1")
    assert recorder.count("/jwks") == 2  # the cooldown holds
    clock.offset = 31
    with pytest.raises(SsoRejected):
        client.verify_id_token(provider, unknown, nonce="n-1")
    assert recorder.count("/jwks") == 3  # one more after the cooldown


def test_a_key_rotated_at_the_provider_is_picked_up_by_one_refetch(
    tmp_path: Path, clock: Clock, recorder: Recorder
) -> None:
    idp = TestProvider(tmp_path).start()
    client = OidcClient(recorder.client(), clock=clock)
    try:
        provider = settings_for(idp)
        url, pending = client.start(provider)
        assert client.finish_callback(provider, pending, sign_in(url, "alice")).subject == "alice"
        old = _private(idp, "RS256")
        idp.rotate()
        url, pending = client.start(provider)
        query = sign_in(url, "alice")
        assert client.finish_callback(provider, pending, query).subject == "alice"
        assert recorder.count("/jwks") == 2
        # A token under the dropped key is now refused: its kid is gone from the JWKS.
        clock.offset = 31
        with pytest.raises(SsoRejected) as refused:
            client.verify_id_token(provider, _token(old, _claims(idp)), nonce="n-1")
        assert refused.value.reason == "unknown_kid"
    finally:
        client.close()
        idp.stop()
