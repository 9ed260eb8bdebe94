"""Project key rotation and the resumable rewrap of data keys.

Rotation adds a new project key version that encrypts from then on; older
versions still decrypt. The rewrap job moves data keys to the newest version
in small batches, each its own transaction, and finds its remaining work from
the data itself, so an interrupted job simply runs again.
"""

from __future__ import annotations

from dataclasses import dataclass

from sikker.core import permissions as perm
from sikker.core.audit import Action, Actor
from sikker.core.model import Principal, Project
from sikker.crypto import envelope
from sikker.crypto.envelope import Binding
from sikker.errors import NotFound
from sikker.service.base import Deps, project_key, require
from sikker.storage import audit as audit_store
from sikker.storage import secrets as secret_store
from sikker.storage import vaults as vault_store

BATCH = 200


@dataclass(frozen=True, slots=True)
class RotationReport:
    projects: int
    rewrapped: int


class KeyService:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def rotate(self, principal: Principal, actor: Actor, project_id: str | None = None) -> RotationReport:
        require(principal, perm.KEY_ROTATE, None)
        with self.deps.db.read() as conn:
            if project_id is None:
                targets = vault_store.all_projects(conn)
            else:
                found = vault_store.get_project(conn, project_id)
                if found is None:
                    raise NotFound(f"project {project_id} not found")
                targets = [found]
        for project in targets:
            self._rotate_one(project, actor)
        return RotationReport(len(targets), self.rewrap_all())

    def _rotate_one(self, project: Project, actor: Actor) -> None:
        with self.deps.db.write() as conn:
            current = vault_store.get_project(conn, project.id, for_update=True)
            if current is None:
                return
            version = current.key_version + 1
            wrapped = self.deps.keyring.wrap_project_key(
                project.vault_id, project.id, version, envelope.new_key()
            )
            now = self.deps.clock()
            vault_store.add_project_key(conn, project.id, version, wrapped, now)
            vault_store.set_project_key_version(conn, project.id, version)
            audit_store.append(
                conn,
                project.vault_id,
                now,
                actor,
                Action.OPERATOR_ROTATE_KEYS,
                {"project": project.id, "key_version": str(version)},
            )

    def rewrap_all(self) -> int:
        """Rewrap every stale data key; safe to run again after an interruption."""
        with self.deps.db.read() as conn:
            projects = vault_store.all_projects(conn)
        return sum(self._rewrap_project(p.id) for p in projects)

    def _rewrap_project(self, project_id: str) -> int:
        done = 0
        while True:
            with self.deps.db.write() as conn:
                project = vault_store.get_project(conn, project_id)
                if project is None:
                    return done
                batch = secret_store.stale_versions(conn, project.id, project.key_version, BATCH)
                if not batch:
                    return done
                new_key = project_key(self.deps, conn, project, project.key_version)
                for secret_id, version, sealed in batch:
                    old_key = project_key(self.deps, conn, project, sealed.key_version)
                    where = Binding(project.vault_id, project.id, secret_id, version)
                    moved = envelope.rewrap(old_key, new_key, project.key_version, where, sealed)
                    if secret_store.replace_wrapped_dek(conn, secret_id, version, sealed.key_version, moved):
                        done += 1
