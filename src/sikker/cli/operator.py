"""``sikker operator`` (init, unseal, seal, rotate-keys; backup and restore in cli/backup.py) and
``sikker status``."""

from __future__ import annotations

import sys
from typing import Any

import click

from sikker.cli.client import Client
from sikker.cli.machine import identity_status
from sikker.cli.options import client_command
from sikker.cli.output import console, emit_json, err_console
from sikker.cli.refs import PROJECT
from sikker.errors import Conflict, InvalidInput

# What 'sikker status' exits with when the server cannot serve yet (as 'vault status' does).
NOT_SERVING_EXIT = 2
FROM_IDENTITY = "(this machine's identity; pass --addr or set SIKKER_ADDR for another server)"
RESTART_TO_UNSEAL = "It unseals itself from its seal key file when it starts: restart the server."


@click.group()
def operator() -> None:
    """Initialise, unseal, seal, rotate keys; back up and restore."""


@operator.command()
@click.option("--shares", type=int, default=None, help="Number of unseal shares to create [default: 5].")
@click.option("--threshold", type=int, default=None, help="Shares needed to unseal [default: 3].")
@client_command
def init(client: Client, as_json: bool, shares: int | None, threshold: int | None) -> None:
    """Initialise the server: prints the unseal shares and the root token, once.

    A server started with --seal-key-file has no shares: it prints the key file's path
    instead (never its content), and refuses --shares and --threshold.
    """
    body = {k: v for k, v in {"shares": shares, "threshold": threshold}.items() if v is not None}
    result = client.post("/api/sys/init", body)
    if as_json:
        emit_json(result)
        return
    for i, share in enumerate(result["shares"], 1):
        console.print(f"Unseal share {i}: {share}", soft_wrap=True)
    console.print(f"Initial root token: {result['rootToken']}", soft_wrap=True)
    if result["shares"] and result.get("sealKeyFile"):
        console.print(
            f"\nThe server unseals itself through its HSM ({result['sealKeyFile']}). These are "
            f"RECOVERY shares: any {threshold or 3} of them unseal it when the HSM is lost or refuses "
            "('sikker operator unseal'). Store them apart; they are never shown again.",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
    elif result["shares"]:
        console.print(
            f"\nStore the shares apart. Any {threshold or 3} of them unseal the server; they are "
            "never shown again. The server is sealed: run 'sikker operator unseal'.",
            soft_wrap=True,
        )
    elif result.get("sealKeyFile"):
        console.print(
            f"\nThe server unseals itself from its seal key file {result['sealKeyFile']} (on the "
            "server's host). Back it up apart from the database: with both, anyone can read every "
            "secret; without it, nothing can be decrypted.",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )


def _print_status(state: dict[str, Any]) -> None:
    if not state["initialized"]:
        console.print("Not initialised: run 'sikker operator init'.")
        return
    line = "Sealed" if state["sealed"] else "Unsealed"
    if state["sealed"] and state["kind"] in ("shamir", "pkcs11"):
        line += f" ({state['progress']}/{state['threshold']} shares entered)"
    console.print(f"{line}; seal type {state['kind']}.")
    if state["sealed"] and state.get("error"):
        console.print(f"Auto-unseal failed: {state['error']}", soft_wrap=True)
    if state["sealed"]:
        hint = "Run 'sikker operator unseal'." if state["kind"] == "shamir" else RESTART_TO_UNSEAL
        if state["kind"] == "pkcs11":
            hint = "Fix the HSM and restart the server, or enter recovery shares: 'sikker operator unseal'."
        console.print(hint, soft_wrap=True)


@operator.command()
@click.argument("shares", nargs=-1)
@click.option("--reset", is_flag=True, help="Forget the shares entered so far (root token).")
@client_command
def unseal(client: Client, as_json: bool, shares: tuple[str, ...], reset: bool) -> None:
    """Enter unseal shares (as arguments, or at a hidden prompt) until the threshold is met.

    If a share is refused because progress was discarded (a forged or wrong share was
    entered by someone), run this again and enter your shares from the start.
    """
    if reset:
        state = client.post("/api/sys/unseal", {"reset": True})
    else:
        state = client.get("/api/sys/status")
        if not state["initialized"]:
            raise Conflict("server is not initialised: run 'sikker operator init'")
        if state["sealed"] and state["kind"] not in ("shamir", "pkcs11"):  # pkcs11: recovery shares
            raise Conflict(f"this server has no unseal shares ({state['kind']} seal). {RESTART_TO_UNSEAL}")
        pending = list(shares)
        while state["sealed"]:
            if not pending:
                if as_json:
                    break
                pending.append(
                    click.prompt(
                        f"Unseal share ({state['progress'] + 1}/{state['threshold']})", hide_input=True
                    )
                )
            state = client.post("/api/sys/unseal", {"share": pending.pop(0)})
    if as_json:
        emit_json(state)
    else:
        _print_status(state)


@operator.command()
@client_command
def seal(client: Client, as_json: bool) -> None:
    """Seal the server: it forgets its keys until unsealed again (root token)."""
    result = client.post("/api/sys/seal")
    emit_json(result) if as_json else console.print("Sealed.")


@operator.command("rotate-keys")
@click.option(
    "--project",
    type=PROJECT,
    default=None,
    help="Rotate one project's key, id or name (default: every project).",
)
@client_command
def rotate_keys(client: Client, as_json: bool, project: str | None) -> None:
    """Add a new project key version and rewrap every data key to it (root token)."""
    body = {"projectId": project} if project else {}
    result = client.post("/api/sys/rotate-keys", body)
    if as_json:
        emit_json(result)
    else:
        console.print(
            f"Rotated {result['projects']} project key(s); rewrapped {result['rewrapped']} data key(s)."
        )


@click.command()
@click.option("--vault", default=None, help="Machine identity to check (vault id or identity.json path).")
@client_command
def status(client: Client, as_json: bool, vault: str | None) -> None:
    """Show the server's seal state and, on a machine, its identity and connection.

    Exits 0 when the server is unsealed, 2 when it is sealed or not initialised (as
    'vault status' does), and with the usual error codes when it cannot be reached.
    """
    ctx = click.get_current_context()
    ca_cert = ctx.params.get("ca_cert")
    try:
        identity = identity_status(vault, ca_cert=ca_cert)
    except InvalidInput:
        identity = None  # not a machine host (or no identity for that vault)
    if identity is not None and ctx.get_parameter_source("addr") == click.core.ParameterSource.DEFAULT:
        # A machine host talks to the server in its identity.
        client = Client(identity["apiUrl"], addr_source=FROM_IDENTITY, ca_cert=ca_cert)
    state = client.get("/api/sys/status")
    serving = state["initialized"] and not state["sealed"]
    if as_json:
        emit_json(state | ({"machine": identity} if identity else {}))
        if not serving:
            sys.exit(NOT_SERVING_EXIT)
        return
    console.print(f"Server {client.addr} (version {state['version']})")
    _print_status(state)
    if state["initialized"] and state["sealed"]:
        err_console.print("The server answers 503 until it is unsealed.")
    if identity is not None:
        console.print(f"Machine {identity['machineId']} ({identity['machineName']}) in {identity['vaultId']}")
        if identity["error"]:
            console.print(f"  identity check failed: {identity['error']}")
        else:
            console.print(f"  signed requests work; {identity['secrets']} secret(s) readable")
    if not serving:
        sys.exit(NOT_SERVING_EXIT)
