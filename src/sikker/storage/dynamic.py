"""Dynamic secret definitions and leases.

Leases are read in bounded pages and claimed one by one (compare-and-set on state and
``claim_until_ms``), so any number of nodes sweep them and none ever loads them all.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, Row, func, insert, or_, select, update

from sikker.core.dynamic import LIVE, Definition, Lease
from sikker.core.model import Sealed
from sikker.storage.tables import dynamic_secrets, leases, machines, secrets


# -- definitions ---------------------------------------------------------------------------------
def _definition(row: Row[tuple[object, ...]]) -> Definition:
    m = row._mapping
    return Definition(
        id=m["secret_id"],
        vault_id=m["vault_id"],
        project_id=m["project_id"],
        name=m["name"],
        engine=m["engine"],
        host=m["host"],
        port=m["port"],
        database=m["database"],
        admin_secret_id=m["admin_secret_id"],
        grant_role=m["grant_role"],
        default_ttl_s=m["default_ttl_s"],
        max_ttl_s=m["max_ttl_s"],
        username_template=m["username_template"],
        creation_statements=tuple(orjson.loads(m["creation_statements"])),
        revocation_statements=tuple(orjson.loads(m["revocation_statements"])),
        max_leases_per_machine=m["max_leases_per_machine"],
        created_ms=m["created_ms"],
        updated_ms=m["updated_ms"],
    )


_DEFINITIONS = select(
    dynamic_secrets, secrets.c.vault_id, secrets.c.project_id, secrets.c.name, secrets.c.deleted_ms
).select_from(dynamic_secrets.join(secrets, secrets.c.id == dynamic_secrets.c.secret_id))


def _definition_values(d: Definition) -> dict[str, Any]:
    return {
        "engine": d.engine,
        "host": d.host,
        "port": d.port,
        "database": d.database,
        "admin_secret_id": d.admin_secret_id,
        "grant_role": d.grant_role,
        "default_ttl_s": d.default_ttl_s,
        "max_ttl_s": d.max_ttl_s,
        "username_template": d.username_template,
        "creation_statements": orjson.dumps(list(d.creation_statements)).decode(),
        "revocation_statements": orjson.dumps(list(d.revocation_statements)).decode(),
        "max_leases_per_machine": d.max_leases_per_machine,
        "updated_ms": d.updated_ms,
    }


def insert_definition(conn: Connection, d: Definition) -> None:
    conn.execute(
        insert(dynamic_secrets).values(secret_id=d.id, created_ms=d.created_ms, **_definition_values(d))
    )


def update_definition(conn: Connection, d: Definition) -> None:
    conn.execute(
        update(dynamic_secrets).where(dynamic_secrets.c.secret_id == d.id).values(**_definition_values(d))
    )


def get_definition(conn: Connection, secret_id: str, live_only: bool = True) -> Definition | None:
    q = _DEFINITIONS.where(dynamic_secrets.c.secret_id == secret_id)
    if live_only:
        q = q.where(secrets.c.deleted_ms.is_(None))
    row = conn.execute(q).first()
    return _definition(row) if row else None


def list_definitions(conn: Connection, project_id: str) -> list[Definition]:
    q = _DEFINITIONS.where(secrets.c.project_id == project_id, secrets.c.deleted_ms.is_(None))
    return [_definition(r) for r in conn.execute(q.order_by(secrets.c.name))]


QUEUE_PAGE = 1000


# -- leases ------------------------------------------------------------------------------------------
def _lease(row: Row[tuple[object, ...]]) -> Lease:
    m = row._mapping
    return Lease(
        id=m["id"],
        vault_id=m["vault_id"],
        project_id=m["project_id"],
        dynamic_secret_id=m["dynamic_secret_id"],
        machine_id=m["machine_id"],
        username=m["username"],
        state=m["state"],
        created_ms=m["created_ms"],
        expires_ms=m["expires_ms"],
        max_expires_ms=m["max_expires_ms"],
        revoked_ms=m["revoked_ms"],
        revoke_reason=m["revoke_reason"],
        revoked_by=m["revoked_by"],
        revoke_requested_ms=m["revoke_requested_ms"],
        attempts=m["attempts"],
        next_attempt_ms=m["next_attempt_ms"],
        last_error=m["last_error"],
        alerted_ms=m["alerted_ms"],
    )


def insert_lease(conn: Connection, lease: Lease, password: Sealed, snapshot: Sealed) -> None:
    conn.execute(
        insert(leases).values(
            id=lease.id,
            vault_id=lease.vault_id,
            project_id=lease.project_id,
            dynamic_secret_id=lease.dynamic_secret_id,
            machine_id=lease.machine_id,
            username=lease.username,
            password_ct=password.ciphertext,
            password_dek=password.wrapped_dek,
            password_key_version=password.key_version,
            snapshot_ct=snapshot.ciphertext,
            snapshot_dek=snapshot.wrapped_dek,
            snapshot_key_version=snapshot.key_version,
            state=lease.state,
            created_ms=lease.created_ms,
            expires_ms=lease.expires_ms,
            max_expires_ms=lease.max_expires_ms,
            attempts=0,
        )
    )


def get_lease(conn: Connection, lease_id: str, for_update: bool = False) -> Lease | None:
    q = select(leases).where(leases.c.id == lease_id)
    row = conn.execute(q.with_for_update() if for_update else q).first()
    return _lease(row) if row else None


def sealed_password(conn: Connection, lease_id: str) -> Sealed | None:
    row = conn.execute(
        select(leases.c.password_ct, leases.c.password_dek, leases.c.password_key_version).where(
            leases.c.id == lease_id
        )
    ).first()
    if row is None or row[0] is None:
        return None
    return Sealed(bytes(row[0]), bytes(row[1]), int(row[2]))


def sealed_snapshot(conn: Connection, lease_id: str) -> Sealed | None:
    row = conn.execute(
        select(leases.c.snapshot_ct, leases.c.snapshot_dek, leases.c.snapshot_key_version).where(
            leases.c.id == lease_id
        )
    ).first()
    return Sealed(bytes(row[0]), bytes(row[1]), int(row[2])) if row else None


def set_state(conn: Connection, lease_id: str, expected: tuple[str, ...], **values: Any) -> bool:
    """Compare-and-set on the lease's state: True if this caller changed it."""
    if values.get("state") in ("revoked", "failed", "forgotten"):
        values |= {"password_ct": None, "password_dek": None, "password_key_version": None}
    result = conn.execute(
        update(leases).where(leases.c.id == lease_id, leases.c.state.in_(expected)).values(**values)
    )
    return result.rowcount == 1


def live_leases_of_machine(conn: Connection, machine_id: str, dynamic_secret_id: str) -> list[Lease]:
    q = (
        select(leases)
        .where(
            leases.c.machine_id == machine_id,
            leases.c.dynamic_secret_id == dynamic_secret_id,
            leases.c.state.in_(("creating", "active")),
        )
        .order_by(leases.c.created_ms.desc())
        .limit(1000)
    )
    return [_lease(r) for r in conn.execute(q)]


def count_live(conn: Connection, dynamic_secret_id: str, states: tuple[str, ...] = LIVE) -> int:
    q = select(func.count()).where(
        leases.c.dynamic_secret_id == dynamic_secret_id, leases.c.state.in_(states)
    )
    return int(conn.execute(q).scalar_one())


def list_leases(
    conn: Connection,
    vault_id: str,
    *,
    dynamic_secret_id: str | None = None,
    machine_id: str | None = None,
    project_id: str | None = None,
    state: str | None = None,
    after: str | None = None,
    limit: int = 100,
) -> list[Lease]:
    q = select(leases).where(leases.c.vault_id == vault_id)
    if dynamic_secret_id:
        q = q.where(leases.c.dynamic_secret_id == dynamic_secret_id)
    if machine_id:
        q = q.where(leases.c.machine_id == machine_id)
    if project_id:
        q = q.where(leases.c.project_id == project_id)
    if state:
        q = q.where(leases.c.state == state)
    if after:
        q = q.where(leases.c.id > after)
    return [_lease(r) for r in conn.execute(q.order_by(leases.c.id).limit(limit))]


def queue_revocations(
    conn: Connection,
    now_ms: int,
    reason: str,
    by: str,
    *,
    machine_id: str | None = None,
    dynamic_secret_ids: list[str] | None = None,
    project_id: str | None = None,
    vault_id: str | None = None,
    lease_ids: list[str] | None = None,
) -> list[str]:
    """Turn the matching live leases into revocation jobs (due now); returns their ids.

    Called in the same transaction as the change that ends the leases (machine revoked, grant
    removed...). Works in pages of ``QUEUE_PAGE`` ids: only ids are held, never lease rows."""
    live = leases.c.state.in_(("creating", "active"))
    where: list[ColumnElement[bool]] = [live]
    if machine_id is not None:
        where.append(leases.c.machine_id == machine_id)
    if dynamic_secret_ids is not None:
        where.append(leases.c.dynamic_secret_id.in_(dynamic_secret_ids))
    if project_id is not None:
        where.append(leases.c.project_id == project_id)
    if vault_id is not None:
        where.append(leases.c.vault_id == vault_id)
    if lease_ids is not None:
        where.append(leases.c.id.in_(lease_ids))
    queued: list[str] = []
    while True:
        page = [str(i) for i in conn.execute(select(leases.c.id).where(*where).limit(QUEUE_PAGE)).scalars()]
        if not page:
            return queued
        conn.execute(
            update(leases)
            .where(leases.c.id.in_(page), live)
            .values(
                state="revoking",
                revoke_requested_ms=now_ms,
                revoke_reason=reason[:500],
                revoked_by=by[:100],
                next_attempt_ms=now_ms,
            )
        )
        queued += page


def due_to_expire(conn: Connection, now_ms: int, creating_before_ms: int, limit: int = 500) -> list[Lease]:
    """Active leases past their end, and 'creating' rows a crash left behind (two index range
    scans on ``ix_leases_state_expires``)."""
    ended = (
        select(leases)
        .where(leases.c.state == "active", leases.c.expires_ms <= now_ms)
        .order_by(leases.c.expires_ms)
        .limit(limit)
    )
    stale = (
        select(leases)
        .where(leases.c.state == "creating", leases.c.created_ms <= creating_before_ms)
        .limit(limit)
    )
    return [_lease(r) for r in conn.execute(ended)] + [_lease(r) for r in conn.execute(stale)]


def machine_gone(conn: Connection, now_ms: int, limit: int = 500) -> list[tuple[Lease, str]]:
    """Active leases whose machine expired (nothing else marks that moment), or was revoked or
    disabled by a path that did not queue the revocation itself (e.g. a change made in SQL):
    (lease, why). The filter is on machines, so the plan starts there and reaches leases
    through ``ix_leases_machine``; losing a membership or a grant queues the revocation in
    that change's own transaction (service/machines.py)."""
    q = (
        select(leases, machines.c.expires_ms.label("m_expires"), machines.c.enabled, machines.c.revoked_ms)
        .select_from(machines.join(leases, leases.c.machine_id == machines.c.id))
        .where(
            leases.c.state == "active",
            or_(
                machines.c.expires_ms <= now_ms,
                machines.c.enabled.is_(False),
                machines.c.revoked_ms.is_not(None),
            ),
        )
        .limit(limit)
    )
    out = []
    for row in conn.execute(q):
        m = row._mapping
        if m["revoked_ms"] is not None:
            why = "machine revoked"
        elif not m["enabled"]:
            why = "machine disabled"
        else:
            why = "machine expired"
        out.append((_lease(row), why))
    return out


def next_due_ms(conn: Connection) -> int | None:
    """The earliest end of an active lease or due time of a revocation job (two index
    lookups: ``ix_leases_state_expires``, ``ix_leases_state_next``); None when there is none."""
    ends = conn.execute(select(func.min(leases.c.expires_ms)).where(leases.c.state == "active")).scalar()
    jobs = conn.execute(
        select(func.min(leases.c.next_attempt_ms)).where(leases.c.state == "revoking")
    ).scalar()
    found = [int(t) for t in (ends, jobs) if t is not None]
    return min(found) if found else None


def due_revocations(conn: Connection, now_ms: int, limit: int = 100) -> list[Lease]:
    q = (
        select(leases)
        .where(
            leases.c.state == "revoking",
            leases.c.next_attempt_ms <= now_ms,
            or_(leases.c.claim_until_ms.is_(None), leases.c.claim_until_ms < now_ms),
        )
        .order_by(leases.c.next_attempt_ms)
        .limit(limit)
    )
    return [_lease(r) for r in conn.execute(q)]


def claim(conn: Connection, lease_id: str, node: str, now_ms: int, until_ms: int) -> bool:
    """Compare-and-set: exactly one node (or request) works on a revocation at a time."""
    result = conn.execute(
        update(leases)
        .where(
            leases.c.id == lease_id,
            leases.c.state == "revoking",
            or_(leases.c.claim_until_ms.is_(None), leases.c.claim_until_ms < now_ms),
        )
        .values(claimed_by=node, claim_until_ms=until_ms)
    )
    return result.rowcount == 1


def pull_forward(conn: Connection, dynamic_secret_id: str, now_ms: int) -> int:
    """Make the unclaimed revocation jobs of one dynamic secret due now (its database answered)."""
    result = conn.execute(
        update(leases)
        .where(
            leases.c.dynamic_secret_id == dynamic_secret_id,
            leases.c.state == "revoking",
            leases.c.next_attempt_ms > now_ms,
            or_(leases.c.claim_until_ms.is_(None), leases.c.claim_until_ms < now_ms),
        )
        .values(next_attempt_ms=now_ms)
    )
    return int(result.rowcount)


def usernames_with_live_lease(conn: Connection, dynamic_secret_id: str, names: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(names), 500):
        q = select(leases.c.username).where(
            leases.c.dynamic_secret_id == dynamic_secret_id,
            leases.c.username.in_(names[start : start + 500]),
            leases.c.state.in_(LIVE),
        )
        found |= {str(r[0]) for r in conn.execute(q)}
    return found
