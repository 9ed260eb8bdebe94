"""Vaults and projects."""

from __future__ import annotations

from sikker.core import ids, values
from sikker.core.audit import Action, Actor
from sikker.core.model import Principal, Project, Vault
from sikker.crypto import envelope
from sikker.errors import Conflict, NotFound, PermissionDenied
from sikker.service.base import Deps
from sikker.storage import audit as audit_store
from sikker.storage import vaults as vault_store


class VaultService:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def create_vault(self, principal: Principal, actor: Actor, name: str) -> Vault:
        if principal.kind != "root":
            raise PermissionDenied("only the root token can create vaults")
        values.check_name(name, "vault name")
        vault = Vault(ids.new_id("vault"), name, self.deps.clock())
        with self.deps.db.write() as conn:
            vault_store.insert_vault(conn, vault)
            audit_store.append(
                conn, vault.id, vault.created_ms, actor, Action.ADMIN_VAULT_CREATE, {"vault": vault.id}
            )
        return vault

    def list_vaults(self, principal: Principal) -> list[Vault]:
        with self.deps.db.read() as conn:
            return vault_store.list_vaults(conn, principal.vault_id)

    def check_vault(self, principal: Principal, vault_id: str) -> None:
        ids.check("vault", vault_id)
        if not principal.can_access(vault_id):
            raise NotFound(f"vault {vault_id} not found")
        with self.deps.db.read() as conn:
            if vault_store.get_vault(conn, vault_id) is None:
                raise NotFound(f"vault {vault_id} not found")

    def create_project(self, principal: Principal, actor: Actor, vault_id: str, name: str) -> Project:
        values.check_name(name, "project name")
        self.check_vault(principal, vault_id)
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
        self.check_vault(principal, vault_id)
        with self.deps.db.read() as conn:
            return vault_store.list_projects(conn, vault_id)

    def get_project(self, principal: Principal, project_id: str) -> Project:
        ids.check("project", project_id)
        with self.deps.db.read() as conn:
            project = vault_store.get_project(conn, project_id)
        if project is None or not principal.can_access(project.vault_id):
            raise NotFound(f"project {project_id} not found")
        return project

    def delete_project(self, principal: Principal, actor: Actor, project_id: str) -> None:
        project = self.get_project(principal, project_id)
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
