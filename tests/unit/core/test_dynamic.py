"""The pure rules of dynamic secrets: user names, templates, statements, TTLs, backoff."""

from __future__ import annotations

import re

import pytest

from sikker.core import dynamic
from sikker.core.dynamic import Definition, Lease
from sikker.errors import InvalidInput

DEF_ID = "sk_abcdefgh12345678"


def definition(**change: object) -> Definition:
    base = Definition(
        DEF_ID, "vault_x", "proj_x", "Orders DB!", "postgresql", "h", 5432, "d", "sk_admin", "app",
        60, 3600, dynamic.DEFAULT_TEMPLATE, (), (), None, 0, 0,
    )  # fmt: skip
    return Definition(**{**{f: getattr(base, f) for f in base.__slots__}, **change})  # type: ignore[arg-type]


def lease(
    created: int = 0, expires: int = 60_000, max_expires: int = 3600_000, state: str = "active"
) -> Lease:
    return Lease("ls_x", "v", "p", DEF_ID, "m", "u", state, created, expires, max_expires)


@pytest.mark.parametrize("engine", ["postgresql", "mysql", "redis"])
def test_user_names_are_prefixed_clean_and_within_the_engine_limit(engine: str) -> None:
    name = dynamic.username(engine, DEF_ID, dynamic.DEFAULT_TEMPLATE, "Orders DB! " * 10, "M-1", "r" * 12, 0)
    assert name.startswith("sk_abcdefgh_") and re.fullmatch(r"[a-z0-9_]+", name)
    assert len(name) <= dynamic.NAME_LIMITS[engine] and name.endswith("r" * 12)


@pytest.mark.parametrize(
    "template",
    ["", "{{name}}", "{{random}}'", "{{random}};", "{{random}}\\", "%s{{random}}", "{{Random}}", "a" * 65,
     "{{password}}{{random}}", "UPPER{{random}}"],
)  # fmt: skip
def test_bad_templates_are_refused(template: str) -> None:
    with pytest.raises(InvalidInput):
        dynamic.check_template(template)


def test_statements_split_into_text_and_placeholders() -> None:
    parts = dynamic.split_statement("GRANT {{role}} TO {{name}}")
    assert parts == [("sql", "GRANT "), ("placeholder", "role"), ("sql", " TO "), ("placeholder", "name")]


@pytest.mark.parametrize(
    "statement",
    ["DROP ROLE x; DROP ROLE y", "x 'y'", 'x "y"', "x `y`", "x \\y", "x %s", "x $$y$$", "x -- y", "x /* y */",
     "x {{nope}}", "x {y}", "", "x" * 2001, "x\x00y"],
)  # fmt: skip
def test_hostile_statements_are_refused(statement: str) -> None:
    with pytest.raises(InvalidInput):
        dynamic.split_statement(statement)


def test_statements_only_for_sql_engines() -> None:
    with pytest.raises(InvalidInput):
        dynamic.check_statements("redis", ["ACL {{name}}"], "creationStatements")


@pytest.mark.parametrize(("default", "maximum"), [(0, 60), (-1, 60), (61, 60), (60, 31 * 86400)])
def test_ttls_out_of_bounds_are_refused(default: int, maximum: int) -> None:
    with pytest.raises(InvalidInput):
        dynamic.check_ttls(default, maximum)


def test_a_lease_ttl_is_between_one_second_and_max() -> None:
    d = definition()
    assert dynamic.lease_ttl_s(d, None) == 60 and dynamic.lease_ttl_s(d, 3600) == 3600
    for bad in (0, -1, 3601):
        with pytest.raises(InvalidInput):
            dynamic.lease_ttl_s(d, bad)


def test_renewal_stops_at_issue_time_plus_max_ttl() -> None:
    assert dynamic.renewed_expiry(lease(), 60, None, 1000) == 61_000
    assert dynamic.renewed_expiry(lease(), 60, 3599, 1000) == 3600_000
    assert dynamic.renewed_expiry(lease(), 60, 3600, 1000) == 3600_000


def test_the_read_path_reuses_until_two_thirds_of_the_ttl() -> None:
    assert dynamic.reusable(lease(0, 60_000), 39_999)
    assert not dynamic.reusable(lease(0, 60_000), 40_000)
    assert not dynamic.reusable(lease(state="revoking"), 0)


def test_revocation_backoff_doubles_and_caps_at_thirty_seconds() -> None:
    assert [dynamic.backoff_ms(n) for n in range(6)] == [1000, 2000, 4000, 8000, 16_000, 30_000]
    assert dynamic.backoff_ms(9) == 30_000 and dynamic.backoff_ms(10_000) == 30_000


def test_a_stalled_revocation_alerts_after_15_minutes_then_hourly() -> None:
    stalled = Lease("ls_x", "v", "p", DEF_ID, "m", "u", "revoking", 0, 1, 1, revoke_requested_ms=0)
    assert not dynamic.needs_alert(stalled, 15 * 60_000 - 1)
    assert dynamic.needs_alert(stalled, 15 * 60_000)
    alerted = Lease(
        "ls_x", "v", "p", DEF_ID, "m", "u", "revoking", 0, 1, 1, revoke_requested_ms=0, alerted_ms=900_000
    )
    assert not dynamic.needs_alert(alerted, 900_000 + 3599_999)
    assert dynamic.needs_alert(alerted, 900_000 + 3600_000)


@pytest.mark.parametrize(
    "rules", ["nopass", ">pw", "<pw", "#hash", "!x", "reset", "+get resetpass", "on", "a b'"]
)
def test_redis_rules_that_touch_passwords_or_state_are_refused(rules: str) -> None:
    with pytest.raises(InvalidInput):
        dynamic.check_grant_role("redis", rules)


def test_sql_grant_roles_are_plain_identifiers() -> None:
    assert dynamic.check_grant_role("postgresql", "app_rw") == "app_rw"
    with pytest.raises(InvalidInput):
        dynamic.check_grant_role("mysql", "app`; DROP")
