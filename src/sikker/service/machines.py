"""Admin use cases for the machine plane: machines, memberships, grants, enrollment tokens.

Machines and enrollment tokens belong to a vault: listing, renaming, state changes, a
machine's grant list and enrollment tokens need ``machine:manage`` / ``enrollment:manage``
at the vault. Membership of a project needs ``machine:manage`` on that project, and a
grant ``grant:manage`` on the secret's project, so a project-bound developer can wire
machines to its own project (the machine must be in a vault it sees).

Every change commits with its audit record. Changes take effect on the next
machine request: the read path consults the store each time.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets as pysecrets
from dataclasses import replace

from sikker.core import hostnames, ids, values
from sikker.core import permissions as perm
from sikker.core.audit import Action, Actor
from sikker.core.model import EnrollmentToken, Machine, Principal
from sikker.errors import Conflict, InvalidInput, NotFound
from sikker.service.base import Deps, require
from sikker.storage import audit as audit_store
from sikker.storage import dynamic as lease_store
from sikker.storage import machines as machine_store
from sikker.storage import secrets as secret_store
from sikker.storage import vaults as vault_store
from sikker.storage.database import Connection

ENROLL_PREFIX = "sikker_enroll_"
MAX_ENROLL_USES = 10_000
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

STATE_CHANGES: dict[str, tuple[Action, dict[str, object]]] = {
    "approve": (Action.ADMIN_MACHINE_APPROVE, {"approved": True}),
    "disable": (Action.ADMIN_MACHINE_DISABLE, {"enabled": False}),
    "enable": (Action.ADMIN_MACHINE_ENABLE, {"enabled": True}),
}


def enrollment_hash(plaintext: str) -> bytes:
    return hashlib.sha256(plaintext.encode()).digest()


def check_machine_id(machine_id: str) -> str:
    canonical = machine_id.strip().lower() if isinstance(machine_id, str) else ""
    if not _UUID.match(canonical):
        raise InvalidInput("malformed machine id (expected a UUID)")
    return canonical


def check_cidr(cidr: str) -> str:
    try:
        return str(ipaddress.ip_network(cidr, strict=False))
    except ValueError as e:
        raise InvalidInput(f"not a CIDR range: {cidr[:64]!r}") from e


class MachineAdmin:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def _machine(
        self, conn: Connection, principal: Principal, machine_id: str, action: str = perm.MACHINE_MANAGE
    ) -> Machine:
        """A machine; ``action`` is asked at its vault (``vault:read`` when the real check is
        per project, made by the caller)."""
        machine = machine_store.get_machine(conn, check_machine_id(machine_id))
        missing = f"machine {machine_id} not found"
        if machine is None:
            raise NotFound(missing)
        require(principal, action, machine.vault_id, missing=missing)
        return machine

    def _vault(self, conn: Connection, principal: Principal, vault_id: str, action: str) -> None:
        ids.check("vault", vault_id)
        require(principal, action, vault_id, missing=f"vault {vault_id} not found")
        if vault_store.get_vault(conn, vault_id) is None:
            raise NotFound(f"vault {vault_id} not found")

    def list_machines(self, principal: Principal, vault_id: str) -> list[tuple[Machine, list[str]]]:
        with self.deps.db.read() as conn:
            self._vault(conn, principal, vault_id, perm.MACHINE_MANAGE)
            return [
                (m, [p for p, _ in machine_store.member_projects(conn, m.id)])
                for m in machine_store.list_machines(conn, vault_id)
            ]

    def get(self, principal: Principal, machine_id: str) -> Machine:
        with self.deps.db.read() as conn:
            return self._machine(conn, principal, machine_id)

    def change_state(self, principal: Principal, actor: Actor, machine_id: str, change: str) -> Machine:
        """approve | disable | enable | revoke."""
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            machine = self._machine(conn, principal, machine_id)
            if machine.revoked_ms is not None:
                raise Conflict(f"machine {machine.id} is revoked; enroll a new one")
            update: dict[str, object]
            if change == "revoke":
                action, update = Action.ADMIN_MACHINE_REVOKE, {"revoked_ms": now, "enabled": False}
            else:
                action, update = STATE_CHANGES[change]
            machine_store.update_machine(conn, machine.id, **update)
            if change in ("revoke", "disable"):
                # Its database users go too: revocation jobs queued with the change.
                lease_store.queue_revocations(
                    conn, now, f"machine {change}d", f"{actor.kind}:{actor.id}", machine_id=machine.id
                )
            audit_store.append(conn, machine.vault_id, now, actor, action, {"machine": machine.id})
            return machine_store.get_machine(conn, machine.id) or machine

    def rename(self, principal: Principal, actor: Actor, machine_id: str, name: str) -> Machine:
        values.check_name(name, "machine name")
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            machine = self._machine(conn, principal, machine_id)
            machine_store.update_machine(conn, machine.id, name=name)
            audit_store.append(
                conn, machine.vault_id, now, actor, Action.ADMIN_MACHINE_RENAME, {"machine": machine.id}
            )
        return replace(machine, name=name)

    def set_membership(
        self, principal: Principal, actor: Actor, machine_id: str, project_id: str, member: bool
    ) -> bool:
        ids.check("project", project_id)
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            machine = self._machine(conn, principal, machine_id, perm.VAULT_READ)
            project = vault_store.get_project(conn, project_id)
            missing = f"project {project_id} not found in the machine's vault"
            if project is None or project.vault_id != machine.vault_id:
                raise NotFound(missing)
            require(principal, perm.MACHINE_MANAGE, project.vault_id, project.id, missing=missing)
            if member:
                changed = machine_store.add_membership(conn, machine.id, project.id, now)
                action = Action.ADMIN_MEMBERSHIP_ADD
            else:
                changed = machine_store.remove_membership(conn, machine.id, project.id)
                action = Action.ADMIN_MEMBERSHIP_REMOVE
                lease_store.queue_revocations(
                    conn,
                    now,
                    "machine removed from the project",
                    f"{actor.kind}:{actor.id}",
                    machine_id=machine.id,
                    project_id=project.id,
                )
            if changed:
                audit_store.append(
                    conn, machine.vault_id, now, actor, action, {"machine": machine.id, "project": project.id}
                )
            return changed

    def set_grants(
        self, principal: Principal, actor: Actor, machine_id: str, secret_ids: list[str], granted: bool
    ) -> int:
        now = self.deps.clock()
        changed = 0
        with self.deps.db.write() as conn:
            machine = self._machine(conn, principal, machine_id, perm.VAULT_READ)
            projects = {p for p, _ in machine_store.member_projects(conn, machine.id)}
            for secret_id in secret_ids:
                ids.check("secret", secret_id)
                secret = secret_store.get_secret(conn, secret_id)
                missing = f"secret {secret_id} not found in the machine's vault"
                if secret is None or secret.vault_id != machine.vault_id:
                    raise NotFound(missing)
                require(principal, perm.GRANT_MANAGE, secret.vault_id, secret.project_id, missing=missing)
                if granted and secret.project_id not in projects:
                    raise Conflict(
                        f"machine {machine.id} is not in project {secret.project_id}; add it first "
                        f"with 'sikker machine add --project {secret.project_id} {machine.id}'"
                    )
                if granted:
                    done = machine_store.add_grant(conn, machine.id, secret_id, now)
                else:
                    done = machine_store.remove_grant(conn, machine.id, secret_id)
                    if secret.kind == "dynamic":
                        lease_store.queue_revocations(
                            conn,
                            now,
                            "grant removed",
                            f"{actor.kind}:{actor.id}",
                            machine_id=machine.id,
                            dynamic_secret_ids=[secret_id],
                        )
                if done:
                    changed += 1
                    audit_store.append(
                        conn,
                        machine.vault_id,
                        now,
                        actor,
                        Action.ADMIN_GRANT_ADD if granted else Action.ADMIN_GRANT_REMOVE,
                        {"machine": machine.id, "secret": secret_id, "project": secret.project_id},
                    )
        return changed

    def grants_of_machine(self, principal: Principal, machine_id: str) -> list[str]:
        with self.deps.db.read() as conn:
            machine = self._machine(conn, principal, machine_id)
            return machine_store.grants_of_machine(conn, machine.id)

    def grants_of_secret(self, principal: Principal, secret_id: str) -> list[str]:
        ids.check("secret", secret_id)
        with self.deps.db.read() as conn:
            secret = secret_store.get_secret(conn, secret_id)
            if secret is None:
                raise NotFound(f"secret {secret_id} not found")
            require(
                principal,
                perm.GRANT_MANAGE,
                secret.vault_id,
                secret.project_id,
                missing=f"secret {secret_id} not found",
            )
            return machine_store.grants_of_secret(conn, secret_id)

    # -- enrollment tokens -----------------------------------------------------------
    def create_enrollment(
        self,
        principal: Principal,
        actor: Actor,
        vault_id: str,
        *,
        name: str,
        project_ids: list[str],
        secret_ids: list[str],
        max_uses: int,
        token_ttl_s: int,
        machine_ttl_s: int | None,
        approval: str,
        hostname_pattern: str | None,
        name_pattern: str | None,
        source_cidr: str | None,
    ) -> tuple[EnrollmentToken, str]:
        values.check_name(name, "token name")
        if not 1 <= max_uses <= MAX_ENROLL_USES:
            raise InvalidInput(f"max uses must be between 1 and {MAX_ENROLL_USES}")
        if not 60 <= token_ttl_s <= 366 * 86400:
            raise InvalidInput("token lifetime must be between 60 seconds and 366 days")
        if machine_ttl_s is not None and not 60 <= machine_ttl_s <= 366 * 86400:
            raise InvalidInput("machine lifetime must be between 60 seconds and 366 days")
        if approval not in ("auto", "manual"):
            raise InvalidInput("approval must be 'auto' or 'manual'")
        plaintext = ENROLL_PREFIX + pysecrets.token_urlsafe(32)
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            self._vault(conn, principal, vault_id, perm.ENROLLMENT_MANAGE)
            for project_id in project_ids:
                project = vault_store.get_project(conn, ids.check("project", project_id))
                if project is None or project.vault_id != vault_id:
                    raise NotFound(f"project {project_id} not found in vault {vault_id}")
            for secret_id in secret_ids:
                secret = secret_store.get_secret(conn, ids.check("secret", secret_id))
                if secret is None or secret.vault_id != vault_id or secret.deleted_ms is not None:
                    raise NotFound(f"secret {secret_id} not found in vault {vault_id}")
                if secret.project_id not in project_ids:
                    raise InvalidInput(
                        f"secret {secret_id} is in project {secret.project_id}; add --project for it"
                    )
            token = EnrollmentToken(
                id=ids.new_id("enroll"),
                vault_id=vault_id,
                name=name,
                project_ids=tuple(dict.fromkeys(project_ids)),
                secret_ids=tuple(dict.fromkeys(secret_ids)),
                max_uses=max_uses,
                uses=0,
                approval=approval,
                machine_ttl_s=machine_ttl_s,
                hostname_pattern=hostnames.check(hostname_pattern) if hostname_pattern else None,
                name_pattern=values.check_name(name_pattern, "name pattern") if name_pattern else None,
                source_cidr=check_cidr(source_cidr) if source_cidr else None,
                created_ms=now,
                expires_ms=now + token_ttl_s * 1000,
                revoked_ms=None,
            )
            machine_store.insert_enrollment(conn, token, enrollment_hash(plaintext))
            audit_store.append(
                conn, vault_id, now, actor, Action.ADMIN_ENROLL_TOKEN_CREATE, {"enrollment_token": token.id}
            )
        return token, plaintext

    def enrollment_vault(self, token: str) -> str:
        """The vault of a live enrollment token (for the bootstrap script); 404 otherwise."""
        with self.deps.db.read() as conn:
            found = machine_store.find_enrollment(conn, enrollment_hash(token))
        now = self.deps.clock()
        if (
            found is None
            or found.revoked_ms is not None
            or found.expires_ms <= now
            or found.uses >= found.max_uses
        ):
            raise NotFound("enrollment token not found or no longer valid")
        return found.vault_id

    def list_enrollments(self, principal: Principal, vault_id: str) -> list[EnrollmentToken]:
        with self.deps.db.read() as conn:
            self._vault(conn, principal, vault_id, perm.ENROLLMENT_MANAGE)
            return machine_store.list_enrollments(conn, vault_id)

    def revoke_enrollment(self, principal: Principal, actor: Actor, token_id: str) -> None:
        ids.check("enroll", token_id)
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            token = machine_store.get_enrollment(conn, token_id)
            missing = f"enrollment token {token_id} not found"
            if token is None:
                raise NotFound(missing)
            require(principal, perm.ENROLLMENT_MANAGE, token.vault_id, missing=missing)
            machine_store.revoke_enrollment(conn, token_id, now)
            audit_store.append(
                conn,
                token.vault_id,
                now,
                actor,
                Action.ADMIN_ENROLL_TOKEN_REVOKE,
                {"enrollment_token": token_id},
            )
