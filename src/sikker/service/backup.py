"""Online backups: one consistent snapshot of every table, encrypted, while the server serves.

The snapshot is one read transaction (SQLite WAL read snapshot; PostgreSQL REPEATABLE READ,
READ ONLY), streamed row by row into the encrypted file (``crypto/backup_file.py``) through
the inner JSON-lines format (``core/backup.py``). The file is built in an anonymous temporary
file on the server (unlinked at once, so nothing is left behind by a crash), then sent: the
database transaction never waits on a slow client, and memory stays at one chunk. Each
backup (and each refused attempt) is a record of the ``system`` audit chain with its size
and checksum. Restores are offline: ``service/restore.py``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from typing import BinaryIO

from sikker import __version__
from sikker.core import backup as fmt
from sikker.core import permissions
from sikker.core.audit import SYSTEM_CHAIN, Action, Actor
from sikker.core.model import Principal
from sikker.crypto import backup_file
from sikker.errors import Conflict
from sikker.service.base import Deps
from sikker.storage import audit as audit_store
from sikker.storage import backup as backup_store
from sikker.storage import system


@dataclass(frozen=True, slots=True)
class BackupFile:
    file: BinaryIO  # positioned at the start; the caller reads and closes it
    size: int
    sha256: str
    tables: int
    rows: int


class BackupService:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def create(self, principal: Principal, actor: Actor) -> BackupFile:
        """Take a backup (root only). Audited with its size and SHA-256 before it is returned."""
        problem = permissions.decide(principal, permissions.BACKUP_CREATE, None)
        if problem is not None:
            self._audit(actor, {}, "denied", problem.message)
            raise problem
        out = tempfile.TemporaryFile(prefix="sikker-backup-")  # noqa: SIM115 - handed to the caller
        try:
            made = self._write(out)
            sizes = {"bytes": str(made.size), "tables": str(made.tables), "rows": str(made.rows)}
            self._audit(actor, sizes | {"sha256": made.sha256}, "ok", "")
        except BaseException:
            out.close()
            raise
        out.seek(0)
        return made

    def _write(self, out: BinaryIO) -> BackupFile:
        deps = self.deps
        specs = backup_store.table_specs()
        total = 0
        with deps.db.snapshot() as conn:
            config = system.get_seal_config(conn)  # the first read: SQLite's snapshot starts here
            if config is None:
                raise Conflict("server is not initialised: there is nothing to back up")
            revision = backup_store.schema_revision(conn) or "base"
            now = deps.clock()
            salt = backup_file.new_salt()
            seal = {
                "kind": config.kind,
                "shares": config.shares,
                "threshold": config.threshold,
                "wrappedRootKey": config.wrapped_root_key.hex(),
            }
            writer = backup_file.BackupWriter(
                out, deps.keyring.backup_key(salt), salt, {"createdAt": fmt.created_at(now), "seal": seal}
            )
            store = "sqlite" if deps.db.is_sqlite else "postgresql"
            writer.write(fmt.header_line(fmt.Header(now, store, revision, __version__, specs)))
            for spec in specs:
                writer.write(fmt.table_line(spec.name))
                count = 0
                for row in backup_store.read_table(conn, spec):
                    writer.write(fmt.row_line(spec, row))
                    count += 1
                writer.write(fmt.end_line(spec.name, count))
                total += count
            writer.write(fmt.done_line(len(specs), total))
        checksum = writer.close()
        return BackupFile(out, writer.size, checksum, len(specs), total)

    def _audit(self, actor: Actor, target: dict[str, str], result: str, reason: str) -> None:
        with self.deps.db.write() as conn:
            audit_store.append(
                conn, SYSTEM_CHAIN, self.deps.clock(), actor, Action.OPERATOR_BACKUP, target, result, reason
            )
