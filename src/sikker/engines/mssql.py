"""Microsoft SQL Server: SQL logins managed with CREATE/ALTER LOGIN, mapped to database users.

T-SQL takes no variables for names or for the password in CREATE/ALTER LOGIN, so names are
bracket-quoted here (``]`` doubled, as QUOTENAME does) and the password becomes an
``N'...'`` literal with ``'`` doubled (what pymssql's own parameter quoting produces).
Statements holding a quoted name are sent WITHOUT parameters: pymssql substitutes
parameters textually and would rewrite a ``%s`` inside a quoted name. Parameters are used
only with constant statements (the lookups). Literals are always N'' (Unicode), so no
code-page conversion can turn a look-alike character into a quote. The database user of a login
is assumed to have the login's name. Alternating copies the base user's database-role
memberships (grant privileges to roles, not to users, for this to be complete).

Tested only against a recording fake connection, not a live server.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import pymssql

from sikker.engines.base import (
    Connection,
    ProviderError,
    Statement,
    Strategy,
    UnsupportedStrategy,
    failure,
    no_dual,
    refuse_admin,
)

_SYSNAME = 128
_LOGIN_FAILED = 18456
_PASSWORD_MUST_CHANGE = 18488


class Cursor(Protocol):
    def execute(self, operation: str, params: Any = ...) -> Any: ...
    def fetchall(self) -> Sequence[Sequence[Any]]: ...


class DBConnection(Protocol):
    def cursor(self) -> Any: ...
    def close(self) -> None: ...


Connect = Callable[[str, str], DBConnection]


def quote_name(name: str) -> str:
    """``[name]`` with ``]`` doubled, as QUOTENAME does."""
    if not name or len(name) > _SYSNAME or "\x00" in name:
        raise ProviderError(f"invalid SQL Server name {name[:_SYSNAME]!r}")
    return "[" + name.replace("]", "]]") + "]"


def quote_string(value: str) -> str:
    """An ``N'...'`` literal with ``'`` doubled."""
    if "\x00" in value:
        raise ProviderError("a NUL character cannot be used in a SQL Server password")
    return "N'" + value.replace("'", "''") + "'"


def set_password_sql(verb: str, login: str, password: str) -> str:
    """``CREATE``/``ALTER`` LOGIN ... WITH PASSWORD; to be executed without parameters."""
    if verb not in ("CREATE", "ALTER"):
        raise ValueError(verb)
    return f"{verb} LOGIN {quote_name(login)} WITH PASSWORD = {quote_string(password)}"


def role_members_sql() -> str:
    return (
        "SELECT r.name FROM sys.database_role_members m"
        " JOIN sys.database_principals r ON r.principal_id = m.role_principal_id"
        " JOIN sys.database_principals u ON u.principal_id = m.member_principal_id"
        " WHERE u.name = %s"
    )


def _default_connect(connection: Connection) -> Connect:
    def open_connection(user: str, password: str) -> DBConnection:
        return pymssql.connect(
            server=connection.dial,
            port=str(connection.port),
            user=user,
            password=password,
            database=connection.database or "master",
            login_timeout=connection.connect_timeout,
            timeout=60,
            autocommit=True,
            appname="sikker-agent",
        )

    return open_connection


class MSSQLProvider:
    def __init__(self, connection: Connection, connect: Connect | None = None) -> None:
        self._c = connection
        self._open = connect or _default_connect(connection)

    def _run(self, action: str, steps: Callable[[Cursor], Any], secrets: Sequence[str] = ()) -> Any:
        """Call ``steps`` with a cursor of a fresh admin connection."""
        try:
            conn = self._open(self._c.admin_user, self._c.admin_pass)
        except Exception as e:  # pymssql raises its own and driver-level errors here
            raise failure(f"cannot connect as admin {self._c.admin_user!r}", e, [self._c.admin_pass]) from e
        try:
            return steps(conn.cursor())
        except ProviderError:
            raise
        except Exception as e:
            raise failure(action, e, [*secrets, self._c.admin_pass]) from e
        finally:
            conn.close()

    def check_strategy(self, strategy: Strategy) -> list[str]:
        return no_dual("SQL Server", strategy)

    def test_admin(self) -> list[str]:
        def check(cur: Cursor) -> list[str]:
            cur.execute(
                "SELECT IS_SRVROLEMEMBER('sysadmin'), IS_SRVROLEMEMBER('securityadmin'),"
                " HAS_PERMS_BY_NAME(NULL, NULL, 'ALTER ANY LOGIN')"
            )
            row = cur.fetchall()[0]
            if not any(row):
                return [f"admin login {self._c.admin_user!r} needs ALTER ANY LOGIN (securityadmin)"]
            return []

        try:
            return list(self._run("admin check failed", check))
        except ProviderError as e:
            return [e.message]

    def can_login(self, username: str, password: str) -> bool:
        try:
            conn = self._open(username, password)
        except Exception as e:
            text = str(e)
            if any(str(code) in text for code in (_LOGIN_FAILED, _PASSWORD_MUST_CHANGE)):
                return False
            raise failure(f"cannot log in as {username!r}", e, [password]) from e
        try:
            cur = conn.cursor()
            cur.execute("SELECT 1")
            cur.fetchall()
            return True
        except Exception as e:
            raise failure(f"login check for {username!r} failed", e, [password]) from e
        finally:
            conn.close()

    def apply(self, strategy: Strategy, username: str, password: str, base_username: str) -> None:
        if strategy == "dual":
            raise UnsupportedStrategy(
                "dual password is not supported by SQL Server; use the alternating strategy"
            )

        def steps(cur: Cursor) -> None:
            verb = "ALTER" if _login_exists(cur, username) else "CREATE"
            cur.execute(set_password_sql(verb, username, password))
            cur.execute(f"ALTER LOGIN {quote_name(username)} ENABLE")
            if self._c.database and not _user_exists(cur, username):
                cur.execute(f"CREATE USER {quote_name(username)} FOR LOGIN {quote_name(username)}")
            if strategy == "alternating" and username != base_username:
                cur.execute(role_members_sql(), (base_username,))
                for (role,) in cur.fetchall():
                    cur.execute(f"ALTER ROLE {quote_name(str(role))} ADD MEMBER {quote_name(username)}")

        self._run(f"cannot set the password of {username!r}", steps, [password])

    def rollback(
        self, strategy: Strategy, username: str, live_username: str, live_password: str, pending_password: str
    ) -> None:
        if strategy == "alternating":
            if username != live_username:
                self.disable(username)
            return
        self._run(
            f"cannot restore the password of {live_username!r}",
            lambda cur: cur.execute(set_password_sql("ALTER", live_username, live_password)),
            [live_password, pending_password],
        )

    def disable(self, username: str) -> None:
        refuse_admin(username, self._c.admin_user)

        def steps(cur: Cursor) -> None:
            if _login_exists(cur, username):
                cur.execute(f"ALTER LOGIN {quote_name(username)} DISABLE")
            cur.execute(
                "SELECT session_id FROM sys.dm_exec_sessions WHERE login_name = %s AND session_id <> @@SPID",
                (username,),
            )
            for (session_id,) in cur.fetchall():
                cur.execute(f"KILL {int(session_id)}")

        self._run(f"cannot disable {username!r}", steps)

    def discard_old(self, username: str, current_password: str) -> None:
        raise UnsupportedStrategy("dual password is not supported by SQL Server; nothing to discard")

    # -- dynamic secrets: a login, its user in the database, membership of a database role ----
    def check_grant_role(self, grant_role: str) -> list[str]:
        def check(cur: Cursor) -> list[str]:
            cur.execute("SELECT 1 FROM sys.database_principals WHERE name = %s AND type = 'R'", (grant_role,))
            if not cur.fetchall():
                return [f"grant role {grant_role!r} does not exist in the database"]
            return []

        try:
            return list(self._run("cannot check the grant role", check))
        except ProviderError as e:
            return [e.message]

    def create_user(
        self,
        username: str,
        password: str,
        grant_role: str,
        expires_at_ms: int,
        creation_statements: Sequence[Statement] = (),
    ) -> None:
        if creation_statements:
            raise ProviderError("custom statements are not supported for SQL Server")

        def steps(cur: Cursor) -> None:
            name = quote_name(username)
            cur.execute(set_password_sql("CREATE", username, password))
            cur.execute(f"CREATE USER {name} FOR LOGIN {name}")
            cur.execute(f"ALTER ROLE {quote_name(grant_role)} ADD MEMBER {name}")

        self._run(f"cannot create {username!r}", steps, [password])

    def renew_user(self, username: str, expires_at_ms: int) -> None:
        return  # SQL Server logins do not expire: the sweeper is the only clock

    def revoke_user(
        self, username: str, revocation_statements: Sequence[Statement] = (), grant_role: str = ""
    ) -> None:
        refuse_admin(username, self._c.admin_user)

        def steps(cur: Cursor) -> None:
            name = quote_name(username)
            if not _login_exists(cur, username):
                return
            cur.execute(f"ALTER LOGIN {name} DISABLE")
            cur.execute(
                "SELECT session_id FROM sys.dm_exec_sessions WHERE login_name = %s AND session_id <> @@SPID",
                (username,),
            )
            for (session_id,) in cur.fetchall():
                cur.execute(f"KILL {int(session_id)}")
            cur.execute(f"DROP USER IF EXISTS {name}")
            cur.execute(f"DROP LOGIN {name}")

        self._run(f"cannot revoke {username!r}", steps)

    def list_users(self, prefix: str) -> list[str]:
        def steps(cur: Cursor) -> list[str]:
            cur.execute("SELECT name FROM sys.server_principals WHERE type = 'S'")
            return [str(row[0]) for row in cur.fetchall()]

        names: list[str] = self._run("cannot list logins", steps)
        return sorted(n for n in names if n.startswith(prefix))


def _login_exists(cur: Cursor, name: str) -> bool:
    cur.execute("SELECT 1 FROM sys.server_principals WHERE name = %s AND type = 'S'", (name,))
    return bool(cur.fetchall())


def _user_exists(cur: Cursor, name: str) -> bool:
    cur.execute("SELECT 1 FROM sys.database_principals WHERE name = %s", (name,))
    return bool(cur.fetchall())
