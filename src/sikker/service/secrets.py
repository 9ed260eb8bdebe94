"""Secrets: create, read, update (a new version each time), roll back, trash.

Every change and every read commits together with its audit record; a read
returns its value only after that commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sikker.core import ids, values
from sikker.core import permissions as perm
from sikker.core.audit import SYSTEM_ACTOR, Action, Actor
from sikker.core.model import Principal, Project, Secret, VersionInfo
from sikker.crypto import envelope
from sikker.crypto.envelope import Binding
from sikker.errors import Conflict, InvalidInput, Locked, NotFound
from sikker.service.base import Deps, open_version, project_key, require
from sikker.service.freeze import check_not_frozen, trip_if_canary
from sikker.storage import audit as audit_store
from sikker.storage import secrets as secret_store
from sikker.storage import vaults as vault_store
from sikker.storage.database import Connection

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Revealed:
    secret: Secret
    version: int
    value: values.SecretValue


class SecretService:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    # -- helpers -------------------------------------------------------------
    def _project(self, conn: Connection, principal: Principal, project_id: str, action: str) -> Project:
        ids.check("project", project_id)
        project = vault_store.get_project(conn, project_id)
        missing = f"project {project_id} not found"
        if project is None:
            raise NotFound(missing)
        require(principal, action, project.vault_id, project.id, missing=missing)
        return project

    def _secret(
        self,
        conn: Connection,
        principal: Principal,
        secret_id: str,
        action: str,
        for_update: bool = False,
        deleted: bool = False,
    ) -> Secret:
        ids.check("secret", secret_id)
        secret = secret_store.get_secret(conn, secret_id, for_update=for_update)
        where = " in the trash" if deleted else ""
        missing = f"secret {secret_id} not found{where}"
        if secret is None:
            raise NotFound(missing)
        require(principal, action, secret.vault_id, secret.project_id, missing=missing)
        if (secret.deleted_ms is not None) != deleted:
            raise NotFound(missing)
        return secret

    def write_version(
        self,
        conn: Connection,
        project: Project,
        secret_id: str,
        version: int,
        value: values.SecretValue,
        actor: Actor,
        now: int,
    ) -> None:
        key = project_key(self.deps, conn, project, project.key_version)
        where = Binding(project.vault_id, project.id, secret_id, version)
        sealed = envelope.seal_value(key, project.key_version, where, value.plaintext)
        secret_store.insert_version(
            conn, secret_id, version, sealed, value.field_names, now, f"{actor.kind}:{actor.id}"
        )

    # -- use cases -----------------------------------------------------------
    def create(
        self,
        principal: Principal,
        actor: Actor,
        project_id: str,
        name: str,
        value: values.SecretValue,
        also: Callable[[Connection, Secret], None] | None = None,
    ) -> Secret:
        """Create a secret at version 1; ``also`` runs in the same transaction (e.g. the canary row)."""
        values.check_name(name, "secret name")
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            project = self._project(conn, principal, project_id, perm.SECRET_WRITE)
            secret = Secret(
                ids.new_id("secret"), project.vault_id, project.id, name, value.kind, 1, now, now, None
            )
            secret_store.insert_secret(conn, secret)
            self.write_version(conn, project, secret.id, 1, value, actor, now)
            if also is not None:
                also(conn, secret)
            audit_store.append(
                conn,
                project.vault_id,
                now,
                actor,
                Action.ADMIN_SECRET_CREATE,
                {"project": project.id, "secret": secret.id, "version": "1"},
            )
        return secret

    def update(
        self,
        principal: Principal,
        actor: Actor,
        secret_id: str,
        value: values.SecretValue,
        action: Action = Action.ADMIN_SECRET_UPDATE,
        extra: dict[str, str] | None = None,
    ) -> int:
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            secret = self._secret(conn, principal, secret_id, perm.SECRET_WRITE, for_update=True)
            if secret.kind == "dynamic":
                raise Conflict(
                    f"secret {secret_id} is dynamic: change its definition with "
                    f"PUT /api/dynamic-secrets/{secret_id}"
                )
            if value.kind != secret.kind:
                raise Conflict(f"secret {secret_id} is {secret.kind}; send a {secret.kind} value")
            project = vault_store.get_project(conn, secret.project_id)
            assert project is not None
            version = secret.current_version + 1
            self.write_version(conn, project, secret.id, version, value, actor, now)
            secret_store.set_current_version(conn, secret.id, version, now)
            target = {"project": project.id, "secret": secret.id, "version": str(version)}
            audit_store.append(conn, project.vault_id, now, actor, action, target | (extra or {}))
        return version

    def open_version(self, conn: Connection, secret: Secret, number: int) -> values.SecretValue:
        project = vault_store.get_project(conn, secret.project_id)
        assert project is not None
        return values.from_plaintext(secret.kind, open_version(self.deps, conn, project, secret.id, number))

    def reveal(
        self, principal: Principal, actor: Actor, secret_id: str, version: int | None = None
    ) -> Revealed:
        """Read a value. Audited before it is returned; a frozen project refuses (423), and
        reading a canary freezes its project first (then returns the decoy as usual)."""
        problem: Locked | None = None
        with self.deps.db.write() as conn:
            secret = self._secret(conn, principal, secret_id, perm.SECRET_READ)
            if secret.kind == "dynamic":
                raise InvalidInput(
                    f"secret {secret.id} is dynamic: it has no stored value; machines lease "
                    f"credentials from it (see GET /api/dynamic-secrets/{secret.id})"
                )
            number = version or secret.current_version
            project = vault_store.get_project(conn, secret.project_id, for_share=True)
            assert project is not None
            target = {"project": secret.project_id, "secret": secret.id, "version": str(number)}
            now = self.deps.clock()
            try:
                check_not_frozen(project)
            except Locked as e:
                problem = e
                audit_store.append(
                    conn, secret.vault_id, now, actor, Action.ADMIN_SECRET_READ, target, "denied", e.message
                )
            if problem is None:
                value = self.open_version(conn, secret, number)
                trip_if_canary(conn, secret, actor, now)
                audit_store.append(conn, secret.vault_id, now, actor, Action.ADMIN_SECRET_READ, target)
        if problem is not None:
            raise problem
        # The audit record is committed: only now may the value leave.
        return Revealed(secret, number, value)

    def get_meta(self, principal: Principal, secret_id: str) -> Secret:
        with self.deps.db.read() as conn:
            return self._secret(conn, principal, secret_id, perm.SECRET_LIST)

    def list_secrets(self, principal: Principal, project_id: str, deleted: bool = False) -> list[Secret]:
        with self.deps.db.read() as conn:
            self._project(conn, principal, project_id, perm.SECRET_LIST)
            return secret_store.list_secrets(conn, project_id, deleted)

    def versions(self, principal: Principal, secret_id: str) -> list[VersionInfo]:
        with self.deps.db.read() as conn:
            self._secret(conn, principal, secret_id, perm.SECRET_LIST)
            return secret_store.list_versions(conn, secret_id)

    def rollback(self, principal: Principal, actor: Actor, secret_id: str, version: int) -> int:
        """Write the value of ``version`` again as a new version (history is kept)."""
        with self.deps.db.read() as conn:
            secret = self._secret(conn, principal, secret_id, perm.SECRET_WRITE)
            old = self.open_version(conn, secret, version)
        return self.update(
            principal, actor, secret_id, old, Action.ADMIN_SECRET_ROLLBACK, {"from_version": str(version)}
        )

    def delete(self, principal: Principal, actor: Actor, secret_id: str) -> None:
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            secret = self._secret(conn, principal, secret_id, perm.SECRET_WRITE, for_update=True)
            secret_store.set_deleted(conn, secret.id, now, now)
            audit_store.append(
                conn,
                secret.vault_id,
                now,
                actor,
                Action.ADMIN_SECRET_DELETE,
                {"project": secret.project_id, "secret": secret.id},
            )

    def restore(self, principal: Principal, actor: Actor, secret_id: str) -> None:
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            secret = self._secret(
                conn, principal, secret_id, perm.SECRET_WRITE, for_update=True, deleted=True
            )
            live = {s.name for s in secret_store.list_secrets(conn, secret.project_id)}
            if secret.name in live:
                raise Conflict(f"a live secret named {secret.name!r} already exists in the project")
            secret_store.set_deleted(conn, secret.id, None, now)
            audit_store.append(
                conn,
                secret.vault_id,
                now,
                actor,
                Action.ADMIN_SECRET_RESTORE,
                {"project": secret.project_id, "secret": secret.id},
            )

    def purge_trash(self) -> int:
        """Delete for good the secrets trashed more than ``trash_days`` ago."""
        now = self.deps.clock()
        cutoff = now - self.deps.settings.trash_days * DAY_MS
        purged = 0
        while True:
            with self.deps.db.write() as conn:
                batch = secret_store.trashed_before(conn, cutoff)
                for secret in batch:
                    secret_store.purge(conn, secret.id)
                    audit_store.append(
                        conn,
                        secret.vault_id,
                        now,
                        SYSTEM_ACTOR,
                        Action.SYSTEM_SECRET_PURGE,
                        {"project": secret.project_id, "secret": secret.id},
                    )
            purged += len(batch)
            if len(batch) < 500:
                return purged
