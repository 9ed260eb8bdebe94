"""Workload identity: a workload enrolls an ephemeral machine with the JWT its platform gave it
(GitHub Actions, Kubernetes, any OIDC issuer) instead of an enrollment token.

Order of a login: per-address budget -> size and format -> the role (by name or id; or, on the
enrollment route, the one enabled role whose issuer and audiences fit) -> the checks that need no
key (core/jwt_roles.py ``evaluate``: disabled role, algorithm, issuer, audience, times, subject,
bound claims, source CIDR) -> keys and signature (service/jwks.py) -> TokenReview (Kubernetes
roles in that mode) -> in ONE write transaction: the role still enabled, the JWT never used before
(replay), the machine, its memberships and grants, the audit record. Network calls happen before
the write transaction, never inside it.

Every refusal is the same 401 for the caller and an audit record naming the role, the issuer,
the subject and the failing check (never the token). Refusals count as authentication failures
of the source address (core/lockout.py), like a bad enrollment token.
"""

from __future__ import annotations

import threading
import uuid

from sikker.core import jwt_roles as checks
from sikker.core import values
from sikker.core.audit import SYSTEM_CHAIN, Action, Actor
from sikker.core.jwt_roles import Check, Malformed, Parsed
from sikker.core.model import JwtRole, Machine
from sikker.core.throttle import Throttle
from sikker.crypto import signature
from sikker.errors import InvalidInput, RateLimited, Replayed, SikkerError, Unauthenticated
from sikker.service.base import Deps
from sikker.service.jwks import Fetcher, KeyCache
from sikker.service.machine_plane import THROTTLED, MachinePlane
from sikker.service.tokenreview import review
from sikker.storage import audit as audit_store
from sikker.storage import jwt_roles as role_store
from sikker.storage import machines as machine_store
from sikker.storage import secrets as secret_store
from sikker.storage import vaults as vault_store
from sikker.storage.database import Connection

REFUSED = "JWT login refused"
ROLE = "role"  # the check of a login whose role does not exist (or, on enrollment, is ambiguous)


class Refused(Exception):
    """A login refused by one check (audited by ``JwtLogin._refuse``)."""

    def __init__(self, check: Check, role: JwtRole | None = None) -> None:
        super().__init__(check.check)
        self.check = check
        self.role = role


class JwtLogin:
    def __init__(self, deps: Deps, plane: MachinePlane, keys: KeyCache | None = None) -> None:
        self.deps = deps
        self.plane = plane
        settings = deps.settings
        self.keys = keys or KeyCache(Fetcher(settings.jwks_allowed_networks, settings.jwks_timeout_seconds))
        self._budget = Throttle(max(settings.jwt_login_attempts_per_minute, 1), 60_000)
        self._lock = threading.Lock()
        self._logins = 0

    def close(self) -> None:
        self.keys.fetcher.close()

    # -- the checks -----------------------------------------------------------------------------
    def verify(
        self, role: JwtRole, token: str, parsed: Parsed, source_ip: str | None, *, stop: bool
    ) -> list[Check]:
        """Every check but replay, in order; with ``stop`` the list ends at the first failure
        (a login), else every check runs that can (the ``test`` endpoint; no source CIDR
        check when ``source_ip`` is None)."""
        now = self.deps.clock() / 1000
        done: list[Check] = []
        local = checks.evaluate(role, parsed, source_ip or "", now)
        if source_ip is None:
            local = [c for c in local if c.check != checks.SOURCE_CIDR]
        for check in local:
            done.append(check)
            if stop and not check.ok:
                return done
        alg_ok = all(c.ok for c in local if c.check == checks.ALG)
        if not alg_ok:  # never touch a key with a token whose algorithm is refused
            return done
        if role.key_source != (None, None, None):
            for check in self.keys.verify(role, token, parsed.header):
                done.append(check)
                if stop and not check.ok:
                    return done
        if role.kubernetes_mode == "tokenreview":
            cluster = next(
                (c for c in self.deps.settings.kubernetes_clusters if c.name == role.kubernetes_cluster), None
            )
            done.append(review(cluster, token, role.bound_audiences, self.deps.settings.jwks_timeout_seconds))
        elif role.key_source == (None, None, None):
            done.append(checks.failed(checks.SIGNATURE, "the role has no key source"))
        return done

    def test(self, role: JwtRole, token: str) -> list[Check]:
        """Every check of a login, reported one by one; enrolls nothing and uses no jti."""
        try:
            parsed = checks.parse(token)
        except Malformed as e:
            return [checks.failed(e.check, e.reason)]
        done = [checks.passed(checks.SIZE), checks.passed(checks.FORMAT)]
        done += self.verify(role, token, parsed, None, stop=False)
        with self.deps.db.read() as conn:
            used = role_store.token_used(
                conn, role.vault_id, checks.replay_key(parsed.claims, token), self.deps.clock()
            )
        done.append(
            checks.failed(checks.REPLAY, "this JWT was already used")
            if used
            else checks.passed(checks.REPLAY)
        )
        return done

    # -- logins ---------------------------------------------------------------------------------
    def login(
        self,
        vault_id: str,
        role_ref: str | None,
        token: str,
        public_key_b64: str,
        hostname: str,
        name: str | None,
        source_ip: str,
        user_agent: str,
    ) -> Machine:
        """Enroll an ephemeral machine bound to ``public_key_b64`` with a JWT. ``role_ref`` is
        a role's name or id; None picks the one enabled role that fits the token's issuer and
        audience (the enrollment route). Refusals: Unauthenticated (401), audited."""
        hostname = values.check_name(hostname, "hostname")
        name = values.check_name(name, "name") if name else None
        public_key = signature.decode_public_key(public_key_b64)
        if public_key is None:
            raise InvalidInput("publicKey must be the base64 of a raw 32-byte Ed25519 public key")
        now = self.deps.clock()
        with self._lock:
            admitted = self._budget.admit(source_ip, now)
        if not admitted or self.plane.throttled([source_ip], now):
            raise RateLimited(
                THROTTLED if admitted else "too many JWT logins from this address; retry in a minute"
            )
        actor = Actor("anonymous", "-", source_ip, user_agent)
        parsed: Parsed | None = None
        role: JwtRole | None = None
        vault_known = False
        try:
            with self.deps.db.read() as conn:
                vault_known = vault_store.get_vault(conn, vault_id) is not None
                parsed = checks.parse(token)
                role = self._role(conn, vault_id, role_ref, parsed) if vault_known else None
            if role is None:
                raise Refused(checks.failed(ROLE, "no such JWT role in this vault"))
            problem = checks.first_failure(self.verify(role, token, parsed, source_ip, stop=True))
            if problem is not None:
                raise Refused(problem, role)
            return self._enroll(role, parsed, token, public_key, hostname, name, source_ip, user_agent)
        except Malformed as e:
            raise self._refuse(
                Refused(checks.failed(e.check, e.reason)), vault_id, vault_known, None, actor
            ) from None
        except Refused as e:
            raise self._refuse(e, vault_id, vault_known, parsed, actor) from None

    def _role(self, conn: Connection, vault_id: str, role_ref: str | None, parsed: Parsed) -> JwtRole | None:
        if role_ref is not None:
            return role_store.find_role(conn, vault_id, role_ref[:64])
        fitting = checks.candidates(role_store.list_roles(conn, vault_id), parsed.claims)
        if len(fitting) != 1:
            reason = "no enabled JWT role" if not fitting else f"{len(fitting)} enabled JWT roles"
            raise Refused(checks.failed(ROLE, f"{reason} of this vault fit the token's issuer and audience"))
        return fitting[0]

    def _enroll(
        self,
        role: JwtRole,
        parsed: Parsed,
        token: str,
        public_key: bytes,
        hostname: str,
        name: str | None,
        source_ip: str,
        user_agent: str,
    ) -> Machine:
        now = self.deps.clock()
        machine_id = str(uuid.uuid4())
        with self.deps.db.write() as conn:
            current = role_store.get_role(conn, role.id, for_update=True)  # serialises with disable
            if current is None or not current.enabled:
                raise Refused(checks.failed(checks.ROLE_DISABLED, "the role was disabled or deleted"), role)
            try:
                role_store.use_token(
                    conn,
                    role.vault_id,
                    checks.replay_key(parsed.claims, token),
                    checks.replay_expiry_ms(parsed.claims, now),
                    now,
                )
            except Replayed:
                raise Refused(
                    checks.failed(checks.REPLAY, "this JWT was already used to enroll"), role
                ) from None
            machine = Machine(
                id=machine_id,
                vault_id=role.vault_id,
                name=_name(parsed, current, name, machine_id),
                public_key=public_key,
                kind="ephemeral",
                approved=True,
                enabled=True,
                hostname=hostname,
                allowed_cidr=current.source_cidrs[0]
                if current.source_cidrs and len(current.source_cidrs) == 1
                else None,
                enrollment_token_id=None,
                created_ms=now,
                expires_ms=now + current.machine_ttl_s * 1000,
                revoked_ms=None,
                last_poll_ms=None,
                jwt_role_id=current.id,
            )
            machine_store.insert_machine(conn, machine)
            for project_id in current.project_ids:
                if vault_store.get_project(conn, project_id) is not None:
                    machine_store.add_membership(conn, machine_id, project_id, now)
            for secret_id in current.secret_ids:
                secret = secret_store.get_secret(conn, secret_id)
                if (
                    secret is not None
                    and secret.deleted_ms is None
                    and secret.project_id in current.project_ids
                ):
                    machine_store.add_grant(conn, machine_id, secret_id, now)
            audit_store.append(
                conn,
                role.vault_id,
                now,
                Actor("machine", machine_id, source_ip, user_agent),
                Action.MACHINE_JWT_LOGIN,
                {"machine": machine_id} | _who(current, parsed),
            )
            with self._lock:
                self._logins += 1
                prune = self._logins % 64 == 0
            if prune:
                role_store.prune_uses(conn, now)
        return machine

    def _refuse(
        self, refused: Refused, vault_id: str, vault_known: bool, parsed: Parsed | None, actor: Actor
    ) -> SikkerError:
        """Audit a refusal (own transaction); the caller gets a generic 401 (429 once throttled)."""
        now = self.deps.clock()
        if self.plane.throttled([actor.source_ip], now):
            return RateLimited(THROTTLED)
        check = refused.check
        target = {"vault": vault_id[:40], "check": check.check[:140]} | _who(refused.role, parsed)
        with self.deps.db.write() as conn:
            audit_store.append(
                conn,
                vault_id if vault_known else SYSTEM_CHAIN,
                now,
                actor,
                Action.MACHINE_JWT_LOGIN,
                target,
                "denied",
                f"refused by check {check.check}: {check.reason or ''}"[:500],
            )
            if self.plane.count_failure([actor.source_ip], now):
                audit_store.append(
                    conn,
                    SYSTEM_CHAIN,
                    now,
                    actor,
                    Action.MACHINE_AUTH_LOCKOUT,
                    {},
                    "denied",
                    "failures from this source throttled after repeated failures",
                )
        return Unauthenticated(REFUSED)

    def prune(self) -> int:
        with self.deps.db.write() as conn:
            return role_store.prune_uses(conn, self.deps.clock())


def _who(role: JwtRole | None, parsed: Parsed | None) -> dict[str, str]:
    """Role, issuer and subject for an audit record (claims shortened, never the token)."""
    out = {"role": role.name if role else "-", "role_id": role.id if role else "-"}
    if parsed is not None:
        out |= {
            "issuer": checks.text_claim(parsed.claims, "iss"),
            "subject": checks.text_claim(parsed.claims, "sub"),
        }
    return out


def _name(parsed: Parsed, role: JwtRole, requested: str | None, machine_id: str) -> str:
    """The name claim (else ``sub``), if it passes the name checks; else the requested name;
    else one made from the role."""
    for candidate in (checks.machine_name(parsed.claims, role.name_claim), requested):
        if candidate:
            try:
                return values.check_name(candidate[: values.NAME_MAX], "name")
            except InvalidInput:
                continue
    return f"{role.name}-{machine_id[:8]}"[: values.NAME_MAX]
