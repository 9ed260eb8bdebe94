"""Admin use cases of JWT roles (workload identity): create, list, show, update, disable,
enable, delete and test. Every one needs ``jwt_role:manage`` at the role's vault.

Disabling or deleting a role revokes every live machine it created, in the same transaction
and the same way ``machine revoke`` does (the access epoch moves, so every node and the read
lane refuse those machines at their next request).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from sikker.core import ids, values
from sikker.core import jwt_roles as checks
from sikker.core import permissions as perm
from sikker.core.audit import Action, Actor
from sikker.core.jwt_roles import Check
from sikker.core.model import JwtRole, Principal
from sikker.core.netpolicy import address_allowed, inside
from sikker.errors import InvalidInput, NotFound
from sikker.service.base import Deps, require
from sikker.service.jwks import check_public_key
from sikker.service.jwt_login import JwtLogin
from sikker.service.machines import check_cidr
from sikker.service.streams.destination import system_resolver
from sikker.storage import audit as audit_store
from sikker.storage import jwt_roles as role_store
from sikker.storage import machines as machine_store
from sikker.storage import secrets as secret_store
from sikker.storage import vaults as vault_store
from sikker.storage.database import Connection

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
KEY_SOURCES = ("discovery_url", "jwks_url", "public_keys")
MAX_AUDIENCES = 20
MAX_CLAIMS = 32
MAX_CLAIM_VALUES = 50
MAX_PUBLIC_KEYS = 10
MAX_CIDRS = 20
FIELDS = frozenset(
    {
        "name",
        "issuer",
        *KEY_SOURCES,
        "bound_audiences",
        "bound_subject",
        "bound_claims",
        "name_claim",
        "projects",
        "secrets",
        "machine_ttl",
        "source_cidrs",
        "kubernetes",
        "enabled",
    }
)


def _text(value: object, what: str, limit: int, multiline: bool = False) -> str:
    if not isinstance(value, str) or not value or len(value) > limit or values.has_control(value, multiline):
        raise InvalidInput(f"{what} must be a string of 1 to {limit} characters without control characters")
    return value


def _texts(value: object, what: str, most: int, limit: int = 256, multiline: bool = False) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not 1 <= len(value) <= most:
        raise InvalidInput(f"{what} must be a list of 1 to {most} strings")
    return tuple(dict.fromkeys(_text(v, what, limit, multiline) for v in value))


class JwtRoleAdmin:
    def __init__(self, deps: Deps, login: JwtLogin) -> None:
        self.deps = deps
        self.login = login

    # -- validation -----------------------------------------------------------------------------
    def _url(self, url: object, what: str) -> str:
        url = _text(url, what, 2048)
        problem = self.login.keys.fetcher.url_problem(url)
        if problem:
            raise InvalidInput(f"{what} is {problem}")
        import httpx  # on first use (jwks.Fetcher)

        parsed = httpx.URL(url)
        allowed = self.deps.settings.jwks_allowed_networks
        try:
            literal = [str(ipaddress.ip_address(parsed.host.strip("[]")))]
        except ValueError:
            try:  # a name: refuse it if it resolves to a refused address; an unknown name may
                literal = system_resolver(parsed.host, parsed.port or 443)  # resolve later
            except (OSError, UnicodeError):
                literal = []
        for address in literal:
            if not address_allowed(address, allowed):
                raise InvalidInput(
                    f"{what}: {parsed.host} ({address}) is not allowed (loopback, private, link-local "
                    "and metadata addresses are refused; the operator can allow a network with "
                    "jwks_allowed_networks)"
                )
        if parsed.scheme == "http" and not (literal and all(inside(a, allowed) for a in literal)):
            raise InvalidInput(f"{what} must start with https:// (http:// only inside jwks_allowed_networks)")
        return url

    def _check_urls(self, spec: Mapping[str, Any]) -> None:
        for key, what in (("discovery_url", "discoveryUrl"), ("jwks_url", "jwksUrl")):
            if spec.get(key) is not None:
                self._url(spec[key], what)

    def _claims(self, value: object) -> dict[str, tuple[str, ...]] | None:
        if value is None:
            return None
        if not isinstance(value, dict) or len(value) > MAX_CLAIMS:
            raise InvalidInput(f"boundClaims must be an object of at most {MAX_CLAIMS} claims")
        out = {}
        for path, allowed in value.items():
            _text(path, "a boundClaims claim name", checks.CLAIM_PATH_MAX)
            out[path] = _texts(allowed, f"boundClaims.{path[:64]}", MAX_CLAIM_VALUES, checks.GLOB_MAX)
        return out

    def _kubernetes(self, value: object) -> tuple[str | None, str | None]:
        if value is None:
            return None, None
        if not isinstance(value, dict) or set(value) - {"mode", "cluster"}:
            raise InvalidInput('kubernetes must be {"mode": "jwks" | "tokenreview", "cluster": NAME}')
        mode, cluster = value.get("mode"), value.get("cluster")
        if mode not in ("jwks", "tokenreview"):
            raise InvalidInput("kubernetes.mode must be 'jwks' or 'tokenreview'")
        if mode == "tokenreview":
            names = [c.name for c in self.deps.settings.kubernetes_clusters]
            if cluster not in names:
                known = ", ".join(names) or "none configured"
                raise InvalidInput(
                    f"kubernetes.cluster must name a cluster of the server's configuration ({known})"
                )
        elif cluster is not None:
            raise InvalidInput("kubernetes.cluster is for mode 'tokenreview' only")
        return str(mode), str(cluster) if cluster is not None else None

    def _build(self, conn: Connection, base: JwtRole, changes: Mapping[str, Any]) -> JwtRole:
        """``base`` with ``changes`` applied, every field checked (400 on the first problem)."""
        unknown = set(changes) - FIELDS
        if unknown:
            raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))}")
        role = base
        if "name" in changes:
            name = changes["name"]
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                raise InvalidInput("a JWT role's name is 1 to 64 of A-Z, a-z, 0-9, '.', '_' and '-'")
            role = replace(role, name=name)
        if "issuer" in changes:
            role = replace(role, issuer=_text(changes["issuer"], "issuer", 512))
        if any(k in changes and changes[k] is not None for k in KEY_SOURCES):
            given = [k for k in KEY_SOURCES if changes.get(k) is not None]
            if len(given) != 1:
                raise InvalidInput("give exactly one of discoveryUrl, jwksUrl and publicKeys")
            keys = None
            if given == ["public_keys"]:
                keys = _texts(
                    changes["public_keys"], "publicKeys", MAX_PUBLIC_KEYS, 16 * 1024, multiline=True
                )
                if not all(check_public_key(k.replace("\r\n", "\n")) for k in keys):
                    raise InvalidInput(
                        "each of publicKeys must be a PEM public key (RSA, EC P-256 or Ed25519)"
                    )
            role = replace(
                role,
                # URLs were checked by ``_check_urls`` before the transaction (it may resolve names)
                discovery_url=changes["discovery_url"] if given == ["discovery_url"] else None,
                jwks_url=changes["jwks_url"] if given == ["jwks_url"] else None,
                public_keys=keys,
            )
        if "bound_audiences" in changes:
            role = replace(
                role, bound_audiences=_texts(changes["bound_audiences"], "boundAudiences", MAX_AUDIENCES)
            )
        if "bound_subject" in changes:
            subject = changes["bound_subject"]
            role = replace(
                role,
                bound_subject=None if subject is None else _text(subject, "boundSubject", checks.GLOB_MAX),
            )
        if "bound_claims" in changes:
            role = replace(role, bound_claims=self._claims(changes["bound_claims"]))
        if "name_claim" in changes:
            claim = changes["name_claim"]
            role = replace(
                role, name_claim=None if claim is None else _text(claim, "nameClaim", checks.CLAIM_PATH_MAX)
            )
        if "projects" in changes:
            role = replace(role, project_ids=self._ids(conn, role.vault_id, "project", changes["projects"]))
        if "secrets" in changes:
            role = replace(role, secret_ids=self._ids(conn, role.vault_id, "secret", changes["secrets"]))
        if "machine_ttl" in changes:
            ttl = changes["machine_ttl"]
            if (
                not isinstance(ttl, int)
                or isinstance(ttl, bool)
                or not checks.MIN_MACHINE_TTL <= ttl <= checks.MAX_MACHINE_TTL
            ):
                raise InvalidInput(
                    f"machineTtl must be {checks.MIN_MACHINE_TTL} to {checks.MAX_MACHINE_TTL} seconds"
                )
            role = replace(role, machine_ttl_s=ttl)
        if "source_cidrs" in changes:
            cidrs = changes["source_cidrs"]
            role = replace(
                role,
                source_cidrs=None
                if not cidrs
                else tuple(check_cidr(c) for c in _texts(cidrs, "sourceCidrs", MAX_CIDRS, 64)),
            )
        if "kubernetes" in changes:
            mode, cluster = self._kubernetes(changes["kubernetes"])
            role = replace(role, kubernetes_mode=mode, kubernetes_cluster=cluster)
        if "enabled" in changes:
            if not isinstance(changes["enabled"], bool):
                raise InvalidInput("enabled must be true or false")
            role = replace(role, enabled=changes["enabled"])
        return self._whole(conn, role)

    def _ids(self, conn: Connection, vault_id: str, kind: str, given: object) -> tuple[str, ...]:
        if not isinstance(given, list) or len(given) > 1000 or not all(isinstance(i, str) for i in given):
            raise InvalidInput(f"{kind}s must be a list of {kind} ids")
        for item in given:
            ids.check(kind, item)
            found = (
                vault_store.get_project(conn, item)
                if kind == "project"
                else secret_store.get_secret(conn, item)
            )
            if found is None or found.vault_id != vault_id or getattr(found, "deleted_ms", None) is not None:
                raise NotFound(f"{kind} {item} not found in vault {vault_id}")
        return tuple(dict.fromkeys(given))

    def _whole(self, conn: Connection, role: JwtRole) -> JwtRole:
        """Checks across fields."""
        if not role.issuer:
            raise InvalidInput("issuer is required")
        if not role.bound_audiences:
            raise InvalidInput("boundAudiences is required: a role must name at least one audience")
        if role.key_source == (None, None, None) and role.kubernetes_mode != "tokenreview":
            raise InvalidInput(
                "give one of discoveryUrl, jwksUrl and publicKeys (or kubernetes mode tokenreview)"
            )
        for secret_id in role.secret_ids:
            secret = secret_store.get_secret(conn, secret_id)
            if secret is not None and secret.project_id not in role.project_ids:
                raise InvalidInput(
                    f"secret {secret_id} is in project {secret.project_id}; add it to projects"
                )
        return role

    # -- use cases ------------------------------------------------------------------------------
    def _vault(self, conn: Connection, principal: Principal, vault_id: str) -> None:
        ids.check("vault", vault_id)
        require(principal, perm.JWT_ROLE_MANAGE, vault_id, missing=f"vault {vault_id} not found")
        if vault_store.get_vault(conn, vault_id) is None:
            raise NotFound(f"vault {vault_id} not found")

    def _role(
        self, conn: Connection, principal: Principal, role_id: str, *, for_update: bool = False
    ) -> JwtRole:
        missing = f"JWT role {role_id[:40]} not found"
        if not ids.is_valid("jwt_role", role_id):
            raise NotFound(missing)
        role = role_store.get_role(conn, role_id, for_update=for_update)
        if role is None:
            raise NotFound(missing)
        require(principal, perm.JWT_ROLE_MANAGE, role.vault_id, missing=missing)
        return role

    def create(self, principal: Principal, actor: Actor, vault_id: str, spec: Mapping[str, Any]) -> JwtRole:
        now = self.deps.clock()
        if "name" not in spec or "issuer" not in spec:
            raise InvalidInput("a JWT role needs a name and an issuer")
        self._check_urls(spec)
        with self.deps.db.write() as conn:
            self._vault(conn, principal, vault_id)
            blank = JwtRole(
                id=ids.new_id("jwt_role"),
                vault_id=vault_id,
                name="",
                issuer="",
                discovery_url=None,
                jwks_url=None,
                public_keys=None,
                bound_audiences=(),
                bound_subject=None,
                bound_claims=None,
                name_claim=None,
                project_ids=(),
                secret_ids=(),
                machine_ttl_s=checks.DEFAULT_MACHINE_TTL,
                source_cidrs=None,
                kubernetes_mode=None,
                kubernetes_cluster=None,
                enabled=True,
                created_ms=now,
                updated_ms=now,
            )
            role = self._build(conn, blank, spec)
            role_store.insert_role(conn, role)
            audit_store.append(
                conn,
                vault_id,
                now,
                actor,
                Action.ADMIN_JWT_ROLE_CREATE,
                {"jwt_role": role.id, "name": role.name},
            )
        return role

    def list_roles(self, principal: Principal, vault_id: str) -> list[JwtRole]:
        with self.deps.db.read() as conn:
            self._vault(conn, principal, vault_id)
            return role_store.list_roles(conn, vault_id)

    def get(self, principal: Principal, role_id: str) -> JwtRole:
        with self.deps.db.read() as conn:
            return self._role(conn, principal, role_id)

    def update(self, principal: Principal, actor: Actor, role_id: str, changes: Mapping[str, Any]) -> JwtRole:
        """A partial update; ``enabled`` false revokes the role's machines like ``disable``."""
        now = self.deps.clock()
        self._check_urls(changes)
        with self.deps.db.write() as conn:
            role = self._role(conn, principal, role_id, for_update=True)
            updated = replace(self._build(conn, role, changes), updated_ms=now)
            role_store.replace_role(conn, updated)
            audit_store.append(
                conn, role.vault_id, now, actor, Action.ADMIN_JWT_ROLE_UPDATE, {"jwt_role": role.id}
            )
            if role.enabled and not updated.enabled:
                self._revoke_machines(conn, actor, updated, now)
        if updated.key_source != role.key_source:
            self.login.keys.drop(role.id)
        return updated

    def set_enabled(self, principal: Principal, actor: Actor, role_id: str, enabled: bool) -> JwtRole:
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            role = self._role(conn, principal, role_id, for_update=True)
            updated = replace(role, enabled=enabled, updated_ms=now)
            role_store.replace_role(conn, updated)
            action = Action.ADMIN_JWT_ROLE_ENABLE if enabled else Action.ADMIN_JWT_ROLE_DISABLE
            audit_store.append(conn, role.vault_id, now, actor, action, {"jwt_role": role.id})
            if not enabled:
                self._revoke_machines(conn, actor, role, now)
        return updated

    def delete(self, principal: Principal, actor: Actor, role_id: str) -> None:
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            role = self._role(conn, principal, role_id, for_update=True)
            self._revoke_machines(conn, actor, role, now)
            role_store.delete_role(conn, role.id)
            audit_store.append(
                conn,
                role.vault_id,
                now,
                actor,
                Action.ADMIN_JWT_ROLE_DELETE,
                {"jwt_role": role.id, "name": role.name},
            )
        self.login.keys.drop(role.id)

    def _revoke_machines(self, conn: Connection, actor: Actor, role: JwtRole, now: int) -> None:
        """Revoke the role's live machines the way ``machine revoke`` does."""
        for machine_id in role_store.live_machines(conn, role.id, now):
            machine_store.update_machine(conn, machine_id, revoked_ms=now, enabled=False)
            audit_store.append(
                conn,
                role.vault_id,
                now,
                actor,
                Action.ADMIN_MACHINE_REVOKE,
                {"machine": machine_id, "jwt_role": role.id},
            )

    def test(self, principal: Principal, role_id: str, token: str) -> list[Check]:
        """Run a login's checks on ``token`` and report each; nothing is enrolled or used."""
        with self.deps.db.read() as conn:
            role = self._role(conn, principal, role_id)
        return self.login.test(role, token)
