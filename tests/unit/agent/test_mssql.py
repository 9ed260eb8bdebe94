"""SQL Server: the statements the provider builds, with hostile names and passwords.

No SQL Server runs here: a recording connection stands in for pymssql, and statements that
take parameters are rendered with pymssql's own client-side substitution.
"""

from __future__ import annotations

from typing import Any

import pytest
from pymssql import _mssql

from sikker.engines.base import Connection, ProviderError, UnsupportedStrategy
from sikker.engines.mssql import MSSQLProvider, quote_name, quote_string, set_password_sql
from tests.unit.agent.recording import RecordingConnection

HOSTILE = ['a"; DROP ROLE x; --', "'", "\\", "O'Brien", "x]", "x]; DROP LOGIN sa; --", "a%sb%d"]


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("app", "[app]"),
        ("x]", "[x]]]"),
        ("x]; DROP LOGIN sa; --", "[x]]; DROP LOGIN sa; --]"),
        ("O'Brien", "[O'Brien]"),
        ("a%sb", "[a%sb]"),
    ],
)
def test_quote_name_doubles_closing_brackets(name: str, quoted: str) -> None:
    assert quote_name(name) == quoted


@pytest.mark.parametrize("name", ["", "x" * 129, "a\x00b"])
def test_quote_name_refuses_names_sql_server_cannot_hold(name: str) -> None:
    with pytest.raises(ProviderError):
        quote_name(name)


def test_quote_string_matches_pymssql_literal_quoting() -> None:
    for value in ["p'w", "it''s", "\\'", "ünï'código", "%s"]:
        assert quote_string(value).encode() == _mssql.quote_simple_value(value)


def test_set_password_sql_keeps_every_hostile_value_inside_its_quotes() -> None:
    sql = set_password_sql("CREATE", "x]; DROP LOGIN sa; --", "pw'); DROP LOGIN sa; --")
    assert sql == "CREATE LOGIN [x]]; DROP LOGIN sa; --] WITH PASSWORD = N'pw''); DROP LOGIN sa; --'"


class Scripted:
    """Answers lookups: which logins and users exist, and the base user's roles."""

    def __init__(self, logins: set[str], roles: list[str] | None = None, sessions: list[int] | None = None):
        self.logins, self.roles, self.sessions = logins, roles or [], sessions or []
        self.log: list[tuple[str, Any]] = []

    def answer(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        if "sys.server_principals" in sql:
            return [(1,)] if params[0] in self.logins else []
        if "sys.database_principals WHERE name" in sql:
            return []
        if "database_role_members" in sql:
            return [(r,) for r in self.roles]
        if "dm_exec_sessions" in sql:
            return [(s,) for s in self.sessions]
        return []

    def provider(self, database: str = "appdb") -> MSSQLProvider:
        return MSSQLProvider(
            Connection("db", 1433, database, "sa", "adm"),
            lambda user, pw: RecordingConnection(self.log, self.answer),
        )

    def rendered(self) -> list[str]:
        """Each statement as pymssql would send it (parameters substituted on the client)."""
        return [
            (_mssql.substitute_params(sql, params) if params is not None else sql.encode()).decode()
            for sql, params in self.log
        ]


@pytest.mark.parametrize("name", HOSTILE)
def test_single_apply_creates_the_login_with_quoted_name_and_password(name: str) -> None:
    script = Scripted(logins=set())
    script.provider().apply("single", name, "pw'%s; --", name)
    statements = script.rendered()
    quoted = "[" + name.replace("]", "]]") + "]"
    assert f"CREATE LOGIN {quoted} WITH PASSWORD = N'pw''%s; --'" in statements
    assert f"ALTER LOGIN {quoted} ENABLE" in statements
    assert f"CREATE USER {quoted} FOR LOGIN {quoted}" in statements
    # Lookups carry the name only as a parameter, quoted by pymssql.
    assert (
        "SELECT 1 FROM sys.server_principals WHERE name = N'" + name.replace("'", "''") + "' AND type = 'S'"
        in statements
    )
    # Statements with a quoted name are never sent through parameter substitution.
    assert all(params is None for sql, params in script.log if quoted in sql)


def test_alternating_copies_role_memberships_and_existing_logins_are_altered() -> None:
    script = Scripted(logins={"app_b"}, roles=["db_datareader", "weird]role"])
    script.provider().apply("alternating", "app_b", "pw", "app")
    statements = script.rendered()
    assert "ALTER LOGIN [app_b] WITH PASSWORD = N'pw'" in statements
    assert "ALTER ROLE [db_datareader] ADD MEMBER [app_b]" in statements
    assert "ALTER ROLE [weird]]role] ADD MEMBER [app_b]" in statements


def test_disable_locks_the_login_and_kills_its_sessions() -> None:
    script = Scripted(logins={"app"}, sessions=[51, 77])
    script.provider().disable("app")
    statements = script.rendered()
    assert statements[1] == "ALTER LOGIN [app] DISABLE"
    assert statements[-2:] == ["KILL 51", "KILL 77"]


def test_disable_refuses_the_admin_login() -> None:
    with pytest.raises(ProviderError, match="admin user"):
        Scripted(logins={"sa"}).provider().disable("sa")


def test_single_rollback_restores_the_live_password() -> None:
    script = Scripted(logins={"app"})
    script.provider().rollback("single", "app", "app", "old'pw", "new")
    assert script.rendered() == ["ALTER LOGIN [app] WITH PASSWORD = N'old''pw'"]


def test_dual_is_unsupported() -> None:
    with pytest.raises(UnsupportedStrategy, match="alternating"):
        Scripted(logins=set()).provider().apply("dual", "app", "pw", "app")


def test_login_failure_is_false_and_other_errors_raise_without_the_password() -> None:
    def refuse(user: str, pw: str) -> RecordingConnection:
        raise RuntimeError("(18456, b\"Login failed for user 'app'.\")")

    def down(user: str, pw: str) -> RecordingConnection:
        raise RuntimeError(f"(20009, b'Unable to connect: {pw}')")

    connection = Connection("db", 1433, "", "sa", "adm")
    assert MSSQLProvider(connection, refuse).can_login("app", "pw") is False
    with pytest.raises(ProviderError) as caught:
        MSSQLProvider(connection, down).can_login("app", "pw-canary")
    assert "canary" not in caught.value.message


def test_admin_check_reports_missing_privileges() -> None:
    log: list[tuple[str, Any]] = []
    provider = MSSQLProvider(
        Connection("db", 1433, "", "weak", "pw"),
        lambda u, p: RecordingConnection(log, lambda s, a: [(0, 0, 0)]),
    )
    assert provider.test_admin() == ["admin login 'weak' needs ALTER ANY LOGIN (securityadmin)"]


# -- dynamic secrets ---------------------------------------------------------------------------
def test_a_dynamic_login_gets_a_database_user_in_the_grant_role() -> None:
    scripted = Scripted(set())
    scripted.provider().create_user("sk_abc_x", "pw'); DROP LOGIN sa; --", "app]role", 0)
    assert scripted.rendered() == [
        "CREATE LOGIN [sk_abc_x] WITH PASSWORD = N'pw''); DROP LOGIN sa; --'",
        "CREATE USER [sk_abc_x] FOR LOGIN [sk_abc_x]",
        "ALTER ROLE [app]]role] ADD MEMBER [sk_abc_x]",
    ]


def test_revoking_a_dynamic_login_disables_it_kills_sessions_and_drops_it() -> None:
    scripted = Scripted({"sk_abc_x"}, sessions=[53])
    scripted.provider().revoke_user("sk_abc_x")
    assert scripted.rendered()[1:] == [
        "ALTER LOGIN [sk_abc_x] DISABLE",
        "SELECT session_id FROM sys.dm_exec_sessions WHERE login_name = N'sk_abc_x' AND session_id <> @@SPID",
        "KILL 53",
        "DROP USER IF EXISTS [sk_abc_x]",
        "DROP LOGIN [sk_abc_x]",
    ]


def test_revoking_a_missing_dynamic_login_is_done() -> None:
    scripted = Scripted(set())
    scripted.provider().revoke_user("sk_abc_gone")
    assert len(scripted.rendered()) == 1  # the lookup only
