"""Where a JWT role's signing keys come from: its JWKS URL, its issuer's discovery document,
or public keys pasted into the role; and the signature check against them.

A vault admin chooses these URLs and the SERVER fetches them, so every fetch follows the
outbound policy of audit streams (``core.netpolicy``): the host is resolved once, every address
checked, and the request sent to the checked address (no second lookup to rebind). Loopback,
private, link-local and metadata addresses are refused unless the operator opened the network
with ``jwks_allowed_networks``; plain ``http://`` is allowed only inside those networks. Each
fetch has a time bound, a size bound and follows no redirects.

Keys are cached per role. A token whose ``kid`` is not in the cache refetches once, at most once
per cooldown per role, so a stream of random kids cannot make the server hammer the issuer; a
role whose key source changed (on any node) starts from an empty cache. Nothing here holds a
database transaction.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from sikker.core import jwt_roles as checks
from sikker.core import netpolicy, oidc
from sikker.core.jwt_roles import Check
from sikker.core.model import JwtRole
from sikker.errors import SikkerError
from sikker.service.streams.destination import Resolver, resolve, system_resolver

if TYPE_CHECKING:  # httpx and jwt are imported on first use: a server that never logs in with a
    import httpx  # JWT starts without them.

MAX_RESPONSE_BYTES = 256 * 1024
MAX_KEYS = 100
CACHE_SECONDS = 600.0
REFETCH_COOLDOWN_SECONDS = 30.0


class KeysUnavailable(Exception):
    """The keys could not be fetched or used (a ``keys_unavailable`` refusal, never an accept)."""


class Fetcher:
    """GET of a JSON document under the outbound network policy."""

    def __init__(
        self,
        allowed_networks: Sequence[str] = (),
        timeout: float = 5.0,
        resolver: Resolver = system_resolver,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.allowed = tuple(allowed_networks)
        self.timeout = timeout
        self.resolver = resolver
        self._transport = transport
        self._http: httpx.Client | None = None
        self._http_lock = threading.Lock()

    def _client(self) -> httpx.Client:
        with self._http_lock:
            if self._http is None:
                import httpx

                self._http = httpx.Client(
                    transport=self._transport, timeout=httpx.Timeout(self.timeout), follow_redirects=False
                )
            return self._http

    def close(self) -> None:
        with self._http_lock:
            if self._http is not None:
                self._http.close()

    def url_problem(self, url: str) -> str | None:
        """Why ``url`` can never be fetched (no lookup; for saving a role), or None."""
        import httpx

        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:
            return "not a valid URL"
        if parsed.scheme not in ("https", "http") or not parsed.host:
            return "not an https:// URL"
        if parsed.userinfo or parsed.fragment:
            return "a URL with a user name, password or fragment"
        return None

    def get_json(self, url: str, what: str) -> dict[str, Any]:
        """The JSON object at ``url``; KeysUnavailable (a reason safe to audit) otherwise."""
        problem = self.url_problem(url)
        if problem:
            raise KeysUnavailable(f"the {what} URL is {problem}")
        import httpx

        parsed = httpx.URL(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        label = f"{what} {parsed.scheme}://{parsed.host}"
        try:
            destination = resolve(label, parsed.host, port, self.allowed, self.resolver)
        except SikkerError as e:
            raise KeysUnavailable(e.message) from e
        if destination.refused:
            raise KeysUnavailable(
                f"{label}: address {destination.refused[0]} is not allowed (loopback, private, "
                "link-local and metadata addresses are refused unless the operator allows the "
                "network in jwks_allowed_networks)"
            )
        if parsed.scheme == "http" and not all(
            netpolicy.inside(a, self.allowed) for a in destination.addresses
        ):
            raise KeysUnavailable(f"{label}: use https:// (plain http only inside jwks_allowed_networks)")
        headers = {
            "Host": parsed.netloc.decode("ascii"),
            "Accept": "application/json",
            "User-Agent": "sikker",
        }
        extensions = {"sni_hostname": parsed.host} if parsed.scheme == "https" else {}
        deadline = time.monotonic() + self.timeout
        body = bytearray()
        try:
            with self._client().stream(
                "GET", parsed.copy_with(host=str(destination.pinned)), headers=headers, extensions=extensions
            ) as response:
                if response.status_code != 200:
                    raise KeysUnavailable(f"{label} answered HTTP {response.status_code}")
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise KeysUnavailable(f"{label} answered more than {MAX_RESPONSE_BYTES} bytes")
                    if time.monotonic() > deadline:
                        raise KeysUnavailable(f"{label} took longer than {self.timeout:g} s")
        except httpx.HTTPError as e:
            raise KeysUnavailable(f"{label} unreachable ({type(e).__name__})") from e
        try:
            document = orjson.loads(bytes(body))
        except orjson.JSONDecodeError as e:
            raise KeysUnavailable(f"{label} did not answer JSON") from e
        if not isinstance(document, dict):
            raise KeysUnavailable(f"{label} did not answer a JSON object")
        return document


@dataclass(slots=True)
class _Entry:
    source: tuple[object, ...]
    fetched: float
    keys: list[dict[str, Any]]


class KeyCache:
    """Signing keys per role; ``clock`` (monotonic seconds) is injected for tests."""

    def __init__(
        self,
        fetcher: Fetcher,
        *,
        clock: Callable[[], float] = time.monotonic,
        cooldown: float = REFETCH_COOLDOWN_SECONDS,
        ttl: float = CACHE_SECONDS,
    ) -> None:
        self.fetcher = fetcher
        self._clock = clock
        self._cooldown = cooldown
        self._ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._forced: dict[str, float] = {}

    def drop(self, role_id: str) -> None:
        """Forget a role's keys (its key source changed, or it was deleted)."""
        with self._lock:
            self._entries.pop(role_id, None)
            self._forced.pop(role_id, None)

    def _fetch(self, role: JwtRole) -> list[dict[str, Any]]:
        url = role.jwks_url
        if url is None and role.discovery_url is not None:
            document = self.fetcher.get_json(role.discovery_url, "discovery document")
            if document.get("issuer") != role.issuer:
                raise KeysUnavailable("the discovery document names another issuer than the role's")
            uri = document.get("jwks_uri")
            if not isinstance(uri, str):
                raise KeysUnavailable("the discovery document has no jwks_uri")
            url = uri
        if url is None:
            return []
        keys = self.fetcher.get_json(url, "JWKS").get("keys")
        if not isinstance(keys, list):
            raise KeysUnavailable("the JWKS has no keys array")
        return [k for k in keys if isinstance(k, dict)][:MAX_KEYS]

    def keys(self, role: JwtRole, *, force: bool = False) -> list[dict[str, Any]]:
        """The role's JWKs (cached); the network is used outside the lock."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(role.id)
        if (
            entry is not None
            and entry.source == role.key_source
            and not force
            and now - entry.fetched < self._ttl
        ):
            return entry.keys
        keys = self._fetch(role)
        with self._lock:
            self._entries[role.id] = _Entry(role.key_source, now, keys)
        return keys

    def may_refetch(self, role: JwtRole) -> bool:
        """At most one forced refetch per cooldown per role."""
        now = self._clock()
        with self._lock:
            last = self._forced.get(role.id)
            if last is not None and now - last < self._cooldown:
                return False
            self._forced[role.id] = now
            return True

    def verify(self, role: JwtRole, token: str, header: dict[str, Any]) -> list[Check]:
        """``keys_unavailable``, ``kid`` and ``signature``: the token is signed by one of the
        role's keys. The algorithm was checked (asymmetric only) before this is called."""
        alg = str(header.get("alg"))
        if role.public_keys:
            return [
                checks.passed(checks.KEYS_UNAVAILABLE),
                checks.passed(checks.KID),
                _pasted(role, token, alg),
            ]
        try:
            key = oidc.select_key(self.keys(role), header.get("kid"), alg)
            if key is None and self.may_refetch(role):
                key = oidc.select_key(self.keys(role, force=True), header.get("kid"), alg)
        except KeysUnavailable as e:
            return [checks.failed(checks.KEYS_UNAVAILABLE, str(e))]
        found = [checks.passed(checks.KEYS_UNAVAILABLE)]
        if key is None:
            return [
                *found,
                checks.failed(checks.KID, "the token is signed with a key the issuer does not publish"),
            ]
        import jwt

        try:
            usable = jwt.PyJWK(dict(key), algorithm=alg).key
        except jwt.PyJWTError:
            return [
                *found,
                checks.failed(checks.KEYS_UNAVAILABLE, "the issuer publishes a key that cannot be used"),
            ]
        return [*found, checks.passed(checks.KID), _signature(token, usable, alg)]


def _signature(token: str, key: Any, alg: str) -> Check:
    import jwt

    try:
        jwt.PyJWS().decode(token, key=key, algorithms=[alg])
    except jwt.PyJWTError:
        return checks.failed(checks.SIGNATURE, "the signature does not verify")
    return checks.passed(checks.SIGNATURE)


def _pasted(role: JwtRole, token: str, alg: str) -> Check:
    """Pasted PEM keys carry no kid: the token verifies with one of them."""
    import jwt

    for pem in role.public_keys or ():
        try:
            jwt.PyJWS().decode(token, key=pem, algorithms=[alg])
        except (jwt.PyJWTError, ValueError, TypeError):
            continue
        return checks.passed(checks.SIGNATURE)
    return checks.failed(checks.SIGNATURE, "the signature verifies with none of the role's public keys")


def check_public_key(pem: str) -> bool:
    """A PEM public key (never a private one) that RS256, ES256 or EdDSA can use."""
    if "PRIVATE" in pem or "PUBLIC KEY-----" not in pem:
        return False
    import jwt

    for algorithm in ("RS256", "ES256", "EdDSA"):
        try:
            jwt.get_algorithm_by_name(algorithm).prepare_key(pem)
        except (jwt.PyJWTError, ValueError, TypeError):
            continue
        return True
    return False
