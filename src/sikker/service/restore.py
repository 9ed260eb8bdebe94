"""Offline restore of a backup file into an empty store (SQLite or PostgreSQL, either way).

Order, so that a bad file writes nothing and a failure half-way leaves the target empty:

1. ``open_backup``: the SHA-256 trailer (truncated or changed bytes) and the header.
2. ``unlock``: the unseal shares (or the key file) unwrap the root key held in the header;
   shares of another server are refused here.
3. ``verify``: every frame decrypted and every line parsed, nothing written.
4. ``restore``: the target must be empty (``force`` wipes it); its schema is brought to the
   backup's revision; then ONE transaction empties it of seeded rows, inserts every row in
   dependency order (frames decrypted again, so a file changed since step 3 rolls back),
   and moves PostgreSQL's sequences on; then the schema goes to head and the restore is
   recorded in the ``system`` audit chain.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sikker.core import backup as fmt
from sikker.core.audit import SYSTEM_CHAIN, Action, Actor
from sikker.crypto import backup_file, seal, shamir
from sikker.crypto.seal import KeyFileSeal
from sikker.errors import Conflict, InvalidCiphertext, InvalidInput
from sikker.storage import audit as audit_store
from sikker.storage import backup as backup_store
from sikker.storage.database import Database, store_lock


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """What the plaintext header says, before any key."""

    path: Path
    created_at: str
    seal_kind: str
    shares: int
    threshold: int
    wrapped_root_key: bytes
    sha256: str


@dataclass(frozen=True, slots=True)
class Summary:
    created_at: str
    source_store: str
    schema_revision: str
    tables: int
    rows: int
    header: fmt.Header


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as e:
        raise InvalidInput(f"cannot read the backup file {path}: {e.strerror}") from e


def open_backup(path: Path) -> BackupInfo:
    """Check the file's checksum and read its header."""
    with _open(path) as f:
        checksum = backup_file.verify_checksum(f)
        header, _ = backup_file.read_header(f)
    try:
        sealed = header["seal"]
        info = BackupInfo(
            path,
            str(header["createdAt"]),
            str(sealed["kind"]),
            int(sealed["shares"]),
            int(sealed["threshold"]),
            bytes.fromhex(str(sealed["wrappedRootKey"])),
            checksum,
        )
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidInput("backup file: malformed seal section in the header") from e
    backup_file.salt_of(header)
    return info


_WRONG_SHARES = (
    "the unseal shares do not unlock this backup: it was made by a server with other shares, or "
    "a share is wrong. Nothing was written"
)
_WRONG_KEY_FILE = (
    "the key file does not unlock this backup: it was made by a server with another seal key. "
    "Nothing was written"
)


def unlock(info: BackupInfo, shares: list[str] | None = None, key_file: Path | None = None) -> bytes:
    """The root key of the backed-up server, from its unseal shares or its seal key file."""
    if info.seal_kind in ("shamir", "pkcs11"):  # an HSM seal's backup: its recovery shares
        if not shares:
            raise InvalidInput(f"this backup needs {info.threshold} unseal shares of the server it came from")
        try:
            raw = [shamir.decode_share(s.strip()) for s in shares]
        except shamir.ShareError as e:
            raise InvalidInput(f"unseal share refused: {e}") from e
        if len({r[0] for r in raw}) < info.threshold:
            raise InvalidInput(f"this backup needs {info.threshold} different unseal shares")
        wrong = _WRONG_SHARES
        try:
            unseal_key = shamir.combine(raw)
        except shamir.ShareError as e:
            raise InvalidInput(wrong) from e
    elif info.seal_kind == "keyfile":
        if key_file is None:
            raise InvalidInput("this backup came from a server with a seal key file: pass it with --key-file")
        unseal_key, wrong = KeyFileSeal(key_file).load_key(), _WRONG_KEY_FILE
    else:
        raise InvalidInput(f"this backup's seal type {info.seal_kind!r} is not supported by this restore")
    try:
        return seal.unwrap_root(unseal_key, seal.shares_part(info.seal_kind, info.wrapped_root_key))
    except InvalidCiphertext as e:
        raise InvalidInput(wrong) from e


_ALTERED = (
    "the backup's content does not decrypt with the root key its shares unlock: the file was "
    "altered (and its checksum recomputed). Nothing was written"
)


def _rows(f: BinaryIO, root_key: bytes, parser: fmt.Parser) -> Iterator[fmt.Rows]:
    header, line = backup_file.read_header(f)
    key = backup_file.derive_key(root_key, backup_file.salt_of(header))
    try:
        yield from parser.parse(fmt.lines(backup_file.frames(f, key, header, line)))
    except InvalidCiphertext as e:
        raise InvalidInput(_ALTERED) from e


def verify(info: BackupInfo, root_key: bytes) -> Summary:
    """Decrypt and parse the whole file without writing anything; the summary of its content."""
    parser = fmt.Parser()
    seal_rows: list[tuple[object, ...]] = []
    with _open(info.path) as f:
        for batch in _rows(f, root_key, parser):
            if batch.table.name == "seal_config":
                column = batch.table.columns.index("wrapped_root_key")
                seal_rows += [(row[column],) for row in batch.rows]
    if seal_rows != [(info.wrapped_root_key,)]:
        raise InvalidInput("the backup's header and its seal table disagree: the file was altered")
    header = parser.header
    assert header is not None
    return Summary(
        fmt.created_at(header.created_ms),
        header.source_store,
        header.schema_revision,
        len(header.tables),
        parser.total_rows,
        header,
    )


def restore(
    info: BackupInfo, root_key: bytes, database_url: str, actor: Actor, now_ms: int, force: bool = False
) -> Summary:
    """Restore into the store at ``database_url`` (no server may be running on it: on SQLite a
    running server makes this a Conflict; on PostgreSQL the operator makes sure). Refused
    into a store with rows unless ``force``, which deletes them first. The whole file is
    checked before the target is even opened (a SQLite file is not created for a bad backup)."""
    summary = verify(info, root_key)
    with store_lock(database_url, exclusive=True):  # refused while a server runs on the store
        db = Database(database_url)
        try:
            return _restore(info, root_key, db, summary, actor, now_ms, force)
        finally:
            db.dispose()


def _restore(
    info: BackupInfo, root_key: bytes, db: Database, summary: Summary, actor: Actor, now_ms: int, force: bool
) -> Summary:
    revision = summary.schema_revision
    if not backup_store.known_revision(revision):
        raise InvalidInput(
            f"this backup has schema revision {revision}, which this Sikker does not know (made by a "
            "newer version): restore it with that version or a newer one"
        )
    occupied = backup_store.occupied_tables(db)
    if occupied and not force:
        listed = ", ".join(f"{name} ({count})" for name, count in sorted(occupied.items())[:5])
        raise Conflict(
            f"the target store is not empty ({listed}{', ...' if len(occupied) > 5 else ''}): restore "
            "into an empty store, or pass --force to delete everything in it first"
        )
    if occupied:
        backup_store.wipe(db)
    current = backup_store.target_revision(db)
    if current != revision:
        if current is None or backup_store.is_ancestor(current, revision):
            db.migrate(revision)
        else:
            db.downgrade(revision)
    parser = fmt.Parser()
    with _open(info.path) as f, db.write() as conn:
        backup_store.check_layout(conn, summary.header.tables)
        backup_store.clear_for_restore(conn, summary.header.tables)
        for batch in _rows(f, root_key, parser):
            if parser.header != summary.header:
                raise InvalidInput("the backup file changed during the restore; nothing was restored")
            backup_store.insert_batch(conn, batch.table, batch.rows)
        backup_store.reset_sequences(conn)
    db.migrate()
    with db.write() as conn:
        target = {"sha256": info.sha256, "created": summary.created_at, "rows": str(summary.rows)}
        audit_store.append(conn, SYSTEM_CHAIN, now_ms, actor, Action.OPERATOR_RESTORE, target)
    return summary
