"""People: user accounts, password and TOTP sign-in, sessions, personal tokens, role bindings.

- Passwords are hashed with Argon2id (argon2-cffi's defaults: RFC 9106's second
  recommendation). Verification runs outside any write transaction; an unknown user name
  costs the same hash as a known one.
- Failed sign-ins lock the canonical user name (``login_lockout_failures`` within 15 minutes,
  for ``login_lockout_seconds``), known or not, so the lock says nothing about existence. The
  count is a row of the store, so the workers of a server and the nodes of a cluster share one
  count and one lock. Sign-ins are also limited per source address (per process). Every
  sign-in, failure (with its reason), MFA event and logout is an audit record on the
  ``system`` chain.
- A session (``sikker login``) ends after ``session_idle_seconds`` without use, and
  ``session_max_seconds`` after sign-in. A personal token lives until its TTL. Both are
  checked in the store on every request, so disabling a user ends them on every node at once.
- TOTP secrets are stored wrapped by the root key; each code's time step is accepted once.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import orjson
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from sikker.config import OidcProvider
from sikker.core import ids, oidc, people, permissions
from sikker.core.audit import SYSTEM_CHAIN, Action, Actor
from sikker.core.model import BoundRole, Principal, RoleBinding, User, UserSession
from sikker.core.throttle import Throttle
from sikker.errors import (
    Conflict,
    InvalidCiphertext,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RateLimited,
    SikkerError,
    SsoRejected,
    Unauthenticated,
)
from sikker.service.base import Deps, require
from sikker.service.oidc import DeviceAuthorization, OidcClient
from sikker.service.tokens import SESSION_PREFIX
from sikker.storage import audit as audit_store
from sikker.storage import people as people_store
from sikker.storage import vaults as vault_store
from sikker.storage.database import Connection

LOGINS_PER_MINUTE = 30  # per source address
LOCKOUT_WINDOW_MS = 15 * 60_000  # login_lockout_failures within this window lock a name
TOUCH_EVERY_MS = 60_000  # a session's last use is written at most once a minute
TOKEN_TTL_MAX_S = 366 * 86400
BAD_LOGIN = "invalid user name or password"
# Verified when the user name is unknown, so that an unknown name costs what a wrong password
# does: the hash of a random password nobody kept, made with PasswordHasher's defaults
# (tests/unit/service/test_people_dummy_hash.py holds them equal). A constant, so a server does
# not spend an Argon2 hash at every start; made afresh only if the parameters ever differ.
DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$FinLaSr0beEqMw9kl6mchg$PZuX9YUfwZO83JYvTqNg97++6nXZ0xPClkX/AeX010M"
)


class MfaRequired(Unauthenticated):
    default_message = "a second factor is required: give a TOTP code or a recovery code"


@dataclass(frozen=True, slots=True)
class SignedIn:
    token: str  # shown once
    session: UserSession
    user: User


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _totp_aad(user_id: str) -> bytes:
    return f"sikker/v1/totp|{user_id}".encode()


_PENDING_AAD = b"sikker/v1/oidc-pending"
_DEVICE_AAD = b"sikker/v1/oidc-device"


class PeopleService:
    def __init__(self, deps: Deps, sso: OidcClient | None = None) -> None:
        self.deps = deps
        self.sso = sso or OidcClient()
        self.hasher = PasswordHasher()
        self._dummy = (
            self.hasher.hash(secrets.token_urlsafe(16))
            if self.hasher.check_needs_rehash(DUMMY_HASH)
            else DUMMY_HASH
        )
        settings = deps.settings
        self._lock = threading.Lock()
        self._lockout = (
            settings.login_lockout_failures,
            LOCKOUT_WINDOW_MS,
            settings.login_lockout_seconds * 1000,
        )
        self._per_address = Throttle(LOGINS_PER_MINUTE, 60_000)

    # -- administration (root) ---------------------------------------------------------------
    @staticmethod
    def _root(principal: Principal) -> None:
        """Accounts are server-wide: ``permissions.decide`` grants them to root alone."""
        require(principal, permissions.USER_MANAGE, None)

    def create_user(
        self, principal: Principal, actor: Actor, name: str, email: str, password: str | None
    ) -> User:
        self._root(principal)
        name, email = people.check_user_name(name), people.check_email(email)
        hashed = self.hasher.hash(people.check_password(password, name)) if password is not None else None
        now = self.deps.clock()
        user = User(
            ids.new_id("user"), name, people.canonical_name(name), email, hashed, None, now,
            None, False, None, None, None, (),
        )  # fmt: skip
        with self.deps.db.write() as conn:
            if people_store.find_user(conn, user.canonical) is not None:
                raise Conflict(f"a user named {name!r} exists already (names ignore case)")
            people_store.insert_user(conn, user)
            audit_store.append(
                conn, SYSTEM_CHAIN, now, actor, Action.ADMIN_USER_CREATE, {"user": user.id, "name": name}
            )
        return user

    def list_users(self, principal: Principal) -> list[User]:
        self._root(principal)
        with self.deps.db.read() as conn:
            return people_store.list_users(conn)

    def find(self, principal: Principal, name_or_id: str) -> User:
        """A user by id or name; root sees everyone, a person only themselves."""
        with self.deps.db.read() as conn:
            found = (
                people_store.get_user(conn, name_or_id)
                if ids.is_valid("user", name_or_id)
                else people_store.find_user(conn, people.canonical_name(name_or_id))
            )
        if found is None or (principal.kind != "root" and principal.user_id != found.id):
            raise NotFound(f"user {name_or_id!r} not found")
        return found

    def set_disabled(self, principal: Principal, actor: Actor, name_or_id: str, disabled: bool) -> User:
        """Disable (ending every session and token of the user at once) or enable."""
        self._root(principal)
        user = self.find(principal, name_or_id)
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            people_store.update_user(conn, user.id, disabled_ms=now if disabled else None)
            ended = people_store.revoke_sessions(conn, now, user_id=user.id) if disabled else 0
            action = Action.ADMIN_USER_DISABLE if disabled else Action.ADMIN_USER_ENABLE
            target = {"user": user.id, "name": user.name, "sessions_ended": str(ended)}
            audit_store.append(conn, SYSTEM_CHAIN, now, actor, action, target)
            return people_store.get_user(conn, user.id) or user

    def delete_user(self, principal: Principal, actor: Actor, name_or_id: str) -> None:
        self._root(principal)
        user = self.find(principal, name_or_id)
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            people_store.delete_user(conn, user.id)
            target = {"user": user.id, "name": user.name}
            audit_store.append(conn, SYSTEM_CHAIN, now, actor, Action.ADMIN_USER_DELETE, target)

    # -- role bindings --------------------------------------------------------------------------
    def bind(
        self,
        principal: Principal,
        actor: Actor,
        role: str,
        *,
        vault_id: str | None = None,
        project_id: str | None = None,
        user: str | None = None,
        group: str | None = None,
    ) -> BoundRole:
        """Give a user (by name or id), or every member of an identity-provider group, a role at
        a vault or at one project (the vault's owners, or root)."""
        if role not in permissions.ROLES:
            raise InvalidInput(f"role must be one of {', '.join(permissions.ROLES)}")
        if (user is None) == (group is None):
            raise InvalidInput("bind either a user or a group")
        if (vault_id is None) == (project_id is None):
            raise InvalidInput("bind at either a vault or a project")
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            if project_id is not None:
                project = vault_store.get_project(conn, ids.check("project", project_id))
                vault_id = project.vault_id if project is not None else None
                missing = f"project {project_id} not found"
            else:
                found = vault_store.get_vault(conn, ids.check("vault", str(vault_id)))
                vault_id, missing = (found.id if found else None), f"vault {vault_id} not found"
            if vault_id is None:
                raise NotFound(missing)
            require(principal, permissions.MEMBER_MANAGE, vault_id, project_id, missing=missing)
            user_row = None
            if user is not None:
                user_row = (
                    people_store.get_user(conn, user)
                    if ids.is_valid("user", user)
                    else people_store.find_user(conn, people.canonical_name(user))
                )
                if user_row is None:
                    raise NotFound(f"user {user!r} not found")
            row = BoundRole(
                ids.new_id("binding"),
                RoleBinding(role, vault_id, project_id),
                user_row.id if user_row else None,
                people.check_user_name(group) if group is not None else None,
                now,
            )
            people_store.insert_binding(conn, row)
            target = {"binding": row.id, "role": role, "project": project_id or ""} | (
                {"user": user_row.id, "name": user_row.name} if user_row else {"group": str(group)}
            )
            audit_store.append(conn, vault_id, now, actor, Action.ADMIN_ROLE_BIND, target)
        return row

    def unbind(self, principal: Principal, actor: Actor, binding_id: str) -> None:
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            row = people_store.get_binding(conn, ids.check("binding", binding_id))
            missing = f"role binding {binding_id} not found"
            if row is None:
                raise NotFound(missing)
            b = row.binding
            require(principal, permissions.MEMBER_MANAGE, b.vault_id, b.project_id, missing=missing)
            people_store.delete_binding(conn, row.id)
            target = {"binding": row.id, "role": b.role}
            audit_store.append(conn, b.vault_id, now, actor, Action.ADMIN_ROLE_UNBIND, target)

    def list_bindings(self, principal: Principal, vault_id: str | None) -> list[BoundRole]:
        """The bindings of one vault (its owners, or root), or of every vault (root)."""
        if vault_id is None:
            self._root(principal)
        else:
            require(
                principal, permissions.MEMBER_MANAGE, ids.check("vault", vault_id), missing="vault not found"
            )
        with self.deps.db.read() as conn:
            return people_store.list_bindings(conn, vault_id)

    def forget_failures(self) -> int:
        """Maintenance: drop the failure counts of names whose window and lock have both ended."""
        with self.deps.db.write() as conn:
            return people_store.forget_failures(conn, self.deps.clock(), LOCKOUT_WINDOW_MS)

    # -- signing in ------------------------------------------------------------------------------
    def _admit(self, actor: Actor) -> None:
        """Every sign-in call (password, SSO start, device start and poll) spends the address's
        budget: an anonymous caller can make neither Argon2 work nor provider calls at will."""
        with self._lock:
            if not self._per_address.admit(actor.source_ip, self.deps.clock()):
                raise RateLimited("too many sign-in attempts from this address; retry in a minute")

    def login(self, name: str, password: str, second_factor: str | None, actor: Actor) -> SignedIn:
        """Password (and TOTP or recovery code when enrolled) -> a session token."""
        self._admit(actor)
        now = self.deps.clock()
        if not isinstance(name, str) or not isinstance(password, str) or len(password) > people.PASSWORD_MAX:
            raise InvalidInput("give a user name and a password")
        canonical = people.canonical_name(name)[:255]
        with self.deps.db.read() as conn:
            user = people_store.find_user(conn, canonical)
            failures = people_store.name_failures(conn, canonical)
        locked = failures is not None and failures.locked(now)
        stored = user.password_hash if user is not None and user.password_hash else self._dummy
        try:
            self.hasher.verify(stored, password)
            matched = user is not None and user.password_hash is not None
        except (VerificationError, InvalidHashError):
            matched = False
        if locked:
            raise self._fail(actor, canonical, user, "user name locked after repeated failures", count=False)
        if not matched or user is None:
            reason = "unknown user" if user is None else "wrong password"
            raise self._fail(actor, canonical, user, reason)
        if user.disabled_ms is not None:
            raise self._fail(actor, canonical, user, "user is disabled")
        mfa = user.totp_confirmed
        problem = None
        with self.deps.db.write() as conn:
            if mfa:
                problem = self._second_factor(conn, user, second_factor, actor, now)
            if problem is None:
                expires = now + self.deps.settings.session_max_seconds * 1000
                signed_in = self._new_session(conn, user, "session", "login", mfa, now, expires)
                target = {"user": user.id, "name": user.name, "session": signed_in.session.id}
                target["mfa"] = str(mfa).lower()
                audit_store.append(conn, SYSTEM_CHAIN, now, self._as(actor, user), Action.USER_LOGIN, target)
        if problem is not None:
            raise self._fail(actor, canonical, user, problem, MfaRequired())
        return signed_in

    def _second_factor(
        self, conn: Connection, user: User, code: str | None, actor: Actor, now: int
    ) -> str | None:
        """Check (and use up) a TOTP or recovery code in the caller's transaction; the reason
        it is refused, or None."""
        assert user.totp_wrapped is not None
        if not code:
            return "second factor missing"
        code = code.strip()
        if "-" in code:  # a recovery code
            if not people_store.use_recovery_code(conn, user.id, people.recovery_hash(code), now):
                return "unknown or used recovery code"
            target = {"user": user.id, "name": user.name}
            audit_store.append(
                conn, SYSTEM_CHAIN, now, self._as(actor, user), Action.USER_MFA_RECOVERY, target
            )
            return None
        secret = self.deps.keyring.unwrap(_totp_aad(user.id), user.totp_wrapped).decode()
        step = people.match_totp(secret, code, now / 1000, user.totp_last_step)
        if step is None or not people_store.use_totp_step(conn, user.id, step):
            return "wrong or reused TOTP code"
        return None

    def _fail(
        self,
        actor: Actor,
        canonical: str,
        user: User | None,
        reason: str,
        error: SikkerError | None = None,
        count: bool = True,
    ) -> SikkerError:
        """Count the failure against the name, audit it (own transaction), return the error."""
        now = self.deps.clock()
        target = {"user": user.id, "name": user.name} if user else {"name": canonical[:64]}
        with self.deps.db.write() as conn:
            started = people_store.count_failure(conn, canonical, now, *self._lockout) if count else False
            audit_store.append(
                conn, SYSTEM_CHAIN, now, actor, Action.USER_LOGIN_FAIL, target, "denied", reason
            )
            if started:
                audit_store.append(
                    conn, SYSTEM_CHAIN, now, actor, Action.USER_LOGIN_FAIL, target, "denied",
                    "user name locked after repeated failures",
                )  # fmt: skip
        if not count:
            return RateLimited("too many failed sign-ins for this user name; retry later")
        return error or Unauthenticated(BAD_LOGIN)

    def _new_session(
        self,
        conn: Connection,
        user: User,
        kind: str,
        name: str,
        mfa: bool,
        now: int,
        expires: int,
        scope: tuple[str | None, str | None, str | None] = (None, None, None),
    ) -> SignedIn:
        token = SESSION_PREFIX + secrets.token_urlsafe(32)
        session = UserSession(
            ids.new_id("session"), user.id, kind, name, mfa, now, now, expires, None, *scope
        )
        people_store.insert_session(conn, session, _hash(token))
        return SignedIn(token, session, user)

    @staticmethod
    def _as(actor: Actor, user: User) -> Actor:
        return Actor("user", user.id, actor.source_ip, actor.user_agent)

    def authenticate(self, bearer: str) -> Principal:
        """The person behind a session or personal token; Unauthenticated when it is unknown,
        revoked, expired, idle too long, or its user is disabled."""
        now = self.deps.clock()
        with self.deps.db.read() as conn:
            found = people_store.find_session(conn, _hash(bearer))
            if found is None:
                raise Unauthenticated("invalid, revoked or expired token")
            session, user = found
            idle = session.kind == "session" and (
                now - session.last_seen_ms > self.deps.settings.session_idle_seconds * 1000
            )
            if session.revoked_ms is not None or session.expires_ms <= now or idle:
                raise Unauthenticated("session expired or ended: sign in again (sikker login)")
            if user.disabled_ms is not None:
                raise Unauthenticated("this user is disabled")
            bindings = people_store.bindings_of(conn, user.id, user.groups)
            provider = self._provider_of(user)
            if provider is not None:  # the group -> role mappings of the provider's settings
                mapped = oidc.bindings_for_groups(user.groups, provider.group_roles)
                bindings = tuple(dict.fromkeys(bindings + mapped))
            bindings = _narrowed(bindings, session)
            if not session.mfa:  # vaults that require a second factor see nothing of this session
                strict = people_store.vaults_requiring_mfa(conn, {b.vault_id for b in bindings})
                bindings = tuple(b for b in bindings if b.vault_id not in strict)
        if now - session.last_seen_ms >= TOUCH_EVERY_MS:
            with self.deps.db.write() as conn:
                people_store.touch_session(conn, session.id, now)
        return Principal("user", session.id, None, bindings, user.id, user.name, session.scope_role)

    def logout(self, principal: Principal, actor: Actor) -> None:
        user_id = self._person(principal)
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            people_store.revoke_sessions(conn, now, user_id=user_id, session_id=principal.token_id)
            target = {"user": user_id, "name": str(principal.name), "session": principal.token_id}
            audit_store.append(conn, SYSTEM_CHAIN, now, actor, Action.USER_LOGOUT, target)

    @staticmethod
    def _person(principal: Principal) -> str:
        if principal.kind != "user" or principal.user_id is None:
            raise PermissionDenied("only a signed-in person can do this (sikker login)")
        return principal.user_id

    # -- a person's own settings ---------------------------------------------------------------
    def enrol_totp(self, principal: Principal, actor: Actor) -> tuple[str, str]:
        """A new TOTP secret (pending until a code confirms it): (secret, otpauth URI)."""
        user = self.find(principal, self._person(principal))
        if user.totp_confirmed:
            raise Conflict("TOTP is already enabled for this user")
        secret = people.new_totp_secret()
        wrapped = self.deps.keyring.wrap(_totp_aad(user.id), secret.encode())
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            people_store.update_user(conn, user.id, totp_wrapped=wrapped, totp_confirmed=False)
            target = {"user": user.id, "name": user.name}
            audit_store.append(conn, SYSTEM_CHAIN, now, actor, Action.USER_MFA_ENROL, target)
        return secret, people.totp_uri(secret, user.name)

    def confirm_totp(self, principal: Principal, actor: Actor, code: str) -> list[str]:
        """Turn TOTP on with a first code; returns the ten recovery codes (shown once)."""
        user = self.find(principal, self._person(principal))
        if user.totp_wrapped is None or user.totp_confirmed:
            raise Conflict("no pending TOTP enrolment: run 'sikker user totp enrol' first")
        secret = self.deps.keyring.unwrap(_totp_aad(user.id), user.totp_wrapped).decode()
        now = self.deps.clock()
        step = people.match_totp(secret, code, now / 1000, user.totp_last_step)
        if step is None:
            raise InvalidInput("that code does not match: check the authenticator's clock and retry")
        codes = people.new_recovery_codes()
        with self.deps.db.write() as conn:
            people_store.update_user(conn, user.id, totp_confirmed=True, totp_last_step=step)
            people_store.replace_recovery_codes(conn, user.id, [people.recovery_hash(c) for c in codes])
            target = {"user": user.id, "name": user.name}
            audit_store.append(conn, SYSTEM_CHAIN, now, actor, Action.USER_MFA_CONFIRM, target)
        return codes

    def create_token(
        self,
        principal: Principal,
        actor: Actor,
        name: str,
        ttl_s: int,
        role: str | None = None,
        vault_id: str | None = None,
        project_id: str | None = None,
    ) -> SignedIn:
        """A personal API token for scripts: the person's roles, optionally narrowed to at most
        ``role`` and to one vault or project; until ``ttl_s`` or until the person is disabled
        or deleted."""
        user = self.find(principal, self._person(principal))
        name = people.check_user_name(name)
        if not 60 <= ttl_s <= TOKEN_TTL_MAX_S:
            raise InvalidInput("ttl must be between 60 seconds and 366 days")
        if role is not None and role not in permissions.ROLES:
            raise InvalidInput(f"role must be one of {', '.join(permissions.ROLES)}")
        if project_id is not None:
            vault_id = self._vault_of_project(project_id)
        elif vault_id is not None:
            ids.check("vault", vault_id)
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            current = people_store.get_session(conn, principal.token_id)
            mfa = current is not None and current.mfa
            scope = (role, vault_id, project_id)
            signed = self._new_session(conn, user, "token", name, mfa, now, now + ttl_s * 1000, scope)
            target = {"user": user.id, "name": user.name, "token": signed.session.id, "role": role or ""}
            audit_store.append(conn, SYSTEM_CHAIN, now, actor, Action.USER_TOKEN_CREATE, target)
        return signed

    def _vault_of_project(self, project_id: str) -> str:
        with self.deps.db.read() as conn:
            project = vault_store.get_project(conn, ids.check("project", project_id))
        if project is None:
            raise NotFound(f"project {project_id} not found")
        return project.vault_id

    def require_mfa(self, principal: Principal, actor: Actor, vault_id: str, required: bool) -> None:
        """Make every person's access to a vault depend on a session signed in with a second
        factor (sessions without one, and their tokens, no longer see the vault). Owners, or root."""
        vault_id = ids.check("vault", vault_id)
        require(principal, permissions.MEMBER_MANAGE, vault_id, missing="vault not found")
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            if not people_store.set_vault_mfa(conn, vault_id, required):
                raise NotFound(f"vault {vault_id} not found")
            target = {"vault": vault_id, "required": str(required).lower()}
            audit_store.append(conn, vault_id, now, actor, Action.ADMIN_VAULT_MFA, target)

    # -- single sign-on ----------------------------------------------------------------------------
    def _provider(self, name: str) -> OidcProvider:
        for provider in self.deps.settings.oidc_providers:
            if provider.name == name:
                return provider
        raise NotFound(f"no single sign-on provider named {name!r}")

    def _provider_of(self, user: User) -> OidcProvider | None:
        if user.oidc_issuer is None:
            return None
        return next((p for p in self.deps.settings.oidc_providers if p.issuer == user.oidc_issuer), None)

    def providers(self) -> list[str]:
        return [p.name for p in self.deps.settings.oidc_providers]

    def sso_start(self, provider_name: str, redirect_uri: str | None, actor: Actor) -> tuple[str, str]:
        """Begin a browser sign-in: (the provider URL to open, an opaque handle to give back
        with the callback's query). The handle is the pending login (state, nonce, PKCE
        verifier) sealed with the root key, so any node can finish it and nobody can alter it.
        A client may choose only a loopback redirect URI (the CLI's callback); otherwise the
        provider's configured one is used."""
        self._admit(actor)
        provider = self._provider(provider_name)
        if redirect_uri is not None and not _loopback_callback(redirect_uri):
            raise InvalidInput("redirectUri must be http://127.0.0.1:PORT/... (the CLI's loopback callback)")
        url, pending = self.sso.start(provider, redirect_uri)
        sealed = self.deps.keyring.wrap(_PENDING_AAD, orjson.dumps(pending.to_dict()))
        return url, base64.urlsafe_b64encode(sealed).decode()

    def sso_finish(self, provider_name: str, handle: str, query: Mapping[str, str], actor: Actor) -> SignedIn:
        """Finish a browser sign-in: verify everything (core/oidc.py, service/oidc.py), then
        sign in the person linked to (issuer, subject), creating them on first sign-in and
        refreshing their groups every time."""
        provider = self._provider(provider_name)
        try:
            raw = self.deps.keyring.unwrap(_PENDING_AAD, base64.urlsafe_b64decode(handle.encode()))
            pending = oidc.Pending.from_dict(orjson.loads(raw))
        except (InvalidCiphertext, ValueError, TypeError) as e:
            raise self._sso_fail(
                actor, provider, "tampered or unknown sign-in handle", SsoRejected(None, "handle")
            ) from e
        try:
            identity = self.sso.finish_callback(provider, pending, query)
        except SsoRejected as e:
            raise self._sso_fail(actor, provider, f"refused: {e.reason}", e) from None
        return self._sso_sign_in(provider, identity, actor)

    def sso_device_start(self, provider_name: str, actor: Actor) -> tuple[DeviceAuthorization, str]:
        """Begin a device sign-in (RFC 8628) for a terminal without a browser: what to show the
        person, and a handle (the device code sealed with the root key) to poll with."""
        self._admit(actor)
        provider = self._provider(provider_name)
        device = self.sso.start_device(provider)
        fields = {f: getattr(device, f) for f in DeviceAuthorization.__dataclass_fields__}
        sealed = self.deps.keyring.wrap(_DEVICE_AAD, orjson.dumps(fields))
        return device, base64.urlsafe_b64encode(sealed).decode()

    def sso_device_poll(self, provider_name: str, handle: str, actor: Actor) -> SignedIn | None:
        """One poll: the session once the person approved at the provider, else None."""
        self._admit(actor)
        provider = self._provider(provider_name)
        try:
            raw = self.deps.keyring.unwrap(_DEVICE_AAD, base64.urlsafe_b64decode(handle.encode()))
            device = DeviceAuthorization(**orjson.loads(raw))
        except (InvalidCiphertext, ValueError, TypeError) as e:
            raise self._sso_fail(
                actor, provider, "tampered or unknown sign-in handle", SsoRejected(None, "handle")
            ) from e
        try:
            identity = self.sso.poll_device(provider, device)
        except SsoRejected as e:
            raise self._sso_fail(actor, provider, f"refused: {e.reason}", e) from None
        return None if identity is None else self._sso_sign_in(provider, identity, actor)

    def _sso_sign_in(self, provider: OidcProvider, identity: oidc.VerifiedIdentity, actor: Actor) -> SignedIn:
        """Sign in the person linked to (issuer, subject), creating them on first sign-in and
        refreshing their groups every time."""
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            user = people_store.find_oidc_user(conn, identity.issuer, identity.subject)
            if user is None:
                user = self._new_sso_user(conn, provider, identity, now)
            elif user.disabled_ms is None:
                people_store.update_user(
                    conn, user.id, groups=identity.groups, email=identity.email or user.email
                )
                user = people_store.get_user(conn, user.id) or user
            if user.disabled_ms is None:
                expires = now + self.deps.settings.session_max_seconds * 1000
                signed_in = self._new_session(
                    conn, user, "session", f"sso:{provider.name}", False, now, expires
                )
                target = {
                    "user": user.id,
                    "name": user.name,
                    "session": signed_in.session.id,
                    "sso": provider.name,
                }
                audit_store.append(conn, SYSTEM_CHAIN, now, self._as(actor, user), Action.USER_LOGIN, target)
        if user.disabled_ms is not None:
            raise self._sso_fail(
                actor, provider, "user is disabled", Unauthenticated("this user is disabled")
            )
        return signed_in

    def _new_sso_user(
        self, conn: Connection, provider: OidcProvider, identity: oidc.VerifiedIdentity, now: int
    ) -> User:
        """Just-in-time account: named after the provider's user name (or e-mail), never
        merged into an existing account of the same name."""
        wanted = identity.preferred_username or (identity.email or "").split("@")[0] or identity.subject
        for name in (wanted, f"{wanted}@{provider.name}"):
            name = people.check_user_name(name[:255])
            if people_store.find_user(conn, people.canonical_name(name)) is None:
                break
        else:
            raise Conflict(f"user name {wanted!r} is taken; an admin must rename or link the account")
        email = identity.email or f"{identity.subject}@sso"
        user = User(
            ids.new_id("user"), name, people.canonical_name(name), email, None, None, now,
            None, False, None, identity.issuer, identity.subject, identity.groups,
        )  # fmt: skip
        people_store.insert_user(conn, user)
        target = {"user": user.id, "name": name, "sso": provider.name}
        audit_store.append(
            conn, SYSTEM_CHAIN, now, Actor("system", provider.name), Action.ADMIN_USER_CREATE, target
        )
        return user

    def _sso_fail(self, actor: Actor, provider: OidcProvider, reason: str, error: SikkerError) -> SikkerError:
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            target = {"sso": provider.name}
            audit_store.append(
                conn, SYSTEM_CHAIN, now, actor, Action.USER_LOGIN_FAIL, target, "denied", reason
            )
        return error


def _narrowed(bindings: tuple[RoleBinding, ...], session: UserSession) -> tuple[RoleBinding, ...]:
    """A personal token limited to a vault or project keeps only the person's bindings there
    (a vault binding seen through a project token covers that project only)."""
    if session.scope_project is not None:
        return tuple(
            RoleBinding(b.role, b.vault_id, session.scope_project)
            for b in bindings
            if b.vault_id == session.scope_vault and b.project_id in (None, session.scope_project)
        )
    if session.scope_vault is not None:
        return tuple(b for b in bindings if b.vault_id == session.scope_vault)
    return bindings


def _loopback_callback(uri: str) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "::1", "localhost") and bool(parts.port)
