"""``sikker operator migrate-seal``: move a store between Shamir shares, an HSM and a key file."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

import click

from sikker import config
from sikker.cli.options import hsm_options, json_option, offline_store_options
from sikker.cli.output import console, emit_json, err_console
from sikker.core.audit import Actor
from sikker.crypto.pkcs11_seal import Pkcs11Seal, pin_from
from sikker.crypto.seal import AutoUnseal, KeyFileSeal
from sikker.errors import InvalidInput


def read_shares(threshold: int, what: str) -> list[str]:
    """Shares at a hidden prompt (a terminal), or one per line on standard input (scripts)."""
    if not sys.stdin.isatty():
        return [line.strip() for line in sys.stdin.read().splitlines() if line.strip()]
    return [click.prompt(f"{what} ({i}/{threshold})", hide_input=True) for i in range(1, threshold + 1)]


@click.command("migrate-seal")
@click.option(
    "--to", "to_kind", type=click.Choice(["shamir", "pkcs11", "keyfile"]), required=True, help="The new seal."
)
@offline_store_options
@hsm_options("PKCS#11 module of the HSM (the old or the new seal).")
@click.option(
    "--seal-key-file", type=click.Path(path_type=Path), default=None, help="The key file (old or new seal)."
)
@click.option("--shares", type=int, default=None, help="New shares (Shamir or HSM recovery) [default: 5].")
@click.option("--threshold", type=int, default=None, help="Shares needed [default: 3].")
@json_option()
def migrate_seal_command(
    to_kind: str,
    database: str | None,
    data_dir: Path | None,
    config_file: Path | None,
    hsm_module: Path | None,
    hsm_token: str | None,
    hsm_key: str | None,
    hsm_pin_file: Path | None,
    seal_key_file: Path | None,
    shares: int | None,
    threshold: int | None,
    as_json: bool,
) -> None:
    """Wrap the root key under another seal, OFFLINE (stop every server on the store first).

    The root key stays the same, so nothing else changes. The current seal is opened with its
    shares (hidden prompt, or one per line on standard input), its HSM (--hsm-* flags; without
    them, its recovery shares) or its key file (--seal-key-file). The new seal's shares are
    printed once. Then start the server with the new seal's flags.
    """
    flags = {
        "database": database,
        "data_dir": data_dir,
        "hsm_module": hsm_module,
        "hsm_token": hsm_token,
        "hsm_key": hsm_key,
        "hsm_pin_file": hsm_pin_file,
    }
    settings = config.load(flags, config_file)
    hsm: AutoUnseal | None = None
    if settings.hsm_module:
        pin = pin_from(settings.hsm_pin_file)
        hsm = Pkcs11Seal(settings.hsm_module, settings.hsm_token, settings.hsm_key, pin)
    keyfile = KeyFileSeal(seal_key_file) if seal_key_file else None
    # Imported here, not at the top: the store layer imports prometheus_client, which
    # `sikker server --workers N` must import only after setting its multiprocess directory.
    from sikker.service import seal_migration
    from sikker.service.base import wall_clock_ms
    from sikker.storage.database import Database

    db = Database(settings.database_url)
    try:
        current = seal_migration.current_seal(db)
        if current.kind == "pkcs11" and hsm is not None:
            root_key = seal_migration.unlock_with_provider(current, hsm)
        elif current.kind == "keyfile":
            if keyfile is None:
                raise InvalidInput("the store's seal is a key file: give it with --seal-key-file")
            root_key = seal_migration.unlock_with_provider(current, keyfile)
        else:
            what = "Recovery share" if current.kind == "pkcs11" else "Unseal share"
            root_key = seal_migration.unlock_with_shares(current, read_shares(current.threshold, what))
        target: AutoUnseal | None = None
        if to_kind == "pkcs11":
            if hsm is None:
                raise InvalidInput("--to pkcs11 needs --hsm-module, --hsm-token and --hsm-key")
            target = hsm
        elif to_kind == "keyfile":
            if keyfile is None or current.kind == "keyfile":
                raise InvalidInput("--to keyfile needs --seal-key-file (a new file)")
            target = keyfile
        actor = Actor("operator", getpass.getuser() or "unknown", "", "sikker-cli")
        done = seal_migration.migrate(
            db, current, root_key, target, shares, threshold, actor, wall_clock_ms()
        )
    finally:
        db.dispose()
    result = {"from": done.previous, "to": done.kind, "shares": done.shares, "threshold": done.threshold}
    if as_json:
        emit_json(result)
        return
    for i, share in enumerate(done.shares, 1):
        console.print(
            f"{'Recovery' if done.kind == 'pkcs11' else 'Unseal'} share {i}: {share}", soft_wrap=True
        )
    err_console.print(
        f"The store's seal is now {done.kind} (was {done.previous}); the old shares no longer unseal it. "
        "Start the server with the new seal's flags.",
    )
