"""MySQL and MariaDB: accounts ``user``@``'%'`` managed with CREATE/ALTER USER.

User names and passwords are always query parameters (PyMySQL escapes them on the client,
honouring NO_BACKSLASH_ESCAPES); the only SQL built from text is the grant replay in
``mysql_grants``. Dual passwords need MySQL 8.0.14 or later; MariaDB has none, so it is
refused with advice to use the alternating strategy. Alternating copies the base account's
grants to the second account (after revoking whatever the second account had).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pymysql  # type: ignore[import-untyped, unused-ignore]

from sikker.engines.base import (
    Connection,
    ProviderError,
    Statement,
    Strategy,
    UnsupportedStrategy,
    failure,
    refuse_admin,
)
from sikker.engines.mysql_grants import copy_statements

# Access denied (1044 database, 1045 login, 1698 plugin), account locked (MySQL 3118, MariaDB 4151).
_AUTH_REFUSALS = {1044, 1045, 1698, 3118, 4151}
_UNKNOWN_THREAD = 1094
_NO_DUAL_MARIADB = "dual password is not supported by MariaDB; use the alternating strategy"
_DUAL_MINIMUM = (8, 0, 14)
Cursor = pymysql.cursors.Cursor


class MySQLProvider:
    def __init__(self, connection: Connection, mariadb: bool = False) -> None:
        self._c = connection
        self._mariadb = mariadb  # configured as provider "mariadb": no dual, whatever the server says

    def _connect(self, user: str, password: str) -> pymysql.Connection[Cursor]:
        return pymysql.connect(
            host=self._c.dial,
            port=self._c.port,
            user=user,
            password=password,
            database=self._c.database or None,
            connect_timeout=self._c.connect_timeout,
            read_timeout=60,
            autocommit=True,
            charset="utf8mb4",
        )

    def _admin(self) -> pymysql.Connection[Cursor]:
        try:
            return self._connect(self._c.admin_user, self._c.admin_pass)
        except pymysql.Error as e:
            raise failure(f"cannot connect as admin {self._c.admin_user!r}", e, [self._c.admin_pass]) from e

    def test_admin(self) -> list[str]:
        try:
            with self._admin() as conn, conn.cursor() as cur:
                cur.execute("SHOW GRANTS FOR CURRENT_USER()")
                grants = " ".join(str(row[0]) for row in cur.fetchall())
        except pymysql.Error as e:
            return [failure("admin check failed", e, [self._c.admin_pass]).message]
        except ProviderError as e:
            return [e.message]
        if "ALL PRIVILEGES ON *.*" not in grants and "CREATE USER" not in grants:
            return [f"admin user {self._c.admin_user!r} needs ALL PRIVILEGES or CREATE USER"]
        return []

    def check_strategy(self, strategy: Strategy) -> list[str]:
        if strategy != "dual":
            return []
        if self._mariadb:
            return [_NO_DUAL_MARIADB]
        try:
            with self._admin() as conn, conn.cursor() as cur:
                _require_dual(cur)
        except UnsupportedStrategy as e:
            return [e.message]
        except ProviderError:
            return []  # cannot connect: test_admin reports it
        except pymysql.Error as e:
            return [failure("cannot read the server version", e, [self._c.admin_pass]).message]
        return []

    def can_login(self, username: str, password: str) -> bool:
        try:
            with self._connect(username, password) as conn, conn.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchone()
            return True
        except pymysql.err.OperationalError as e:
            if e.args and e.args[0] in _AUTH_REFUSALS:
                return False
            raise failure(f"cannot log in as {username!r}", e, [password]) from e
        except pymysql.Error as e:
            raise failure(f"login check for {username!r} failed", e, [password]) from e

    def apply(self, strategy: Strategy, username: str, password: str, base_username: str) -> None:
        try:
            with self._admin() as conn, conn.cursor() as cur:
                if strategy == "dual":
                    if self._mariadb:
                        raise UnsupportedStrategy(_NO_DUAL_MARIADB)
                    _require_dual(cur)
                if not _exists(cur, username):
                    cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (username, password))
                elif strategy == "dual":
                    cur.execute(
                        "ALTER USER %s@'%%' IDENTIFIED BY %s RETAIN CURRENT PASSWORD", (username, password)
                    )
                else:
                    cur.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (username, password))
                if strategy == "alternating":
                    if username != base_username:
                        _copy_grants(cur, base_username, username)
                    cur.execute("ALTER USER %s@'%%' ACCOUNT UNLOCK", (username,))
        except pymysql.Error as e:
            raise failure(f"cannot set the password of {username!r}", e, [password]) from e

    def rollback(
        self, strategy: Strategy, username: str, live_username: str, live_password: str, pending_password: str
    ) -> None:
        if strategy == "alternating":
            if username != live_username:
                self.disable(username)
            return
        try:
            with self._admin() as conn, conn.cursor() as cur:
                # DISCARD OLD PASSWORD alone would keep the new password: put the old one back first.
                cur.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (live_username, live_password))
                if strategy == "dual":
                    cur.execute("ALTER USER %s@'%%' DISCARD OLD PASSWORD", (live_username,))
        except pymysql.Error as e:
            secrets = [live_password, pending_password]
            raise failure(f"cannot restore the password of {live_username!r}", e, secrets) from e

    def disable(self, username: str) -> None:
        refuse_admin(username, self._c.admin_user)
        try:
            with self._admin() as conn, conn.cursor() as cur:
                if _exists(cur, username):
                    cur.execute("ALTER USER %s@'%%' ACCOUNT LOCK", (username,))
                cur.execute(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s AND ID <> CONNECTION_ID()",
                    (username,),
                )
                for (thread_id,) in cur.fetchall():
                    try:
                        cur.execute("KILL CONNECTION %s", (int(thread_id),))
                    except pymysql.err.OperationalError as e:
                        if not e.args or e.args[0] != _UNKNOWN_THREAD:  # it ended by itself
                            raise
        except pymysql.Error as e:
            raise failure(f"cannot disable {username!r}", e) from e

    def discard_old(self, username: str, current_password: str) -> None:
        try:
            with self._admin() as conn, conn.cursor() as cur:
                _require_dual(cur)
                cur.execute("ALTER USER %s@'%%' DISCARD OLD PASSWORD", (username,))
        except pymysql.Error as e:
            raise failure(f"cannot discard the old password of {username!r}", e, [current_password]) from e

    # -- dynamic secrets ---------------------------------------------------------------------
    def check_grant_role(self, grant_role: str) -> list[str]:
        try:
            with self._admin() as conn, conn.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM mysql.user WHERE User = %s", (grant_role,))
                row = cur.fetchone()
        except pymysql.Error as e:
            return [failure("cannot check the grant role", e, [self._c.admin_pass]).message]
        if not row or not row[0]:
            return [f"grant role {grant_role!r} does not exist: CREATE ROLE {grant_role} first"]
        return []

    def create_user(
        self,
        username: str,
        password: str,
        grant_role: str,
        expires_at_ms: int,
        creation_statements: Sequence[Statement] = (),
    ) -> None:
        role = quote_identifier(grant_role)
        try:
            with self._admin() as conn, conn.cursor() as cur:
                if creation_statements:
                    values = {"name": username, "password": password, "role": grant_role, "expiration": ""}
                    for statement in creation_statements:
                        text, args = _compose(statement, values)
                        cur.execute(text, args)
                    return
                cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (username, password))
                cur.execute(f"GRANT {role} TO %s@'%%'", (username,))  # role: quote_identifier
                cur.execute("SELECT VERSION()")
                version = str((cur.fetchone() or [""])[0])
                verb = "FOR" if "mariadb" in version.lower() else "TO"
                cur.execute(f"SET DEFAULT ROLE {role} {verb} %s@'%%'", (username,))
        except pymysql.Error as e:
            raise failure(f"cannot create {username!r}", e, [password, self._c.admin_pass]) from e

    def renew_user(self, username: str, expires_at_ms: int) -> None:
        return  # no database-side expiry: the sweeper is the only clock

    def revoke_user(
        self, username: str, revocation_statements: Sequence[Statement] = (), grant_role: str = ""
    ) -> None:
        refuse_admin(username, self._c.admin_user)
        try:
            with self._admin() as conn, conn.cursor() as cur:
                if not _exists(cur, username):
                    return
                cur.execute("ALTER USER %s@'%%' ACCOUNT LOCK", (username,))
                _kill_sessions(cur, username)
                values = {"name": username, "password": "", "role": grant_role, "expiration": ""}
                for statement in revocation_statements:
                    text, args = _compose(statement, values)
                    cur.execute(text, args)
                cur.execute("DROP USER IF EXISTS %s@'%%'", (username,))
        except pymysql.Error as e:
            raise failure(f"cannot revoke {username!r}", e, [self._c.admin_pass]) from e

    def list_users(self, prefix: str) -> list[str]:
        try:
            with self._admin() as conn, conn.cursor() as cur:
                cur.execute("SELECT User FROM mysql.user WHERE Host = '%%' ORDER BY User")
                rows = cur.fetchall()
        except pymysql.Error as e:
            raise failure("cannot list users", e, [self._c.admin_pass]) from e
        return [str(r[0]) for r in rows if str(r[0]).startswith(prefix)]


_IDENTIFIER = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def quote_identifier(name: str) -> str:
    """A role name as a backtick-quoted identifier; only [A-Za-z0-9_] is accepted at all."""
    if not _IDENTIFIER.match(name):
        raise ProviderError("role names may hold only letters, digits and _")
    return "`" + name.replace("`", "``") + "`"


def _compose(statement: Statement, values: dict[str, str]) -> tuple[str, list[str]]:
    """A checked statement (no %, quotes or semicolons in its text) with each placeholder a
    bound string parameter: PyMySQL quotes it as a literal ('name', usable as 'name'@'%')."""
    text, args = [], []
    for kind, part in statement:
        if kind == "sql":
            text.append(part)
        else:
            text.append("%s")
            args.append(values[part])
    return "".join(text), args


def _kill_sessions(cur: Cursor, username: str) -> None:
    cur.execute(
        "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s AND ID <> CONNECTION_ID()",
        (username,),
    )
    for (thread_id,) in cur.fetchall():
        try:
            cur.execute("KILL CONNECTION %s", (int(thread_id),))
        except pymysql.err.OperationalError as e:
            if not e.args or e.args[0] != _UNKNOWN_THREAD:  # it ended by itself
                raise


def _exists(cur: Cursor, username: str) -> bool:
    cur.execute("SELECT COUNT(*) FROM mysql.user WHERE User = %s AND Host = '%%'", (username,))
    row = cur.fetchone()
    return bool(row and row[0])


def _require_dual(cur: Cursor) -> None:
    cur.execute("SELECT VERSION()")
    row = cur.fetchone()
    version = str(row[0]) if row else ""
    if "mariadb" in version.lower():
        raise UnsupportedStrategy(_NO_DUAL_MARIADB)
    if parse_version(version) < _DUAL_MINIMUM:
        raise UnsupportedStrategy(f"dual password needs MySQL 8.0.14 or later (server is {version})")


def parse_version(version: str) -> tuple[int, ...]:
    """``'8.0.36-log'`` -> ``(8, 0, 36)``; unparseable -> ``()``."""
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
    return tuple(int(part) for part in match.groups()) if match else ()


def _copy_grants(cur: Cursor, base_username: str, username: str) -> None:
    if not _exists(cur, base_username):
        raise ProviderError(f"base user {base_username!r}@'%' does not exist")
    cur.execute("SHOW GRANTS FOR %s@'%%'", (base_username,))
    statements = copy_statements([str(row[0]) for row in cur.fetchall()], base_username, username)
    # Start from nothing, so the copy is exact even if the account had other grants before.
    cur.execute("REVOKE ALL PRIVILEGES, GRANT OPTION FROM %s@'%%'", (username,))
    for statement in statements:
        cur.execute(statement)  # no parameters: PyMySQL leaves the text as is
