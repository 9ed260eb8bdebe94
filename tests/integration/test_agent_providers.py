"""Sync-agent providers against the REAL local PostgreSQL, MariaDB and Redis.

Live here: PostgreSQL 127.0.0.1:5432, MariaDB 127.0.0.1:3306, Redis 127.0.0.1:6379. With
CI=true a missing service fails the tests; otherwise they are skipped.

The shared PostgreSQL trusts every login from 127.0.0.1 (pg_hba ``trust``), so there a
password is checked by recomputing the role's stored SCRAM verifier, and only LOGIN /
NOLOGIN / missing roles show up in ``can_login``. Real password authentication for
PostgreSQL is exercised on a private, throwaway cluster with scram-sha-256 (initdb, needs
the PostgreSQL server binaries; skipped if they are missing).

Not live: MongoDB and SQL Server (no server here) and MySQL 8 dual passwords (MariaDB
has none); they are unit-tested in tests/unit/agent/.

Every role/user created here starts with a random prefix and is dropped at the end.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pymysql
import pytest
import redis
from psycopg import sql

from sikker.agent.loop import SecretWorker
from sikker.engines.base import Connection, Provider, ProviderError, UnsupportedStrategy
from sikker.engines.mysql import MySQLProvider
from sikker.engines.postgresql import PostgresProvider
from sikker.engines.redis import RedisProvider
from tests.support import IN_CI, PG_ADMIN_URL, free_port, scram_postgres
from tests.unit.agent.fakes import FakeServer, api_for, creds

PREFIX = f"skag{uuid.uuid4().hex[:6]}_"
CANARY = PREFIX + "canary"
LONG_PASSWORD = "".join(
    secrets.choice(string.ascii_letters + string.digits + string.punctuation) for _ in range(64)
)
HOSTILE_PASSWORDS = [f'a"; DROP ROLE {CANARY}; --', "'", "\\", "O'Brien", "x]", "p%s%d", LONG_PASSWORD]
# Suffixes, always behind PREFIX so cleanup finds them. Redis names cannot hold spaces.
HOSTILE_NAMES = [f'a"; DROP ROLE {CANARY}; --', "'", "\\", "O'Brien", "x]", "x`y", "p%s"]
HOSTILE_REDIS_NAMES = [n for n in HOSTILE_NAMES if " " not in n] + ['a";DROP']


def require(service: str, probe: Callable[[], object]) -> None:
    """Skip locally when the service is down; fail in CI, where it must be there."""
    try:
        probe()
    except Exception as e:
        if IN_CI:
            pytest.fail(f"{service} is not reachable and CI=true: start it ({type(e).__name__}: {e})")
        pytest.skip(f"{service} is not running")


def pairs() -> list[tuple[str, str]]:
    """Each hostile name with a hostile password (rotating through the passwords)."""
    return [(name, HOSTILE_PASSWORDS[i % len(HOSTILE_PASSWORDS)]) for i, name in enumerate(HOSTILE_NAMES)]


# -- PostgreSQL -------------------------------------------------------------------------
@dataclass
class Pg:
    admin: psycopg.Connection[Any]
    provider: PostgresProvider
    connection: Connection

    def roles(self) -> set[str]:
        return {r[0] for r in self.admin.execute("SELECT rolname FROM pg_roles").fetchall()}

    def password_is(self, role: str, password: str) -> bool:
        """Whether ``password`` matches the role's stored SCRAM-SHA-256 verifier."""
        row = self.admin.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)).fetchone()
        assert row and row[0], f"{role!r} has no password"
        method, rest = row[0].split("$", 1)
        assert method == "SCRAM-SHA-256"
        iterations_salt, keys = rest.split("$")
        iterations, salt = iterations_salt.split(":")
        stored_key = base64.b64decode(keys.split(":")[0])
        salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        return hmac.compare_digest(hashlib.sha256(client_key).digest(), stored_key)

    def session(self, role: str) -> psycopg.Connection[Any]:
        return psycopg.connect(host="127.0.0.1", port=5432, dbname="postgres", user=role, autocommit=True)


def drop_pg_roles(admin: psycopg.Connection[Any], prefix: str) -> None:
    for (role,) in admin.execute("SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", (prefix,)):
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
        admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.fixture(scope="module")
def pg() -> Iterator[Pg]:
    require("PostgreSQL", lambda: psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close())
    admin = psycopg.connect(PG_ADMIN_URL, autocommit=True)
    admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(CANARY)))
    schema = sql.Identifier(PREFIX + "s")
    admin.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
    admin.execute(sql.SQL("CREATE TABLE {}.t (v int)").format(schema))
    admin.execute(sql.SQL("INSERT INTO {}.t VALUES (42)").format(schema))
    connection = Connection("127.0.0.1", 5432, "postgres", "postgres", "")
    try:
        yield Pg(admin, PostgresProvider(connection), connection)
    finally:
        admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(schema))
        drop_pg_roles(admin, PREFIX)
        admin.close()


def pg_base_role(pg: Pg, name: str, password: str = "base-pw") -> str:
    """A managed role that may read the test table (the privileges an alternate must inherit)."""
    role = PREFIX + name
    pg.provider.apply("single", role, password, role)
    schema = sql.Identifier(PREFIX + "s")
    pg.admin.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, sql.Identifier(role)))
    pg.admin.execute(sql.SQL("GRANT SELECT ON {}.t TO {}").format(schema, sql.Identifier(role)))
    return role


def test_pg_single_creates_then_changes_the_password(pg: Pg) -> None:
    role = PREFIX + "single"
    pg.provider.apply("single", role, "first-pw", role)
    assert pg.password_is(role, "first-pw") and pg.provider.can_login(role, "first-pw")
    pg.provider.apply("single", role, "second-pw", role)
    assert pg.password_is(role, "second-pw") and not pg.password_is(role, "first-pw")


def test_pg_single_rollback_restores_the_old_password(pg: Pg) -> None:
    role = PREFIX + "rollback"
    pg.provider.apply("single", role, "old-pw", role)
    pg.provider.apply("single", role, "new-pw", role)
    pg.provider.rollback("single", role, role, "old-pw", "new-pw")
    assert pg.password_is(role, "old-pw")


def test_pg_refuses_dual(pg: Pg) -> None:
    with pytest.raises(UnsupportedStrategy, match="use the alternating strategy"):
        pg.provider.apply("dual", PREFIX + "dual", "pw", PREFIX + "dual")
    assert PREFIX + "dual" not in pg.roles()


def test_pg_alternating_inherits_then_disable_ends_the_previous_user(pg: Pg) -> None:
    base = pg_base_role(pg, "app")
    other = PREFIX + "app_b"
    pg.provider.apply("alternating", other, "b-pw", base)
    assert pg.password_is(other, "b-pw") and pg.provider.can_login(other, "b-pw")
    with pg.session(other) as conn:  # inherited privileges: the alternate can read the base's table
        table = sql.SQL("SELECT v FROM {}.t").format(sql.Identifier(PREFIX + "s"))
        assert conn.execute(table).fetchone() == (42,)
    # Grace period: the base user still logs in; it keeps an open session.
    assert pg.provider.can_login(base, "base-pw")
    held = pg.session(base)
    held.execute("SELECT 1")
    pg.provider.disable(base)
    pg.provider.disable(base)  # idempotent
    assert not pg.provider.can_login(base, "base-pw")
    with pytest.raises(psycopg.OperationalError):
        held.execute("SELECT 1")  # its session was terminated
    held.close()
    assert pg.provider.can_login(other, "b-pw")
    # The next rotation switches back: the base role logs in again.
    pg.provider.apply("alternating", base, "base-pw-2", base)
    assert pg.provider.can_login(base, "base-pw-2") and pg.password_is(base, "base-pw-2")


def test_pg_alternating_rollback_disables_only_the_new_user(pg: Pg) -> None:
    base = pg_base_role(pg, "rb")
    other = PREFIX + "rb_b"
    pg.provider.apply("alternating", other, "b-pw", base)
    pg.provider.rollback("alternating", other, base, "base-pw", "b-pw")
    assert not pg.provider.can_login(other, "b-pw") and pg.provider.can_login(base, "base-pw")


def test_pg_disable_refuses_the_admin(pg: Pg) -> None:
    with pytest.raises(ProviderError, match="admin user"):
        pg.provider.disable("postgres")


@pytest.mark.parametrize(("suffix", "password"), pairs())
def test_pg_hostile_names_and_passwords_cause_no_injection(pg: Pg, suffix: str, password: str) -> None:
    before = pg.roles()
    role = PREFIX + suffix
    pg.provider.apply("single", role, password, role)
    assert pg.password_is(role, password) and pg.provider.can_login(role, password)
    other = PREFIX + "B" + suffix
    pg.provider.apply("alternating", other, LONG_PASSWORD, role)
    pg.provider.disable(role)
    assert pg.roles() - before == {role, other} and CANARY in pg.roles()
    assert pg.provider.test_admin() == []


# -- PostgreSQL with real password authentication (private throwaway cluster) ---------------
@pytest.fixture(scope="module")
def scram_pg() -> Iterator[Connection]:
    with scram_postgres() as (port, admin, password):
        yield Connection("127.0.0.1", port, "postgres", admin, password)


def test_pg_password_authentication_distinguishes_old_new_and_missing(scram_pg: Connection) -> None:
    provider = PostgresProvider(scram_pg)
    assert provider.test_admin() == []
    role = PREFIX + "scram"
    provider.apply("single", role, "old-pw", role)
    assert provider.can_login(role, "old-pw") and not provider.can_login(role, "wrong")
    provider.apply("single", role, LONG_PASSWORD, role)
    assert provider.can_login(role, LONG_PASSWORD) and not provider.can_login(role, "old-pw")
    provider.rollback("single", role, role, "old-pw", LONG_PASSWORD)
    assert provider.can_login(role, "old-pw") and not provider.can_login(role, LONG_PASSWORD)
    assert not provider.can_login(PREFIX + "missing", "x")
    provider.disable(role)
    assert not provider.can_login(role, "old-pw")


def test_pg_unreachable_server_raises_instead_of_refusing() -> None:
    provider = PostgresProvider(Connection("127.0.0.1", free_port(), "postgres", "postgres", ""))
    with pytest.raises(ProviderError, match="cannot log in"):
        provider.can_login("anyone", "pw")
    assert provider.test_admin()[0].startswith("cannot connect as admin")


def test_pg_resumed_rotation_end_to_end(scram_pg: Connection) -> None:
    """The agent died after applying: the next tick confirms without applying again."""
    provider = PostgresProvider(scram_pg)
    role = PREFIX + "resume"
    provider.apply("single", role, "live-pw", role)
    server = FakeServer(creds(role, "live-pw"), FakeServer.base_config(managedUsername=role))
    server.pend("rot_1", creds(role, "pending-pw"))
    provider.apply("single", role, "pending-pw", role)  # what the dead agent had done
    spy = Spy(provider)
    result = worker(server, spy).tick()
    assert result.status == "healthy" and server.posts("/confirm-rotation") == [{"rotationId": "rot_1"}]
    assert spy.applied == 0


# -- MariaDB / MySQL ------------------------------------------------------------------
MYSQL_ADMIN = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": "", "autocommit": True}


@dataclass
class My:
    admin: pymysql.Connection[Any]
    provider: MySQLProvider

    def query(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self.admin.cursor() as cur:
            cur.execute(statement, params)
            return list(cur.fetchall())

    def users(self) -> set[str]:
        return {r[0] for r in self.query("SELECT User FROM mysql.user")}

    def session(self, user: str, password: str) -> pymysql.Connection[Any]:
        return pymysql.connect(host="127.0.0.1", port=3306, user=user, password=password, autocommit=True)


@pytest.fixture(scope="module")
def my() -> Iterator[My]:
    require("MariaDB/MySQL", lambda: pymysql.connect(**MYSQL_ADMIN, connect_timeout=3).close())
    env = My(pymysql.connect(**MYSQL_ADMIN), MySQLProvider(Connection("127.0.0.1", 3306, "", "root", "")))
    env.query("CREATE USER %s@'%%' ACCOUNT LOCK", (CANARY,))
    env.query(f"CREATE DATABASE `{PREFIX}db`")
    env.query(f"CREATE TABLE `{PREFIX}db`.t (v int)")
    env.query(f"INSERT INTO `{PREFIX}db`.t VALUES (42)")
    try:
        yield env
    finally:
        for user, host in env.query("SELECT User, Host FROM mysql.user"):
            if user.startswith(PREFIX):
                env.query("DROP USER %s@%s", (user, host))
        env.query(f"DROP DATABASE IF EXISTS `{PREFIX}db`")
        env.admin.close()


def my_base_user(my: My, name: str, password: str = "base-pw") -> str:
    user = PREFIX + name
    my.provider.apply("single", user, password, user)
    my.query(f"GRANT SELECT ON `{PREFIX}db`.* TO %s@'%%'", (user,))
    return user


def test_mysql_single_creates_changes_and_rolls_back(my: My) -> None:
    user = PREFIX + "single"
    my.provider.apply("single", user, "old-pw", user)
    assert my.provider.can_login(user, "old-pw") and not my.provider.can_login(user, "wrong")
    my.provider.apply("single", user, "new-pw", user)
    assert my.provider.can_login(user, "new-pw") and not my.provider.can_login(user, "old-pw")
    my.provider.rollback("single", user, user, "old-pw", "new-pw")
    assert my.provider.can_login(user, "old-pw") and not my.provider.can_login(user, "new-pw")


def test_mariadb_refuses_dual_with_advice(my: My) -> None:
    user = my_base_user(my, "dual")
    with pytest.raises(UnsupportedStrategy, match="not supported by MariaDB; use the alternating strategy"):
        my.provider.apply("dual", user, "new-pw", user)
    assert my.provider.can_login(user, "base-pw") and not my.provider.can_login(user, "new-pw")


def test_mysql_alternating_copies_grants_then_disable_locks_and_kills(my: My) -> None:
    base = my_base_user(my, "app")
    other = PREFIX + "app_b"
    my.provider.apply("alternating", other, "b-pw", base)
    my.provider.apply("alternating", other, "b-pw", base)  # idempotent
    with my.session(other, "b-pw") as conn, conn.cursor() as cur:
        cur.execute(f"SELECT v FROM `{PREFIX}db`.t")
        assert cur.fetchone() == (42,)
        with pytest.raises(pymysql.err.OperationalError):
            cur.execute("SELECT * FROM mysql.user")  # only what the base user has
    held = my.session(base, "base-pw")
    assert my.provider.can_login(base, "base-pw")
    my.provider.disable(base)
    my.provider.disable(base)
    assert not my.provider.can_login(base, "base-pw")
    with pytest.raises(pymysql.err.OperationalError), held.cursor() as cur:
        cur.execute("SELECT 1")  # its connection was killed
    assert my.provider.can_login(other, "b-pw")
    my.provider.apply("alternating", base, "base-pw-2", base)  # switching back unlocks it
    assert my.provider.can_login(base, "base-pw-2")


def test_mysql_alternating_rollback_locks_only_the_new_user(my: My) -> None:
    base = my_base_user(my, "rb")
    other = PREFIX + "rb_b"
    my.provider.apply("alternating", other, "b-pw", base)
    my.provider.rollback("alternating", other, base, "base-pw", "b-pw")
    assert not my.provider.can_login(other, "b-pw") and my.provider.can_login(base, "base-pw")


@pytest.mark.parametrize(("suffix", "password"), pairs())
def test_mysql_hostile_names_and_passwords_cause_no_injection(my: My, suffix: str, password: str) -> None:
    before = my.users()
    base = my_base_user(my, suffix, password)
    assert my.provider.can_login(base, password)
    other = PREFIX + "B" + suffix
    my.provider.apply("alternating", other, LONG_PASSWORD, base)
    with my.session(other, LONG_PASSWORD) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT v FROM `{PREFIX}db`.t")
    my.provider.disable(base)
    assert not my.provider.can_login(base, password)
    assert my.users() - before == {base, other} and CANARY in my.users()
    assert my.provider.test_admin() == []


# -- Redis ----------------------------------------------------------------------------
@dataclass
class Rd:
    admin: redis.Redis
    provider: RedisProvider

    def users(self) -> set[str]:
        return set(self.admin.acl_users())

    def client(self, user: str, password: str) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=6379, username=user, password=password, decode_responses=True
        )


@pytest.fixture(scope="module")
def rd() -> Iterator[Rd]:
    admin = redis.Redis(host="127.0.0.1", port=6379, decode_responses=True, socket_connect_timeout=3)
    require("Redis", admin.ping)
    env = Rd(admin, RedisProvider(Connection("127.0.0.1", 6379, "", "default", "")))
    try:
        yield env
    finally:
        for user in env.users():
            if user.startswith(PREFIX):
                admin.acl_deluser(user)
        admin.close()


def rd_base_user(rd: Rd, name: str, password: str = "base-pw") -> str:
    user = PREFIX + name
    rd.admin.execute_command(
        "ACL", "SETUSER", user, "on", f">{password}", "~app:*", "resetchannels", "+get", "+set", "+ping"
    )
    return user


def test_redis_single_creates_changes_and_rolls_back(rd: Rd) -> None:
    user = PREFIX + "single"
    rd.provider.apply("single", user, "old-pw", user)
    assert rd.provider.can_login(user, "old-pw") and not rd.provider.can_login(user, "wrong")
    with rd.client(user, "old-pw") as client, pytest.raises(redis.exceptions.NoPermissionError):
        client.execute_command("ACL", "LIST")  # a user the agent creates gets no admin commands
    rd.provider.apply("single", user, "new-pw", user)
    assert rd.provider.can_login(user, "new-pw") and not rd.provider.can_login(user, "old-pw")
    rd.provider.rollback("single", user, user, "old-pw", "new-pw")
    assert rd.provider.can_login(user, "old-pw") and not rd.provider.can_login(user, "new-pw")


def test_redis_dual_keeps_both_until_the_old_one_is_discarded(rd: Rd) -> None:
    user = rd_base_user(rd, "dual", "pw-1")
    rd.provider.apply("dual", user, "pw-2", user)
    assert rd.provider.can_login(user, "pw-1") and rd.provider.can_login(user, "pw-2")
    rd.provider.rollback("dual", user, user, "pw-1", "pw-2")
    assert rd.provider.can_login(user, "pw-1") and not rd.provider.can_login(user, "pw-2")
    rd.provider.apply("dual", user, "pw-2", user)
    rd.provider.discard_old(user, "pw-2")
    assert rd.provider.can_login(user, "pw-2") and not rd.provider.can_login(user, "pw-1")
    assert "~app:*" in rd.admin.execute_command("ACL", "GETUSER", user)["keys"]  # rules untouched


def test_redis_alternating_copies_rules_then_disable_kills_the_previous_user(rd: Rd) -> None:
    base = rd_base_user(rd, "app")
    other = PREFIX + "app_b"
    rd.provider.apply("alternating", other, "b-pw", base)
    with rd.client(other, "b-pw") as client:
        client.set("app:x", "1")
        assert client.get("app:x") == "1"
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.get("other:x")
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command("ACL", "LIST")
    held = redis.Connection(host="127.0.0.1", port=6379, username=base, password="base-pw")
    held.send_command("PING")
    assert held.read_response() == b"PONG"
    rd.provider.disable(base)
    rd.provider.disable(base)
    assert not rd.provider.can_login(base, "base-pw")
    assert all(c.get("user") != base for c in rd.admin.client_list())
    with pytest.raises(redis.exceptions.ConnectionError):  # its connection was killed
        held.send_command("PING")
        held.read_response()
    held.disconnect()
    rd.admin.delete("app:x")
    rd.provider.apply("alternating", base, "base-pw-2", base)
    assert rd.provider.can_login(base, "base-pw-2") and not rd.provider.can_login(base, "base-pw")


def test_redis_alternating_rollback_disables_only_the_new_user(rd: Rd) -> None:
    base = rd_base_user(rd, "rb")
    other = PREFIX + "rb_b"
    rd.provider.apply("alternating", other, "b-pw", base)
    rd.provider.rollback("alternating", other, base, "base-pw", "b-pw")
    assert not rd.provider.can_login(other, "b-pw") and rd.provider.can_login(base, "base-pw")


def test_redis_refuses_to_disable_the_admin(rd: Rd) -> None:
    with pytest.raises(ProviderError, match="admin user"):
        rd.provider.disable("default")


@pytest.mark.parametrize("suffix", HOSTILE_REDIS_NAMES)
@pytest.mark.parametrize("password", [*HOSTILE_PASSWORDS, "with space >x <y ~* +@all"])
def test_redis_hostile_names_and_passwords_cause_no_injection(rd: Rd, suffix: str, password: str) -> None:
    before = rd.users()
    base = rd_base_user(rd, suffix)
    rd.provider.apply("single", base, password, base)
    assert rd.provider.can_login(base, password) and not rd.provider.can_login(base, "base-pw")
    info = rd.admin.execute_command("ACL", "GETUSER", base)
    assert info["keys"] == "~app:*" and len(info["passwords"]) == 1  # the password added no rules
    assert rd.users() - before <= {base} and rd.provider.test_admin() == []


def test_redis_name_with_spaces_is_refused_cleanly(rd: Rd) -> None:
    before = rd.users()
    with pytest.raises(ProviderError) as caught:
        rd.provider.apply("single", PREFIX + "a b", "secret-canary", PREFIX + "a b")
    assert "canary" not in caught.value.message
    assert rd.users() == before


# -- The whole agent loop over real databases -------------------------------------------
class Spy:
    """Counts apply calls of a real provider."""

    def __init__(self, inner: Provider) -> None:
        self._inner, self.applied = inner, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def apply(self, *args: Any) -> None:
        self.applied += 1
        self._inner.apply(*args)


def worker(server: FakeServer, provider: Any, now: Callable[[], float] = time.time) -> SecretWorker:
    return SecretWorker("sk_db", api_for(server), lambda kind, connection: provider, now)


def test_agent_alternating_cycle_on_mariadb(my: My) -> None:
    base = my_base_user(my, "loop")
    other = PREFIX + "loop_b"
    server = FakeServer(
        creds(base, "base-pw"), FakeServer.base_config(managedUsername=base, strategy="alternating")
    )
    server.pend("rot_1", creds(other, "b-pw"))
    loop = worker(server, my.provider)
    assert loop.tick().status == "healthy"
    assert server.posts("/confirm-rotation") == [{"rotationId": "rot_1"}]
    assert my.provider.can_login(other, "b-pw") and my.provider.can_login(base, "base-pw")
    server.config.update(previousUsername=base, disablePreviousAt=int(time.time()) - 1)
    assert loop.tick().status == "healthy"
    assert not my.provider.can_login(base, "base-pw") and my.provider.can_login(other, "b-pw")


def test_agent_single_rotation_and_failed_verify_on_redis(rd: Rd) -> None:
    user = rd_base_user(rd, "loop", "pw-1")
    server = FakeServer(
        creds(user, "pw-1"), FakeServer.base_config(managedUsername=user, providerType="redis")
    )
    server.pend("rot_1", creds(user, "pw-2"))
    loop = worker(server, rd.provider)
    loop.tick()
    assert server.posts("/confirm-rotation") == [{"rotationId": "rot_1"}]
    assert rd.provider.can_login(user, "pw-2") and not rd.provider.can_login(user, "pw-1")

    class BrokenVerify(Spy):
        def can_login(self, username: str, password: str) -> bool:
            return password != "pw-3" and bool(self._inner.can_login(username, password))

    server.pend("rot_2", creds(user, "pw-3"))
    worker(server, BrokenVerify(rd.provider)).tick()
    (reject,) = server.posts("/reject-rotation")
    assert reject["error"].startswith("verification failed after apply")
    assert rd.provider.can_login(user, "pw-2") and not rd.provider.can_login(user, "pw-3")  # rolled back


def test_dual_on_mariadb_is_reported_by_the_strategy_check(my: My) -> None:
    problems = my.provider.check_strategy("dual")
    assert problems == ["dual password is not supported by MariaDB; use the alternating strategy"]
    assert my.provider.check_strategy("alternating") == []
    assert my.provider.check_strategy("single") == []


def test_dual_on_redis_passes_the_strategy_check(rd: Rd) -> None:
    assert rd.provider.check_strategy("dual") == []
