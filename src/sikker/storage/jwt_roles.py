"""JWT roles, the JWTs already used to enroll, and the machines a role created."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from sikker.core.model import JwtRole
from sikker.errors import Conflict, Replayed
from sikker.storage.database import savepoint
from sikker.storage.tables import jwt_roles, jwt_uses, machines


def _list(raw: object) -> tuple[str, ...] | None:
    return None if raw is None else tuple(orjson.loads(str(raw)))


def _role(row: Row[tuple[object, ...]]) -> JwtRole:
    m = row._mapping
    claims = orjson.loads(m["bound_claims"]) if m["bound_claims"] is not None else None
    return JwtRole(
        id=m["id"],
        vault_id=m["vault_id"],
        name=m["name"],
        issuer=m["issuer"],
        discovery_url=m["discovery_url"],
        jwks_url=m["jwks_url"],
        public_keys=_list(m["public_keys"]),
        bound_audiences=_list(m["bound_audiences"]) or (),
        bound_subject=m["bound_subject"],
        bound_claims={k: tuple(v) for k, v in claims.items()} if claims is not None else None,
        name_claim=m["name_claim"],
        project_ids=_list(m["project_ids"]) or (),
        secret_ids=_list(m["secret_ids"]) or (),
        machine_ttl_s=int(m["machine_ttl_s"]),
        source_cidrs=_list(m["source_cidrs"]),
        kubernetes_mode=m["kubernetes_mode"],
        kubernetes_cluster=m["kubernetes_cluster"],
        enabled=bool(m["enabled"]),
        created_ms=int(m["created_ms"]),
        updated_ms=int(m["updated_ms"]),
    )


def _json(value: object) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _row(role: JwtRole) -> dict[str, Any]:
    return {
        "id": role.id,
        "vault_id": role.vault_id,
        "name": role.name,
        "issuer": role.issuer,
        "discovery_url": role.discovery_url,
        "jwks_url": role.jwks_url,
        "public_keys": _json(list(role.public_keys) if role.public_keys is not None else None),
        "bound_audiences": _json(list(role.bound_audiences)),
        "bound_subject": role.bound_subject,
        "bound_claims": _json(
            {k: list(v) for k, v in role.bound_claims.items()} if role.bound_claims is not None else None
        ),
        "name_claim": role.name_claim,
        "project_ids": _json(list(role.project_ids)),
        "secret_ids": _json(list(role.secret_ids)),
        "machine_ttl_s": role.machine_ttl_s,
        "source_cidrs": _json(list(role.source_cidrs) if role.source_cidrs is not None else None),
        "kubernetes_mode": role.kubernetes_mode,
        "kubernetes_cluster": role.kubernetes_cluster,
        "enabled": role.enabled,
        "created_ms": role.created_ms,
        "updated_ms": role.updated_ms,
    }


def _taken(role: JwtRole) -> Conflict:
    return Conflict(f"a JWT role named {role.name!r} already exists in vault {role.vault_id}")


def insert_role(conn: Connection, role: JwtRole) -> None:
    """Insert; Conflict when the vault already has a role of that name."""
    try:
        with savepoint(conn):
            conn.execute(insert(jwt_roles).values(**_row(role)))
    except IntegrityError as e:
        raise _taken(role) from e


def replace_role(conn: Connection, role: JwtRole) -> None:
    """Store every field of an existing role; Conflict on a name taken by another role."""
    values = _row(role)
    del values["id"], values["vault_id"], values["created_ms"]
    try:
        with savepoint(conn):
            conn.execute(update(jwt_roles).where(jwt_roles.c.id == role.id).values(**values))
    except IntegrityError as e:
        raise _taken(role) from e


def get_role(conn: Connection, role_id: str, *, for_update: bool = False) -> JwtRole | None:
    query = select(jwt_roles).where(jwt_roles.c.id == role_id)
    row = conn.execute(query.with_for_update() if for_update else query).first()
    return _role(row) if row else None


def find_role(conn: Connection, vault_id: str, name_or_id: str) -> JwtRole | None:
    """A vault's role by name, else by id."""
    for column in (jwt_roles.c.name, jwt_roles.c.id):
        row = conn.execute(
            select(jwt_roles).where(jwt_roles.c.vault_id == vault_id, column == name_or_id)
        ).first()
        if row:
            return _role(row)
    return None


def list_roles(conn: Connection, vault_id: str) -> list[JwtRole]:
    query = select(jwt_roles).where(jwt_roles.c.vault_id == vault_id).order_by(jwt_roles.c.name)
    return [_role(r) for r in conn.execute(query)]


def delete_role(conn: Connection, role_id: str) -> None:
    conn.execute(delete(jwt_roles).where(jwt_roles.c.id == role_id))


def live_machines(conn: Connection, role_id: str, now_ms: int) -> list[str]:
    """Ids of the machines a role created that are neither revoked nor expired."""
    query = select(machines.c.id).where(
        machines.c.jwt_role_id == role_id,
        machines.c.revoked_ms.is_(None),
        (machines.c.expires_ms.is_(None)) | (machines.c.expires_ms > now_ms),
    )
    return [str(r[0]) for r in conn.execute(query)]


def use_token(conn: Connection, vault_id: str, digest: bytes, expires_ms: int, now_ms: int) -> None:
    """Record that a JWT enrolled; Replayed if it already did (unique per vault)."""
    mine = (jwt_uses.c.vault_id == vault_id) & (jwt_uses.c.digest == digest)
    conn.execute(delete(jwt_uses).where(mine, jwt_uses.c.expires_ms <= now_ms))  # a stale row
    try:
        with savepoint(conn):
            conn.execute(insert(jwt_uses).values(vault_id=vault_id, digest=digest, expires_ms=expires_ms))
    except IntegrityError as e:
        raise Replayed("this JWT was already used to enroll") from e


def token_used(conn: Connection, vault_id: str, digest: bytes, now_ms: int) -> bool:
    query = select(jwt_uses.c.expires_ms).where(jwt_uses.c.vault_id == vault_id, jwt_uses.c.digest == digest)
    expires = conn.execute(query).scalar()
    return expires is not None and int(expires) > now_ms


def prune_uses(conn: Connection, now_ms: int) -> int:
    """Forget used JWTs that expired (they fail the ``expired`` check by now anyway)."""
    result = conn.execute(delete(jwt_uses).where(jwt_uses.c.expires_ms <= now_ms))
    return int(result.rowcount or 0)
