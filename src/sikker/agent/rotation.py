"""One pending rotation, decided step by step against a Provider (no server I/O here).

    preflight ─ live logs in ───────────────┐
              └ live fails, pending logs in ─┼─ resumed: the agent died after applying
              └ neither logs in ─ reject     │
    apply (skipped when resumed) ─ verify ─ confirm
          └ failure ─ rollback ─ reject      └ failure ─ rollback ─ reject

Every step may be repeated after a crash: providers are idempotent, and a dual rotation
whose pending password already works is not applied twice (MySQL's RETAIN CURRENT PASSWORD
would otherwise retain the new password and drop the live one).
"""

from __future__ import annotations

from dataclasses import dataclass

from sikker.engines.base import (
    Credentials,
    Provider,
    ProviderError,
    Strategy,
    UnsupportedStrategy,
    scrub,
)
from sikker.errors import SikkerError


@dataclass(frozen=True, slots=True)
class Outcome:
    """The verdict to send: confirm, or reject with ``error`` (safe to show)."""

    confirmed: bool
    error: str = ""
    applied: bool = False
    resumed: bool = False


def describe(error: BaseException) -> str:
    """A safe one-line description: our own messages, else only the exception's type."""
    if isinstance(error, SikkerError):
        return error.message
    return f"unexpected {type(error).__name__}"


def plan_problem(
    strategy: Strategy, live: Credentials, pending: Credentials, base_username: str, admin_user: str
) -> str | None:
    """Why this rotation must be refused before touching the database, if it must."""
    if pending.username == admin_user:
        return f"refusing to rotate {admin_user!r}: it is the admin user the agent works through"
    if strategy == "alternating":
        if pending.username == live.username:
            return (
                "an alternating rotation must switch to the other user, but the pending user is the live one"
            )
        if not base_username:
            return "an alternating rotation needs managedUsername (the user whose privileges are shared)"
    elif pending.username != live.username:
        return f"the {strategy} strategy keeps the username; changing it needs the alternating strategy"
    return None


def rotate(
    provider: Provider,
    strategy: Strategy,
    live: Credentials,
    pending: Credentials,
    base_username: str,
    admin_user: str,
) -> Outcome:
    """Apply and verify ``pending``; roll back on failure.

    Raises ProviderError when the preflight cannot reach the database: nothing was changed
    and the caller should simply try again later.
    """
    secrets = (live.password, pending.password)
    problem = plan_problem(strategy, live, pending, base_username, admin_user)
    if problem:
        return Outcome(False, problem)
    if not provider.can_login(live.username, live.password):
        if provider.can_login(pending.username, pending.password):
            return _verify(provider, strategy, live, pending, applied=False, resumed=True)
        return Outcome(
            False,
            f"preflight failed: neither the live credentials ({live.username!r}) nor the pending"
            f" credentials ({pending.username!r}) log in",
        )
    if strategy == "dual" and provider.can_login(pending.username, pending.password):
        return _verify(provider, strategy, live, pending, applied=False, resumed=True)
    try:
        provider.apply(strategy, pending.username, pending.password, base_username)
    except UnsupportedStrategy as e:
        return Outcome(False, scrub(e.message, secrets))  # refused before any change
    except Exception as e:
        return _roll_back(provider, strategy, live, pending, f"apply failed: {describe(e)}")
    return _verify(provider, strategy, live, pending, applied=True, resumed=False)


def _verify(
    provider: Provider,
    strategy: Strategy,
    live: Credentials,
    pending: Credentials,
    applied: bool,
    resumed: bool,
) -> Outcome:
    try:
        works = provider.can_login(pending.username, pending.password)
        reason = f"{pending.username!r} cannot log in with the new password"
    except Exception as e:
        works, reason = False, describe(e)
    if works:
        return Outcome(True, applied=applied, resumed=resumed)
    return _roll_back(provider, strategy, live, pending, f"verification failed after apply: {reason}")


def _roll_back(
    provider: Provider, strategy: Strategy, live: Credentials, pending: Credentials, error: str
) -> Outcome:
    try:
        provider.rollback(strategy, pending.username, live.username, live.password, pending.password)
    except Exception as e:
        error = f"{error} AND rollback failed: {describe(e)}"
    return Outcome(False, scrub(error, (live.password, pending.password)), applied=True)


def retire_previous(
    provider: Provider, strategy: Strategy, previous_username: str, live: Credentials
) -> bool:
    """End the grace period of the last rotation; False when there is nothing to do.

    Alternating: disable the previous user, never the live one. Dual: keep only the live
    password. Raises ProviderError when the database step fails.
    """
    if strategy == "alternating":
        if previous_username == live.username:
            return False
        provider.disable(previous_username)
        return True
    if strategy == "dual" and previous_username == live.username:
        provider.discard_old(live.username, live.password)
        return True
    return False


__all__ = ["Outcome", "ProviderError", "describe", "plan_problem", "retire_previous", "rotate"]
