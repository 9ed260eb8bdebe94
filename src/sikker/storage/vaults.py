"""Vaults and projects, with the project key versions."""

from __future__ import annotations

from sqlalchemy import Connection, Row, bindparam, delete, func, insert, select, update

from sikker.core.model import Project, Vault
from sikker.storage.database import Prepared, model_columns
from sikker.storage.tables import project_keys, projects, secrets, vaults


def insert_vault(conn: Connection, vault: Vault) -> None:
    conn.execute(insert(vaults).values(id=vault.id, name=vault.name, created_ms=vault.created_ms))


def get_vault(conn: Connection, vault_id: str) -> Vault | None:
    row = conn.execute(select(vaults).where(vaults.c.id == vault_id)).first()
    return Vault(row.id, row.name, row.created_ms) if row else None


def list_vaults(conn: Connection, only: str | None = None) -> list[Vault]:
    query = select(vaults).order_by(vaults.c.created_ms, vaults.c.id)
    if only is not None:
        query = query.where(vaults.c.id == only)
    return [Vault(r.id, r.name, r.created_ms) for r in conn.execute(query)]


def _project(row: Row[tuple[object, ...]]) -> Project:
    m = row._mapping
    return Project(
        m["id"], m["vault_id"], m["name"], m["key_version"], m["created_ms"], m["frozen_ms"], m["frozen_by"]
    )


def insert_project(conn: Connection, project: Project, wrapped_key: bytes) -> None:
    conn.execute(
        insert(projects).values(
            id=project.id,
            vault_id=project.vault_id,
            name=project.name,
            key_version=project.key_version,
            created_ms=project.created_ms,
        )
    )
    add_project_key(conn, project.id, project.key_version, wrapped_key, project.created_ms)


_PROJECT = select(*model_columns(projects, Project)).where(projects.c.id == bindparam("project_id"))
_PROJECT_LOCKED = {
    (False, False): Prepared(_PROJECT),
    (True, False): Prepared(_PROJECT.with_for_update()),
    (False, True): Prepared(_PROJECT.with_for_update(read=True)),
}
_PROJECT_KEY = Prepared(
    select(project_keys.c.wrapped_key).where(
        project_keys.c.project_id == bindparam("project_id"), project_keys.c.version == bindparam("version")
    )
)


def get_project(
    conn: Connection, project_id: str, for_update: bool = False, for_share: bool = False
) -> Project | None:
    """``for_share`` (PostgreSQL ``FOR SHARE``) makes a reader wait for a freeze in flight."""
    query = _PROJECT_LOCKED[(for_update, for_share and not for_update)]
    row = query.first(conn, {"project_id": project_id})
    return Project(*row) if row else None


def list_projects(conn: Connection, vault_id: str) -> list[Project]:
    query = select(projects).where(projects.c.vault_id == vault_id).order_by(projects.c.name)
    return [_project(r) for r in conn.execute(query)]


def all_projects(conn: Connection) -> list[Project]:
    return [_project(r) for r in conn.execute(select(projects).order_by(projects.c.id))]


def count_live_secrets(conn: Connection, project_id: str) -> int:
    query = select(func.count()).where(secrets.c.project_id == project_id, secrets.c.deleted_ms.is_(None))
    return int(conn.execute(query).scalar_one())


def delete_project(conn: Connection, project_id: str) -> None:
    # Trashed secrets and their versions go with the project (ON DELETE CASCADE).
    conn.execute(delete(projects).where(projects.c.id == project_id))


def add_project_key(conn: Connection, project_id: str, version: int, wrapped_key: bytes, now_ms: int) -> None:
    conn.execute(
        insert(project_keys).values(
            project_id=project_id, version=version, wrapped_key=wrapped_key, created_ms=now_ms
        )
    )


def set_project_key_version(conn: Connection, project_id: str, version: int) -> None:
    conn.execute(update(projects).where(projects.c.id == project_id).values(key_version=version))


def get_project_key(conn: Connection, project_id: str, version: int) -> bytes | None:
    row = _PROJECT_KEY.first(conn, {"project_id": project_id, "version": version})
    return bytes(row[0]) if row is not None else None
