"""Single sign-on with OpenID Connect providers: discovery, the authorization code flow with
PKCE (S256), state and nonce, the device authorization flow, and ID token verification
against the provider's JWKS. The decisions are in ``sikker.core.oidc``; this module fetches.

One ``OidcClient`` per process caches each issuer's discovery document and JWKS. An ID token
signed with an unknown ``kid`` triggers one JWKS refetch, at most once per cooldown per
issuer, so a stream of forged kids cannot make us hammer the provider. Every HTTP call has a
timeout and a response size bound, and follows no redirects.

Nothing here logs, and no error message holds a code, token, client secret, state or nonce.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sikker.config import OidcProvider
from sikker.core import oidc
from sikker.core.oidc import Pending, VerifiedIdentity
from sikker.errors import IdentityProviderError, InvalidInput, RateLimited, SsoRejected

if TYPE_CHECKING:  # httpx and jwt are imported on first use: a server without SSO sign-ins
    import httpx  # starts without them.

MAX_RESPONSE_BYTES = 256 * 1024
TIMEOUT_SECONDS, CONNECT_TIMEOUT_SECONDS = 10.0, 5.0
JWKS_REFETCH_COOLDOWN_SECONDS = 30.0
CACHE_SECONDS = 3600.0  # discovery and JWKS are fetched again after an hour
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
_ERROR_CODE = re.compile(r"[a-z_]{1,40}")


@dataclass(frozen=True, slots=True)
class DeviceAuthorization:
    """A device flow in progress: show ``user_code`` and ``verification_uri`` to the person,
    then poll with ``OidcClient.poll_device`` every ``interval`` seconds until ``expires_at``."""

    provider: str
    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    interval: int
    expires_at: float


def _error_code(data: Mapping[str, Any]) -> str:
    """A provider's OAuth error code, if it looks like one (never its free-text description)."""
    code = data.get("error")
    return code if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else "unknown_error"


class OidcClient:
    """The OpenID Connect client. ``http`` and ``clock`` are injected for tests."""

    def __init__(
        self,
        http: httpx.Client | None = None,
        *,
        clock: Callable[[], float] = time.time,
        jwks_cooldown: float = JWKS_REFETCH_COOLDOWN_SECONDS,
    ) -> None:
        self._http = http
        self._clock = clock
        self._cooldown = jwks_cooldown
        self._lock = threading.Lock()
        self._discovery: dict[str, tuple[float, dict[str, Any]]] = {}
        self._jwks: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self._forced_refetch: dict[str, float] = {}

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                import httpx

                self._http = httpx.Client(timeout=_timeout(), follow_redirects=False)
            return self._http

    def close(self) -> None:
        with self._lock:
            if self._http is not None:
                self._http.close()

    # -- discovery and keys -------------------------------------------------------------------
    def discover(self, provider: OidcProvider) -> dict[str, Any]:
        """The provider's discovery document (cached for an hour), checked against its issuer."""
        now = self._clock()
        with self._lock:
            cached = self._discovery.get(provider.issuer)
        if cached and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        url = provider.issuer.rstrip("/") + "/.well-known/openid-configuration"
        status, document = self._send("GET", url, "discovery document")
        if status != 200:
            raise IdentityProviderError(f"the provider's discovery document answered HTTP {status}")
        oidc.check_discovery(document, provider.issuer)
        with self._lock:
            self._discovery[provider.issuer] = (now, document)
        return document

    def _keys(self, provider: OidcProvider, *, force: bool) -> list[dict[str, Any]]:
        now = self._clock()
        with self._lock:
            cached = self._jwks.get(provider.issuer)
        if cached and not force and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        status, document = self._send("GET", self.discover(provider)["jwks_uri"], "JWKS")
        keys = document.get("keys")
        if status != 200 or not isinstance(keys, list):
            raise IdentityProviderError("the provider's JWKS is unusable (no keys array)")
        keys = [k for k in keys if isinstance(k, dict)]
        with self._lock:
            self._jwks[provider.issuer] = (now, keys)
        return keys

    def _may_refetch(self, provider: OidcProvider) -> bool:
        """At most one forced JWKS refetch per cooldown per issuer."""
        now = self._clock()
        with self._lock:
            last = self._forced_refetch.get(provider.issuer)
            if last is not None and now - last < self._cooldown:
                return False
            self._forced_refetch[provider.issuer] = now
            return True

    def _key(self, provider: OidcProvider, kid: object, alg: str) -> Any:
        key = oidc.select_key(self._keys(provider, force=False), kid, alg)
        if key is None and self._may_refetch(provider):
            key = oidc.select_key(self._keys(provider, force=True), kid, alg)
        if key is None:
            raise SsoRejected(
                "the ID token is signed with a key the provider does not publish (kid)", "unknown_kid"
            )
        import jwt

        try:
            return jwt.PyJWK(dict(key), algorithm=alg).key
        except jwt.PyJWTError as e:
            raise IdentityProviderError("the provider publishes a signing key that cannot be used") from e

    # -- ID tokens ----------------------------------------------------------------------------
    def verify_id_token(
        self, provider: OidcProvider, id_token: str, *, nonce: str | None
    ) -> VerifiedIdentity:
        """Check an ID token's signature against the provider's JWKS, then its claims.

        ``nonce`` is the one sent with the authorization request (None in the device flow)."""
        import jwt

        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError as e:
            raise SsoRejected("the ID token is malformed", "malformed") from e
        alg = oidc.check_header(header, provider.algorithms)
        key = self._key(provider, header.get("kid"), alg)
        try:
            payload = jwt.PyJWS().decode_complete(id_token, key=key, algorithms=[alg])["payload"]
        except jwt.InvalidSignatureError as e:
            raise SsoRejected("the ID token's signature does not verify", "bad_signature") from e
        except jwt.PyJWTError as e:
            raise SsoRejected("the ID token is malformed", "malformed") from e
        try:
            claims = json.loads(payload)
        except ValueError as e:
            raise SsoRejected("the ID token's claims are not JSON", "malformed") from e
        if not isinstance(claims, dict):
            raise SsoRejected("the ID token's claims are not a JSON object", "malformed")
        oidc.check_claims(
            claims, issuer=provider.issuer, client_id=provider.client_id, nonce=nonce, now=self._clock()
        )
        return oidc.identity(claims, provider.groups_claim)

    # -- authorization code flow --------------------------------------------------------------
    def start(self, provider: OidcProvider, redirect_uri: str | None = None) -> tuple[str, Pending]:
        """Begin a browser sign-in: the URL to send the person to, and the ``Pending`` login
        the caller keeps server-side (``Pending.to_dict``) until the callback."""
        redirect = redirect_uri or provider.redirect_uri
        if not redirect:
            raise InvalidInput(f"OIDC provider {provider.name!r} has no redirect_uri")
        document = self.discover(provider)
        pending = Pending(
            provider=provider.name,
            redirect_uri=redirect,
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            code_verifier=secrets.token_urlsafe(48),
            created_ms=int(self._clock() * 1000),
        )
        url = oidc.authorization_url(
            document["authorization_endpoint"], provider.client_id, provider.scopes, pending
        )
        return url, pending

    def finish_callback(
        self, provider: OidcProvider, pending: Pending, query: Mapping[str, str]
    ) -> VerifiedIdentity:
        """``finish`` from the redirect's query parameters (code, state, iss, or error)."""
        oidc.check_callback(pending, str(query.get("state", "")), self._clock())
        if "error" in query:
            raise SsoRejected(f"the provider refused the sign-in ({_error_code(query)})", "provider_error")
        iss = query.get("iss")
        if iss is None and self.discover(provider).get("authorization_response_iss_parameter_supported"):
            raise SsoRejected("the sign-in response does not name its issuer (iss)", "iss_missing")
        return self.finish(
            provider, pending, str(query.get("code", "")), str(query["state"]), returned_issuer=iss
        )

    def finish(
        self,
        provider: OidcProvider,
        pending: Pending,
        code: str,
        returned_state: str,
        *,
        returned_issuer: str | None = None,
    ) -> VerifiedIdentity:
        """Complete a browser sign-in: check the state, exchange the code (with the PKCE
        verifier) at the token endpoint, and verify the ID token (nonce included)."""
        if pending.provider != provider.name:
            raise SsoRejected("the login attempt was started with another provider", "provider")
        oidc.check_callback(pending, returned_state, self._clock())
        if returned_issuer is not None and returned_issuer != provider.issuer:
            raise SsoRejected("the sign-in response comes from another issuer (iss)", "iss_mixup")
        if not code:
            raise SsoRejected("the sign-in response has no code", "code")
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": pending.redirect_uri,
            "code_verifier": pending.code_verifier,
        }
        status, data = self._token_request(provider, self.discover(provider)["token_endpoint"], form)
        if status != 200:
            raise SsoRejected(f"the provider refused the code ({_error_code(data)})", "token_error")
        return self.verify_id_token(provider, self._id_token(data), nonce=pending.nonce)

    # -- device authorization flow ------------------------------------------------------------
    def start_device(self, provider: OidcProvider) -> DeviceAuthorization:
        """Begin a device flow (RFC 8628), if the provider offers one."""
        document = self.discover(provider)
        endpoint = document.get("device_authorization_endpoint")
        if oidc.endpoint_problem(endpoint):
            raise InvalidInput(f"OIDC provider {provider.name!r} offers no device authorization")
        status, data = self._token_request(provider, str(endpoint), {"scope": " ".join(provider.scopes)})
        fields = (data.get("device_code"), data.get("user_code"), data.get("verification_uri"))
        if status != 200 or not all(isinstance(f, str) and f for f in fields):
            raise IdentityProviderError(f"the provider refused the device flow ({_error_code(data)})")
        if oidc.endpoint_problem(data["verification_uri"]):
            raise IdentityProviderError("the provider's verification_uri is not an https:// URL")
        complete = data.get("verification_uri_complete")
        interval, expires_in = data.get("interval", 5), data.get("expires_in", 600)
        return DeviceAuthorization(
            provider=provider.name,
            device_code=data["device_code"],
            user_code=data["user_code"][:64],
            verification_uri=data["verification_uri"],
            verification_uri_complete=complete if isinstance(complete, str) else None,
            interval=min(max(int(interval), 1), 60) if isinstance(interval, int) else 5,
            expires_at=self._clock() + (min(int(expires_in), 1800) if isinstance(expires_in, int) else 600),
        )

    def poll_device(self, provider: OidcProvider, device: DeviceAuthorization) -> VerifiedIdentity | None:
        """One poll: the identity, or None while the person has not approved yet.

        Raises ``RateLimited`` when the provider asks to slow down (add 5 s to the interval)."""
        if device.provider != provider.name:
            raise SsoRejected("the device flow was started with another provider", "provider")
        if self._clock() > device.expires_at:
            raise SsoRejected("the device code expired; start again", "expired_token")
        form = {"grant_type": DEVICE_GRANT, "device_code": device.device_code}
        status, data = self._token_request(provider, self.discover(provider)["token_endpoint"], form)
        if status == 200:
            return self.verify_id_token(provider, self._id_token(data), nonce=None)
        error = _error_code(data)
        if error == "authorization_pending":
            return None
        if error == "slow_down":
            raise RateLimited("the provider asks to poll more slowly")
        raise SsoRejected(f"the provider refused the device sign-in ({error})", error)

    def wait_for_device(
        self,
        provider: OidcProvider,
        device: DeviceAuthorization,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> VerifiedIdentity:
        """Poll at the provider's interval until the person approves, refuses, or time runs out."""
        interval = device.interval
        while True:
            sleep(interval)
            try:
                found = self.poll_device(provider, device)
            except RateLimited:
                interval += 5
                continue
            if found is not None:
                return found

    # -- HTTP ---------------------------------------------------------------------------------
    @staticmethod
    def _id_token(data: Mapping[str, Any]) -> str:
        token = data.get("id_token")
        if not isinstance(token, str) or not token:
            raise SsoRejected(
                "the provider returned no ID token (is the openid scope granted?)", "no_id_token"
            )
        return token

    def _token_request(
        self, provider: OidcProvider, url: str, form: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        """POST to the token or device endpoint, authenticated as the client."""
        headers = {}
        secret = provider.client_secret.reveal()
        if oidc.token_auth_method(self.discover(provider)) == "client_secret_basic":
            pair = f"{quote(provider.client_id, safe='')}:{quote(secret, safe='')}"  # RFC 6749 2.3.1
            headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form = form | {"client_id": provider.client_id, "client_secret": secret}
        status, data = self._send("POST", url, "token endpoint", data=form, headers=headers)
        if status == 401 or (status == 400 and data.get("error") == "invalid_client"):
            raise IdentityProviderError(
                "the provider refused this server's client credentials: check client_id and the client secret"
            )
        return status, data

    def _send(self, method: str, url: str, what: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        """One request: (status, JSON object), with a size bound; 5xx and non-JSON are errors."""
        import httpx

        body = bytearray()
        try:
            with self._client().stream(method, url, timeout=_timeout(), **kwargs) as response:
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise IdentityProviderError(f"the provider's {what} answer is too large")
                status = response.status_code
        except httpx.HTTPError as e:
            raise IdentityProviderError(f"cannot reach the provider's {what} ({type(e).__name__})") from e
        if status >= 500:
            raise IdentityProviderError(f"the provider's {what} answered HTTP {status}")
        try:
            data = json.loads(body)
        except ValueError as e:
            raise IdentityProviderError(f"the provider's {what} did not answer JSON (HTTP {status})") from e
        if not isinstance(data, dict):
            raise IdentityProviderError(f"the provider's {what} did not answer a JSON object")
        return status, data


def _timeout() -> httpx.Timeout:
    import httpx

    return httpx.Timeout(TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)
