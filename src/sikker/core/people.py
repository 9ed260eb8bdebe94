"""Rules about people that need no I/O: names, passwords, TOTP codes, recovery codes.

- A user name is compared in its canonical form: Unicode NFKC, then case-folded, so that
  ``Alice``, ``alice`` and the full-width ``alice`` are one account. The name as typed is kept for display.
- A password has at least ``PASSWORD_MIN`` characters, is not one of the 30,000 most common
  passwords (zxcvbn's list) and is not the user's own name.
- A TOTP code (RFC 6238, 30 s steps, 6 digits) is accepted for the current step or one step
  either side, and each step at most once per user: the caller stores the step returned.
- Failed sign-ins are counted per canonical name in fixed windows: ``limit`` failures within
  ``window_ms`` of the window's first failure lock the name for ``lock_ms`` (``after_failure``);
  the count lives in the store, so every worker and node shares it.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import unicodedata
from dataclasses import dataclass

import pyotp

from sikker.core.values import check_name
from sikker.errors import InvalidInput

PASSWORD_MIN = 12
PASSWORD_MAX = 1024
TOTP_STEP_S = 30
TOTP_DRIFT_STEPS = 1
RECOVERY_CODES = 10
EMAIL_MAX = 320


def canonical_name(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold().strip()


def check_user_name(name: object) -> str:
    checked = check_name(name, "user name")
    if not canonical_name(checked):
        raise InvalidInput("user name must not be blank")
    return checked


def check_email(email: object) -> str:
    if not isinstance(email, str) or not 3 <= len(email) <= EMAIL_MAX or "@" not in email[1:-1]:
        raise InvalidInput("email must look like name@example.org")
    return check_name(email, "email") if len(email) <= 255 else email


@functools.cache
def _common() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # type: ignore[import-untyped]

    return frozenset(FREQUENCY_LISTS["passwords"])


def check_password(password: object, user_name: str) -> str:
    """The password, if it may be used; InvalidInput saying why not (never echoing it)."""
    if not isinstance(password, str) or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidInput(f"password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters long")
    lowered = password.casefold()
    if lowered in _common() or lowered.strip("0123456789!?.") in _common():
        raise InvalidInput("password is one of the most common passwords; choose another")
    if canonical_name(user_name) in lowered:
        raise InvalidInput("password must not contain the user name")
    return password


def totp_step(now_s: float) -> int:
    return int(now_s // TOTP_STEP_S)


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, user_name: str, issuer: str = "Sikker") -> str:
    """An otpauth:// URI (authenticator apps read it from a QR code)."""
    return pyotp.TOTP(secret).provisioning_uri(name=user_name, issuer_name=issuer)


def totp_code(secret: str, step: int) -> str:
    return pyotp.TOTP(secret).at(step * TOTP_STEP_S)


def match_totp(secret: str, code: object, now_s: float, last_step: int | None) -> int | None:
    """The time step ``code`` belongs to (current +- drift, later than ``last_step``), or None."""
    if not isinstance(code, str) or not code.isascii() or not code.isdigit() or len(code) != 6:
        return None
    now = totp_step(now_s)
    found = None
    for step in range(now - TOTP_DRIFT_STEPS, now + TOTP_DRIFT_STEPS + 1):
        # Compare every candidate (constant work whether or not an early one matches).
        if hmac.compare_digest(totp_code(secret, step), code) and (last_step is None or step > last_step):
            found = step
    return found


def new_recovery_codes() -> list[str]:
    """Ten codes like ``k3f9-2xq7-mm4d``, shown once."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return [
        "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(3))
        for _ in range(RECOVERY_CODES)
    ]


def recovery_hash(code: str) -> bytes:
    return hashlib.sha256(code.strip().lower().encode()).digest()


@dataclass(frozen=True, slots=True)
class NameFailures:
    """Failed sign-ins of one canonical name: the current window's start and count, and the
    end of its lock (0: never locked)."""

    window_start_ms: int
    failures: int
    locked_until_ms: int

    def locked(self, now_ms: int) -> bool:
        return now_ms < self.locked_until_ms


def after_failure(
    state: NameFailures | None, now_ms: int, limit: int, window_ms: int, lock_ms: int
) -> tuple[NameFailures, bool]:
    """The state after one more failure at ``now_ms``, and whether this failure starts a lock
    (the count then starts again from zero)."""
    if state is None or now_ms - state.window_start_ms >= window_ms:
        start, count = now_ms, 1
    else:
        start, count = state.window_start_ms, state.failures + 1
    if count >= limit:
        return NameFailures(now_ms, 0, now_ms + lock_ms), True
    return NameFailures(start, count, state.locked_until_ms if state else 0), False
