"""MongoDB: users managed with the ``createUser``/``updateUser`` commands, sent as documents.

Users live in ``connection.database`` (default ``admin``); the admin authenticates against
``admin``. A user the agent creates for the single strategy gets ``readWrite`` on that
database; an alternating user gets the base user's roles. MongoDB cannot lock a user, so
``disable`` replaces the password with a random one nobody knows (roles are kept, so the
user can be re-enabled by the next rotation) and kills the user's sessions.

Tested only against a wire-level fake (mockupdb), not a live server.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from typing import Any

from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

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

_AUTH_FAILED = 18
_UNAUTHORIZED = 13
Document = dict[str, Any]
ClientFactory = Callable[[str, str, str], "MongoClient[Document]"]


def _connect(connection: Connection) -> ClientFactory:
    def open_client(username: str, password: str, auth_source: str) -> MongoClient[Document]:
        ms = connection.connect_timeout * 1000
        return MongoClient(
            # A pinned IPv6 address needs brackets in a MongoDB host; a configured host is as given.
            host=f"[{connection.address}]" if ":" in connection.address else connection.dial,
            port=connection.port,
            username=username,
            password=password,
            authSource=auth_source,
            serverSelectionTimeoutMS=ms,
            connectTimeoutMS=ms,
            socketTimeoutMS=6 * ms,
            directConnection=True,
            appname="sikker-agent",
        )

    return open_client


def user_info(username: str, db: str) -> Document:
    return {"usersInfo": {"user": username, "db": db}}


def create_user(username: str, password: str, roles: list[Any]) -> Document:
    return {"createUser": username, "pwd": password, "roles": roles}


def update_user(username: str, password: str, roles: list[Any] | None = None) -> Document:
    command: Document = {"updateUser": username, "pwd": password}
    if roles is not None:
        command["roles"] = roles
    return command


def kill_sessions(username: str, db: str) -> Document:
    return {"killAllSessionsByPattern": [{"users": [{"user": username, "db": db}]}]}


class MongoProvider:
    def __init__(self, connection: Connection, client_factory: ClientFactory | None = None) -> None:
        self._c = connection
        self._db = connection.database or "admin"
        self._open = client_factory or _connect(connection)

    def _admin(self, action: str, commands: list[tuple[str, Document]], secrets: list[str]) -> list[Document]:
        """Run ``(database, command)`` pairs as admin, in order."""
        client = self._open(self._c.admin_user, self._c.admin_pass, "admin")
        try:
            return [dict(client[db].command(command)) for db, command in commands]
        except PyMongoError as e:
            raise failure(action, e, [*secrets, self._c.admin_pass]) from e
        finally:
            client.close()

    def _find(self, username: str) -> Document | None:
        (answer,) = self._admin(
            f"cannot look up user {username!r}", [(self._db, user_info(username, self._db))], []
        )
        users = answer.get("users") or []
        return dict(users[0]) if users else None

    def check_strategy(self, strategy: Strategy) -> list[str]:
        return no_dual("MongoDB", strategy)

    def test_admin(self) -> list[str]:
        try:
            self._admin("admin check failed", [("admin", {"ping": 1}), (self._db, {"usersInfo": 1})], [])
        except ProviderError as e:
            return [e.message]
        return []

    def can_login(self, username: str, password: str) -> bool:
        client = self._open(username, password, self._db)
        try:
            client[self._db].command({"ping": 1})
            return True
        except OperationFailure as e:
            if e.code in (_AUTH_FAILED, _UNAUTHORIZED):
                return False
            raise failure(f"login check for {username!r} failed", e, [password]) from e
        except PyMongoError as e:
            raise failure(f"cannot log in as {username!r}", e, [password]) from e
        finally:
            client.close()

    def apply(self, strategy: Strategy, username: str, password: str, base_username: str) -> None:
        if strategy == "dual":
            raise UnsupportedStrategy(
                "dual password is not supported by MongoDB; use the alternating strategy"
            )
        roles: list[Any] | None = None
        if strategy == "alternating" and username != base_username:
            base = self._find(base_username)
            if base is None:
                raise ProviderError(f"base user {base_username!r} does not exist in {self._db!r}")
            roles = list(base.get("roles") or [])
        if self._find(username) is None:
            default_roles = [{"role": "readWrite", "db": self._db}]
            command = create_user(username, password, roles if roles is not None else default_roles)
        else:
            command = update_user(username, password, roles)
        self._admin(f"cannot set the password of {username!r}", [(self._db, command)], [password])

    def rollback(
        self, strategy: Strategy, username: str, live_username: str, live_password: str, pending_password: str
    ) -> None:
        if strategy == "alternating":
            if username != live_username:
                self.disable(username)
            return
        self._admin(
            f"cannot restore the password of {live_username!r}",
            [(self._db, update_user(live_username, live_password))],
            [live_password, pending_password],
        )

    def disable(self, username: str) -> None:
        refuse_admin(username, self._c.admin_user)
        if self._find(username) is None:
            return
        unknowable = secrets.token_urlsafe(48)
        self._admin(
            f"cannot disable {username!r}",
            [(self._db, update_user(username, unknowable)), ("admin", kill_sessions(username, self._db))],
            [unknowable],
        )

    def discard_old(self, username: str, current_password: str) -> None:
        raise UnsupportedStrategy("dual password is not supported by MongoDB; nothing to discard")

    # -- dynamic secrets: the grant role is a role of the connection's database -------------
    def check_grant_role(self, grant_role: str) -> list[str]:
        try:
            command = {"rolesInfo": grant_role}
            (answer,) = self._admin("cannot check the grant role", [(self._db, command)], [])
        except ProviderError as e:
            return [e.message]
        if answer.get("roles") == []:
            return [f"grant role {grant_role!r} does not exist in {self._db!r}"]
        return []

    def create_user(
        self,
        username: str,
        password: str,
        grant_role: str,
        expires_at_ms: int,
        creation_statements: Sequence[Statement] = (),
    ) -> None:
        if creation_statements:
            raise ProviderError("custom statements are not supported for MongoDB")
        command = create_user(username, password, [{"role": grant_role, "db": self._db}])
        self._admin(f"cannot create {username!r}", [(self._db, command)], [password])

    def renew_user(self, username: str, expires_at_ms: int) -> None:
        return  # MongoDB users do not expire: the sweeper is the only clock

    def revoke_user(
        self, username: str, revocation_statements: Sequence[Statement] = (), grant_role: str = ""
    ) -> None:
        refuse_admin(username, self._c.admin_user)
        if self._find(username) is None:
            return
        unknowable = secrets.token_urlsafe(48)
        self._admin(
            f"cannot revoke {username!r}",
            [
                (self._db, update_user(username, unknowable)),  # no new logins
                ("admin", kill_sessions(username, self._db)),
                (self._db, {"dropUser": username}),
            ],
            [unknowable],
        )

    def list_users(self, prefix: str) -> list[str]:
        (answer,) = self._admin("cannot list users", [(self._db, {"usersInfo": 1})], [])
        names = [str(u.get("user", "")) for u in answer.get("users") or []]
        return sorted(n for n in names if n.startswith(prefix))
