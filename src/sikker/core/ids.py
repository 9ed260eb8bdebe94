"""Identifier formats: ``vault_``, ``proj_`` and ``sk_`` followed by 16 lower-case
alphanumerics; admin token ids ``tok_``. Generation takes its randomness from
``secrets``; validation is pure."""

from __future__ import annotations

import re
import secrets
import string

from sikker.errors import InvalidInput

_ALPHABET = string.ascii_lowercase + string.digits
_SUFFIX_LEN = 16

PREFIXES = {
    "vault": "vault_",
    "project": "proj_",
    "secret": "sk_",
    "token": "tok_",
    "enroll": "enr_",
    "audit_key": "akey_",
    "sink": "sink_",
    "rotation": "rot_",
    "user": "usr_",
    "session": "ses_",
    "binding": "rb_",
    "lease": "ls_",
}
_PATTERNS = {
    kind: re.compile(rf"^{re.escape(prefix)}[a-z0-9]{{{_SUFFIX_LEN}}}$") for kind, prefix in PREFIXES.items()
}


def new_id(kind: str) -> str:
    """Return a fresh random id of ``kind`` (vault, project, secret, token)."""
    suffix = "".join(secrets.choice(_ALPHABET) for _ in range(_SUFFIX_LEN))
    return PREFIXES[kind] + suffix


def is_valid(kind: str, value: str) -> bool:
    return bool(_PATTERNS[kind].match(value))


def check(kind: str, value: str) -> str:
    """Return ``value`` if it is a well-formed id of ``kind``, else raise InvalidInput."""
    if not isinstance(value, str) or not is_valid(kind, value):
        example = PREFIXES[kind] + "0123456789abcdef"
        raise InvalidInput(f"malformed {kind} id (expected e.g. {example})")
    return value
