"""PostgreSQL: roles changed with ALTER/CREATE ROLE, sessions ended with pg_terminate_backend.

ALTER ROLE and CREATE ROLE cannot take bind parameters, so names are composed with
``sql.Identifier`` and passwords with ``sql.Literal``; nothing is formatted into SQL text.
The password is sent already hashed (libpq's client-side SCRAM or MD5 hashing, following
the server's ``password_encryption``), so the plaintext never reaches server logs.
Dual passwords do not exist in PostgreSQL: use the alternating strategy, where the second
role is granted the managed role and so inherits its privileges.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import psycopg
from psycopg import sql

from sikker.engines.base import (
    Connection,
    ProviderError,
    Statement,
    Strategy,
    UnsupportedStrategy,
    expiry_text,
    failure,
    no_dual,
    refuse_admin,
)

# libpq reports authentication refusals only as text (there is no SQLSTATE before login).
# Kept narrow: e.g. 'too many connections for role "x"' is NOT a refusal but a retryable error.
_AUTH_REFUSALS = re.compile(
    r"FATAL:\s+(password authentication failed for user"
    r'|role ".*" does not exist'
    r'|role ".*" is not permitted to log in'
    r"|no pg_hba.conf entry for host"
    r"|password is required"
    r"|\w+ authentication failed for user)"
)
_NO_PASSWORD = "no password supplied"


class PostgresProvider:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def _connect(self, user: str, password: str) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=self._c.host,  # still names the server (TLS, pgpass); the socket goes to hostaddr
            hostaddr=self._c.address or None,
            port=self._c.port,
            dbname=self._c.database or "postgres",
            user=user,
            password=password,
            connect_timeout=self._c.connect_timeout,
            application_name="sikker-agent",
            autocommit=True,
        )

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        try:
            return self._connect(self._c.admin_user, self._c.admin_pass)
        except psycopg.Error as e:
            raise failure(f"cannot connect as admin {self._c.admin_user!r}", e, [self._c.admin_pass]) from e

    def check_strategy(self, strategy: Strategy) -> list[str]:
        return no_dual("PostgreSQL", strategy)

    def test_admin(self) -> list[str]:
        try:
            with self._admin() as conn:
                row = conn.execute(
                    "SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user"
                ).fetchone()
        except psycopg.Error as e:
            return [failure("admin check failed", e, [self._c.admin_pass]).message]
        except ProviderError as e:
            return [e.message]
        if row is None or not (row[0] or row[1]):
            return [f"admin role {self._c.admin_user!r} needs CREATEROLE or SUPERUSER"]
        return []

    def can_login(self, username: str, password: str) -> bool:
        try:
            with self._connect(username, password) as conn:
                conn.execute("SELECT 1").fetchone()
            return True
        except psycopg.OperationalError as e:
            text = str(e)
            if _AUTH_REFUSALS.search(text) or _NO_PASSWORD in text:
                return False
            raise failure(f"cannot log in as {username!r}", e, [password, self._c.admin_pass]) from e
        except psycopg.Error as e:
            raise failure(f"login check for {username!r} failed", e, [password]) from e

    def apply(self, strategy: Strategy, username: str, password: str, base_username: str) -> None:
        if strategy == "dual":
            raise UnsupportedStrategy(
                "dual password is not supported by PostgreSQL; use the alternating strategy"
            )
        try:
            with self._admin() as conn, conn.transaction():
                self._set_password(conn, username, password)
                if strategy == "alternating" and username != base_username:
                    if not _role_exists(conn, base_username):
                        raise ProviderError(f"base role {base_username!r} does not exist")
                    # Membership makes the second role inherit the base role's privileges.
                    conn.execute(
                        sql.SQL("GRANT {} TO {}").format(
                            sql.Identifier(base_username), sql.Identifier(username)
                        )
                    )
        except psycopg.Error as e:
            raise failure(f"cannot set the password of {username!r}", e, [password]) from e

    def _set_password(
        self, conn: psycopg.Connection[tuple[object, ...]], username: str, password: str
    ) -> None:
        verifier = conn.pgconn.encrypt_password(password.encode(), username.encode()).decode()
        verb = "ALTER" if _role_exists(conn, username) else "CREATE"
        conn.execute(
            sql.SQL(verb + " ROLE {} WITH LOGIN PASSWORD {}").format(
                sql.Identifier(username), sql.Literal(verifier)
            )
        )

    def rollback(
        self, strategy: Strategy, username: str, live_username: str, live_password: str, pending_password: str
    ) -> None:
        if strategy == "alternating":
            if username != live_username:
                self.disable(username)
            return
        try:
            with self._admin() as conn:
                self._set_password(conn, live_username, live_password)
        except psycopg.Error as e:
            secrets = [live_password, pending_password]
            raise failure(f"cannot restore the password of {live_username!r}", e, secrets) from e

    def disable(self, username: str) -> None:
        refuse_admin(username, self._c.admin_user)
        try:
            with self._admin() as conn:
                if _role_exists(conn, username):
                    conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(username)))
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE usename = %s AND pid <> pg_backend_pid()",
                    (username,),
                )
        except psycopg.Error as e:
            raise failure(f"cannot disable {username!r}", e) from e

    def discard_old(self, username: str, current_password: str) -> None:
        raise UnsupportedStrategy("dual password is not supported by PostgreSQL; nothing to discard")

    # -- dynamic secrets ---------------------------------------------------------------------
    def check_grant_role(self, grant_role: str) -> list[str]:
        try:
            with self._admin() as conn:
                row = conn.execute(
                    "SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (grant_role,)
                ).fetchone()
        except psycopg.Error as e:
            return [failure("cannot check the grant role", e, [self._c.admin_pass]).message]
        if row is None:
            return [f"grant role {grant_role!r} does not exist: CREATE ROLE {grant_role} NOLOGIN first"]
        if row[0]:
            return [f"grant role {grant_role!r} can log in; leased users join a NOLOGIN group role"]
        return []

    def create_user(
        self,
        username: str,
        password: str,
        grant_role: str,
        expires_at_ms: int,
        creation_statements: Sequence[Statement] = (),
    ) -> None:
        try:
            with self._admin() as conn, conn.transaction():
                problems = self.check_grant_role(grant_role) if not creation_statements else []
                if problems:
                    raise ProviderError(problems[0])
                verifier = conn.pgconn.encrypt_password(password.encode(), username.encode()).decode()
                fill = {
                    "name": sql.Identifier(username),
                    "password": sql.Literal(verifier),
                    "expiration": sql.Literal(expiry_text(expires_at_ms)),
                    "role": sql.Identifier(grant_role),
                }
                if creation_statements:
                    for statement in creation_statements:
                        conn.execute(_compose(statement, fill))
                else:
                    conn.execute(
                        sql.SQL("CREATE ROLE {} WITH LOGIN PASSWORD {} VALID UNTIL {} IN ROLE {}").format(
                            fill["name"], fill["password"], fill["expiration"], fill["role"]
                        )
                    )
        except psycopg.Error as e:
            raise failure(f"cannot create {username!r}", e, [password, self._c.admin_pass]) from e

    def renew_user(self, username: str, expires_at_ms: int) -> None:
        try:
            with self._admin() as conn:
                if _role_exists(conn, username):
                    conn.execute(
                        sql.SQL("ALTER ROLE {} VALID UNTIL {}").format(
                            sql.Identifier(username), sql.Literal(expiry_text(expires_at_ms))
                        )
                    )
        except psycopg.Error as e:
            raise failure(f"cannot renew {username!r}", e, [self._c.admin_pass]) from e

    def revoke_user(
        self, username: str, revocation_statements: Sequence[Statement] = (), grant_role: str = ""
    ) -> None:
        refuse_admin(username, self._c.admin_user)
        name = sql.Identifier(username)
        try:
            with self._admin() as conn:
                if not _role_exists(conn, username):
                    return  # never created, or already dropped: done
                conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(name))
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE usename = %s AND pid <> pg_backend_pid()",
                    (username,),
                )
                if revocation_statements:
                    fill = revoke_fill(username, grant_role)
                    for statement in revocation_statements:
                        conn.execute(_compose(statement, fill))
                else:
                    # Objects it created stay, owned by the admin; its privileges go with it.
                    conn.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(name))
                    conn.execute(sql.SQL("DROP OWNED BY {}").format(name))
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(name))
        except psycopg.errors.UndefinedObject:
            return  # dropped meanwhile: done
        except psycopg.Error as e:
            raise failure(f"cannot revoke {username!r}", e, [self._c.admin_pass]) from e

    def list_users(self, prefix: str) -> list[str]:
        try:
            with self._admin() as conn:
                rows = conn.execute(
                    "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s) ORDER BY rolname", (prefix,)
                ).fetchall()
        except psycopg.Error as e:
            raise failure("cannot list roles", e, [self._c.admin_pass]) from e
        return [str(r[0]) for r in rows]


def revoke_fill(username: str, grant_role: str) -> dict[str, sql.Composable]:
    """Placeholders of custom revocation statements: ``{{role}}`` is the lease's group role
    (an empty literal if it has none), never the user itself; no password or expiry."""
    return {
        "name": sql.Identifier(username),
        "password": sql.Literal(""),
        "expiration": sql.Literal(""),
        "role": sql.Identifier(grant_role) if grant_role else sql.Literal(""),
    }


def _compose(statement: Statement, fill: dict[str, sql.Composable]) -> sql.Composed:
    """A checked statement with its placeholders as quoted identifiers and literals."""
    parts: list[sql.Composable] = []
    for kind, text in statement:
        parts.append(sql.SQL(text) if kind == "sql" else fill[text])
    return sql.Composed(parts)


def _role_exists(conn: psycopg.Connection[tuple[object, ...]], name: str) -> bool:
    row = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
    return row is not None
