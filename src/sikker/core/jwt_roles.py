"""Workload identity decisions, with no I/O: is this JWT good enough for this JWT role?

A JWT role (``core.model.JwtRole``) names an issuer, where its keys come from, the audiences
and subject it accepts and claims it binds. ``evaluate`` runs the checks that need no key and
no network on the token's claims; the service adds ``keys_unavailable``, ``kid``,
``signature``, ``tokenreview`` and ``replay``. Every check has a stable name (``CHECKS``) that
audit records and the ``test`` endpoint report. Reasons never hold the token.

Time (``now``, seconds since the epoch) is passed in. Globs (``*`` and ``?``) run through RE2,
linear in the value whatever the pattern.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import re2  # type: ignore[import-untyped]

from sikker.core import oidc
from sikker.core.access import in_cidr
from sikker.core.model import JwtRole
from sikker.errors import SsoRejected

ALGORITHMS = ("RS256", "ES256", "EdDSA")
LEEWAY_SECONDS = 60
MAX_TOKEN_BYTES = 8 * 1024
DEFAULT_MACHINE_TTL = 3600
MAX_MACHINE_TTL = 86_400
MIN_MACHINE_TTL = 60
GLOB_MAX = 256
CLAIM_PATH_MAX = 128
MAX_CLAIM_DEPTH = 4

# Stable names: audit records, the ``test`` endpoint and the docs use them.
SIZE = "size"
FORMAT = "format"
ALG = "alg"
KID = "kid"
SIGNATURE = "signature"
ISSUER = "issuer"
AUDIENCE = "audience"
EXPIRED = "expired"
NOT_YET_VALID = "not_yet_valid"
ISSUED_IN_FUTURE = "issued_in_future"
SUBJECT = "subject"
CLAIM = "claim:"  # followed by the claim's path
SOURCE_CIDR = "source_cidr"
REPLAY = "replay"
ROLE_DISABLED = "role_disabled"
TOKENREVIEW = "tokenreview"
KEYS_UNAVAILABLE = "keys_unavailable"
CHECKS = (
    SIZE,
    FORMAT,
    ALG,
    KID,
    SIGNATURE,
    ISSUER,
    AUDIENCE,
    EXPIRED,
    NOT_YET_VALID,
    ISSUED_IN_FUTURE,
    SUBJECT,
    CLAIM + "<name>",
    SOURCE_CIDR,
    REPLAY,
    ROLE_DISABLED,
    TOKENREVIEW,
    KEYS_UNAVAILABLE,
)

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_SERVICE_ACCOUNT = re.compile(r"system:serviceaccount:([^:]+):([^:]+)")
# Legacy (or flat) service-account tokens carry the namespace and name only in ``sub``.
_FROM_SUBJECT = {"kubernetes.io.namespace": 1, "kubernetes.io.serviceaccount.name": 2}

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False
_OPTIONS.max_mem = 1 << 20


@dataclass(frozen=True, slots=True)
class Check:
    """One check's outcome; ``reason`` says why it failed (never the token or a secret)."""

    check: str
    ok: bool
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Parsed:
    """A token split into its parts, nothing verified."""

    header: dict[str, Any]
    claims: dict[str, Any]


class Malformed(ValueError):
    """The token is not a JWT (``check`` is ``size`` or ``format``)."""

    def __init__(self, check: str, reason: str) -> None:
        super().__init__(reason)
        self.check = check
        self.reason = reason


def passed(check: str) -> Check:
    return Check(check, True, None)


def failed(check: str, reason: str) -> Check:
    return Check(check, False, reason)


def first_failure(checks: Iterable[Check]) -> Check | None:
    return next((c for c in checks if not c.ok), None)


# -- parsing --------------------------------------------------------------------------------
def looks_like_jwt(token: str) -> bool:
    """Three base64url segments (the last may be empty): a JWT, not an enrollment token."""
    parts = token.split(".")
    return len(parts) == 3 and all(_SEGMENT.fullmatch(p) for p in parts[:2]) and _b64ok(parts[2])


def _b64ok(segment: str) -> bool:
    return segment == "" or _SEGMENT.fullmatch(segment) is not None


def _decode(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    return orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def parse(token: str) -> Parsed:
    """Split and decode a compact JWS; Malformed (``size`` or ``format``) if it is not one."""
    if not isinstance(token, str) or len(token.encode("utf-8", "replace")) > MAX_TOKEN_BYTES:
        raise Malformed(SIZE, f"the token is larger than {MAX_TOKEN_BYTES} bytes")
    if not looks_like_jwt(token):
        raise Malformed(FORMAT, "the token is not a compact JWT (three base64url segments)")
    head, body, _ = token.split(".")
    try:
        header, claims = _decode(head), _decode(body)
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as e:
        raise Malformed(FORMAT, "the token's header or payload is not base64url JSON") from e
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise Malformed(FORMAT, "the token's header and payload must be JSON objects")
    return Parsed(header, claims)


def text_claim(claims: Mapping[str, Any], name: str, limit: int = 200) -> str:
    """A claim as a short printable string for audit records ("" when absent or not text)."""
    value = claims.get(name)
    if not isinstance(value, str):
        return ""
    return "".join(c if c.isprintable() else "?" for c in value[:limit])


def audiences(claims: Mapping[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list):
        return [a for a in aud if isinstance(a, str)]
    return []


# -- matching -------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1024)
def _glob(pattern: str) -> Any:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re2.compile(f"(?s){regex}", options=_OPTIONS)


def glob_match(pattern: str, value: str) -> bool:
    """``value`` equals ``pattern`` where ``*`` is any run of characters and ``?`` any one
    (case-sensitive, like ``fnmatchcase`` without brackets). Linear time (RE2)."""
    if len(pattern) > GLOB_MAX:
        return False
    if "*" not in pattern and "?" not in pattern:
        return pattern == value
    return _glob(pattern).fullmatch(value) is not None


def claim_at(claims: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    """``(found, value)`` of a claim named by a dotted path. A key may itself hold dots
    (``kubernetes.io``): the longest key that exists wins at each level.

    ``kubernetes.io.namespace`` and ``kubernetes.io.serviceaccount.name`` fall back to a
    ``sub`` of the form ``system:serviceaccount:NAMESPACE:NAME``."""
    found, value = _walk(claims, path.split("."), 0)
    if not found and path in _FROM_SUBJECT:
        sub = claims.get("sub")
        match = _SERVICE_ACCOUNT.fullmatch(sub) if isinstance(sub, str) else None
        if match:
            return True, match.group(_FROM_SUBJECT[path])
    return found, value


def _walk(node: Any, parts: list[str], depth: int) -> tuple[bool, Any]:
    if not parts:
        return True, node
    if not isinstance(node, Mapping) or depth >= MAX_CLAIM_DEPTH:
        return False, None
    for i in range(len(parts), 0, -1):
        key = ".".join(parts[:i])
        if key in node:
            found, value = _walk(node[key], parts[i:], depth + 1)
            if found:
                return True, value
    return False, None


def _scalar_matches(actual: Any, wanted: str) -> bool:
    if isinstance(actual, bool):  # before int: True is an int in Python
        return wanted == ("true" if actual else "false")
    if isinstance(actual, int | float):
        try:
            return float(wanted) == float(actual)
        except ValueError:
            return False
    if isinstance(actual, str):
        return glob_match(wanted, actual)
    return False


def value_matches(actual: Any, allowed: Sequence[str]) -> bool:
    """A claim matches a binding when it matches ANY allowed value: a string exactly or by
    glob, a number by numeric value, a boolean as "true"/"false", a list when one of its
    (scalar) elements does. Objects and null match nothing."""
    if isinstance(actual, list):
        return any(_scalar_matches(item, w) for item in actual[:1000] for w in allowed)
    return any(_scalar_matches(actual, w) for w in allowed)


# -- the checks -----------------------------------------------------------------------------
def check_alg(header: Mapping[str, Any]) -> Check:
    """Asymmetric algorithms only, read from the header BEFORE any key is used: ``none`` and
    every HS* are refused, so a public key can never serve as an HMAC secret."""
    try:
        alg = oidc.check_header(header, ALGORITHMS)
    except SsoRejected as e:
        return failed(ALG, str(e.message).replace("ID token", "token"))
    return passed(ALG) if alg in ALGORITHMS else failed(ALG, "algorithm not allowed")


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def check_times(claims: Mapping[str, Any], now: float, leeway: int = LEEWAY_SECONDS) -> list[Check]:
    """exp (required), nbf and iat, with at most 60 s of leeway for clock skew."""
    leeway = min(max(leeway, 0), LEEWAY_SECONDS)
    exp, nbf, iat = _number(claims, "exp"), _number(claims, "nbf"), _number(claims, "iat")
    out = []
    if exp is None:
        out.append(failed(EXPIRED, "the token has no numeric exp claim"))
    elif now > exp + leeway:
        out.append(failed(EXPIRED, "the token has expired"))
    else:
        out.append(passed(EXPIRED))
    if "nbf" in claims and nbf is None:
        out.append(failed(NOT_YET_VALID, "the token's nbf is not a number"))
    elif nbf is not None and nbf > now + leeway:
        out.append(failed(NOT_YET_VALID, "the token is not valid yet (nbf)"))
    else:
        out.append(passed(NOT_YET_VALID))
    if "iat" in claims and iat is None:
        out.append(failed(ISSUED_IN_FUTURE, "the token's iat is not a number"))
    elif iat is not None and iat > now + leeway:
        out.append(failed(ISSUED_IN_FUTURE, "the token was issued in the future (check clocks)"))
    else:
        out.append(passed(ISSUED_IN_FUTURE))
    return out


def check_bindings(role: JwtRole, claims: Mapping[str, Any]) -> list[Check]:
    """issuer, audience, subject and every bound claim."""
    out = [
        passed(ISSUER)
        if claims.get("iss") == role.issuer
        else failed(ISSUER, "the token was issued by another issuer"),
        passed(AUDIENCE)
        if set(audiences(claims)) & set(role.bound_audiences)
        else failed(AUDIENCE, "the token is not meant for any of the role's audiences"),
    ]
    if role.bound_subject is not None:
        sub = claims.get("sub")
        ok = isinstance(sub, str) and glob_match(role.bound_subject, sub)
        out.append(passed(SUBJECT) if ok else failed(SUBJECT, "the token's subject is not bound"))
    for path, allowed in (role.bound_claims or {}).items():
        found, value = claim_at(claims, path)
        if not found:
            out.append(failed(CLAIM + path, f"the token has no claim {path}"))
        elif not value_matches(value, allowed):
            out.append(failed(CLAIM + path, f"the token's claim {path} matches none of the bound values"))
        else:
            out.append(passed(CLAIM + path))
    return out


def check_source(role: JwtRole, source_ip: str) -> Check:
    if not role.source_cidrs or any(in_cidr(source_ip, c) for c in role.source_cidrs):
        return passed(SOURCE_CIDR)
    return failed(SOURCE_CIDR, "the caller's address is outside the role's source CIDRs")


def evaluate(role: JwtRole, parsed: Parsed, source_ip: str, now: float) -> list[Check]:
    """Every check that needs neither a key nor the network, in the order a login runs them
    (cheap ones first, so a bad token never makes the server fetch keys)."""
    bindings = check_bindings(role, parsed.claims)
    return [
        passed(ROLE_DISABLED) if role.enabled else failed(ROLE_DISABLED, "the role is disabled"),
        check_alg(parsed.header),
        *bindings[:2],
        *check_times(parsed.claims, now),
        *bindings[2:],
        check_source(role, source_ip),
    ]


def candidates(roles: Iterable[JwtRole], claims: Mapping[str, Any]) -> list[JwtRole]:
    """Enabled roles a token may be meant for: same issuer, an audience in common (the
    enrollment route accepts a JWT only when exactly one role fits)."""
    aud = set(audiences(claims))
    return [r for r in roles if r.enabled and r.issuer == claims.get("iss") and aud & set(r.bound_audiences)]


def replay_key(claims: Mapping[str, Any], token: str) -> bytes:
    """What makes a token single-use: its issuer and jti, or the whole token without a jti."""
    jti = claims.get("jti")
    has_jti = isinstance(jti, str) and jti
    material = f"jti\0{claims.get('iss')}\0{jti}" if has_jti else f"token\0{token}"
    return hashlib.sha256(material.encode("utf-8", "replace")).digest()


def replay_expiry_ms(claims: Mapping[str, Any], now_ms: int) -> int:
    """How long a used token must be remembered: until it can no longer pass ``expired``."""
    exp = _number(claims, "exp")
    if exp is None:
        return now_ms + MAX_MACHINE_TTL * 1000
    return int(exp * 1000) + LEEWAY_SECONDS * 1000


def machine_name(claims: Mapping[str, Any], name_claim: str | None) -> str | None:
    """The machine's name from the role's name claim, falling back to ``sub``."""
    for path in (name_claim or "sub", "sub"):
        found, value = claim_at(claims, path)
        if found and isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
    return None
