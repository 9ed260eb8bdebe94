"""``sikker operator backup`` (online, through the server) and ``restore`` (offline, on the store)."""

from __future__ import annotations

import getpass
import hashlib
import os
from pathlib import Path

import click

from sikker import config
from sikker.cli.client import Client
from sikker.cli.options import client_command, json_option, offline_store_options
from sikker.cli.output import console, emit_json, err_console
from sikker.cli.seal_migration import read_shares
from sikker.core.audit import Actor
from sikker.errors import InvalidInput


@click.command("backup")
@click.option(
    "--output", "-o", type=click.Path(path_type=Path), required=True, help="Write the backup to FILE (new)."
)
@client_command
def backup_command(client: Client, as_json: bool, output: Path) -> None:
    """Take an encrypted backup of the whole store while the server keeps serving (root token).

    The file is useless without the server's unseal shares or seal key file; keep it apart
    from them anyway. It is written with mode 0600 and never overwrites a file.
    """
    partial = output.with_name(output.name + ".partial")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        raise InvalidInput(f"cannot create {partial}: {e.strerror}") from e
    if output.exists():
        os.close(fd)
        partial.unlink()
        raise InvalidInput(f"{output} exists: choose another name (a backup never overwrites a file)")
    sha = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as f:
            tail = bytearray()

            def sink(chunk: bytes) -> None:
                nonlocal size
                f.write(chunk)
                size += len(chunk)
                tail.extend(chunk)
                # Hash everything but the 40-byte trailer, which holds the checksum itself.
                if len(tail) > 40:
                    sha.update(tail[:-40])
                    del tail[:-40]

            headers = client.download("POST", "/api/sys/backup", sink)
            f.flush()
            os.fsync(f.fileno())
        expected = headers.get("x-sikker-backup-sha256", "")
        if sha.hexdigest() != expected or bytes(tail[8:]).hex() != expected:
            raise InvalidInput(
                "the backup arrived damaged (checksum mismatch); nothing was kept: run it again"
            )
        os.replace(partial, output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    result = {
        "file": str(output),
        "bytes": size,
        "sha256": expected,
        "rows": int(headers.get("x-sikker-backup-rows", 0)),
    }
    if as_json:
        emit_json(result)
        return
    console.print(f"Backup written to {output}: {size} bytes, {result['rows']} rows.", soft_wrap=True)
    console.print(f"SHA-256: {expected}", soft_wrap=True)


@click.command("restore")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@offline_store_options
@click.option(
    "--key-file",
    type=click.Path(path_type=Path),
    default=None,
    help="The seal key file of the server the backup came from (servers with --seal-key-file).",
)
@click.option("--force", is_flag=True, help="Delete everything in the target store first.")
@json_option()
def restore_command(
    file: Path,
    database: str | None,
    data_dir: Path | None,
    config_file: Path | None,
    key_file: Path | None,
    force: bool,
    as_json: bool,
) -> None:
    """Restore a backup into an empty store, OFFLINE: stop every server on the target first
    (a running server, or node, makes the restore refuse, exit code 5).

    The target (SQLite or PostgreSQL, whatever store the backup came from) is chosen like
    'sikker server' chooses its store. Unseal shares (an HSM server's recovery shares) are
    asked for at a hidden prompt, or read one per line from standard input; a key-file
    server's backup needs --key-file.
    Afterwards 'sikker server' on the target starts sealed and the old shares (or key
    file) unseal it.
    """
    settings = config.load({"database": database, "data_dir": data_dir}, config_file)
    # Imported here: see migrate_seal_command (prometheus_client must load after the server
    # has set its multiprocess directory, and main.py imports this module).
    from sikker.service import restore as restoring
    from sikker.service.base import wall_clock_ms

    info = restoring.open_backup(file)
    what = "Recovery share" if info.seal_kind == "pkcs11" else "Unseal share"
    shares = read_shares(info.threshold, what) if info.seal_kind in ("shamir", "pkcs11") else None
    root_key = restoring.unlock(info, shares, key_file)
    if not as_json:
        err_console.print(f"Backup of {info.created_at} unlocked; checking every frame before writing.")
    actor = Actor("operator", getpass.getuser() or "unknown", "", "sikker-cli")
    summary = restoring.restore(info, root_key, settings.database_url, actor, wall_clock_ms(), force=force)
    result = {
        "createdAt": summary.created_at,
        "sourceStore": summary.source_store,
        "schemaRevision": summary.schema_revision,
        "tables": summary.tables,
        "rows": summary.rows,
        "sha256": info.sha256,
    }
    if as_json:
        emit_json(result)
        return
    console.print(
        f"Restored {summary.rows} rows in {summary.tables} tables (backup of {summary.created_at}, "
        f"from {summary.source_store}). Start 'sikker server' on this store and unseal it with the "
        "old shares (or key file).",
        soft_wrap=True,
    )
