"""Canary rows, trips, and project freezes."""

from __future__ import annotations

import orjson
from sqlalchemy import Connection, Row, bindparam, insert, select, update

from sikker.core.model import Canary, Trip
from sikker.storage.tables import canaries, canary_trips, machine_projects, projects, secrets


def _canary(r: Row[tuple[object, ...]]) -> Canary:
    m = r._mapping
    return Canary(
        m["secret_id"],
        m["looks_like"],
        bool(m["enabled"]),
        bool(m["freeze_related"]),
        orjson.loads(m["related_project_ids"]),
        m["created_ms"],
    )


def insert_canary(conn: Connection, canary: Canary) -> None:
    conn.execute(
        insert(canaries).values(
            secret_id=canary.secret_id,
            looks_like=canary.looks_like,
            enabled=canary.enabled,
            freeze_related=canary.freeze_related,
            related_project_ids=orjson.dumps(canary.related_project_ids).decode(),
            created_ms=canary.created_ms,
        )
    )


_CANARY = select(canaries).where(canaries.c.secret_id == bindparam("secret_id"))
_FROZEN_OF = (
    select(projects.c.id)
    .join(machine_projects, machine_projects.c.project_id == projects.c.id)
    .where(machine_projects.c.machine_id == bindparam("machine_id"), projects.c.frozen_ms.is_not(None))
)


def get_canary(conn: Connection, secret_id: str) -> Canary | None:
    row = conn.execute(_CANARY, {"secret_id": secret_id}).first()
    return _canary(row) if row else None


def canary_ids(conn: Connection, secret_ids: list[str]) -> set[str]:
    """Which of these secrets are enabled canaries (one query for a whole export)."""
    if not secret_ids:
        return set()
    q = select(canaries.c.secret_id).where(canaries.c.secret_id.in_(secret_ids), canaries.c.enabled.is_(True))
    return set(conn.execute(q).scalars())


def list_canaries(conn: Connection, vault_id: str) -> list[tuple[Canary, str, str]]:
    """(canary, secret name, project id) of a vault's canaries."""
    q = (
        select(canaries, secrets.c.name, secrets.c.project_id)
        .join(secrets, secrets.c.id == canaries.c.secret_id)
        .where(secrets.c.vault_id == vault_id, secrets.c.deleted_ms.is_(None))
        .order_by(secrets.c.name)
    )
    return [(_canary(r), r.name, r.project_id) for r in conn.execute(q)]


def update_canary(conn: Connection, secret_id: str, **values: object) -> None:
    conn.execute(update(canaries).where(canaries.c.secret_id == secret_id).values(**values))


def record_trip(conn: Connection, trip: Trip) -> None:
    conn.execute(
        insert(canary_trips).values(
            secret_id=trip.secret_id,
            project_id=trip.project_id,
            actor_kind=trip.actor_kind,
            actor_id=trip.actor_id,
            source_ip=trip.source_ip,
            time_ms=trip.time_ms,
            frozen_projects=orjson.dumps(trip.frozen_projects).decode(),
        )
    )


def trips(conn: Connection, secret_id: str, limit: int = 100) -> list[Trip]:
    q = (
        select(canary_trips)
        .where(canary_trips.c.secret_id == secret_id)
        .order_by(canary_trips.c.time_ms.desc())
        .limit(limit)
    )
    return [
        Trip(
            r.secret_id,
            r.project_id,
            r.actor_kind,
            r.actor_id,
            r.source_ip,
            r.time_ms,
            orjson.loads(r.frozen_projects),
        )
        for r in conn.execute(q)
    ]


def freeze(conn: Connection, project_ids: list[str], now_ms: int, canary_id: str) -> list[str]:
    """Freeze the projects not frozen yet; returns the ones this call froze."""
    frozen = []
    for project_id in project_ids:
        result = conn.execute(
            update(projects)
            .where(projects.c.id == project_id, projects.c.frozen_ms.is_(None))
            .values(frozen_ms=now_ms, frozen_by=canary_id)
        )
        if result.rowcount:
            frozen.append(project_id)
    return frozen


def unfreeze(conn: Connection, project_id: str) -> bool:
    result = conn.execute(
        update(projects)
        .where(projects.c.id == project_id, projects.c.frozen_ms.is_not(None))
        .values(frozen_ms=None, frozen_by=None)
    )
    return result.rowcount > 0


def frozen_projects_of(conn: Connection, machine_id: str) -> list[str]:
    return list(conn.execute(_FROZEN_OF, {"machine_id": machine_id}).scalars())
