"""The SikkerKey request-signing canonical string and export env-name flattening (pure).

Canonical string (wire contract section 2.2)::

    {METHOD}:{PATH}:{TIMESTAMP}:{NONCE}:{sha256hex(raw body)}

PATH is the request path without query string, scheme, host or prefix;
the body hash is over the exact raw bytes (empty body -> SHA-256 of b"").
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What verification needs of one signed machine request, as it came off the wire."""

    method: str
    path: str
    query: bytes
    body: bytes
    machine_id: str
    timestamp: str
    nonce: str
    signature: str
    malformed: list[str]  # names of missing or malformed signature headers
    source_ip: str
    user_agent: str


EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()
WINDOW_SECONDS = 300


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest() if body else EMPTY_BODY_SHA256


def canonical(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return f"{method.upper()}:{path}:{timestamp}:{nonce}:{body_hash(body)}".encode()


def fresh(timestamp: str, now_s: float, window: int = WINDOW_SECONDS) -> bool:
    """True when ``timestamp`` (decimal epoch seconds) is within +-window of now."""
    if not timestamp.isdigit() or len(timestamp) > 12:
        return False
    return abs(int(timestamp) - now_s) <= window


_NON_ALNUM = re.compile(r"[^A-Z0-9]+")


def env_name(name: str) -> str:
    """Export flattening: upper-case, non-[A-Z0-9] runs become '_', trim '_'."""
    return _NON_ALNUM.sub("_", name.upper()).strip("_")


def flatten(name: str, value: str, field_names: str | None) -> dict[str, str]:
    """Environment variables for one exported secret (structured -> NAME_FIELD)."""
    import json

    base = env_name(name)
    if field_names is not None:
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and parsed:
            return {f"{base}_{env_name(k)}": str(v) for k, v in parsed.items()}
    return {base: value}
