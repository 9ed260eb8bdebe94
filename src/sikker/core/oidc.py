"""OpenID Connect decisions, with no I/O: ID token header and claim checks, PKCE, the pending
login a server keeps between the redirect and the callback, and groups -> role bindings.

Time (``now``, seconds since the epoch) and randomness are passed in. Messages never hold a
token, a code, a client secret, a state or a nonce: a refusal names the claim that failed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from sikker.core.model import RoleBinding
from sikker.errors import IdentityProviderError, SsoRejected

# Asymmetric algorithms only: "none" and HMAC (HS*) are never accepted, so a provider's
# public key can never be used as an HMAC secret.
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA")
MAX_LEEWAY_SECONDS = 60
PENDING_TTL_SECONDS = 600  # a login must come back from the provider within ten minutes
MAX_GROUPS = 256
_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
_CURVES = {"ES256": "P-256", "ES384": "P-384", "EdDSA": "Ed25519"}
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True, slots=True)
class GroupRole:
    """Members of ``group`` (at the provider) hold ``role`` in a vault, or one project of it."""

    group: str
    role: str
    vault: str  # a vault id
    project: str | None = None  # a project id; None: the whole vault


@dataclass(frozen=True, slots=True)
class VerifiedIdentity:
    """Who the provider says signed in, after every check passed. Link people by
    (issuer, subject): an e-mail address can change hands or be unverified."""

    issuer: str
    subject: str
    email: str | None
    name: str | None
    preferred_username: str | None
    groups: tuple[str, ...]
    email_verified: bool = False


@dataclass(frozen=True, slots=True)
class Pending:
    """A login between the redirect and the callback; the caller keeps it server-side
    (``to_dict`` / ``from_dict``), keyed by nothing the browser can choose."""

    provider: str
    redirect_uri: str
    state: str = field(repr=False)
    nonce: str = field(repr=False)
    code_verifier: str = field(repr=False)
    created_ms: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "redirect_uri": self.redirect_uri,
            "state": self.state,
            "nonce": self.nonce,
            "code_verifier": self.code_verifier,
            "created_ms": self.created_ms,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Pending:
        try:
            pending = cls(
                provider=str(data["provider"]),
                redirect_uri=str(data["redirect_uri"]),
                state=str(data["state"]),
                nonce=str(data["nonce"]),
                code_verifier=str(data["code_verifier"]),
                created_ms=int(data["created_ms"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise SsoRejected("the stored login attempt is damaged; sign in again", "pending") from e
        return pending


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a PKCE verifier (RFC 7636)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorization_url(endpoint: str, client_id: str, scopes: Iterable[str], pending: Pending) -> str:
    """Where the browser goes to sign in: code flow, PKCE S256, state and nonce."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": pending.redirect_uri,
            "scope": " ".join(scopes),
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": pkce_challenge(pending.code_verifier),
            "code_challenge_method": "S256",
        }
    )
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"


def same_secret(expected: str, given: str) -> bool:
    """Compare a state or nonce in constant time."""
    return hmac.compare_digest(expected.encode(), given.encode())


def check_callback(pending: Pending, returned_state: str, now: float) -> None:
    """The callback matches the login this server started, and is not too old."""
    if not same_secret(pending.state, returned_state):
        raise SsoRejected("the sign-in response does not match this login attempt (state)", "state")
    if now * 1000 - pending.created_ms > PENDING_TTL_SECONDS * 1000:
        raise SsoRejected("the login attempt expired; sign in again", "pending_expired")


def endpoint_problem(url: object) -> str | None:
    """Why a provider endpoint cannot be used, or None: https only (http on loopback, for tests)."""
    if not isinstance(url, str) or not url:
        return "missing"
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return None
    return "not an https:// URL"


def check_discovery(document: Mapping[str, Any], issuer: str) -> None:
    """The discovery document is for this issuer and names usable endpoints."""
    if document.get("issuer") != issuer:
        raise IdentityProviderError(
            f"the discovery document's issuer is not {issuer!r}: check the configured issuer"
        )
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        problem = endpoint_problem(document.get(name))
        if problem:
            raise IdentityProviderError(f"the provider's {name} is {problem}")
    methods = document.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "S256" not in methods:
        raise IdentityProviderError("the provider does not support PKCE with S256")


def token_auth_method(document: Mapping[str, Any]) -> str:
    """client_secret_basic unless the provider offers only client_secret_post."""
    methods = document.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
    for method in ("client_secret_basic", "client_secret_post"):
        if isinstance(methods, list) and method in methods:
            return method
    raise IdentityProviderError("the provider offers neither client_secret_basic nor client_secret_post")


def check_header(header: Mapping[str, Any], allowed: Iterable[str]) -> str:
    """The ID token's algorithm, if it is an allowed asymmetric one."""
    alg = header.get("alg")
    if not isinstance(alg, str) or alg.lower() == "none":
        raise SsoRejected("the ID token is not signed (alg none)", "alg_none")
    if alg.upper().startswith("HS"):
        raise SsoRejected("the ID token uses an HMAC algorithm; only public-key signatures count", "alg_hmac")
    if alg not in allowed or alg not in ASYMMETRIC_ALGORITHMS:
        raise SsoRejected(f"the ID token's algorithm {alg[:20]!r} is not allowed", "alg_not_allowed")
    return alg


def key_fits(jwk: Mapping[str, Any], alg: str) -> bool:
    """A JWK can verify ``alg``: the key type, curve, use and declared alg agree."""
    if jwk.get("use", "sig") != "sig" or jwk.get("alg", alg) != alg:
        return False
    if jwk.get("kty") != _KEY_TYPES.get(alg[:2]):
        return False
    return alg not in _CURVES or jwk.get("crv") == _CURVES[alg]


def select_key(keys: Iterable[Mapping[str, Any]], kid: object, alg: str) -> Mapping[str, Any] | None:
    """The key named by ``kid``; without a kid, the only key that fits (else None)."""
    fitting = [k for k in keys if key_fits(k, alg)]
    if kid is None:
        return fitting[0] if len(fitting) == 1 else None
    return next((k for k in fitting if k.get("kid") == kid), None)


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SsoRejected(f"the ID token's {name} is not a number", name)
    return float(value)


def check_claims(
    claims: Mapping[str, Any],
    *,
    issuer: str,
    client_id: str,
    nonce: str | None,
    now: float,
    leeway: int = MAX_LEEWAY_SECONDS,
) -> None:
    """The OIDC Core 3.1.3.7 checks of a signature-verified ID token's claims.

    ``nonce`` None (device flow) skips the nonce check; the leeway is capped at 60 s."""
    leeway = min(max(leeway, 0), MAX_LEEWAY_SECONDS)
    if claims.get("iss") != issuer:
        raise SsoRejected("the ID token was issued by another issuer", "iss")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if client_id not in audiences:
        raise SsoRejected("the ID token is not meant for this client (aud)", "aud")
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != client_id:
        raise SsoRejected("the ID token was issued to another party (azp)", "azp")
    exp, iat, nbf = _number(claims, "exp"), _number(claims, "iat"), _number(claims, "nbf")
    if exp is None or iat is None:
        raise SsoRejected("the ID token lacks exp or iat", "exp" if exp is None else "iat")
    if now > exp + leeway:
        raise SsoRejected("the ID token has expired", "exp")
    if iat > now + leeway:
        raise SsoRejected("the ID token was issued in the future (check clocks)", "iat")
    if nbf is not None and nbf > now + leeway:
        raise SsoRejected("the ID token is not valid yet (nbf)", "nbf")
    if nonce is not None:
        got = claims.get("nonce")
        if not isinstance(got, str) or not same_secret(nonce, got):
            raise SsoRejected("the ID token does not belong to this login attempt (nonce)", "nonce")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise SsoRejected("the ID token has no usable subject (sub)", "sub")


def _text(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value[:320] if isinstance(value, str) and value else None


def identity(claims: Mapping[str, Any], groups_claim: str) -> VerifiedIdentity:
    """The identity in checked claims; groups from ``groups_claim`` (a list, or one string)."""
    raw = claims.get(groups_claim, [])
    raw = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    groups = tuple(dict.fromkeys(g for g in raw if isinstance(g, str) and 0 < len(g) <= 256))
    return VerifiedIdentity(
        issuer=str(claims["iss"]),
        subject=str(claims["sub"]),
        email=_text(claims, "email"),
        name=_text(claims, "name"),
        preferred_username=_text(claims, "preferred_username"),
        groups=groups[:MAX_GROUPS],
        email_verified=claims.get("email_verified") is True,
    )


def bindings_for_groups(groups: Iterable[str], group_roles: Iterable[GroupRole]) -> tuple[RoleBinding, ...]:
    """The role bindings a person's groups grant, in configuration order, without repeats."""
    member = set(groups)
    found = (
        RoleBinding(role=g.role, vault_id=g.vault, project_id=g.project)
        for g in group_roles
        if g.group in member
    )
    return tuple(dict.fromkeys(found))
