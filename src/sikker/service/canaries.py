"""Canary secrets: decoys that freeze their project the moment anyone reads them.

A canary is an ordinary secret (same id format, same kind, same list and export
entries); only the ``canaries`` table marks it. Reading it — by a machine
(get or export) or through the admin plane — freezes its project (and, if set,
related projects) and writes a critical ``canary`` audit record in the SAME
transaction as the read, and only then is the usual 200 with the decoy value
returned, so the reader learns nothing. Alerts are audit streams routed on that
record (webhook, email, syslog: ``sikker audit stream add ... --action 'canary:*'``).

While a project is frozen, machines that belong to it get 423 on every request,
and admin reads of its secrets get 423; admin management keeps working.
"""

from __future__ import annotations

import secrets as pysecrets
import string

from sikker.core import ids, values
from sikker.core import permissions as perm
from sikker.core.audit import Action, Actor
from sikker.core.model import Canary, Principal, Secret, Trip
from sikker.errors import Conflict, InvalidInput, NotFound
from sikker.service.base import Deps, require
from sikker.service.secrets import SecretService
from sikker.storage import audit as audit_store
from sikker.storage import canaries as canary_store
from sikker.storage import vaults as vault_store
from sikker.storage.database import Connection

SHAPES = ("aws-access-key", "postgres-url", "api-token", "password", "structured-db")
_UPPER_ALNUM = string.ascii_uppercase + string.digits
_ALNUM = string.ascii_letters + string.digits


def _random(alphabet: str, n: int) -> str:
    return "".join(pysecrets.choice(alphabet) for _ in range(n))


def decoy(shape: str) -> values.SecretValue:
    """A realistic value of the given shape (the server makes it; nobody legitimate uses it)."""
    host = f"db-{_random(string.ascii_lowercase, 4)}-{pysecrets.randbelow(9) + 1}.internal"
    user = f"svc_{_random(string.ascii_lowercase, 6)}"
    password = _random(_ALNUM + "!#%*+-_", 24)
    if shape == "aws-access-key":
        return values.structured(
            {
                "aws_access_key_id": "AKIA" + _random(_UPPER_ALNUM, 16),
                "aws_secret_access_key": _random(_ALNUM + "/+", 40),
            }
        )
    if shape == "postgres-url":
        return values.standard(f"postgresql://{user}:{_random(_ALNUM, 20)}@{host}:5432/app")
    if shape == "api-token":
        return values.standard("sk_live_" + _random(_ALNUM, 32))
    if shape == "password":
        return values.standard(password)
    if shape == "structured-db":
        return values.structured(
            {"host": host, "port": "5432", "database": "app", "username": user, "password": password}
        )
    raise InvalidInput(f"--looks-like must be one of {', '.join(SHAPES)}")


class CanaryService:
    def __init__(self, deps: Deps, secrets: SecretService) -> None:
        self.deps = deps
        self.secrets = secrets

    def create(
        self,
        principal: Principal,
        actor: Actor,
        project_id: str,
        name: str,
        shape: str,
        freeze_related: list[str] | None,
    ) -> Secret:
        value = decoy(shape)
        related = list(dict.fromkeys(freeze_related or []))
        with self.deps.db.read() as conn:
            project = vault_store.get_project(conn, ids.check("project", project_id))
            missing = f"project {project_id} not found"
            if project is None:
                raise NotFound(missing)
            require(principal, perm.CANARY_MANAGE, project.vault_id, project.id, missing=missing)
            for other in related:
                found = vault_store.get_project(conn, ids.check("project", other))
                missing = f"project {other} not found in the canary's vault"
                if found is None or found.vault_id != project.vault_id:
                    raise NotFound(missing)
                require(principal, perm.CANARY_MANAGE, found.vault_id, found.id, missing=missing)
        secret = self.secrets.create(
            principal,
            actor,
            project_id,
            name,
            value,
            lambda conn, s: canary_store.insert_canary(
                conn, Canary(s.id, shape, True, bool(related), related, self.deps.clock())
            ),
        )
        return secret

    def _canary(self, conn: Connection, principal: Principal, secret_id: str) -> tuple[Canary, Secret]:
        from sikker.storage import secrets as secret_store

        secret = secret_store.get_secret(conn, ids.check("secret", secret_id))
        canary = canary_store.get_canary(conn, secret_id) if secret else None
        missing = f"canary {secret_id} not found"
        if secret is None:
            raise NotFound(missing)
        # Asked before telling whether it is a canary: who may not manage canaries learns nothing.
        require(principal, perm.CANARY_MANAGE, secret.vault_id, secret.project_id, missing=missing)
        if canary is None:
            raise NotFound(missing)
        return canary, secret

    def list_canaries(self, principal: Principal, vault_id: str) -> list[tuple[Canary, str, str]]:
        """The canaries of a vault (``canary:manage`` at the vault)."""
        ids.check("vault", vault_id)
        require(principal, perm.CANARY_MANAGE, vault_id, missing=f"vault {vault_id} not found")
        with self.deps.db.read() as conn:
            return canary_store.list_canaries(conn, vault_id)

    def show(self, principal: Principal, secret_id: str) -> tuple[Canary, Secret, list[Trip]]:
        with self.deps.db.read() as conn:
            canary, secret = self._canary(conn, principal, secret_id)
            return canary, secret, canary_store.trips(conn, secret_id)

    def set_enabled(self, principal: Principal, actor: Actor, secret_id: str, enabled: bool) -> None:
        with self.deps.db.write() as conn:
            _, secret = self._canary(conn, principal, secret_id)
            canary_store.update_canary(conn, secret_id, enabled=enabled)
            audit_store.append(
                conn,
                secret.vault_id,
                self.deps.clock(),
                actor,
                Action.ADMIN_CANARY_ENABLE if enabled else Action.ADMIN_CANARY_DISABLE,
                {"secret": secret_id, "project": secret.project_id},
            )

    def unfreeze(self, principal: Principal, actor: Actor, project_id: str, reason: str) -> None:
        if not reason.strip():
            raise InvalidInput("say why the project is safe to unfreeze (--reason)")
        with self.deps.db.write() as conn:
            project = vault_store.get_project(conn, ids.check("project", project_id), for_update=True)
            missing = f"project {project_id} not found"
            if project is None:
                raise NotFound(missing)
            require(principal, perm.PROJECT_UNFREEZE, project.vault_id, project.id, missing=missing)
            if not canary_store.unfreeze(conn, project_id):
                raise Conflict(f"project {project_id} is not frozen")
            audit_store.append(
                conn,
                project.vault_id,
                self.deps.clock(),
                actor,
                Action.ADMIN_PROJECT_UNFREEZE,
                {"project": project_id},
                "ok",
                reason[:300],
            )
