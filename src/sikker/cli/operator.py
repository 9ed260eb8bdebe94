"""``sikker operator`` (init, unseal, seal, rotate-keys) and ``sikker status``."""

from __future__ import annotations

from typing import Any

import click

from sikker.cli.client import Client
from sikker.cli.machine import identity_status
from sikker.cli.options import client_command
from sikker.cli.output import console, emit_json, err_console
from sikker.errors import InvalidInput


@click.group()
def operator() -> None:
    """Initialise, unseal, seal and rotate keys."""


@operator.command()
@click.option("--shares", default=5, show_default=True, help="Number of unseal shares to create.")
@click.option("--threshold", default=3, show_default=True, help="Shares needed to unseal.")
@client_command
def init(client: Client, as_json: bool, shares: int, threshold: int) -> None:
    """Initialise the server: prints the unseal shares and the root token, once."""
    result = client.post("/api/sys/init", {"shares": shares, "threshold": threshold})
    if as_json:
        emit_json(result)
        return
    for i, share in enumerate(result["shares"], 1):
        console.print(f"Unseal share {i}: {share}", soft_wrap=True)
    console.print(f"Initial root token: {result['rootToken']}", soft_wrap=True)
    if result["shares"]:
        console.print(
            f"\nStore the shares apart. Any {threshold} of them unseal the server; they are "
            "never shown again. The server is sealed: run 'sikker operator unseal'."
        )


def _print_status(state: dict[str, Any]) -> None:
    if not state["initialized"]:
        console.print("Not initialised: run 'sikker operator init'.")
        return
    line = "Sealed" if state["sealed"] else "Unsealed"
    if state["sealed"] and state["kind"] == "shamir":
        line += f" ({state['progress']}/{state['threshold']} shares entered)"
    console.print(f"{line}; seal type {state['kind']}.")


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
@click.option("--project", default=None, help="Rotate one project's key (default: every project).")
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
    """Show the server's seal state and, on a machine, its identity and connection."""
    try:
        identity = identity_status(vault)
    except InvalidInput:
        identity = None  # not a machine host (or no identity for that vault)
    source = click.get_current_context().get_parameter_source("addr")
    if identity is not None and source == click.core.ParameterSource.DEFAULT:
        client = Client(identity["apiUrl"])  # a machine host talks to the server in its identity
    state = client.get("/api/sys/status")
    if as_json:
        emit_json(state | ({"machine": identity} if identity else {}))
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
