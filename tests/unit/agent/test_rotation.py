"""One rotation against the fake database: the decision table, idempotency, safe messages."""

from __future__ import annotations

import pytest

from sikker.agent.rotation import plan_problem, retire_previous, rotate
from sikker.engines.base import Credentials, ProviderError
from tests.unit.agent.fakes import ADMIN, FakeDatabase, FakeUser

LIVE = Credentials("app", "old-pw")
PENDING = Credentials("app", "new-pw")


def db_with(**users: set[str]) -> FakeDatabase:
    db = FakeDatabase()
    for name, passwords in users.items():
        db.users[name] = FakeUser(set(passwords))
    return db


@pytest.mark.parametrize(
    ("strategy", "live", "pending", "base", "problem"),
    [
        ("single", LIVE, PENDING, "app", None),
        ("single", LIVE, Credentials("app_b", "x"), "app", "changing it needs the alternating strategy"),
        ("dual", LIVE, Credentials("other", "x"), "app", "changing it needs the alternating strategy"),
        ("alternating", LIVE, Credentials("app_b", "x"), "app", None),
        ("alternating", LIVE, PENDING, "app", "must switch to the other user"),
        ("alternating", LIVE, Credentials("app_b", "x"), "", "needs managedUsername"),
        ("single", Credentials(ADMIN, "a"), Credentials(ADMIN, "b"), ADMIN, "refusing to rotate 'admin'"),
        ("alternating", LIVE, Credentials(ADMIN, "b"), "app", "refusing to rotate 'admin'"),
    ],
)
def test_plan_problems(
    strategy: str, live: Credentials, pending: Credentials, base: str, problem: str | None
) -> None:
    found = plan_problem(strategy, live, pending, base, ADMIN)  # type: ignore[arg-type]
    assert (found is None) if problem is None else (problem in str(found))


def test_refused_plan_touches_nothing() -> None:
    db = db_with(app={"old-pw"})
    outcome = rotate(db, "single", LIVE, Credentials("app_b", "x"), "app", ADMIN)
    assert not outcome.confirmed and db.calls == []


def test_dual_keeps_both_passwords_and_is_not_applied_twice() -> None:
    db = db_with(app={"old-pw"})
    assert rotate(db, "dual", LIVE, PENDING, "app", ADMIN).confirmed
    assert db.users["app"].passwords == {"old-pw", "new-pw"}
    again = rotate(db, "dual", LIVE, PENDING, "app", ADMIN)  # restarted before confirming
    assert again.confirmed and again.resumed
    assert len(db.named("apply")) == 1


def test_unsupported_strategy_rejects_without_rollback() -> None:
    db = db_with(app={"old-pw"})
    db.dual_supported = False
    outcome = rotate(db, "dual", LIVE, PENDING, "app", ADMIN)
    assert outcome.error == "dual password is not supported by FakeDB; use the alternating strategy"
    assert db.named("rollback") == []


def test_alternating_rollback_disables_the_new_user_only() -> None:
    db = db_with(app={"old-pw"})
    db.apply_breaks_login = True
    outcome = rotate(db, "alternating", LIVE, Credentials("app_b", "pw-2"), "app", ADMIN)
    assert not outcome.confirmed
    assert db.users["app_b"].enabled is False and db.users["app"].enabled is True


def test_preflight_error_propagates_so_the_rotation_stays_pending() -> None:
    db = db_with(app={"old-pw"})
    db.unreachable = True
    with pytest.raises(ProviderError):
        rotate(db, "single", LIVE, PENDING, "app", ADMIN)
    assert db.named("apply") == []


def test_passwords_never_reach_the_reject_message() -> None:
    canary_old, canary_new = "old-CANARY-1f3a'\"", "new-CANARY-9b2c\\'"
    db = db_with(app={canary_old})
    db.fail_apply = f"syntax error near '{canary_new}'"
    db.fail_rollback = f"password {canary_old} rejected"
    outcome = rotate(
        db, "single", Credentials("app", canary_old), Credentials("app", canary_new), "app", ADMIN
    )
    assert "CANARY" not in outcome.error
    assert outcome.error.startswith("apply failed: ") and "AND rollback failed" in outcome.error


def test_unexpected_exceptions_are_described_by_type_only() -> None:
    class Exploding(FakeDatabase):
        def apply(self, *args: object) -> None:
            raise RuntimeError("driver said: new-pw")

    db = Exploding()
    db.users["app"] = FakeUser({"old-pw"})
    outcome = rotate(db, "single", LIVE, PENDING, "app", ADMIN)
    assert outcome.error == "apply failed: unexpected RuntimeError"


@pytest.mark.parametrize(
    ("strategy", "previous", "expected"),
    [
        ("alternating", "app", [("disable", "app")]),
        ("alternating", "app_b", []),  # the live user
        ("dual", "app_b", [("discard_old", "app_b")]),
        ("dual", "someone", []),
        ("single", "app", []),
    ],
)
def test_retire_previous(strategy: str, previous: str, expected: list[tuple[str, str]]) -> None:
    db = db_with(app={"pw-1"}, app_b={"pw-1", "pw-2"})
    retire_previous(db, strategy, previous, Credentials("app_b", "pw-2"))  # type: ignore[arg-type]
    assert [c for c in db.calls if c[0] in ("disable", "discard_old")] == expected
