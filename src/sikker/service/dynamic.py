"""Dynamic secret definitions (admin plane) and the orphan sweeper.

A dynamic secret is a row of ``secrets`` with kind ``dynamic`` and no stored versions (so
grants, listings, trash and canary freezes work as for any secret, and the read lane hands
its reads to the full path, where ``service/leases.py`` mints), plus its definition in
``dynamic_secrets``. The admin credential stays another secret, referenced by id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson

from sikker.core import dynamic, ids, values
from sikker.core import permissions as perm
from sikker.core.audit import Action, Actor
from sikker.core.dynamic import Definition
from sikker.core.model import Principal, Secret
from sikker.errors import Conflict, InvalidInput, NotFound
from sikker.service.base import Deps, open_version, require
from sikker.service.dynamic_targets import (
    DatabaseUnavailable,
    TargetRefused,
    Targets,
    snapshot_of,
    statement_parts,
)
from sikker.storage import audit as audit_store
from sikker.storage import dynamic as store
from sikker.storage import secrets as secret_store
from sikker.storage import vaults as vault_store
from sikker.storage.database import Connection

# Engines whose provider can mint users (MongoDB and SQL Server: see docs/security.md).
SUPPORTED = ("postgresql", "mysql", "redis", "mongodb", "mssql")
UPDATABLE = (
    "host",
    "port",
    "database",
    "adminSecret",
    "grantRole",
    "defaultTtl",
    "maxTtl",
    "usernameTemplate",
    "creationStatements",
    "revocationStatements",
    "maxLeasesPerMachine",
)


class DynamicService:
    def __init__(
        self, deps: Deps, targets: Targets, attempt: Callable[[str], bool] = lambda _id: False
    ) -> None:
        self.deps = deps
        self.targets = targets
        self.attempt = attempt  # one revocation attempt of a queued lease (LeaseService.attempt)

    # -- lookups -------------------------------------------------------------------------------
    def _definition(self, conn: Connection, principal: Principal, secret_id: str, action: str) -> Definition:
        ids.check("secret", secret_id)
        missing = f"dynamic secret {secret_id} not found"
        definition = store.get_definition(conn, secret_id)
        if definition is None:
            raise NotFound(missing)
        require(principal, action, definition.vault_id, definition.project_id, missing=missing)
        return definition

    def _check(self, conn: Connection, principal: Principal, d: Definition) -> Definition:
        """Validate a whole definition (create and update alike)."""
        if d.engine not in SUPPORTED:
            raise InvalidInput(f"engine must be one of {', '.join(SUPPORTED)}")
        if not 0 < d.port < 65536:
            raise InvalidInput("port must be 1-65535")
        if not d.host or values.has_control(d.host) or len(d.host) > 255:
            raise InvalidInput("host must be 1-255 characters")
        if values.has_control(d.database) or len(d.database) > 255:
            raise InvalidInput("database must be at most 255 characters")
        dynamic.check_ttls(d.default_ttl_s, d.max_ttl_s)
        dynamic.check_template(d.username_template)
        dynamic.username(d.engine, d.id, d.username_template, d.name, "m", "x" * dynamic.RANDOM_LEN, 0)
        grant_role = dynamic.check_grant_role(d.engine, d.grant_role)
        creation = dynamic.check_statements(d.engine, list(d.creation_statements), "creationStatements")
        revocation = dynamic.check_statements(d.engine, list(d.revocation_statements), "revocationStatements")
        if d.max_leases_per_machine is not None and d.max_leases_per_machine < 1:
            raise InvalidInput("maxLeasesPerMachine must be at least 1")
        ids.check("secret", d.admin_secret_id)
        admin = secret_store.get_secret(conn, d.admin_secret_id)
        missing = f"admin secret {d.admin_secret_id} not found"
        if admin is None or admin.vault_id != d.vault_id or admin.deleted_ms is not None:
            raise NotFound(missing)
        require(principal, perm.DYNAMIC_MANAGE, admin.vault_id, admin.project_id, missing=missing)
        if admin.kind != "structured":
            raise InvalidInput("the admin secret must be structured with 'username' and 'password' fields")
        project = vault_store.get_project(conn, admin.project_id)
        assert project is not None
        fields = orjson.loads(open_version(self.deps, conn, project, admin.id, admin.current_version))
        if "username" not in fields or "password" not in fields:
            raise InvalidInput("the admin secret needs 'username' and 'password' fields")
        return replace(
            d, grant_role=grant_role, creation_statements=creation, revocation_statements=revocation
        )

    def _verify_target(self, d: Definition) -> None:
        """Refuse (400) a host that resolves to an address the server may not connect to, and
        ask the database whether the grant role can be given (outside any store transaction).
        A name that does not resolve yet is kept: every connection checks again."""
        try:
            self.targets.address("host", d.host, d.port)
        except TargetRefused as e:
            raise InvalidInput(e.message) from None
        except DatabaseUnavailable:
            pass
        if d.creation_statements:
            return  # custom statements decide what the user gets
        with self.deps.db.read() as conn:
            admin = self.targets.admin_login(conn, d.vault_id, d.admin_secret_id)
        problems = self.targets.call(
            d.id, snapshot_of(d, ""), admin, lambda provider: provider.check_grant_role(d.grant_role)
        )
        if problems:
            raise InvalidInput(f"grantRole: {problems[0]}")

    # -- use cases -----------------------------------------------------------------------------
    def create(self, principal: Principal, actor: Actor, project_id: str, body: dict[str, Any]) -> Definition:
        """A new dynamic secret in ``project_id`` (the grant role is checked on the database)."""
        name = values.check_name(body["name"], "name")
        now = self.deps.clock()
        with self.deps.db.read() as conn:
            ids.check("project", project_id)
            project = vault_store.get_project(conn, project_id)
            missing = f"project {project_id} not found"
            if project is None:
                raise NotFound(missing)
            require(principal, perm.DYNAMIC_MANAGE, project.vault_id, project.id, missing=missing)
            draft = self._check(conn, principal, _from_body(body, ids.new_id("secret"), project, name, now))
        self._verify_target(draft)
        with self.deps.db.write() as conn:
            project = vault_store.get_project(conn, project_id)
            if project is None:
                raise NotFound(f"project {project_id} not found")
            require(principal, perm.DYNAMIC_MANAGE, project.vault_id, project.id)
            secret_store.insert_secret(
                conn, Secret(draft.id, project.vault_id, project.id, name, "dynamic", 0, now, now, None)
            )
            store.insert_definition(conn, draft)
            audit_store.append(
                conn,
                project.vault_id,
                now,
                actor,
                Action.ADMIN_DYNAMIC_CREATE,
                {"project": project.id, "secret": draft.id, "engine": draft.engine},
            )
        return draft

    def list_definitions(self, principal: Principal, project_id: str) -> list[tuple[Definition, int]]:
        with self.deps.db.read() as conn:
            ids.check("project", project_id)
            project = vault_store.get_project(conn, project_id)
            missing = f"project {project_id} not found"
            if project is None:
                raise NotFound(missing)
            require(principal, perm.SECRET_LIST, project.vault_id, project.id, missing=missing)
            return [(d, store.count_live(conn, d.id)) for d in store.list_definitions(conn, project.id)]

    def get(self, principal: Principal, secret_id: str) -> tuple[Definition, int]:
        with self.deps.db.read() as conn:
            d = self._definition(conn, principal, secret_id, perm.SECRET_LIST)
            return d, store.count_live(conn, d.id)

    def update(
        self, principal: Principal, actor: Actor, secret_id: str, body: dict[str, Any]
    ) -> tuple[Definition, int]:
        """Change some fields; live leases keep their own snapshot (and TTLs)."""
        now = self.deps.clock()
        with self.deps.db.read() as conn:
            current = self._definition(conn, principal, secret_id, perm.DYNAMIC_MANAGE)
            draft = self._check(conn, principal, _changed(current, body, now))
        if (draft.host, draft.port, draft.database, draft.admin_secret_id, draft.grant_role) != (
            current.host,
            current.port,
            current.database,
            current.admin_secret_id,
            current.grant_role,
        ):
            self._verify_target(draft)
        with self.deps.db.write() as conn:
            self._definition(conn, principal, secret_id, perm.DYNAMIC_MANAGE)
            store.update_definition(conn, draft)
            audit_store.append(
                conn,
                draft.vault_id,
                now,
                actor,
                Action.ADMIN_DYNAMIC_UPDATE,
                {"project": draft.project_id, "secret": draft.id, "fields": ",".join(sorted(body))[:200]},
            )
            return draft, store.count_live(conn, draft.id)

    def delete(self, principal: Principal, actor: Actor, secret_id: str, revoke: bool) -> int:
        """Trash the dynamic secret. Refused (409) while leases are live unless ``revoke``, which
        queues their revocation in the same transaction, then attempts each (a database that is
        down leaves them to the sweeper). Returns how many were queued."""
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            d = self._definition(conn, principal, secret_id, perm.DYNAMIC_MANAGE)
            active = store.count_live(conn, d.id, ("creating", "active"))
            queued: list[str] = []
            if active and not revoke:
                raise Conflict(
                    f"dynamic secret {d.id} has {active} live lease(s); revoke them first, "
                    "or delete with ?revoke=true"
                )
            if revoke:
                who = f"{actor.kind}:{actor.id}"
                queued = store.queue_revocations(
                    conn, now, "dynamic secret deleted", who, dynamic_secret_ids=[d.id]
                )
            secret_store.set_deleted(conn, d.id, now, now)
            audit_store.append(
                conn,
                d.vault_id,
                now,
                actor,
                Action.ADMIN_DYNAMIC_DELETE,
                {"project": d.project_id, "secret": d.id, "revoked": str(len(queued))},
            )
        for lease_id in queued[:100]:  # the rest (if any) is the sweeper's
            self.attempt(lease_id)
        return len(queued)

    def orphans(
        self, principal: Principal, actor: Actor, secret_id: str, dry_run: bool
    ) -> tuple[list[str], list[str]]:
        """Users on the database with this definition's prefix and no live lease; dropped unless
        ``dry_run``. A lease row is committed before its user is created, so a user listed here
        whose lease is being created is seen as live."""
        with self.deps.db.read() as conn:
            d = self._definition(conn, principal, secret_id, perm.DYNAMIC_MANAGE)
            admin = self.targets.admin_login(conn, d.vault_id, d.admin_secret_id)
        prefix = dynamic.user_prefix(d.id)
        found = self.targets.call(d.id, snapshot_of(d, ""), admin, lambda p: p.list_users(prefix))
        with self.deps.db.read() as conn:
            live = store.usernames_with_live_lease(conn, d.id, found)
        orphans = [name for name in found if name not in live and name != admin[0]]
        dropped: list[str] = []
        if not dry_run:
            parts = statement_parts(d.revocation_statements)
            for name in orphans:
                self._drop(d, admin, name, parts)
                dropped.append(name)
        with self.deps.db.write() as conn:
            audit_store.append(
                conn,
                d.vault_id,
                self.deps.clock(),
                actor,
                Action.ADMIN_DYNAMIC_ORPHANS,
                {
                    "project": d.project_id,
                    "secret": d.id,
                    "orphans": str(len(orphans)),
                    "dropped": ",".join(dropped)[:400],
                    "dry_run": str(dry_run).lower(),
                },
            )
        return orphans, dropped

    def _drop(self, d: Definition, admin: tuple[str, str, int], name: str, parts: Any) -> None:
        snapshot = snapshot_of(d, name)
        self.targets.call(d.id, snapshot, admin, lambda p: p.revoke_user(name, parts, d.grant_role))


def _from_body(body: dict[str, Any], secret_id: str, project: Any, name: str, now: int) -> Definition:
    engine = body["engine"]
    return Definition(
        id=secret_id,
        vault_id=project.vault_id,
        project_id=project.id,
        name=name,
        engine=engine,
        host=body["host"],
        port=body["port"],
        database=body.get("database") or "",
        admin_secret_id=body["adminSecret"],
        grant_role=body["grantRole"],
        default_ttl_s=body["defaultTtl"],
        max_ttl_s=body["maxTtl"],
        username_template=body.get("usernameTemplate") or dynamic.DEFAULT_TEMPLATE,
        creation_statements=tuple(body.get("creationStatements") or ()),
        revocation_statements=tuple(body.get("revocationStatements") or ()),
        max_leases_per_machine=body.get("maxLeasesPerMachine"),
        created_ms=now,
        updated_ms=now,
    )


def _changed(d: Definition, body: dict[str, Any], now: int) -> Definition:
    unknown = sorted(set(body) - set(UPDATABLE))
    if unknown:
        raise InvalidInput(f"cannot change {', '.join(unknown)} (name and engine are fixed)")
    changes: dict[str, Any] = {"updated_ms": now}
    mapping = {
        "host": "host",
        "port": "port",
        "database": "database",
        "adminSecret": "admin_secret_id",
        "grantRole": "grant_role",
        "defaultTtl": "default_ttl_s",
        "maxTtl": "max_ttl_s",
        "usernameTemplate": "username_template",
        "maxLeasesPerMachine": "max_leases_per_machine",
    }
    for key, attr in mapping.items():
        if key in body:
            changes[attr] = body[key]
    for key, attr in (
        ("creationStatements", "creation_statements"),
        ("revocationStatements", "revocation_statements"),
    ):
        if key in body:
            changes[attr] = tuple(body[key] or ())
    return replace(d, **changes)
