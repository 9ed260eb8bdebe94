"""Redis 6+ ACL users: ``ACL SETUSER`` with each rule passed as its own argument.

Every rule is a separate protocol argument (``>password``, ``~pattern``...), so no value is
ever parsed out of a concatenated string. Redis keeps several passwords per user, which
gives the dual strategy (``>new`` adds, ``<new`` removes). A user created by the agent gets
``~* &* +@all -@admin -@dangerous``: create the user beforehand for narrower rules.
Redis user names cannot contain spaces; the server refuses them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from sikker.engines.base import (
    Connection,
    ProviderError,
    Statement,
    Strategy,
    failure,
    refuse_admin,
)

DEFAULT_USER = "default"
NEW_USER_RULES = ("~*", "&*", "+@all", "-@admin", "-@dangerous")
_COPIED_FLAGS = ("skip-sanitize-payload", "sanitize-payload")


class RedisProvider:
    def __init__(self, connection: Connection) -> None:
        self._c = connection
        self._db = int(connection.database) if connection.database.isdigit() else 0
        self._admin_name = connection.admin_user or DEFAULT_USER

    def _client(self, username: str, password: str) -> redis.Redis:
        return redis.Redis(
            host=self._c.dial,
            port=self._c.port,
            db=self._db,
            username=username if username and (username != DEFAULT_USER or password) else None,
            password=password or None,
            socket_timeout=self._c.connect_timeout,
            socket_connect_timeout=self._c.connect_timeout,
            decode_responses=True,
            # No retries: redis-py retries connection errors, and a refused AUTH is one of them.
            retry=Retry(NoBackoff(), 0),
        )

    def _admin_call(
        self, action: str, *commands: tuple[str, ...], secrets: tuple[str, ...] = ()
    ) -> list[Any]:
        """Run ``commands`` on one admin connection; driver errors become ProviderError."""
        client = self._client(self._c.admin_user, self._c.admin_pass)
        try:
            return [client.execute_command(*command) for command in commands]  # type: ignore[no-untyped-call]
        except redis.RedisError as e:
            raise failure(action, e, (*secrets, self._c.admin_pass)) from e
        finally:
            client.close()

    def _getuser(self, username: str) -> dict[str, Any] | None:
        (answer,) = self._admin_call(f"cannot read ACL user {username!r}", ("ACL", "GETUSER", username))
        if answer is None:
            return None
        if isinstance(answer, list):  # RESP2: a flat key/value list
            answer = dict(zip(answer[0::2], answer[1::2], strict=True))
        return dict(answer)

    def check_strategy(self, strategy: Strategy) -> list[str]:
        return []  # every strategy: Redis 6+ keeps several passwords per user (test_admin checks 6+)

    def test_admin(self) -> list[str]:
        try:
            self._admin_call("cannot run PING as admin", ("PING",))
        except ProviderError as e:
            return [e.message]
        try:
            self._admin_call("admin cannot manage ACL users", ("ACL", "USERS"), ("CLIENT", "LIST"))
        except ProviderError as e:
            return [f"{e.message} (needs the @admin category, Redis 6 or later)"]
        return []

    def can_login(self, username: str, password: str) -> bool:
        client = self._client(username, password)
        try:
            return bool(client.ping())
        except (redis.AuthenticationError, redis.exceptions.NoPermissionError):
            return False
        except redis.ResponseError as e:
            if str(e).startswith(("WRONGPASS", "NOAUTH", "NOPERM")):
                return False
            raise failure(f"login check for {username!r} failed", e, [password]) from e
        except redis.RedisError as e:
            raise failure(f"cannot log in as {username!r}", e, [password]) from e
        finally:
            client.close()

    def apply(self, strategy: Strategy, username: str, password: str, base_username: str) -> None:
        name = username or DEFAULT_USER
        if name == self._admin_name:
            raise ProviderError(f"refusing to change {name!r}: it is the admin user the agent uses")
        action = f"cannot set the password of {name!r}"
        exists = self._getuser(name) is not None
        if not exists:
            rules: tuple[str, ...] = ("on", f">{password}", *NEW_USER_RULES)
            if strategy == "alternating" and name != base_username:
                rules = ("reset", "on", f">{password}", *self._rules_of(base_username))
        elif strategy == "dual":
            rules = ("on", f">{password}")
        elif strategy == "alternating" and name != base_username:
            rules = ("reset", "on", f">{password}", *self._rules_of(base_username))
        else:
            rules = ("on", "resetpass", f">{password}")
        self._admin_call(action, ("ACL", "SETUSER", name, *rules), secrets=(password,))

    def _rules_of(self, base_username: str) -> list[str]:
        """The base user's command, key and channel rules, to copy onto the alternate user."""
        info = self._getuser(base_username)
        if info is None:
            raise ProviderError(f"base ACL user {base_username!r} does not exist")
        return acl_rules(info)

    def rollback(
        self, strategy: Strategy, username: str, live_username: str, live_password: str, pending_password: str
    ) -> None:
        if strategy == "alternating":
            if username != live_username:
                self.disable(username)
            return
        name = live_username or DEFAULT_USER
        rules = (f"<{pending_password}",) if strategy == "dual" else ("resetpass", f">{live_password}")
        if strategy == "dual" and pending_password == live_password:
            return  # removing it would lock the live user out
        self._admin_call(
            f"cannot restore the password of {name!r}",
            ("ACL", "SETUSER", name, *rules),
            secrets=(live_password, pending_password),
        )

    def disable(self, username: str) -> None:
        name = username or DEFAULT_USER
        refuse_admin(name, self._admin_name)
        if self._getuser(name) is None:
            return
        self._admin_call(
            f"cannot disable {name!r}", ("ACL", "SETUSER", name, "off"), ("CLIENT", "KILL", "USER", name)
        )

    def discard_old(self, username: str, current_password: str) -> None:
        name = username or DEFAULT_USER
        self._admin_call(
            f"cannot discard the old passwords of {name!r}",
            ("ACL", "SETUSER", name, "resetpass", f">{current_password}"),
            secrets=(current_password,),
        )

    # -- dynamic secrets: the grant role is a string of ACL rules, one argument each ----------
    def check_grant_role(self, grant_role: str) -> list[str]:
        try:
            self._admin_call("admin cannot manage ACL users", ("ACL", "USERS"))
        except ProviderError as e:
            return [e.message]
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
            raise ProviderError("custom statements are not supported for Redis")
        if username == self._admin_name:
            raise ProviderError(f"refusing to change {username!r}: it is the admin user")
        rules = grant_role.split()
        self._admin_call(
            f"cannot create {username!r}",
            ("ACL", "SETUSER", username, "reset", "on", f">{password}", *rules),
            secrets=(password,),
        )

    def renew_user(self, username: str, expires_at_ms: int) -> None:
        return  # Redis has no expiry for ACL users: the sweeper is the only clock

    def revoke_user(
        self, username: str, revocation_statements: Sequence[Statement] = (), grant_role: str = ""
    ) -> None:
        refuse_admin(username, self._admin_name)
        if self._getuser(username) is None:
            return  # never created, or already deleted: done
        # 'off' first (no new logins), then DELUSER, which also closes the user's connections.
        self._admin_call(
            f"cannot revoke {username!r}",
            ("ACL", "SETUSER", username, "off"),
            ("ACL", "DELUSER", username),
        )

    def list_users(self, prefix: str) -> list[str]:
        (names,) = self._admin_call("cannot list ACL users", ("ACL", "USERS"))
        return sorted(str(n) for n in names if str(n).startswith(prefix))


def acl_rules(info: dict[str, Any]) -> list[str]:
    """``ACL GETUSER`` output as ``ACL SETUSER`` arguments (after ``reset``), one rule each."""

    def words(value: Any) -> list[str]:
        if isinstance(value, list):
            return [str(v) for v in value if str(v)]
        return str(value or "").split()

    rules = [flag for flag in words(info.get("flags")) if flag in _COPIED_FLAGS]
    rules += words(info.get("commands"))
    rules += words(info.get("keys"))
    rules += ["resetchannels", *words(info.get("channels"))]
    for selector in info.get("selectors") or []:
        if isinstance(selector, list):
            selector = dict(zip(selector[0::2], selector[1::2], strict=True))
        parts = [
            *words(selector.get("commands")),
            *words(selector.get("keys")),
            *words(selector.get("channels")),
        ]
        rules.append("(" + " ".join(parts) + ")")
    return rules
