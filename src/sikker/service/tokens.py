"""Admin-plane bearer tokens: the root token and admin tokens, each with a role at one
vault or at one project of it (core/permissions.py). Only the root token creates and
revokes them.

Tokens are 256-bit random strings shown once; the store keeps their SHA-256
(a fast hash is right for high-entropy tokens: there is nothing to brute-force).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from typing import Protocol

from sikker.core import ids, permissions
from sikker.core.audit import SYSTEM_CHAIN, Action, Actor
from sikker.core.auth_failures import FailureDigest
from sikker.core.model import Principal, RoleBinding, Token
from sikker.errors import InvalidInput, NotFound, Unauthenticated
from sikker.service.base import Deps, require
from sikker.storage import audit as audit_store
from sikker.storage import tokens as token_store
from sikker.storage import vaults as vault_store
from sikker.storage.database import Connection

TOKEN_PREFIX = "sikker_"
SESSION_PREFIX = "sks_"  # a person's session or personal token
MAX_TOKEN_LEN = 256


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _new_plaintext() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class Sessions(Protocol):
    """Who a person's session or personal token belongs to (service/people.py)."""

    def authenticate(self, bearer: str) -> Principal: ...


class TokenService:
    def __init__(
        self, deps: Deps, failures: FailureDigest | None = None, sessions: Sessions | None = None
    ) -> None:
        self.deps = deps
        self.sessions = sessions
        # Failed authentications: the first of a source per window audited, the rest counted.
        self.failures = failures or FailureDigest()
        self._failures_lock = threading.Lock()  # authenticate runs on several threads

    def create_root(self, conn: Connection, actor: Actor, plaintext: str | None = None) -> str:
        """Insert a root token in the caller's transaction; return its plaintext."""
        plaintext = plaintext or _new_plaintext()
        token = Token(ids.new_id("token"), "root", None, "root", self.deps.clock(), None, None)
        token_store.insert_token(conn, token, _hash(plaintext))
        return plaintext

    def ensure_root(self, plaintext: str) -> None:
        """Dev mode: make sure this exact root token exists."""
        with self.deps.db.write() as conn:
            if token_store.find_by_hash(conn, _hash(plaintext)) is None:
                self.create_root(conn, Actor("system", "dev"), plaintext)

    def authenticate(self, bearer: str | None, actor: Actor) -> Principal:
        """Root and admin tokens, and (through ``sessions``) people's sessions and tokens."""
        if not bearer or len(bearer) > MAX_TOKEN_LEN:
            raise Unauthenticated()
        if self.sessions is not None and bearer.startswith(SESSION_PREFIX):
            try:
                return self.sessions.authenticate(bearer)
            except Unauthenticated:
                self._failed(actor, self.deps.clock())
                raise
        token = token_store.look_up_by_hash(self.deps.db, _hash(bearer))
        now = self.deps.clock()
        if (
            token is None
            or token.revoked_ms is not None
            or (token.expires_ms is not None and token.expires_ms <= now)
        ):
            self._failed(actor, now)
            raise Unauthenticated("invalid, revoked or expired token")
        if token.kind == "root" or token.vault_id is None:
            return Principal("root", token.id, None)
        binding = RoleBinding(token.role, token.vault_id, token.project_id)
        return Principal("admin", token.id, token.vault_id, (binding,))

    def _failed(self, actor: Actor, now: int) -> None:
        with self._failures_lock:
            record, held = self.failures.fail(actor.source_ip, now)
        if not record:
            return
        try:
            with self.deps.db.write() as conn:
                if held:
                    self._append_count(conn, actor.source_ip, held, now)
                audit_store.append(
                    conn,
                    SYSTEM_CHAIN,
                    now,
                    actor,
                    Action.ADMIN_AUTH_FAIL,
                    {},
                    "denied",
                    "unknown, revoked or expired token",
                )
        except BaseException:
            if held:
                with self._failures_lock:
                    self.failures.restore(actor.source_ip, held, now)
            raise

    def flush_failures(self, everything: bool = False) -> int:
        """Audit the counts of ended failure windows (``everything``: all counts, at
        shutdown). Returns how many records were written."""
        now = self.deps.clock()
        with self._failures_lock:
            counts = self.failures.drain() if everything else self.failures.due(now)
        if not counts:
            return 0
        try:
            with self.deps.db.write() as conn:
                for source, count in counts:
                    self._append_count(conn, source, count, now)
        except BaseException:
            with self._failures_lock:
                for source, count in counts:
                    self.failures.restore(source, count, now)
            raise
        return len(counts)

    def _append_count(self, conn: Connection, source: str, count: int, now: int) -> None:
        seconds = self.failures.window_ms // 1000
        audit_store.append(
            conn,
            SYSTEM_CHAIN,
            now,
            Actor("anonymous", "-", source),
            Action.ADMIN_AUTH_FAIL,
            {"failures": str(count)},
            "denied",
            f"{count} more failed authentications from this address within {seconds} s of the first",
        )

    def create_admin(
        self,
        principal: Principal,
        actor: Actor,
        vault_id: str,
        name: str,
        ttl_seconds: int | None,
        role: str = "admin",
        project_id: str | None = None,
    ) -> tuple[Token, str]:
        """A token with ``role`` at ``vault_id`` (or at its project ``project_id``). Root only."""
        require(principal, permissions.TOKEN_MANAGE, vault_id, missing=f"vault {vault_id} not found")
        if ttl_seconds is not None and not (60 <= ttl_seconds <= 10 * 365 * 86400):
            raise InvalidInput("ttl must be between 60 seconds and 10 years")
        if role not in permissions.ROLES:
            raise InvalidInput(f"role must be one of {', '.join(permissions.ROLES)}")
        plaintext = _new_plaintext()
        with self.deps.db.write() as conn:
            if vault_store.get_vault(conn, vault_id) is None:
                raise NotFound(f"vault {vault_id} not found")
            if project_id is not None:
                project = vault_store.get_project(conn, ids.check("project", project_id))
                if project is None or project.vault_id != vault_id:
                    raise NotFound(f"project {project_id} not found in vault {vault_id}")
            now = self.deps.clock()
            expires = now + ttl_seconds * 1000 if ttl_seconds else None
            token = Token(ids.new_id("token"), "admin", vault_id, name, now, expires, None, role, project_id)
            token_store.insert_token(conn, token, _hash(plaintext))
            target = {"token": token.id, "role": role} | ({"project": project_id} if project_id else {})
            audit_store.append(conn, vault_id, now, actor, Action.ADMIN_TOKEN_CREATE, target)
        return token, plaintext

    def list_tokens(self, principal: Principal) -> list[Token]:
        """The tokens of the vaults where ``principal`` may list tokens (root: every token)."""
        problem = permissions.decide_anywhere(principal, permissions.TOKEN_LIST)
        if problem is not None:
            raise problem
        with self.deps.db.read() as conn:
            found = token_store.list_tokens(conn)
        return [t for t in found if permissions.allowed(principal, permissions.TOKEN_LIST, t.vault_id)]

    def revoke(self, principal: Principal, actor: Actor, token_id: str) -> None:
        ids.check("token", token_id)
        with self.deps.db.write() as conn:
            token = token_store.get_token(conn, token_id)
            if token is None:
                raise NotFound(f"token {token_id} not found")
            require(
                principal, permissions.TOKEN_MANAGE, token.vault_id, missing=f"token {token_id} not found"
            )
            now = self.deps.clock()
            token_store.revoke(conn, token_id, now)
            audit_store.append(
                conn,
                token.vault_id or SYSTEM_CHAIN,
                now,
                actor,
                Action.ADMIN_TOKEN_REVOKE,
                {"token": token_id},
            )
