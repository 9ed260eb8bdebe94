"""Rotation policies, managed (database) secrets and rotation records."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, Row, delete, func, insert, select, update

from sikker.core.model import Managed, Policy, Rotation, Sealed
from sikker.storage.tables import managed_secrets, rotation_policies, rotations


def _policy(r: Row[tuple[object, ...]]) -> Policy:
    m = r._mapping
    return Policy(
        m["secret_id"],
        m["interval_s"],
        m["cron"],
        m["length"],
        m["charset"],
        orjson.loads(m["fields"]) if m["fields"] else None,
        bool(m["enabled"]),
        m["next_due_ms"],
        m["last_rotated_ms"],
        m["last_error"],
    )


def get_policy(conn: Connection, secret_id: str) -> Policy | None:
    row = conn.execute(select(rotation_policies).where(rotation_policies.c.secret_id == secret_id)).first()
    return _policy(row) if row else None


def save_policy(conn: Connection, policy: Policy) -> None:
    values: dict[str, Any] = {
        "interval_s": policy.interval_s,
        "cron": policy.cron,
        "length": policy.length,
        "charset": policy.charset,
        "fields": orjson.dumps(policy.fields).decode() if policy.fields else None,
        "enabled": policy.enabled,
        "next_due_ms": policy.next_due_ms,
        "last_rotated_ms": policy.last_rotated_ms,
        "last_error": policy.last_error,
    }
    if get_policy(conn, policy.secret_id) is None:
        conn.execute(insert(rotation_policies).values(secret_id=policy.secret_id, **values))
    else:
        conn.execute(
            update(rotation_policies)
            .where(rotation_policies.c.secret_id == policy.secret_id)
            .values(**values)
        )


def due_policies(conn: Connection, now_ms: int, limit: int = 100) -> list[Policy]:
    q = (
        select(rotation_policies)
        .where(rotation_policies.c.enabled.is_(True), rotation_policies.c.next_due_ms <= now_ms)
        .order_by(rotation_policies.c.next_due_ms)
        .limit(limit)
    )
    return [_policy(r) for r in conn.execute(q)]


def count_overdue(conn: Connection, before_ms: int, cap: int) -> int:
    """Enabled policies due before ``before_ms``, counted up to ``cap`` (a bounded scan)."""
    due = (
        select(rotation_policies.c.secret_id)
        .where(rotation_policies.c.enabled.is_(True), rotation_policies.c.next_due_ms <= before_ms)
        .limit(cap)
        .subquery()
    )
    return int(conn.execute(select(func.count()).select_from(due)).scalar_one())


def claim_due(conn: Connection, secret_id: str, expected_due_ms: int, next_due_ms: int) -> bool:
    """Compare-and-set the next due time: exactly one scheduler (on any node) wins a due run."""
    result = conn.execute(
        update(rotation_policies)
        .where(rotation_policies.c.secret_id == secret_id, rotation_policies.c.next_due_ms == expected_due_ms)
        .values(next_due_ms=next_due_ms)
    )
    return result.rowcount == 1


def record_outcome(conn: Connection, secret_id: str, now_ms: int, error: str | None) -> None:
    values: dict[str, Any] = {"last_error": error}
    if error is None:
        values["last_rotated_ms"] = now_ms
    conn.execute(update(rotation_policies).where(rotation_policies.c.secret_id == secret_id).values(**values))


# -- managed secrets -----------------------------------------------------------------------
def _managed(r: Row[tuple[object, ...]]) -> Managed:
    m = r._mapping
    return Managed(*(m[c.name] for c in managed_secrets.columns))


def get_managed(conn: Connection, secret_id: str) -> Managed | None:
    row = conn.execute(select(managed_secrets).where(managed_secrets.c.secret_id == secret_id)).first()
    return _managed(row) if row else None


def save_managed(conn: Connection, managed: Managed) -> None:
    values = {c.name: getattr(managed, c.name) for c in managed_secrets.columns if c.name != "secret_id"}
    if get_managed(conn, managed.secret_id) is None:
        conn.execute(insert(managed_secrets).values(secret_id=managed.secret_id, **values))
    else:
        conn.execute(
            update(managed_secrets).where(managed_secrets.c.secret_id == managed.secret_id).values(**values)
        )


def update_managed(conn: Connection, secret_id: str, **values: Any) -> None:
    conn.execute(update(managed_secrets).where(managed_secrets.c.secret_id == secret_id).values(**values))


def delete_managed(conn: Connection, secret_id: str) -> None:
    conn.execute(delete(managed_secrets).where(managed_secrets.c.secret_id == secret_id))


# -- rotation records ------------------------------------------------------------------------
def _rotation(r: Row[tuple[object, ...]]) -> Rotation:
    m = r._mapping
    sealed = (
        Sealed(bytes(m["ciphertext"]), bytes(m["wrapped_dek"]), m["key_version"])
        if m["ciphertext"] is not None
        else None
    )
    return Rotation(
        m["id"],
        m["secret_id"],
        m["status"],
        m["trigger"],
        sealed,
        m["version"],
        m["error"],
        m["created_ms"],
        m["updated_ms"],
    )


def insert_rotation(conn: Connection, rotation: Rotation) -> None:
    sealed = rotation.sealed
    conn.execute(
        insert(rotations).values(
            id=rotation.id,
            secret_id=rotation.secret_id,
            status=rotation.status,
            trigger=rotation.trigger,
            ciphertext=sealed.ciphertext if sealed else None,
            wrapped_dek=sealed.wrapped_dek if sealed else None,
            key_version=sealed.key_version if sealed else None,
            version=rotation.version,
            error=rotation.error,
            created_ms=rotation.created_ms,
            updated_ms=rotation.updated_ms,
        )
    )


def pending_rotation(conn: Connection, secret_id: str, for_update: bool = False) -> Rotation | None:
    q = select(rotations).where(rotations.c.secret_id == secret_id, rotations.c.status == "pending")
    if for_update:
        q = q.with_for_update()
    row = conn.execute(q).first()
    return _rotation(row) if row else None


def get_rotation(conn: Connection, rotation_id: str) -> Rotation | None:
    row = conn.execute(select(rotations).where(rotations.c.id == rotation_id)).first()
    return _rotation(row) if row else None


def finish_rotation(
    conn: Connection, rotation_id: str, status: str, now_ms: int, version: int | None, error: str | None
) -> bool:
    """pending -> current | rejected, once (the pending value is dropped)."""
    result = conn.execute(
        update(rotations)
        .where(rotations.c.id == rotation_id, rotations.c.status == "pending")
        .values(
            status=status,
            updated_ms=now_ms,
            version=version,
            error=error,
            ciphertext=None,
            wrapped_dek=None,
            key_version=None,
        )
    )
    return result.rowcount == 1


def recent_rotations(conn: Connection, secret_id: str, limit: int = 10) -> list[Rotation]:
    q = (
        select(rotations)
        .where(rotations.c.secret_id == secret_id)
        .order_by(rotations.c.created_ms.desc())
        .limit(limit)
    )
    return [_rotation(r) for r in conn.execute(q)]
