"""Everything a signed secret read needs, in ONE statement (the read lane's cache fill): the
facts of the access decision (core/access.py) and the sealed live version.

One statement is one snapshot on both stores (PostgreSQL READ COMMITTED included), so the
access epoch it returns is never newer than the rows it returns with it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

from sqlalchemy import Connection, and_, bindparam, exists, select

from sikker.core.access import MachineFacts, ReadFacts
from sikker.core.model import Sealed
from sikker.errors import StoreUnavailable
from sikker.storage.database import Database
from sikker.storage.machines import machine_from_mapping
from sikker.storage.tables import (
    access_epoch,
    canaries,
    grants,
    machine_projects,
    machines,
    project_keys,
    projects,
    secret_versions,
    secrets,
)


@dataclass(frozen=True, slots=True)
class PlanRow:
    epoch: int
    facts: ReadFacts
    version: int
    sealed: Sealed | None
    wrapped_project_key: bytes | None


_FROZEN_PROJECTS = machine_projects.join(projects, projects.c.id == machine_projects.c.project_id)
_MACHINE_FROZEN = (
    exists()
    .select_from(_FROZEN_PROJECTS)
    .where(machine_projects.c.machine_id == machines.c.id, projects.c.frozen_ms.is_not(None))
)


_QUERY = (
    select(
        select(access_epoch.c.epoch).where(access_epoch.c.id == 1).scalar_subquery().label("epoch"),
        machines,
        secrets.c.vault_id.label("secret_vault"),
        secrets.c.project_id.label("secret_project"),
        secrets.c.current_version,
        secrets.c.deleted_ms,
        exists()
        .where(
            machine_projects.c.machine_id == machines.c.id,
            machine_projects.c.project_id == secrets.c.project_id,
        )
        .label("member"),
        exists()
        .where(grants.c.machine_id == machines.c.id, grants.c.secret_id == secrets.c.id)
        .label("granted"),
        _MACHINE_FROZEN.label("machine_frozen"),
        projects.c.frozen_ms,
        canaries.c.enabled.label("canary_enabled"),
        secret_versions.c.ciphertext,
        secret_versions.c.wrapped_dek,
        secret_versions.c.key_version.label("sealed_key_version"),
        project_keys.c.wrapped_key,
    )
    .select_from(
        machines.join(secrets, secrets.c.id == bindparam("secret_id"))
        .join(projects, projects.c.id == secrets.c.project_id)
        .outerjoin(canaries, canaries.c.secret_id == secrets.c.id)
        .outerjoin(
            secret_versions,
            and_(
                secret_versions.c.secret_id == secrets.c.id,
                secret_versions.c.version == secrets.c.current_version,
            ),
        )
        .outerjoin(
            project_keys,
            and_(
                project_keys.c.project_id == projects.c.id,
                project_keys.c.version == secret_versions.c.key_version,
            ),
        )
    )
    .where(machines.c.id == bindparam("machine_id"))
)


def read_plan(conn: Connection, machine_id: str, secret_id: str) -> PlanRow | None:
    """None when the machine or the secret does not exist."""
    row = conn.execute(_QUERY, {"machine_id": machine_id, "secret_id": secret_id}).first()
    return None if row is None else _plan(row._mapping, secret_id)


def _plan(m: Mapping[Any, Any], secret_id: str) -> PlanRow:
    sealed = None
    if m["ciphertext"] is not None:
        sealed = Sealed(bytes(m["ciphertext"]), bytes(m["wrapped_dek"]), m["sealed_key_version"])
    facts = ReadFacts(
        machine=MachineFacts(machine_from_mapping(m), bool(m["machine_frozen"])),
        secret_id=secret_id,
        secret_vault_id=m["secret_vault"],
        secret_deleted=m["deleted_ms"] is not None,
        project_id=m["secret_project"],
        project_frozen=m["frozen_ms"] is not None,
        member=bool(m["member"]),
        granted=bool(m["granted"]),
        canary=bool(m["canary_enabled"]),
    )
    return PlanRow(
        epoch=int(m["epoch"]),
        facts=facts,
        version=m["current_version"],
        sealed=sealed,
        wrapped_project_key=bytes(m["wrapped_key"]) if m["wrapped_key"] is not None else None,
    )


class Busy:
    """``PlanReader.read_now``: the store would have made the caller wait."""


BUSY: Final = Busy()
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


class PlanReader:
    """``read_plan`` for the read lane: on its event loop (``read_now``) and fill threads.

    On SQLite each thread keeps its own driver connection and runs the statement there, in
    autocommit (a single statement reads one snapshot): SQLAlchemy's per-execution work is
    most of a fill's cost otherwise (about 470 of 550 us of CPU per fill, measured on a store
    of 1,000,000 secrets). Elsewhere, and for anything but this one statement, the store is
    used as always."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._local = threading.local()
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self._sql = ""
        self._params: tuple[str, ...] = ()
        self._fixed: dict[str, Any] = {}
        if db.is_sqlite:
            compiled = _QUERY.compile(dialect=db.engine.dialect)
            self._sql = str(compiled)
            self._params = tuple(compiled.positiontup or ())
            self._fixed = dict(compiled.params)

    def read(self, machine_id: str, secret_id: str) -> PlanRow | None:
        if not self.db.is_sqlite:
            with self.db.read() as conn:
                return read_plan(conn, machine_id, secret_id)
        found = self._read_sqlite(machine_id, secret_id, patient=True)
        assert not isinstance(found, Busy)  # a patient read waits (busy_timeout) or fails
        return found

    def read_now(self, machine_id: str, secret_id: str) -> PlanRow | Busy | None:
        """``read`` on SQLite without waiting for a lock: ``BUSY`` if the store would make it
        wait (the caller then uses ``read`` on a thread of its own). For the event loop: a
        fill there costs about 50 us of CPU and no thread hop."""
        assert self.db.is_sqlite
        return self._read_sqlite(machine_id, secret_id, patient=False)

    def _read_sqlite(self, machine_id: str, secret_id: str, patient: bool) -> PlanRow | Busy | None:
        given = self._fixed | {"machine_id": machine_id, "secret_id": secret_id}
        try:
            cursor = self._connection(patient).execute(self._sql, tuple(given[name] for name in self._params))
            row = cursor.fetchone()
            names = [d[0] for d in cursor.description]
        except sqlite3.Error as e:
            if not patient and (getattr(e, "sqlite_errorcode", 0) & 0xFF) in _BUSY_CODES:  # extended too
                return BUSY
            self._drop(patient)
            raise StoreUnavailable() from e
        return None if row is None else _plan(dict(zip(names, row, strict=True)), secret_id)

    def _connection(self, patient: bool) -> sqlite3.Connection:
        """This thread's own connection (outside the pool), one per kind of wait."""
        key = "patient" if patient else "impatient"
        conn = getattr(self._local, key, None)
        if conn is None:
            proxied = self.db.engine.raw_connection()  # set up as every connection (PRAGMAs)
            conn = cast(sqlite3.Connection, proxied.dbapi_connection)
            proxied.detach()
            if not patient:  # SQLITE_BUSY at once rather than the busy handler's sleeps
                conn.execute("PRAGMA busy_timeout=0")
            setattr(self._local, key, conn)
            with self._lock:
                self._connections.append(conn)
        return conn

    def _drop(self, patient: bool) -> None:
        key = "patient" if patient else "impatient"
        conn = getattr(self._local, key, None)
        setattr(self._local, key, None)
        if conn is not None:
            with self._lock:
                self._connections.remove(conn)
            conn.close()

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
