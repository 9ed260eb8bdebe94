"""Leases of dynamic secrets: minting, renewing and revoking database users.

Minting never holds the store's write transaction while the target database is called:

1. one transaction (the signed request's): access decision, the lease row in state
   ``creating`` with its sealed password and sealed revocation snapshot, committed;
2. the user is created on the database (no transaction open);
3. one transaction: ``creating -> active`` (compare-and-set) and the audit record; only then
   does the password leave.

A crash after 1 leaves a ``creating`` row that the sweeper revokes after
``CREATING_GRACE_MS``, so no user exists without a lease record. A failed creation drops
whatever was half-created (or leaves the row ``revoking`` for the sweeper) and answers 503.

Revoking queues a job (the lease row in state ``revoking``); ``service/lease_jobs.py`` runs
the jobs and the sweeper.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from typing import Any

import orjson

from sikker.core import access, dynamic, ids
from sikker.core import permissions as perm
from sikker.core.audit import SYSTEM_ACTOR, Action, Actor
from sikker.core.dynamic import Definition, Lease
from sikker.core.model import Machine, Principal, Project, Secret
from sikker.core.signing import SignedRequest
from sikker.errors import Conflict, InvalidInput, NotFound, RateLimited, SikkerError
from sikker.service.base import Deps, require
from sikker.service.dynamic_targets import (
    DatabaseUnavailable,
    TargetRefused,
    Targets,
    encode_snapshot,
    open_part,
    seal_part,
    snapshot_of,
    statement_parts,
)
from sikker.service.lease_jobs import LeaseJobs, audit_target
from sikker.service.machine_plane import MachinePlane
from sikker.storage import audit as audit_store
from sikker.storage import dynamic as store
from sikker.storage import vaults as vault_store
from sikker.storage.database import Connection

PASSWORD_LEN = 32
SYNC_ATTEMPTS = 100  # revocations a request waits for; more are left to the sweeper
_ALPHABET = string.ascii_letters + string.digits


@dataclass(slots=True)
class Pending:
    """A lease committed as 'creating', to be minted outside the transaction."""

    lease: Lease
    definition: Definition
    password: str = field(repr=False)
    admin: tuple[str, str, int] = field(repr=False)
    actor: Actor
    via_read: bool


@dataclass(frozen=True, slots=True)
class Issued:
    lease: Lease
    password: str = field(repr=False)


class LeaseService(LeaseJobs):
    def __init__(self, deps: Deps, plane: MachinePlane, targets: Targets) -> None:
        super().__init__(deps, targets)
        self.plane = plane

    # -- minting -------------------------------------------------------------------------------
    def _begin(
        self,
        conn: Connection,
        machine: Machine,
        actor: Actor,
        secret: Secret,
        project: Project,
        ttl_s: int | None,
        now: int,
        via_read: bool,
    ) -> Pending | Issued:
        definition = store.get_definition(conn, secret.id)
        if definition is None:
            raise NotFound(f"secret {secret.id} is not a dynamic secret")
        live = store.live_leases_of_machine(conn, machine.id, definition.id)
        expired = [lease for lease in live if lease.state == "active" and lease.expires_ms <= now]
        if expired:  # checked at use too, not only by the sweeper
            store.queue_revocations(conn, now, "expired", "system", lease_ids=[x.id for x in expired])
            for lease in expired:
                audit_store.append(
                    conn,
                    lease.vault_id,
                    now,
                    SYSTEM_ACTOR,
                    Action.SYSTEM_LEASE_EXPIRE,
                    audit_target(lease),
                    "ok",
                    "expired",
                )
            live = [lease for lease in live if lease not in expired]
        active = [lease for lease in live if lease.state == "active"]
        if via_read:
            reusable = [lease for lease in active if dynamic.reusable(lease, now)]
            if reusable:
                return Issued(reusable[0], self._password(conn, project, reusable[0]))
        limit = definition.max_leases_per_machine
        if limit is not None and len(live) >= limit:
            if via_read and active:  # the SDK keeps reading: its newest lease is still valid
                return Issued(active[0], self._password(conn, project, active[0]))
            raise RateLimited(
                f"machine {machine.id} already holds {len(live)} live lease(s) of dynamic secret "
                f"{definition.id} (maxLeasesPerMachine {limit}); revoke one or wait for one to expire"
            )
        ttl = dynamic.lease_ttl_s(definition, ttl_s)
        lease_id = ids.new_id("lease")
        random = "".join(
            secrets.choice(string.ascii_lowercase + string.digits) for _ in range(dynamic.RANDOM_LEN)
        )
        username = dynamic.username(
            definition.engine,
            definition.id,
            definition.username_template,
            definition.name,
            machine.id,
            random,
            now // 1000,
        )
        password = "".join(secrets.choice(_ALPHABET) for _ in range(PASSWORD_LEN))
        lease = Lease(
            id=lease_id,
            vault_id=definition.vault_id,
            project_id=definition.project_id,
            dynamic_secret_id=definition.id,
            machine_id=machine.id,
            username=username,
            state="creating",
            created_ms=now,
            expires_ms=now + ttl * 1000,
            max_expires_ms=now + definition.max_ttl_s * 1000,
        )
        sealed_password = seal_part(
            self.deps, conn, project, definition.id, lease_id, "password", password.encode()
        )
        snapshot = seal_part(
            self.deps,
            conn,
            project,
            definition.id,
            lease_id,
            "snapshot",
            encode_snapshot(snapshot_of(definition, username)),
        )
        store.insert_lease(conn, lease, sealed_password, snapshot)
        admin = self.targets.admin_login(conn, definition.vault_id, definition.admin_secret_id)
        return Pending(lease, definition, password, admin, actor, via_read)

    def _password(self, conn: Connection, project: Project, lease: Lease) -> str:
        sealed = store.sealed_password(conn, lease.id)
        if sealed is None:
            raise NotFound(f"lease {lease.id} has no password any more")
        return open_part(
            self.deps, conn, project, lease.dynamic_secret_id, lease.id, "password", sealed
        ).decode()

    def _mint(self, pending: Pending) -> Issued:
        """Create the user (no transaction open), then activate the lease."""
        lease, definition = pending.lease, pending.definition
        snapshot = snapshot_of(definition, lease.username)
        parts = statement_parts(definition.creation_statements)
        try:
            self.targets.call(
                definition.id,
                snapshot,
                pending.admin,
                lambda p: p.create_user(
                    lease.username, pending.password, definition.grant_role, lease.expires_ms, parts
                ),
            )
        except SikkerError as e:
            self._creation_failed(pending, e)
            raise
        now = self.deps.clock()
        target = audit_target(lease) | {"ttl": str((lease.expires_ms - lease.created_ms) // 1000)}
        with self.deps.db.write() as conn:
            if not store.set_state(conn, lease.id, ("creating",), state="active"):
                raise Conflict(f"lease {lease.id} was revoked while it was being created")
            audit_store.append(conn, lease.vault_id, now, pending.actor, Action.MACHINE_LEASE_CREATE, target)
            if pending.via_read:
                audit_store.append(
                    conn,
                    lease.vault_id,
                    now,
                    pending.actor,
                    Action.MACHINE_SECRET_READ,
                    {"project": lease.project_id, "secret": lease.dynamic_secret_id, "lease": lease.id},
                )
        return Issued(lease, pending.password)

    def _creation_failed(self, pending: Pending, error: SikkerError) -> None:
        """Drop anything half-created; if that fails too, the sweeper keeps trying. A refused
        address opened no connection, so there is nothing to drop."""
        lease, definition = pending.lease, pending.definition
        cleaned = True
        try:
            if not isinstance(error, TargetRefused):
                parts = statement_parts(definition.revocation_statements)
                self.targets.call(
                    definition.id,
                    snapshot_of(definition, lease.username),
                    pending.admin,
                    lambda p: p.revoke_user(lease.username, parts, definition.grant_role),
                )
        except SikkerError:
            cleaned = False
        now = self.deps.clock()
        reason = f"creation failed: {error.message}"[:500]
        with self.deps.db.write() as conn:
            if cleaned:
                store.set_state(
                    conn,
                    lease.id,
                    ("creating",),
                    state="failed",
                    revoked_ms=now,
                    revoke_reason=reason,
                    revoked_by="system",
                    last_error=error.message[:500],
                )
            else:
                store.set_state(
                    conn,
                    lease.id,
                    ("creating",),
                    state="revoking",
                    revoke_requested_ms=now,
                    revoke_reason=reason,
                    revoked_by="system",
                    next_attempt_ms=now + dynamic.backoff_ms(0),
                    last_error=error.message[:500],
                    attempts=1,
                )
            audit_store.append(
                conn,
                lease.vault_id,
                now,
                pending.actor,
                Action.SYSTEM_LEASE_FAIL,
                audit_target(lease),
                "error",
                reason,
            )

    # -- machine plane ---------------------------------------------------------------------------
    def _checked(self, conn: Connection, machine: Machine, secret_id: str, source_ip: str, now: int) -> Any:
        facts, secret, project = self.plane.read_facts(conn, machine, secret_id)
        problem = access.read_refusal(facts, source_ip, now)
        if problem is not None:
            raise problem
        assert secret is not None and project is not None
        if secret.kind != "dynamic":
            raise NotFound(f"secret {secret_id} is not a dynamic secret")
        return secret, project

    def create(self, req: SignedRequest, secret_id: str, ttl_of: Any) -> Issued:
        """POST /v1/dynamic/{id}/leases."""
        parsed: list[int | None] = []

        def work(conn: Connection, machine: Machine, actor: Actor) -> Pending | Issued:
            now = self.deps.clock()
            secret, project = self._checked(conn, machine, secret_id, req.source_ip, now)
            return self._begin(conn, machine, actor, secret, project, parsed[0], now, via_read=False)

        pending = self.plane.run_signed(
            req,
            Action.MACHINE_LEASE_CREATE,
            {"secret": secret_id[:40]},
            work,
            lambda: parsed.append(ttl_of()),
        )
        assert isinstance(pending, Pending)
        return self._mint(pending)

    def begin_read(
        self, conn: Connection, machine: Machine, actor: Actor, secret: Secret, project: Project, now: int
    ) -> object:
        """GET /v1/secret/{id} on a dynamic secret (the SDK path), inside the read's transaction."""
        found = self._begin(conn, machine, actor, secret, project, None, now, via_read=True)
        if isinstance(found, Issued):
            audit_store.append(
                conn,
                machine.vault_id,
                now,
                actor,
                Action.MACHINE_SECRET_READ,
                {"project": secret.project_id, "secret": secret.id, "lease": found.lease.id},
            )
            return _value(found)
        return found

    def finish_read(self, pending: object) -> str:
        assert isinstance(pending, Pending)
        return _value(self._mint(pending))

    def _own(self, conn: Connection, machine: Machine, lease_id: str) -> Lease:
        """The calling machine's lease; any other (another machine's, another vault's) is 404."""
        lease = store.get_lease(conn, lease_id, for_update=True) if ids.is_valid("lease", lease_id) else None
        if lease is None or lease.vault_id != machine.vault_id or lease.machine_id != machine.id:
            raise NotFound(f"lease {lease_id[:40]} not found")
        return lease

    def renew_signed(self, req: SignedRequest, lease_id: str, ttl_of: Any) -> Lease:
        """POST /v1/leases/{id}/renew."""
        parsed: list[int | None] = []

        def work(conn: Connection, machine: Machine, actor: Actor) -> tuple[Lease, Definition | None, Actor]:
            lease = self._own(conn, machine, lease_id)
            now = self.deps.clock()
            self._checked(conn, machine, lease.dynamic_secret_id, req.source_ip, now)
            return lease, store.get_definition(conn, lease.dynamic_secret_id), actor

        lease, definition, actor = self.plane.run_signed(
            req, Action.MACHINE_LEASE_RENEW, {"lease": lease_id[:40]}, work, lambda: parsed.append(ttl_of())
        )
        return self._renew(lease, definition, parsed[0], actor, Action.MACHINE_LEASE_RENEW)

    def revoke_signed(self, req: SignedRequest, lease_id: str) -> None:
        """DELETE /v1/leases/{id}: queued at once, then attempted before answering."""

        def work(conn: Connection, machine: Machine, actor: Actor) -> None:
            lease = self._own(conn, machine, lease_id)
            now = self.deps.clock()
            store.queue_revocations(
                conn, now, "revoked by its machine", f"machine:{machine.id}", lease_ids=[lease.id]
            )
            audit_store.append(
                conn, lease.vault_id, now, actor, Action.MACHINE_LEASE_REVOKE, audit_target(lease)
            )

        self.plane.run_signed(req, Action.MACHINE_LEASE_REVOKE, {"lease": lease_id[:40]}, work)
        self.attempt(lease_id)

    # -- renew (both planes) -----------------------------------------------------------------------
    def _renew(
        self, lease: Lease, definition: Definition | None, ttl_s: int | None, actor: Actor, action: Action
    ) -> Lease:
        now = self.deps.clock()
        if lease.state != "active":
            raise Conflict(f"lease {lease.id} is {lease.state}; only an active lease can be renewed")
        if lease.expires_ms <= now:
            self._expire([(lease, "expired")], now)
            raise Conflict(f"lease {lease.id} has expired")
        if definition is None:
            raise Conflict(f"lease {lease.id}: its dynamic secret is deleted; the lease cannot be renewed")
        expires = dynamic.renewed_expiry(lease, definition.default_ttl_s, ttl_s, now)
        if expires > lease.expires_ms:
            snapshot = snapshot_of(definition, lease.username)
            with self.deps.db.read() as conn:
                admin = self.targets.admin_login(conn, definition.vault_id, definition.admin_secret_id)
            self.targets.call(definition.id, snapshot, admin, lambda p: p.renew_user(lease.username, expires))
        with self.deps.db.write() as conn:
            if expires > lease.expires_ms and not store.set_state(
                conn, lease.id, ("active",), expires_ms=max(expires, lease.expires_ms)
            ):
                raise Conflict(f"lease {lease.id} was revoked meanwhile")
            target = audit_target(lease) | {"expires": str(expires)}
            audit_store.append(conn, lease.vault_id, now, actor, action, target)
            found = store.get_lease(conn, lease.id)
        assert found is not None
        return found

    # -- admin plane -------------------------------------------------------------------------------
    def _lease(self, conn: Connection, principal: Principal, lease_id: str, action: str) -> Lease:
        ids.check("lease", lease_id)
        lease = store.get_lease(conn, lease_id)
        missing = f"lease {lease_id} not found"
        if lease is None:
            raise NotFound(missing)
        require(principal, action, lease.vault_id, lease.project_id, missing=missing)
        return lease

    def get(self, principal: Principal, lease_id: str) -> Lease:
        with self.deps.db.read() as conn:
            return self._lease(conn, principal, lease_id, perm.LEASE_READ)

    def list_leases(
        self, principal: Principal, vault_id: str, filters: dict[str, Any]
    ) -> tuple[list[Lease], str | None]:
        limit = filters.pop("limit", 100)
        state = filters.get("state")
        if state is not None and state not in dynamic.STATES:
            raise InvalidInput(f"state must be one of {', '.join(dynamic.STATES)}")
        with self.deps.db.read() as conn:
            ids.check("vault", vault_id)
            if vault_store.get_vault(conn, vault_id) is None:
                raise NotFound(f"vault {vault_id} not found")
            project_id = filters.get("project_id")
            require(principal, perm.LEASE_READ, vault_id, project_id, missing=f"vault {vault_id} not found")
            found = store.list_leases(conn, vault_id, limit=limit + 1, **filters)
        visible = [
            lease for lease in found if perm.allowed(principal, perm.LEASE_READ, vault_id, lease.project_id)
        ]
        page = visible[:limit]
        return page, (found[limit - 1].id if len(found) > limit else None)

    def renew_admin(self, principal: Principal, actor: Actor, lease_id: str, ttl_s: int | None) -> Lease:
        with self.deps.db.read() as conn:
            lease = self._lease(conn, principal, lease_id, perm.LEASE_MANAGE)
            definition = store.get_definition(conn, lease.dynamic_secret_id)
        return self._renew(lease, definition, ttl_s, actor, Action.ADMIN_LEASE_RENEW)

    def revoke_admin(
        self, principal: Principal, actor: Actor, lease_id: str, reason: str, sync: bool
    ) -> Lease:
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            lease = self._lease(conn, principal, lease_id, perm.LEASE_MANAGE)
            who = f"{actor.kind}:{actor.id}"
            if store.queue_revocations(conn, now, reason or "revoked by an admin", who, lease_ids=[lease.id]):
                target = audit_target(lease)
                audit_store.append(
                    conn, lease.vault_id, now, actor, Action.ADMIN_LEASE_REVOKE, target, "ok", reason
                )
        if sync:
            self.attempt(lease_id)
        return self.get(principal, lease_id)

    def revoke_many(
        self,
        principal: Principal,
        actor: Actor,
        vault_id: str,
        filters: dict[str, str],
        reason: str,
        sync: bool,
    ) -> int:
        """Revoke every live lease matching a definition, a machine and/or a project."""
        if not filters:
            raise InvalidInput("say which leases: dynamic, machine and/or project")
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            ids.check("vault", vault_id)
            if vault_store.get_vault(conn, vault_id) is None:
                raise NotFound(f"vault {vault_id} not found")
            project_id = filters.get("project")
            if "dynamic" in filters:
                d = store.get_definition(conn, ids.check("secret", filters["dynamic"]), live_only=False)
                if d is None or d.vault_id != vault_id:
                    raise NotFound(f"dynamic secret {filters['dynamic']} not found")
                project_id = project_id or d.project_id
            require(principal, perm.LEASE_MANAGE, vault_id, project_id, missing=f"vault {vault_id} not found")
            queued = store.queue_revocations(
                conn,
                now,
                reason or "revoked by an admin",
                f"{actor.kind}:{actor.id}",
                vault_id=vault_id,
                machine_id=filters.get("machine"),
                dynamic_secret_ids=[filters["dynamic"]] if "dynamic" in filters else None,
                project_id=filters.get("project"),
            )
            # One record for the batch (each lease's revocation gets its own when it is done).
            target = {"vault": vault_id, "count": str(len(queued))} | {
                key: value[:40] for key, value in filters.items()
            }
            audit_store.append(conn, vault_id, now, actor, Action.ADMIN_LEASE_REVOKE, target, "ok", reason)
        if sync:  # at most SYNC_ATTEMPTS now; the sweeper runs the rest
            for lease_id in queued[:SYNC_ATTEMPTS]:
                self.attempt(lease_id)
        return len(queued)

    def forget(self, principal: Principal, actor: Actor, lease_id: str, reason: str) -> Lease:
        """Stop trying to revoke (the database is gone for good): a critical audit record."""
        if not reason.strip():
            raise InvalidInput("forgetting a lease needs a reason")
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            lease = self._lease(conn, principal, lease_id, perm.LEASE_MANAGE)
            if not store.set_state(
                conn,
                lease.id,
                dynamic.LIVE,
                state="forgotten",
                revoked_ms=now,
                revoke_reason=reason[:500],
                revoked_by=f"{actor.kind}:{actor.id}",
                claimed_by=None,
                claim_until_ms=None,
            ):
                raise Conflict(f"lease {lease.id} is {lease.state}; nothing to forget")
            audit_store.append(
                conn, lease.vault_id, now, actor, Action.ADMIN_LEASE_FORGET, audit_target(lease), "ok", reason
            )
            found = store.get_lease(conn, lease.id)
        assert found is not None
        return found


def _value(issued: Issued) -> str:
    """The structured value the SDK sees (every field a string, as the wire contract says)."""
    return orjson.dumps(
        {
            "username": issued.lease.username,
            "password": issued.password,
            "leaseId": issued.lease.id,
            "expiresAt": str(issued.lease.expires_ms),
        }
    ).decode()


__all__ = ["DatabaseUnavailable", "Issued", "LeaseService", "Pending"]
