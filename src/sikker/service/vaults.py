"""Vaults and projects."""

from __future__ import annotations

from sikker.core import ids, values
from sikker.core import permissions as perm
from sikker.core.audit import Action, Actor
from sikker.core.model import Principal, Project, Vault
from sikker.crypto import envelope
from sikker.errors import Conflict, NotFound
from sikker.service.base import Deps, require
from sikker.storage import audit as audit_store
from sikker.storage import vaults as vault_store


class VaultService:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def create_vault(self, principal: Principal, actor: Actor, name: str) -> Vault:
        require(principal, perm.VAULT_CREATE, None)
        values.check_name(name, "vault name")
        vault = Vault(ids.new_id("vault"), name, self.deps.clock())
        with self.deps.db.write() as conn:
            vault_store.insert_vault(conn, vault)
            audit_store.append(
                conn, vault.id, vault.created_ms, actor, Action.ADMIN_VAULT_CREATE, {"vault": vault.id}
            )
        return vault

    def list_vaults(self, principal: Principal) -> list[Vault]:
        """The vaults where ``principal`` holds a binding (root: all)."""
        with self.deps.db.read() as conn:
            found = vault_store.list_vaults(conn)
        return [v for v in found if perm.allowed(principal, perm.VAULT_READ, v.id)]

    def check_vault(self, principal: Principal, vault_id: str, action: str = perm.VAULT_READ) -> None:
        ids.check("vault", vault_id)
        require(principal, action, vault_id, missing=f"vault {vault_id} not found")
        with self.deps.db.read() as conn:
            if vault_store.get_vault(conn, vault_id) is None:
                raise NotFound(f"vault {vault_id} not found")

    def create_project(self, principal: Principal, actor: Actor, vault_id: str, name: str) -> Project:
        values.check_name(name, "project name")
        self.check_vault(principal, vault_id, perm.PROJECT_WRITE)
        project = Project(ids.new_id("project"), vault_id, name, 1, self.deps.clock())
        wrapped = self.deps.keyring.wrap_project_key(vault_id, project.id, 1, envelope.new_key())
        with self.deps.db.write() as conn:
            vault_store.insert_project(conn, project, wrapped)
            audit_store.append(
                conn,
                vault_id,
                project.created_ms,
                actor,
                Action.ADMIN_PROJECT_CREATE,
                {"project": project.id},
            )
        return project

    def list_projects(self, principal: Principal, vault_id: str) -> list[Project]:
        """The projects of a vault ``principal`` may see (a project binding: its project)."""
        self.check_vault(principal, vault_id)
        with self.deps.db.read() as conn:
            found = vault_store.list_projects(conn, vault_id)
        return [p for p in found if perm.allowed(principal, perm.PROJECT_READ, vault_id, p.id)]

    def get_project(self, principal: Principal, project_id: str, action: str = perm.PROJECT_READ) -> Project:
        ids.check("project", project_id)
        with self.deps.db.read() as conn:
            project = vault_store.get_project(conn, project_id)
        missing = f"project {project_id} not found"
        if project is None:
            raise NotFound(missing)
        require(principal, action, project.vault_id, project.id, missing=missing)
        return project

    def delete_project(self, principal: Principal, actor: Actor, project_id: str) -> None:
        project = self.get_project(principal, project_id, perm.PROJECT_WRITE)
        with self.deps.db.write() as conn:
            live = vault_store.count_live_secrets(conn, project_id)
            if live:
                raise Conflict(f"project {project_id} still holds {live} secret(s); delete them first")
            vault_store.delete_project(conn, project_id)
            audit_store.append(
                conn,
                project.vault_id,
                self.deps.clock(),
                actor,
                Action.ADMIN_PROJECT_DELETE,
                {"project": project_id},
            )
