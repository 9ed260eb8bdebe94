"""What every database provider offers the agent, and the errors they raise.

    SikkerError                      (sikker.errors)
    └── ProviderError                a database step failed; the message is safe to show
        └── UnsupportedStrategy      the engine cannot do what the strategy asks

A provider opens a short-lived admin connection for each call. No message, log line or
``repr`` it produces may contain a password: driver messages go through ``failure``, which
keeps only their first line and blanks out every secret the provider knows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from sikker.errors import SikkerError

Strategy = Literal["single", "dual", "alternating"]
STRATEGIES: tuple[Strategy, ...] = ("single", "dual", "alternating")
CONNECT_TIMEOUT = 10
_MAX_MESSAGE = 300


class ProviderError(SikkerError):
    default_message = "database operation failed"


class UnsupportedStrategy(ProviderError):
    default_message = "this rotation strategy is not supported by the database"


@dataclass(frozen=True, slots=True)
class Connection:
    """Where the managed database is and how the agent logs in as its admin."""

    host: str
    port: int
    database: str
    admin_user: str
    admin_pass: str = field(repr=False)
    connect_timeout: int = CONNECT_TIMEOUT  # seconds; the server uses a shorter one
    # The IP address to connect to, already checked against the server's network policy
    # (service/dynamic_targets.py): providers connect there, never to a second lookup of
    # ``host``. Empty (the agent): the driver resolves ``host`` itself.
    address: str = ""

    @property
    def dial(self) -> str:
        """Where to open the socket: ``address`` if the caller pinned one, else ``host``."""
        return self.address or self.host


@dataclass(frozen=True, slots=True)
class Credentials:
    """A database login; its ``repr`` never shows the password."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password='***')"

    __str__ = __repr__


class Provider(Protocol):
    """One database engine. Every method is idempotent; every failure is a ProviderError."""

    def test_admin(self) -> list[str]:
        """Problems with the admin login and its privileges; empty when rotation can work."""
        ...

    def check_strategy(self, strategy: Strategy) -> list[str]:
        """Why ``strategy`` cannot work on this database (engine, version); empty when it can."""
        ...

    def can_login(self, username: str, password: str) -> bool:
        """Whether these credentials log in and run a trivial query.

        False for an authentication refusal; any other failure (host down, timeout) raises.
        """
        ...

    def apply(self, strategy: Strategy, username: str, password: str, base_username: str) -> None:
        """Make ``username`` log in with ``password`` as the strategy prescribes.

        ``base_username`` is the managed user whose privileges an alternating user shares.
        """
        ...

    def rollback(
        self, strategy: Strategy, username: str, live_username: str, live_password: str, pending_password: str
    ) -> None:
        """Undo ``apply``: the live credentials work again and the pending ones do not."""
        ...

    def disable(self, username: str) -> None:
        """Stop ``username`` from logging in and end its open sessions (no-op if it is gone)."""
        ...

    def discard_old(self, username: str, current_password: str) -> None:
        """After a dual rotation's grace period: only ``current_password`` still works."""
        ...


Statement = Sequence[tuple[str, str]]  # ("sql", text) | ("placeholder", name)


class DynamicProvider(Protocol):
    """What the server needs to mint and remove one database user per lease.

    Every step is idempotent; a user that does not exist counts as revoked. Custom statements
    arrive already split by ``sikker.core.dynamic.split_statement`` into ``(kind, text)`` parts
    (``sql`` text without quotes or semicolons, or a ``placeholder`` name): providers fill the
    placeholders in as quoted identifiers and literals and run one statement at a time."""

    def check_grant_role(self, grant_role: str) -> list[str]:
        """Why users cannot be given ``grant_role`` (missing, or able to log in itself)."""
        ...

    def create_user(
        self,
        username: str,
        password: str,
        grant_role: str,
        expires_at_ms: int,
        creation_statements: Sequence[Statement] = (),
    ) -> None:
        """Create ``username`` able to log in with ``password`` and the privileges of the role."""
        ...

    def renew_user(self, username: str, expires_at_ms: int) -> None:
        """Move the database-side expiry (where the engine has one) to ``expires_at_ms``."""
        ...

    def revoke_user(
        self, username: str, revocation_statements: Sequence[Statement] = (), grant_role: str = ""
    ) -> None:
        """No more logins, its sessions ended, what it owns handed over, the user dropped.

        ``grant_role`` (from the lease snapshot) fills ``{{role}}`` in custom statements."""
        ...

    def list_users(self, prefix: str) -> list[str]:
        """Users whose name starts with ``prefix`` (the orphan sweeper)."""
        ...


def expiry_text(expires_at_ms: int) -> str:
    """A UTC timestamp literal every SQL engine parses: ``2026-11-30 05:00:00+00``."""
    import datetime

    moment = datetime.datetime.fromtimestamp(expires_at_ms / 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S+00")


def _forms(secret: str) -> Iterable[str]:
    """A secret as drivers may echo it: raw, SQL-quoted, backslash-escaped, JSON-escaped."""
    yield secret
    yield secret.replace("'", "''")
    yield secret.replace("\\", "\\\\").replace("'", "\\'").replace('"', '\\"')
    yield secret.replace('"', '""')
    yield json.dumps(secret)[1:-1]


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every form of every non-empty secret replaced by ``***``."""
    forms = {form for secret in secrets if secret for form in _forms(secret) if form}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text


def failure(action: str, error: BaseException, secrets: Iterable[str] = ()) -> ProviderError:
    """A ProviderError for ``action``, keeping only a scrubbed first line of the driver's text."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    detail = scrub(lines[0], secrets) if lines else type(error).__name__
    if len(detail) > _MAX_MESSAGE:
        detail = detail[:_MAX_MESSAGE] + "..."
    return ProviderError(f"{action}: {detail}")


def no_dual(engine: str, strategy: Strategy) -> list[str]:
    """``check_strategy`` for an engine that keeps one password per user."""
    if strategy == "dual":
        return [f"dual password is not supported by {engine}; use the alternating strategy"]
    return []


def refuse_admin(username: str, admin_user: str) -> None:
    """Guard for destructive steps: the agent never disables the login it works through."""
    if username == admin_user:
        raise ProviderError(f"refusing to disable {username!r}: it is the admin user the agent uses")


def _postgresql(connection: Connection) -> Provider:
    from sikker.engines.postgresql import PostgresProvider

    return PostgresProvider(connection)


def _mysql(connection: Connection) -> Provider:
    from sikker.engines.mysql import MySQLProvider

    return MySQLProvider(connection)


def _mariadb(connection: Connection) -> Provider:
    from sikker.engines.mysql import MySQLProvider

    return MySQLProvider(connection, mariadb=True)


def _redis(connection: Connection) -> Provider:
    from sikker.engines.redis import RedisProvider

    return RedisProvider(connection)


def _mongodb(connection: Connection) -> Provider:
    from sikker.engines.mongodb import MongoProvider

    return MongoProvider(connection)


def _mssql(connection: Connection) -> Provider:
    from sikker.engines.mssql import MSSQLProvider

    return MSSQLProvider(connection)


_FACTORIES = {
    "postgresql": (_postgresql, "psycopg"),
    "mysql": (_mysql, "PyMySQL"),
    "mariadb": (_mariadb, "PyMySQL"),
    "redis": (_redis, "redis"),
    "mongodb": (_mongodb, "pymongo"),
    "mssql": (_mssql, "pymssql"),
}
DEFAULT_PORTS = {
    "postgresql": 5432,
    "mysql": 3306,
    "mariadb": 3306,
    "redis": 6379,
    "mongodb": 27017,
    "mssql": 1433,
}


def get_dynamic_provider(engine: str, connection: Connection) -> DynamicProvider:
    """The provider for a dynamic secret's engine (``mysql`` covers MariaDB too)."""
    provider = get_provider(engine, connection)
    if not hasattr(provider, "create_user"):
        raise ProviderError(f"dynamic secrets are not supported for {engine}")
    return provider  # type: ignore[return-value]


def get_provider(provider_type: str, connection: Connection) -> Provider:
    """The provider for ``provider_type``; its driver is imported only now."""
    entry = _FACTORIES.get(provider_type)
    if entry is None:
        known = ", ".join(sorted(_FACTORIES))
        raise ProviderError(f"unknown provider type {provider_type!r} (supported: {known})")
    factory, package = entry
    try:
        return factory(connection)
    except ImportError as e:
        raise ProviderError(
            f"the {provider_type} provider needs the Python package {package!r}: pip install {package}"
        ) from e
