"""Machines, their project memberships and per-secret grants, enrollment tokens,
nonces and poll baselines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from sqlalchemy import Connection, Row, and_, bindparam, case, delete, insert, literal, select, update
from sqlalchemy.exc import IntegrityError

from sikker.core.model import EnrollmentToken, GrantedSecret, Machine
from sikker.errors import Replayed
from sikker.storage.database import MAX_PARAMETERS, insert_rows, insert_sql, savepoint
from sikker.storage.tables import (
    deliveries,
    enrollment_tokens,
    grants,
    machine_projects,
    machines,
    nonces,
    projects,
    secret_versions,
    secrets,
)


def machine_from_row(row: Row[tuple[object, ...]]) -> Machine:
    return machine_from_mapping(row._mapping)


def machine_from_mapping(m: Mapping[Any, Any]) -> Machine:
    return Machine(
        m["id"],
        m["vault_id"],
        m["name"],
        bytes(m["public_key"]),
        m["kind"],
        bool(m["approved"]),
        bool(m["enabled"]),
        m["hostname"],
        m["allowed_cidr"],
        m["enrollment_token_id"],
        m["created_ms"],
        m["expires_ms"],
        m["revoked_ms"],
        m["last_poll_ms"],
        m["jwt_role_id"],
    )


def insert_machine(conn: Connection, machine: Machine) -> None:
    conn.execute(
        insert(machines).values(
            id=machine.id,
            vault_id=machine.vault_id,
            name=machine.name,
            public_key=machine.public_key,
            kind=machine.kind,
            approved=machine.approved,
            enabled=machine.enabled,
            hostname=machine.hostname,
            allowed_cidr=machine.allowed_cidr,
            enrollment_token_id=machine.enrollment_token_id,
            created_ms=machine.created_ms,
            expires_ms=machine.expires_ms,
            revoked_ms=None,
            last_poll_ms=None,
            jwt_role_id=machine.jwt_role_id,
        )
    )


# Statements on the signed read path are built once (building them costs more than running them).
_MACHINE = select(machines).where(machines.c.id == bindparam("machine_id"))
_MEMBER = (
    select(machine_projects.c.machine_id)
    .join(secrets, secrets.c.project_id == machine_projects.c.project_id)
    .where(machine_projects.c.machine_id == bindparam("machine_id"), secrets.c.id == bindparam("secret_id"))
)
_GRANTED = select(grants.c.machine_id).where(
    grants.c.machine_id == bindparam("machine_id"), grants.c.secret_id == bindparam("secret_id")
)
_NONCE = insert(nonces)


def get_machine(conn: Connection, machine_id: str) -> Machine | None:
    row = conn.execute(_MACHINE, {"machine_id": machine_id}).first()
    return machine_from_row(row) if row else None


def list_machines(conn: Connection, vault_id: str) -> list[Machine]:
    query = select(machines).where(machines.c.vault_id == vault_id).order_by(machines.c.created_ms)
    return [machine_from_row(r) for r in conn.execute(query)]


def update_machine(conn: Connection, machine_id: str, **values: object) -> None:
    conn.execute(update(machines).where(machines.c.id == machine_id).values(**values))


# -- memberships and grants --------------------------------------------------------
def add_membership(conn: Connection, machine_id: str, project_id: str, now_ms: int) -> bool:
    exists = conn.execute(
        select(machine_projects.c.machine_id).where(
            machine_projects.c.machine_id == machine_id, machine_projects.c.project_id == project_id
        )
    ).first()
    if exists:
        return False
    conn.execute(
        insert(machine_projects).values(machine_id=machine_id, project_id=project_id, created_ms=now_ms)
    )
    return True


def remove_membership(conn: Connection, machine_id: str, project_id: str) -> bool:
    result = conn.execute(
        delete(machine_projects).where(
            machine_projects.c.machine_id == machine_id, machine_projects.c.project_id == project_id
        )
    )
    return result.rowcount > 0


def member_projects(conn: Connection, machine_id: str) -> list[tuple[str, str]]:
    query = (
        select(projects.c.id, projects.c.name)
        .join(machine_projects, machine_projects.c.project_id == projects.c.id)
        .where(machine_projects.c.machine_id == machine_id)
        .order_by(projects.c.name)
    )
    return [(r.id, r.name) for r in conn.execute(query)]


def add_grant(conn: Connection, machine_id: str, secret_id: str, now_ms: int) -> bool:
    exists = conn.execute(
        select(grants.c.machine_id).where(grants.c.machine_id == machine_id, grants.c.secret_id == secret_id)
    ).first()
    if exists:
        return False
    conn.execute(insert(grants).values(machine_id=machine_id, secret_id=secret_id, created_ms=now_ms))
    return True


def remove_grant(conn: Connection, machine_id: str, secret_id: str) -> bool:
    result = conn.execute(
        delete(grants).where(grants.c.machine_id == machine_id, grants.c.secret_id == secret_id)
    )
    return result.rowcount > 0


def grants_of_machine(conn: Connection, machine_id: str) -> list[str]:
    query = select(grants.c.secret_id).where(grants.c.machine_id == machine_id).order_by(grants.c.secret_id)
    return list(conn.execute(query).scalars())


def grants_of_secret(conn: Connection, secret_id: str) -> list[str]:
    query = select(grants.c.machine_id).where(grants.c.secret_id == secret_id).order_by(grants.c.machine_id)
    return list(conn.execute(query).scalars())


DYNAMIC_FIELDS = '["username","password","leaseId","expiresAt"]'


def _readable_query(machine_id: str):  # type: ignore[no-untyped-def]
    """Live secrets the machine is granted AND whose project it belongs to."""
    return (
        select(
            secrets.c.id,
            secrets.c.name,
            secrets.c.project_id,
            projects.c.name.label("project_name"),
            secrets.c.kind,
            secrets.c.current_version,
            # A dynamic secret has no stored versions: machines see the fields of its leases.
            case(
                (secrets.c.kind == "dynamic", literal(DYNAMIC_FIELDS)), else_=secret_versions.c.field_names
            ).label("field_names"),
        )
        .select_from(grants)
        .join(secrets, secrets.c.id == grants.c.secret_id)
        .join(projects, projects.c.id == secrets.c.project_id)
        .join(
            machine_projects,
            and_(
                machine_projects.c.project_id == secrets.c.project_id,
                machine_projects.c.machine_id == grants.c.machine_id,
            ),
        )
        .outerjoin(
            secret_versions,
            and_(
                secret_versions.c.secret_id == secrets.c.id,
                secret_versions.c.version == secrets.c.current_version,
            ),
        )
        .where(grants.c.machine_id == machine_id, secrets.c.deleted_ms.is_(None))
        .order_by(projects.c.name, secrets.c.name)
    )


def readable_secrets(conn: Connection, machine_id: str, project_id: str | None = None) -> list[GrantedSecret]:
    query = _readable_query(machine_id)
    if project_id is not None:
        query = query.where(secrets.c.project_id == project_id)
    return [
        GrantedSecret(r.id, r.name, r.project_id, r.project_name, r.kind, r.current_version, r.field_names)
        for r in conn.execute(query)
    ]


def access(conn: Connection, machine_id: str, secret_id: str) -> tuple[bool, bool]:
    """(is a member of the secret's project, holds a grant on the secret)."""
    params = {"machine_id": machine_id, "secret_id": secret_id}
    member = conn.execute(_MEMBER, params).first() is not None
    granted = conn.execute(_GRANTED, params).first() is not None
    return member, granted


def record_nonce(conn: Connection, machine_id: str, nonce: str, expires_ms: int) -> None:
    """Insert the nonce in its own savepoint; a nonce already recorded raises Replayed (and
    leaves the caller's transaction usable)."""
    try:
        with savepoint(conn):
            conn.execute(_NONCE, {"machine_id": machine_id, "nonce": nonce, "expires_ms": expires_ms})
    except IntegrityError as e:
        raise Replayed() from e


_NONCE_COLUMNS = ("machine_id", "nonce", "expires_ms")
_NONCE_CONFLICT = "ON CONFLICT (machine_id, nonce) DO NOTHING"
_DELIVERED_COLUMNS = ("machine_id", "secret_id", "version")
_DELIVERED_CONFLICT = (
    "ON CONFLICT (machine_id, secret_id) DO UPDATE SET version = excluded.version"
    " WHERE deliveries.version <> excluded.version"
)


def record_nonces(conn: Connection, rows: list[tuple[str, str, int]]) -> bool:
    """Insert (machine id, nonce, expiry) rows, each pair distinct, in one statement. False when
    any pair was already recorded (a replay): the caller must then roll back and use
    ``record_nonce`` per request to learn which."""
    return insert_rows(conn, nonces, _NONCE_COLUMNS, rows, _NONCE_CONFLICT) == len(rows)


def record_reads(
    conn: Connection, nonce_rows: list[tuple[str, str, int]], delivered_rows: list[tuple[str, str, int]]
) -> bool:
    """``record_nonces`` then ``set_delivered_many``; False (a replay) as ``record_nonces`` says,
    and the caller must then roll back. On PostgreSQL both are one statement: one round trip
    fewer in the read lane's commit."""
    params = len(_NONCE_COLUMNS) * len(nonce_rows) + len(_DELIVERED_COLUMNS) * len(delivered_rows)
    if conn.dialect.name != "postgresql" or not delivered_rows or params > MAX_PARAMETERS:
        if not record_nonces(conn, nonce_rows):
            return False
        if delivered_rows:
            set_delivered_many(conn, delivered_rows)
        return True
    new_nonces = insert_sql(conn, nonces, _NONCE_COLUMNS, len(nonce_rows), _NONCE_CONFLICT)
    delivered_rows = sorted(delivered_rows)  # in key order, as set_delivered_many says why
    delivered = insert_sql(conn, deliveries, _DELIVERED_COLUMNS, len(delivered_rows), _DELIVERED_CONFLICT)
    sql = f"WITH n AS ({new_nonces} RETURNING 1), d AS ({delivered}) SELECT count(*) FROM n"  # noqa: S608
    values = tuple(v for row in (*nonce_rows, *delivered_rows) for v in row)
    return int(conn.exec_driver_sql(sql, values).scalar_one()) == len(nonce_rows)


def purge_nonces(conn: Connection, now_ms: int) -> int:
    return conn.execute(delete(nonces).where(nonces.c.expires_ms < now_ms)).rowcount


def delivered_versions(conn: Connection, machine_id: str, secret_ids: list[str]) -> dict[str, int]:
    query = select(deliveries.c.secret_id, deliveries.c.version).where(
        deliveries.c.machine_id == machine_id, deliveries.c.secret_id.in_(secret_ids)
    )
    return {r.secret_id: r.version for r in conn.execute(query)}


def set_delivered(conn: Connection, machine_id: str, versions: dict[str, int]) -> None:
    """Upsert the delivered versions that changed (concurrent reads by one machine must not
    collide). Most reads deliver the version already recorded: then this is one SELECT."""
    known = delivered_versions(conn, machine_id, list(versions)) if versions else {}
    changed = [(machine_id, sid, v) for sid, v in versions.items() if known.get(sid) != v]
    if changed:
        set_delivered_many(conn, changed)


def set_delivered_many(conn: Connection, rows: list[tuple[str, str, int]]) -> None:
    """Upsert (machine id, secret id, version) rows, each pair distinct; unchanged rows stay.

    In key order: on PostgreSQL an upsert locks its row even when nothing changes, and the
    read batches of other nodes upsert the same rows; one order means they cannot deadlock."""
    insert_rows(conn, deliveries, _DELIVERED_COLUMNS, sorted(rows), _DELIVERED_CONFLICT)


def secret_states(conn: Connection, vault_id: str, secret_ids: list[str]) -> dict[str, tuple[int, bool]]:
    """secret id -> (current version, deleted?) for the ids that exist in ``vault_id``."""
    query = select(secrets.c.id, secrets.c.current_version, secrets.c.deleted_ms).where(
        secrets.c.id.in_(secret_ids), secrets.c.vault_id == vault_id
    )
    return {r.id: (r.current_version, r.deleted_ms is not None) for r in conn.execute(query)}


# -- enrollment tokens ---------------------------------------------------------------
def _enrollment(row: Row[tuple[object, ...]]) -> EnrollmentToken:
    m = row._mapping
    return EnrollmentToken(
        m["id"],
        m["vault_id"],
        m["name"],
        tuple(orjson.loads(m["project_ids"])),
        tuple(orjson.loads(m["secret_ids"])),
        m["max_uses"],
        m["uses"],
        m["approval"],
        m["machine_ttl_s"],
        m["hostname_pattern"],
        m["name_pattern"],
        m["source_cidr"],
        m["created_ms"],
        m["expires_ms"],
        m["revoked_ms"],
    )


def insert_enrollment(conn: Connection, token: EnrollmentToken, token_hash: bytes) -> None:
    conn.execute(
        insert(enrollment_tokens).values(
            id=token.id,
            vault_id=token.vault_id,
            name=token.name,
            token_hash=token_hash,
            project_ids=orjson.dumps(list(token.project_ids)).decode(),
            secret_ids=orjson.dumps(list(token.secret_ids)).decode(),
            max_uses=token.max_uses,
            uses=0,
            approval=token.approval,
            machine_ttl_s=token.machine_ttl_s,
            hostname_pattern=token.hostname_pattern,
            name_pattern=token.name_pattern,
            source_cidr=token.source_cidr,
            created_ms=token.created_ms,
            expires_ms=token.expires_ms,
            revoked_ms=None,
        )
    )


def find_enrollment(conn: Connection, token_hash: bytes, for_update: bool = False) -> EnrollmentToken | None:
    query = select(enrollment_tokens).where(enrollment_tokens.c.token_hash == token_hash)
    if for_update:
        query = query.with_for_update()
    row = conn.execute(query).first()
    return _enrollment(row) if row else None


def get_enrollment(conn: Connection, token_id: str) -> EnrollmentToken | None:
    row = conn.execute(select(enrollment_tokens).where(enrollment_tokens.c.id == token_id)).first()
    return _enrollment(row) if row else None


def list_enrollments(conn: Connection, vault_id: str) -> list[EnrollmentToken]:
    query = (
        select(enrollment_tokens)
        .where(enrollment_tokens.c.vault_id == vault_id)
        .order_by(enrollment_tokens.c.created_ms)
    )
    return [_enrollment(r) for r in conn.execute(query)]


def use_enrollment(conn: Connection, token_id: str) -> None:
    conn.execute(
        update(enrollment_tokens)
        .where(enrollment_tokens.c.id == token_id)
        .values(uses=enrollment_tokens.c.uses + 1)
    )


def revoke_enrollment(conn: Connection, token_id: str, now_ms: int) -> None:
    conn.execute(
        update(enrollment_tokens).where(enrollment_tokens.c.id == token_id).values(revoked_ms=now_ms)
    )
