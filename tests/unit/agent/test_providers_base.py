"""Shared provider pieces: scrubbing driver messages, the registry, redacting types."""

from __future__ import annotations

import pytest

from sikker.engines.base import Connection, Credentials, ProviderError, failure, get_provider, scrub

CONNECTION = Connection("db", 1, "", "admin", "adm-pw")


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("near 'O''Brien-pw' at line 1", "O'Brien-pw"),
        ("near 'O\\'Brien-pw' at line 1", "O'Brien-pw"),
        ('syntax error at or near "a""b-pw"', 'a"b-pw'),
        ('value "back\\\\slash-pw"', "back\\slash-pw"),
        ("plain hunter2 here", "hunter2"),
    ],
)
def test_scrub_removes_quoted_and_escaped_forms(text: str, secret: str) -> None:
    cleaned = scrub(text, [secret])
    assert "***" in cleaned
    assert secret not in cleaned and "-pw" not in cleaned


def test_failure_keeps_one_scrubbed_line() -> None:
    error = failure(
        "cannot set",
        RuntimeError("bad password 'hunter2'\nLINE 1: ALTER ROLE x PASSWORD 'hunter2'"),
        ["hunter2"],
    )
    assert error.message == "cannot set: bad password '***'"


def test_failure_of_an_empty_message_names_the_type() -> None:
    assert failure("cannot connect", TimeoutError()).message == "cannot connect: TimeoutError"


def test_unknown_provider_type_lists_the_known_ones() -> None:
    with pytest.raises(
        ProviderError, match=r"unknown provider type 'oracle'.*mongodb, mssql, mysql, postgresql, redis"
    ):
        get_provider("oracle", CONNECTION)


@pytest.mark.parametrize("kind", ["postgresql", "mysql", "redis", "mongodb", "mssql"])
def test_every_registered_provider_constructs_without_connecting(kind: str) -> None:
    provider = get_provider(kind, CONNECTION)
    assert callable(provider.can_login)


def test_reprs_hide_passwords() -> None:
    assert "adm-pw" not in repr(CONNECTION)
    assert "pw1" not in repr(Credentials("u", "pw1"))


@pytest.mark.parametrize(
    ("message", "refused"),
    [
        ('failed: FATAL:  password authentication failed for user "a"', True),
        ('connection to server at "h", port 5432 failed: FATAL:  role "a b" does not exist', True),
        ('connection to server at "h", port 5432 failed: FATAL:  role "a" is not permitted to log in', True),
        ('connection to server at "h", port 5432 failed: fe_sendauth: no password supplied', True),
        ('connection to server at "h", port 5432 failed: FATAL:  too many connections for role "a"', False),
        ('connection to server at "h", port 5432 failed: FATAL:  database "d" does not exist', False),
        ('connection to server at "h", port 5432 failed: Connection refused', False),
    ],
)
def test_postgres_login_refusals_are_told_apart_from_outages(message: str, refused: bool) -> None:
    from sikker.engines.postgresql import _AUTH_REFUSALS, _NO_PASSWORD

    assert bool(_AUTH_REFUSALS.search(message) or _NO_PASSWORD in message) is refused


def test_postgresql_revocation_statements_fill_role_with_the_grant_role_not_the_user() -> None:
    from sikker.engines.postgresql import _compose, revoke_fill

    statement = [("sql", "REVOKE "), ("placeholder", "role"), ("sql", " FROM "), ("placeholder", "name")]
    text = _compose(statement, revoke_fill("sk_app_x1", "app_readers")).as_string(None)
    assert text == 'REVOKE "app_readers" FROM "sk_app_x1"'
    assert _compose(statement, revoke_fill("sk_app_x1", "")).as_string(None) == "REVOKE '' FROM \"sk_app_x1\""


@pytest.mark.parametrize(
    ("address", "expected"),
    [("", "db.internal"), ("10.20.0.5", "10.20.0.5"), ("fd00::5", "[fd00::5]")],
)
def test_mongodb_and_mssql_connect_to_the_pinned_address(
    monkeypatch: pytest.MonkeyPatch, address: str, expected: str
) -> None:
    """The server pins the checked address (service/dynamic_targets.py); the agent gives none.
    PostgreSQL, MariaDB and Redis are proven against real servers in
    tests/integration/test_dynamic_secrets.py::test_providers_connect_to_the_pinned_address_not_the_name."""
    from sikker.engines import mongodb, mssql

    seen: dict[str, object] = {}
    monkeypatch.setattr(mongodb, "MongoClient", lambda **kw: seen.update(mongo=kw["host"]))
    monkeypatch.setattr(mssql.pymssql, "connect", lambda **kw: seen.update(mssql=kw["server"]))
    target = Connection("db.internal", 1, "app", "admin", "adm-pw", address=address)
    mongodb._connect(target)("admin", "adm-pw", "admin")
    mssql._default_connect(target)("admin", "adm-pw")
    assert seen == {"mongo": expected, "mssql": expected.strip("[]")}
