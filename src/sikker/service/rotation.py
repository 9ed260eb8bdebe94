"""Rotation: scheduled and manual rotation of any secret, and the server side of the
database-credential rotation done by ``sikker agent``.

A plain secret rotates in one transaction: a generated value becomes a new
version, with its audit record. A *managed* secret (a live database credential)
rotates in two phases: a pending value is stored (encrypted, bound to the
rotation id) and handed to the agent through ``sync-config``; the live value
changes only when the agent confirms it applied and verified the new
credentials. A rejected rotation leaves the live value as it was.

The scheduler claims each due run with a compare-and-set on ``next_due_ms``, so
a run happens once even with several schedulers; the next due time is computed
from *now*, so runs missed while the server was down happen once, not N times.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import orjson

from sikker.core import ids, rotation, values
from sikker.core import permissions as perm
from sikker.core.audit import SYSTEM_ACTOR, Action, Actor
from sikker.core.model import Machine, Managed, Policy, Principal, Project, Rotation, Secret
from sikker.core.signing import SignedRequest
from sikker.crypto import envelope
from sikker.crypto.envelope import Binding
from sikker.errors import Conflict, InvalidInput, NotFound, PermissionDenied, SikkerError
from sikker.service.base import Deps, project_key, require
from sikker.service.machine_plane import MachinePlane
from sikker.service.secrets import SecretService
from sikker.storage import audit as audit_store
from sikker.storage import machines as machine_store
from sikker.storage import rotation as rotation_store
from sikker.storage import secrets as secret_store
from sikker.storage import vaults as vault_store
from sikker.storage.database import Connection

log = logging.getLogger(__name__)
PROVIDERS = ("postgresql", "mysql", "mariadb", "redis", "mongodb", "mssql")
POLL_INTERVAL_S = 10


# Rotations one 'rotation show' may list.
MAX_HISTORY = 100


class RotationService:
    def __init__(self, deps: Deps, secrets: SecretService, plane: MachinePlane) -> None:
        self.deps = deps
        self.secrets = secrets
        self.plane = plane

    # -- configuration (admin) -------------------------------------------------------------
    def _secret(self, conn: Connection, principal: Principal, secret_id: str) -> Secret:
        """A live secret ``principal`` may configure rotation of (``rotation:manage``)."""
        ids.check("secret", secret_id)
        secret = secret_store.get_secret(conn, secret_id, for_update=True)
        missing = f"secret {secret_id} not found"
        if secret is None:
            raise NotFound(missing)
        require(principal, perm.ROTATION_MANAGE, secret.vault_id, secret.project_id, missing=missing)
        if secret.deleted_ms is not None:
            raise NotFound(missing)
        if secret.kind == "dynamic":
            raise InvalidInput(f"secret {secret.id} is dynamic: every lease is a fresh credential")
        return secret

    def set_policy(
        self,
        principal: Principal,
        actor: Actor,
        secret_id: str,
        schedule: rotation.Schedule,
        generator: rotation.Generator,
        fields: list[str] | None,
    ) -> Policy:
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            secret = self._secret(conn, principal, secret_id)
            if fields and secret.kind != "structured":
                raise InvalidInput("--field applies to structured secrets only")
            if (
                secret.kind == "structured"
                and not fields
                and rotation_store.get_managed(conn, secret.id) is None
            ):
                raise InvalidInput("say which fields rotate with --field (the others stay as they are)")
            if fields:
                current = orjson.loads(
                    self.secrets.open_version(conn, secret, secret.current_version).plaintext
                )
                rotation.next_structured(current, fields, generator)  # validates the field names
            policy = Policy(
                secret.id,
                schedule.interval_s,
                schedule.cron,
                generator.length,
                generator.charset,
                fields,
                True,
                schedule.next_after(now),
                None,
                None,
            )
            existing = rotation_store.get_policy(conn, secret.id)
            if existing is not None:
                policy = replace(policy, last_rotated_ms=existing.last_rotated_ms)
            rotation_store.save_policy(conn, policy)
            audit_store.append(
                conn,
                secret.vault_id,
                now,
                actor,
                Action.ADMIN_ROTATION_SET,
                {"secret": secret.id, "project": secret.project_id},
            )
        return policy

    def get_policy(
        self, principal: Principal, secret_id: str, history: int = 10
    ) -> tuple[Policy | None, Managed | None, list[Rotation]]:
        """The schedule, the database binding and the ``history`` most recent rotations (newest
        first: manual and scheduled, plain and managed)."""
        with self.deps.db.read() as conn:
            secret = secret_store.get_secret(conn, ids.check("secret", secret_id))
            missing = f"secret {secret_id} not found"
            if secret is None:
                raise NotFound(missing)
            # Schedules and rotation status are metadata: whoever may list the secret sees them.
            require(principal, perm.SECRET_LIST, secret.vault_id, secret.project_id, missing=missing)
            return (
                rotation_store.get_policy(conn, secret_id),
                rotation_store.get_managed(conn, secret_id),
                rotation_store.recent_rotations(conn, secret_id, min(max(history, 1), MAX_HISTORY)),
            )

    def disable(self, principal: Principal, actor: Actor, secret_id: str) -> None:
        with self.deps.db.write() as conn:
            secret = self._secret(conn, principal, secret_id)
            policy = rotation_store.get_policy(conn, secret.id)
            if policy is None:
                raise NotFound(f"secret {secret_id} has no rotation schedule")
            rotation_store.save_policy(conn, replace(policy, enabled=False))
            audit_store.append(
                conn,
                secret.vault_id,
                self.deps.clock(),
                actor,
                Action.ADMIN_ROTATION_DISABLE,
                {"secret": secret.id, "project": secret.project_id},
            )

    def manage(
        self,
        principal: Principal,
        actor: Actor,
        secret_id: str,
        *,
        provider: str,
        host: str,
        port: int,
        database: str,
        admin_secret_id: str,
        strategy: str,
        alt_username: str | None,
        grace_s: int,
    ) -> Managed:
        """Bind a structured username/password secret to a database, for ``sikker agent``."""
        if provider not in PROVIDERS:
            raise InvalidInput(f"provider must be one of {', '.join(PROVIDERS)}")
        if strategy not in rotation.STRATEGIES:
            raise InvalidInput(f"strategy must be one of {', '.join(rotation.STRATEGIES)}")
        if strategy == "alternating" and not alt_username:
            raise InvalidInput("the alternating strategy needs --alt-username (the second user)")
        problem = rotation.strategy_problem(provider, strategy)
        if problem:
            raise InvalidInput(problem)
        if not 0 <= grace_s <= 366 * 86400:
            raise InvalidInput("grace must be between 0 and 366 days")
        with self.deps.db.write() as conn:
            secret = self._secret(conn, principal, secret_id)
            current = self._structured(conn, secret)
            if "username" not in current or "password" not in current:
                raise InvalidInput("a managed secret is structured with 'username' and 'password' fields")
            admin = self._secret(conn, principal, admin_secret_id)
            if admin.vault_id != secret.vault_id or admin.id == secret.id:
                raise InvalidInput("the admin credentials must be another secret of the same vault")
            admin_value = self._structured(conn, admin)
            if "username" not in admin_value or "password" not in admin_value:
                raise InvalidInput("the admin secret needs 'username' and 'password' fields")
            if alt_username == current["username"]:
                raise InvalidInput("the second user must differ from the first")
            managed = Managed(
                secret.id,
                provider,
                host,
                port,
                database,
                admin.id,
                strategy,
                current["username"],
                alt_username,
                grace_s,
                None,
                None,
                None,
                None,
                None,
            )
            rotation_store.save_managed(conn, managed)
            audit_store.append(
                conn,
                secret.vault_id,
                self.deps.clock(),
                actor,
                Action.ADMIN_MANAGED_SET,
                {
                    "secret": secret.id,
                    "project": secret.project_id,
                    "provider": provider,
                    "strategy": strategy,
                },
            )
        return managed

    def _structured(self, conn: Connection, secret: Secret) -> dict[str, str]:
        if secret.kind != "structured":
            raise InvalidInput(f"secret {secret.id} is not structured")
        parsed: dict[str, str] = orjson.loads(
            self.secrets.open_version(conn, secret, secret.current_version).plaintext
        )
        return parsed

    # -- rotating ----------------------------------------------------------------------------
    def rotate_now(self, principal: Principal, actor: Actor, secret_id: str) -> dict[str, Any]:
        """Rotate at once (plain secrets), or start a pending rotation (managed secrets)."""
        with self.deps.db.write() as conn:
            secret = self._secret(conn, principal, secret_id)
            policy = rotation_store.get_policy(conn, secret.id)
            return self._rotate(conn, secret, policy, actor, Action.ADMIN_SECRET_ROTATE, "manual")

    def run_due(self) -> int:
        """Run every due scheduled rotation once. Returns how many were started or done."""
        if self.deps.keyring.sealed:
            return 0
        now = self.deps.clock()
        with self.deps.db.read() as conn:
            due = rotation_store.due_policies(conn, now)
        done = 0
        for policy in due:
            schedule = rotation.Schedule(policy.interval_s, policy.cron)
            try:
                with self.deps.db.write() as conn:
                    if not rotation_store.claim_due(
                        conn, policy.secret_id, policy.next_due_ms, schedule.next_after(now)
                    ):
                        continue  # another scheduler took it
                    secret = secret_store.get_secret(conn, policy.secret_id, for_update=True)
                    if secret is None or secret.deleted_ms is not None:
                        continue
                    self._rotate(conn, secret, policy, SYSTEM_ACTOR, Action.SYSTEM_SECRET_ROTATE, "schedule")
                done += 1
            except SikkerError as e:
                self._record_failure(policy.secret_id, e.message)
        return done

    def _record_failure(self, secret_id: str, message: str) -> None:
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            secret = secret_store.get_secret(conn, secret_id)
            if secret is None:
                return
            rotation_store.record_outcome(conn, secret_id, now, message)
            audit_store.append(
                conn,
                secret.vault_id,
                now,
                SYSTEM_ACTOR,
                Action.SYSTEM_ROTATION_FAIL,
                {"secret": secret_id, "project": secret.project_id},
                "error",
                message,
            )

    def _rotate(
        self,
        conn: Connection,
        secret: Secret,
        policy: Policy | None,
        actor: Actor,
        action: Action,
        trigger: str,
    ) -> dict[str, Any]:
        generator = rotation.Generator(policy.length, policy.charset) if policy else rotation.Generator()
        now = self.deps.clock()
        target = {"secret": secret.id, "project": secret.project_id}
        managed = rotation_store.get_managed(conn, secret.id)
        project = vault_store.get_project(conn, secret.project_id)
        assert project is not None
        if managed is not None:
            if rotation_store.pending_rotation(conn, secret.id, for_update=True) is not None:
                raise Conflict(f"secret {secret.id} already has a rotation waiting for its agent")
            current = self._structured(conn, secret)
            pending = rotation.next_managed(
                current, managed.strategy, managed.base_username, managed.alt_username, generator
            )
            rotation_id = ids.new_id("rotation")
            key = project_key(self.deps, conn, project, project.key_version)
            where = Binding(secret.vault_id, project.id, secret.id, 0, slot=rotation_id)
            sealed = envelope.seal_value(key, project.key_version, where, orjson.dumps(pending))
            rotation_store.insert_rotation(
                conn, Rotation(rotation_id, secret.id, "pending", trigger, sealed, None, None, now, now)
            )
            if managed.strategy != "dual" and pending["username"] == managed.previous_username:
                # The user about to come back must not be disabled by a stale grace timer. (A dual
                # timer stays: the agent skips it while a rotation is pending, and after a
                # rejected rotation it must still drop the old password.)
                rotation_store.update_managed(
                    conn, secret.id, previous_username=None, disable_previous_at_ms=None
                )
            audit_store.append(
                conn,
                secret.vault_id,
                now,
                actor,
                Action.SYSTEM_ROTATION_START,
                target | {"rotation": rotation_id, "trigger": trigger},
            )
            return {"id": secret.id, "rotation": rotation_id, "status": "pending"}
        if secret.kind == "structured":
            if not policy or not policy.fields:
                raise InvalidInput("set which fields rotate first: sikker secret rotation set --field ...")
            current = self._structured(conn, secret)
            value = values.structured(
                rotation.next_structured(current, policy.fields, generator),
                self.deps.settings.max_value_bytes,
            )
        else:
            value = values.standard(generator.generate(), self.deps.settings.max_value_bytes)
        version = secret.current_version + 1
        self.secrets.write_version(conn, project, secret.id, version, value, actor, now)
        secret_store.set_current_version(conn, secret.id, version, now)
        rotation_store.record_outcome(conn, secret.id, now, None)
        # The history 'rotation show' lists (a managed rotation's row is written when it starts).
        rotation_store.insert_rotation(
            conn,
            Rotation(ids.new_id("rotation"), secret.id, "current", trigger, None, version, None, now, now),
        )
        audit_store.append(
            conn, secret.vault_id, now, actor, action, target | {"version": str(version), "trigger": trigger}
        )
        return {"id": secret.id, "version": version, "status": "current"}

    def _open_pending(self, conn: Connection, project: Project, secret: Secret, pending: Rotation) -> bytes:
        """Decrypt a pending rotation's value (sealed with the rotation id as AAD slot)."""
        assert pending.sealed is not None
        key = project_key(self.deps, conn, project, pending.sealed.key_version)
        where = Binding(secret.vault_id, project.id, secret.id, 0, slot=pending.id)
        return envelope.open_value(key, where, pending.sealed)

    # -- the agent side (signed machine routes) -----------------------------------------------
    def _agent_secret(self, conn: Connection, machine: Machine, secret_id: str) -> tuple[Secret, Managed]:
        secret = secret_store.get_secret(conn, secret_id)
        if secret is None or secret.vault_id != machine.vault_id or secret.deleted_ms is not None:
            raise NotFound(f"secret {secret_id} not found")
        member, granted = machine_store.access(conn, machine.id, secret.id)
        if not (member and granted):
            raise PermissionDenied("machine has no grant on this secret")
        managed = rotation_store.get_managed(conn, secret.id)
        if managed is None:
            raise NotFound(f"secret {secret_id} is not a managed database credential")
        return secret, managed

    def sync_config(self, req: SignedRequest, secret_id: str) -> dict[str, Any]:
        def work(conn: Connection, machine: Machine, actor: Actor) -> dict[str, Any]:
            secret, managed = self._agent_secret(conn, machine, secret_id)
            admin_secret = secret_store.get_secret(conn, managed.admin_secret_id)
            if admin_secret is None or admin_secret.deleted_ms is not None:
                raise NotFound("the admin credentials of this secret are gone")
            admin = self._structured(conn, admin_secret)
            config: dict[str, Any] = {
                "providerType": managed.provider,
                "connection": {
                    "host": managed.host,
                    "port": managed.port,
                    "database": managed.database,
                    "adminUser": admin["username"],
                    "adminPass": admin["password"],
                },
                "managedUsername": managed.base_username,
                "pollIntervalSeconds": POLL_INTERVAL_S,
                "rotationStatus": "idle",
                "strategy": managed.strategy,
            }
            pending = rotation_store.pending_rotation(conn, secret.id)
            if pending is not None and pending.sealed is not None:
                project = vault_store.get_project(conn, secret.project_id)
                assert project is not None
                config |= {
                    "rotationStatus": "pending",
                    "pendingRotationId": pending.id,
                    "pendingValue": self._open_pending(conn, project, secret, pending).decode(),
                }
            if managed.previous_username and managed.disable_previous_at_ms:
                config |= {
                    "previousUsername": managed.previous_username,
                    "disablePreviousAt": managed.disable_previous_at_ms // 1000,
                }
            audit_store.append(
                conn,
                machine.vault_id,
                self.deps.clock(),
                actor,
                Action.MACHINE_AGENT_SYNC,
                {
                    "secret": secret.id,
                    "project": secret.project_id,
                    "admin_secret": managed.admin_secret_id,
                    **({"rotation": pending.id} if pending else {}),
                },
            )
            return config

        return self.plane.run_signed(req, Action.MACHINE_AGENT_SYNC, {"secret": secret_id[:40]}, work)

    def heartbeat(self, req: SignedRequest, secret_id: str, body: Any) -> None:
        def work(conn: Connection, machine: Machine, actor: Actor) -> None:
            secret, _ = self._agent_secret(conn, machine, secret_id)
            status, error = body()
            rotation_store.update_managed(
                conn,
                secret.id,
                agent_status=status,
                agent_error=error or None,
                agent_seen_ms=self.deps.clock(),
            )
            audit_store.append(
                conn,
                machine.vault_id,
                self.deps.clock(),
                actor,
                Action.MACHINE_AGENT_HEARTBEAT,
                {"secret": secret.id, "status": status},
                "ok" if status == "healthy" else "error",
                (error or "")[:300],
            )

        self.plane.run_signed(req, Action.MACHINE_AGENT_HEARTBEAT, {"secret": secret_id[:40]}, work)

    def finish(self, req: SignedRequest, secret_id: str, body: Any, confirmed: bool) -> None:
        """confirm-rotation: the pending value becomes the live version. reject-rotation:
        the live value stays; the error is recorded."""
        action = Action.MACHINE_ROTATION_CONFIRM if confirmed else Action.MACHINE_ROTATION_REJECT

        def work(conn: Connection, machine: Machine, actor: Actor) -> None:
            rotation_id, error = body()
            secret, managed = self._agent_secret(conn, machine, secret_id)
            secret = secret_store.get_secret(conn, secret.id, for_update=True) or secret
            pending = rotation_store.pending_rotation(conn, secret.id, for_update=True)
            now = self.deps.clock()
            target = {"secret": secret.id, "project": secret.project_id, "rotation": rotation_id[:40]}
            if pending is None or pending.id != rotation_id or pending.sealed is None:
                done = rotation_store.get_rotation(conn, rotation_id)
                if (
                    done is not None
                    and done.secret_id == secret.id
                    and done.status == ("current" if confirmed else "rejected")
                ):
                    return  # a retried confirm/reject: already done, still 200
                raise NotFound("no such pending rotation")
            if not confirmed:
                rotation_store.finish_rotation(conn, pending.id, "rejected", now, None, (error or "")[:500])
                rotation_store.record_outcome(conn, secret.id, now, f"agent rejected: {error}"[:500])
                audit_store.append(
                    conn, secret.vault_id, now, actor, action, target, "error", (error or "")[:300]
                )
                return
            project = vault_store.get_project(conn, secret.project_id)
            assert project is not None
            new = values.from_plaintext("structured", self._open_pending(conn, project, secret, pending))
            live_user = self._structured(conn, secret)["username"]
            version = secret.current_version + 1
            self.secrets.write_version(conn, project, secret.id, version, new, actor, now)
            secret_store.set_current_version(conn, secret.id, version, now)
            rotation_store.finish_rotation(conn, pending.id, "current", now, version, None)
            rotation_store.record_outcome(conn, secret.id, now, None)
            new_user = orjson.loads(new.plaintext)["username"]
            # Alternating: the previous user is disabled after the grace period. Dual: the same
            # user keeps its old password next to the new one until then.
            if new_user != live_user or managed.strategy == "dual":
                rotation_store.update_managed(
                    conn,
                    secret.id,
                    previous_username=live_user,
                    disable_previous_at_ms=now + managed.grace_s * 1000,
                )
            audit_store.append(conn, secret.vault_id, now, actor, action, target | {"version": str(version)})

        self.plane.run_signed(req, action, {"secret": secret_id[:40]}, work)
