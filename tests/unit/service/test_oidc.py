"""The OIDC client's HTTP edge with a fake transport: size bounds, bad answers, client
authentication, and a JWKS holding one key without a kid. The real provider is exercised in
tests/integration/test_oidc.py."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from sikker.config import OidcProvider, SecretText
from sikker.core.oidc import Pending
from sikker.errors import IdentityProviderError, SsoRejected
from sikker.service.oidc import MAX_RESPONSE_BYTES, DeviceAuthorization, OidcClient

ISS = "https://idp.example.com"
PROVIDER = OidcProvider(
    "corp", ISS, "sik:ker", SecretText("p@ss word/+"), redirect_uri="https://s.example/cb"
)
KEY = ec.generate_private_key(ec.SECP256R1())
PUBLIC_JWK = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(KEY.public_key()))  # no kid, no alg
DISCOVERY = {
    "issuer": ISS,
    "authorization_endpoint": ISS + "/auth",
    "token_endpoint": ISS + "/token",
    "jwks_uri": ISS + "/jwks",
}


def id_token(nonce: str, **changes: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": ISS,
        "aud": "sik:ker",
        "sub": "u1",
        "iat": now,
        "exp": now + 60,
        "nonce": nonce,
    } | changes
    return jwt.encode(claims, KEY, algorithm="ES256")


def client_for(handler: Callable[[httpx.Request], httpx.Response]) -> OidcClient:
    return OidcClient(httpx.Client(transport=httpx.MockTransport(handler)))


def provider_answering(
    seen: list[httpx.Request], document: dict[str, Any] | None = None, **overrides: httpx.Response
) -> Callable[[httpx.Request], httpx.Response]:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.path.strip("/").replace(".well-known/openid-configuration", "discovery")
        if path in overrides:
            return overrides[path]
        if path == "discovery":
            return httpx.Response(200, json=document or DISCOVERY)
        if path == "jwks":
            return httpx.Response(200, json={"keys": [PUBLIC_JWK]})
        form = parse_qs(request.content.decode())
        verifier_ok = form.get("code_verifier") == ["v" * 43]
        return httpx.Response(200 if verifier_ok else 400, json={"id_token": id_token("n1")})

    return handle


def pending() -> Pending:
    return Pending("corp", "https://s.example/cb", "s1", "n1", "v" * 43, int(time.time() * 1000))


def test_a_jwks_with_one_key_and_no_kid_verifies() -> None:
    seen: list[httpx.Request] = []
    who = client_for(provider_answering(seen)).finish(PROVIDER, pending(), "c1", "s1")
    assert who.subject == "u1"


def test_client_secret_basic_form_encodes_the_id_and_secret() -> None:
    seen: list[httpx.Request] = []
    client_for(provider_answering(seen)).finish(PROVIDER, pending(), "c1", "s1")
    token = next(r for r in seen if r.url.path == "/token")
    scheme, value = token.headers["authorization"].split(" ")
    assert scheme == "Basic"
    assert base64.b64decode(value).decode() == "sik%3Aker:p%40ss%20word%2F%2B"  # RFC 6749 2.3.1
    assert b"client_secret" not in token.content


def test_client_secret_post_when_it_is_all_the_provider_offers() -> None:
    seen: list[httpx.Request] = []
    only_post = DISCOVERY | {"token_endpoint_auth_methods_supported": ["client_secret_post"]}
    client_for(provider_answering(seen, only_post)).finish(PROVIDER, pending(), "c1", "s1")
    token = next(r for r in seen if r.url.path == "/token")
    form = parse_qs(token.content.decode())
    assert "authorization" not in token.headers
    assert (form["client_id"], form["client_secret"]) == (["sik:ker"], ["p@ss word/+"])


@pytest.mark.parametrize(
    ("path", "response", "problem"),
    [
        ("discovery", httpx.Response(200, content=b"x" * (MAX_RESPONSE_BYTES + 1)), "too large"),
        ("jwks", httpx.Response(200, content=b" " * (MAX_RESPONSE_BYTES + 1)), "too large"),
        ("discovery", httpx.Response(200, content=b"<html>"), "did not answer JSON"),
        ("discovery", httpx.Response(200, json=["not", "an", "object"]), "JSON object"),
        ("discovery", httpx.Response(404, json={}), "HTTP 404"),
        ("discovery", httpx.Response(302, headers={"location": "https://evil.example/"}), "HTTP 302"),
        ("jwks", httpx.Response(200, json={"keys": "nope"}), "no keys array"),
        ("token", httpx.Response(502, text="bad gateway"), "HTTP 502"),
        ("token", httpx.Response(401, json={"error": "invalid_client"}), "client credentials"),
    ],
)
def test_unusable_provider_answers_are_unavailable(path: str, response: httpx.Response, problem: str) -> None:
    seen: list[httpx.Request] = []
    client = client_for(provider_answering(seen, **{path: response}))
    with pytest.raises(IdentityProviderError, match=problem) as refused:
        client.finish(PROVIDER, pending(), "code-c1", "s1")
    assert "code-c1" not in refused.value.message and "p@ss" not in refused.value.message


def test_a_token_error_names_only_the_oauth_error_code() -> None:
    seen: list[httpx.Request] = []
    answer = httpx.Response(
        400, json={"error": "invalid_grant", "error_description": "code code-c1 is <b>used"}
    )
    with pytest.raises(SsoRejected) as refused:
        client_for(provider_answering(seen, token=answer)).finish(PROVIDER, pending(), "code-c1", "s1")
    assert refused.value.message == "the provider refused the code (invalid_grant)"


def test_a_provider_error_in_the_callback_is_refused_with_its_code() -> None:
    seen: list[httpx.Request] = []
    client = client_for(provider_answering(seen))
    with pytest.raises(SsoRejected, match=r"\(access_denied\)"):
        client.finish_callback(PROVIDER, pending(), {"state": "s1", "error": "access_denied"})
    with pytest.raises(SsoRejected, match=r"\(unknown_error\)"):
        client.finish_callback(PROVIDER, pending(), {"state": "s1", "error": "<script>"})


def test_a_pending_login_of_another_provider_is_refused() -> None:
    other = Pending("elsewhere", "https://s.example/cb", "s1", "n1", "v" * 43, int(time.time() * 1000))
    with pytest.raises(SsoRejected) as refused:
        client_for(provider_answering([])).finish(PROVIDER, other, "c1", "s1")
    assert refused.value.reason == "provider"


def test_a_device_authorization_hides_its_device_code() -> None:
    device = DeviceAuthorization("corp", "secret-device-code", "ABCD-EFGH", ISS + "/device", None, 5, 0.0)
    assert "secret-device-code" not in repr(device) and "ABCD-EFGH" in repr(device)


def test_start_without_a_device_endpoint_says_so() -> None:
    with pytest.raises(Exception, match="offers no device authorization"):
        client_for(provider_answering([])).start_device(PROVIDER)
