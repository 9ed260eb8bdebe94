"""Signing keys of JWT roles (src/sikker/service/jwks.py): the outbound network policy of key
fetches, the per-role cache, the refetch cooldown for unknown kids, and pasted PEM keys."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import pytest

from sikker.core.model import JwtRole
from sikker.service.jwks import Fetcher, KeyCache, KeysUnavailable, check_public_key
from tests.workload import SigningKey, github_claims, jwks

ROLE = JwtRole(
    id="jr_0123456789abcdef",
    vault_id="vault_0123456789abcdef",
    name="ci",
    issuer="https://token.actions.githubusercontent.com",
    discovery_url=None,
    jwks_url="https://issuer.example/jwks",
    public_keys=None,
    bound_audiences=("sikker",),
    bound_subject=None,
    bound_claims=None,
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


def _never(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"no request may be sent, got {request.url}")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/jwks",
        "https://127.0.0.1/jwks",
        "https://[::1]/jwks",
        "https://[::ffff:127.0.0.1]/jwks",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.1/jwks",
        "https://192.168.1.1/jwks",
        "https://[fe80::1]/jwks",
    ],
)
def test_internal_addresses_are_never_fetched_by_default(url: str) -> None:
    fetcher = Fetcher(transport=httpx.MockTransport(_never))
    with pytest.raises(KeysUnavailable, match="jwks_allowed_networks"):
        fetcher.get_json(url, "JWKS")


def test_a_name_that_resolves_inside_is_refused_too() -> None:
    fetcher = Fetcher(transport=httpx.MockTransport(_never), resolver=lambda host, port: ["127.0.0.1"])
    with pytest.raises(KeysUnavailable, match="not allowed"):
        fetcher.get_json("https://jwks.attacker.example/jwks", "JWKS")


def test_an_allowed_network_is_fetched_at_the_checked_address_and_http_only_there() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"keys": []})

    fetcher = Fetcher(
        ["10.0.0.0/8"], transport=httpx.MockTransport(answer), resolver=lambda h, p: ["10.1.2.3"]
    )
    assert fetcher.get_json("http://issuer.internal:8080/jwks", "JWKS") == {"keys": []}
    assert seen[0].url.host == "10.1.2.3" and seen[0].headers["host"] == "issuer.internal:8080"
    public = Fetcher(
        ["10.0.0.0/8"], transport=httpx.MockTransport(answer), resolver=lambda h, p: ["93.184.215.14"]
    )
    with pytest.raises(KeysUnavailable, match="https"):
        public.get_json("http://issuer.example/jwks", "JWKS")  # plain http to the Internet


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(500), "HTTP 500"),
        (httpx.Response(302, headers={"location": "http://127.0.0.1/"}), "HTTP 302"),  # never followed
        (httpx.Response(200, content=b"x" * (300 * 1024)), "more than"),
        (httpx.Response(200, content=b"not json"), "JSON"),
        (httpx.Response(200, json=[1, 2]), "JSON object"),
    ],
)
def test_bad_answers_are_unavailable_keys(response: httpx.Response, message: str) -> None:
    fetcher = Fetcher(
        transport=httpx.MockTransport(lambda r: response), resolver=lambda h, p: ["93.184.215.14"]
    )
    with pytest.raises(KeysUnavailable, match=message):
        fetcher.get_json("https://issuer.example/jwks", "JWKS")


class FakeFetcher(Fetcher):
    def __init__(self, documents: dict[str, Any]) -> None:
        super().__init__()
        self.documents = documents
        self.calls: list[str] = []

    def get_json(self, url: str, what: str) -> dict[str, Any]:
        self.calls.append(url)
        found = self.documents.get(url)
        if found is None:
            raise KeysUnavailable("down")
        return dict(found)


def test_an_unknown_kid_refetches_once_per_cooldown() -> None:
    clock = [0.0]
    old, new = SigningKey("RS256"), SigningKey("RS256")
    fetcher = FakeFetcher({ROLE.jwks_url: jwks(old)})
    cache = KeyCache(fetcher, clock=lambda: clock[0], cooldown=30)
    token = old.sign(github_claims())
    assert all(c.ok for c in cache.verify(ROLE, token, {"alg": "RS256", "kid": old.kid}))
    forged = [{"alg": "RS256", "kid": f"random-{i}"} for i in range(5)]
    for header in forged:
        assert [c.check for c in cache.verify(ROLE, token, header) if not c.ok] == ["kid"]
    assert len(fetcher.calls) == 2  # the first fetch and ONE refetch, whatever the number of kids
    fetcher.documents[ROLE.jwks_url] = jwks(old, new)
    clock[0] = 31
    assert all(c.ok for c in cache.verify(ROLE, new.sign(github_claims()), {"alg": "RS256", "kid": new.kid}))
    assert len(fetcher.calls) == 3


def test_a_new_key_source_starts_from_an_empty_cache() -> None:
    first, second = SigningKey("ES256"), SigningKey("ES256")
    other = replace(ROLE, jwks_url="https://elsewhere.example/jwks")
    fetcher = FakeFetcher({ROLE.jwks_url: jwks(first), other.jwks_url: jwks(second)})
    cache = KeyCache(fetcher, cooldown=3600)
    assert cache.keys(ROLE)[0]["kid"] == first.kid
    assert cache.keys(other)[0]["kid"] == second.kid  # same role id, another source: fetched anew


def test_a_down_issuer_is_keys_unavailable_never_an_acceptance() -> None:
    cache = KeyCache(FakeFetcher({}))
    key = SigningKey("EdDSA")
    found = cache.verify(ROLE, key.sign(github_claims()), {"alg": "EdDSA", "kid": key.kid})
    assert [(c.check, c.ok) for c in found] == [("keys_unavailable", False)]


def test_discovery_must_name_the_roles_issuer() -> None:
    key = SigningKey("RS256")
    role = replace(
        ROLE, jwks_url=None, discovery_url="https://issuer.example/.well-known/openid-configuration"
    )
    lying = {"issuer": "https://other.example", "jwks_uri": "https://issuer.example/keys"}
    fetcher = FakeFetcher({role.discovery_url: lying, "https://issuer.example/keys": jwks(key)})
    with pytest.raises(KeysUnavailable, match="another issuer"):
        KeyCache(fetcher).keys(role)


def test_pasted_keys_verify_without_a_kid_and_private_keys_are_refused() -> None:
    key, stranger = SigningKey("ES256", kid=None), SigningKey("ES256", kid=None)
    role = replace(ROLE, jwks_url=None, public_keys=(SigningKey("RS256").public_pem, key.public_pem))
    cache = KeyCache(FakeFetcher({}))
    assert all(c.ok for c in cache.verify(role, key.sign(github_claims()), {"alg": "ES256"}))
    found = cache.verify(role, stranger.sign(github_claims()), {"alg": "ES256"})
    assert [c.check for c in found if not c.ok] == ["signature"]
    assert check_public_key(key.public_pem)
    assert not check_public_key(
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"
    )
    assert not check_public_key("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n")
