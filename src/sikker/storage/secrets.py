"""Secrets and their encrypted versions."""

from __future__ import annotations

from sqlalchemy import Connection, Row, bindparam, delete, func, insert, select, update

from sikker.core.model import Sealed, Secret, VersionInfo
from sikker.storage.database import Prepared, model_columns
from sikker.storage.tables import projects, secret_versions, secrets


def _secret(row: Row[tuple[object, ...]]) -> Secret:
    m = row._mapping
    return Secret(
        m["id"],
        m["vault_id"],
        m["project_id"],
        m["name"],
        m["kind"],
        m["current_version"],
        m["created_ms"],
        m["updated_ms"],
        m["deleted_ms"],
    )


def insert_secret(conn: Connection, secret: Secret) -> None:
    conn.execute(
        insert(secrets).values(
            id=secret.id,
            vault_id=secret.vault_id,
            project_id=secret.project_id,
            name=secret.name,
            kind=secret.kind,
            current_version=secret.current_version,
            created_ms=secret.created_ms,
            updated_ms=secret.updated_ms,
            deleted_ms=None,
        )
    )


# Built once: these run on every signed read.
_SECRET_QUERY = select(*model_columns(secrets, Secret)).where(secrets.c.id == bindparam("secret_id"))
_SECRET = Prepared(_SECRET_QUERY)
_SECRET_FOR_UPDATE = Prepared(_SECRET_QUERY.with_for_update())
_SEALED = Prepared(
    select(
        secret_versions.c.ciphertext,
        secret_versions.c.wrapped_dek,
        secret_versions.c.key_version,
        secret_versions.c.field_names,
    ).where(
        secret_versions.c.secret_id == bindparam("secret_id"),
        secret_versions.c.version == bindparam("version"),
    )
)


def get_secret(conn: Connection, secret_id: str, for_update: bool = False) -> Secret | None:
    row = (_SECRET_FOR_UPDATE if for_update else _SECRET).first(conn, {"secret_id": secret_id})
    return Secret(*row) if row else None


def list_secrets(conn: Connection, project_id: str, deleted: bool = False) -> list[Secret]:
    cond = secrets.c.deleted_ms.is_not(None) if deleted else secrets.c.deleted_ms.is_(None)
    query = select(secrets).where(secrets.c.project_id == project_id, cond).order_by(secrets.c.name)
    return [_secret(r) for r in conn.execute(query)]


def page_secrets(
    conn: Connection, project_id: str, *, search: str = "", after: str | None = None, limit: int = 50
) -> list[Secret]:
    """One page of a project's live secrets in name order: ``after`` the last name of the
    previous page (keyset paging over the ``(project_id, name)`` live-name index, so page N
    costs the same as page 1), names containing ``search`` (any case). At most ``limit``."""
    query = select(secrets).where(secrets.c.project_id == project_id, secrets.c.deleted_ms.is_(None))
    if after is not None:
        query = query.where(secrets.c.name > after)
    if search:
        query = query.where(func.lower(secrets.c.name).contains(search.lower(), autoescape=True))
    query = query.order_by(secrets.c.name).limit(limit)
    return [_secret(r) for r in conn.execute(query)]


def insert_version(
    conn: Connection,
    secret_id: str,
    version: int,
    sealed: Sealed,
    field_names: str | None,
    now_ms: int,
    created_by: str,
) -> None:
    _INSERT_VERSION.execute(
        conn,
        {
            "secret_id": secret_id,
            "version": version,
            "ciphertext": sealed.ciphertext,
            "wrapped_dek": sealed.wrapped_dek,
            "key_version": sealed.key_version,
            "field_names": field_names,
            "created_ms": now_ms,
            "created_by": created_by,
        },
    )


# Built once (every secret write runs these).
_INSERT_VERSION = Prepared(
    insert(secret_versions).values({c.name: bindparam(c.name) for c in secret_versions.c})
)
_SET_CURRENT = Prepared(
    update(secrets)
    .where(secrets.c.id == bindparam("current_of"))
    .values(current_version=bindparam("current_version"), updated_ms=bindparam("updated_ms"))
)


def set_current_version(conn: Connection, secret_id: str, version: int, now_ms: int) -> None:
    _SET_CURRENT.execute(conn, {"current_of": secret_id, "current_version": version, "updated_ms": now_ms})


def get_sealed(conn: Connection, secret_id: str, version: int) -> tuple[Sealed, str | None] | None:
    row = _SEALED.first(conn, {"secret_id": secret_id, "version": version})
    if row is None:
        return None
    ciphertext, wrapped_dek, key_version, field_names = row
    return Sealed(bytes(ciphertext), bytes(wrapped_dek), key_version), field_names


def list_versions(conn: Connection, secret_id: str) -> list[VersionInfo]:
    query = (
        select(
            secret_versions.c.version,
            secret_versions.c.created_ms,
            secret_versions.c.created_by,
            secret_versions.c.field_names,
        )
        .where(secret_versions.c.secret_id == secret_id)
        .order_by(secret_versions.c.version.desc())
    )
    return [VersionInfo(r.version, r.created_ms, r.created_by, r.field_names) for r in conn.execute(query)]


def set_deleted(conn: Connection, secret_id: str, deleted_ms: int | None, now_ms: int) -> None:
    conn.execute(
        update(secrets).where(secrets.c.id == secret_id).values(deleted_ms=deleted_ms, updated_ms=now_ms)
    )


def trashed_before(conn: Connection, cutoff_ms: int, limit: int = 500) -> list[Secret]:
    query = (
        select(secrets)
        .where(secrets.c.deleted_ms.is_not(None), secrets.c.deleted_ms < cutoff_ms)
        .limit(limit)
    )
    return [_secret(r) for r in conn.execute(query)]


def purge(conn: Connection, secret_id: str) -> None:
    conn.execute(delete(secret_versions).where(secret_versions.c.secret_id == secret_id))
    conn.execute(delete(secrets).where(secrets.c.id == secret_id))


def stale_versions(
    conn: Connection, project_id: str, key_version: int, limit: int
) -> list[tuple[str, int, Sealed]]:
    """Versions of a project's secrets whose data key is wrapped by an older project key."""
    query = (
        select(
            secret_versions.c.secret_id,
            secret_versions.c.version,
            secret_versions.c.ciphertext,
            secret_versions.c.wrapped_dek,
            secret_versions.c.key_version,
        )
        .join(secrets, secrets.c.id == secret_versions.c.secret_id)
        .join(projects, projects.c.id == secrets.c.project_id)
        .where(secrets.c.project_id == project_id, secret_versions.c.key_version < key_version)
        .limit(limit)
    )
    return [
        (r.secret_id, r.version, Sealed(bytes(r.ciphertext), bytes(r.wrapped_dek), r.key_version))
        for r in conn.execute(query)
    ]


def replace_wrapped_dek(
    conn: Connection, secret_id: str, version: int, old_key_version: int, sealed: Sealed
) -> bool:
    """Compare-and-set, so two concurrent rewrap jobs cannot clobber each other."""
    result = conn.execute(
        update(secret_versions)
        .where(
            secret_versions.c.secret_id == secret_id,
            secret_versions.c.version == version,
            secret_versions.c.key_version == old_key_version,
        )
        .values(wrapped_dek=sealed.wrapped_dek, key_version=sealed.key_version)
    )
    return result.rowcount == 1
