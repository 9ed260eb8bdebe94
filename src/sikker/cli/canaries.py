"""``sikker canary`` and ``sikker project unfreeze``; ``secret create --canary``."""

from __future__ import annotations

import click

from sikker.cli.admin import project
from sikker.cli.client import Client
from sikker.cli.options import client_command
from sikker.cli.output import console, emit_json, table, when
from sikker.cli.refs import PROJECT, SECRET, VAULT

SHAPES = ["aws-access-key", "postgres-url", "api-token", "password", "structured-db"]


def create_canary(
    client: Client, project_id: str, name: str, looks_like: str, related: tuple[str, ...]
) -> str:
    body = {"name": name, "looksLike": looks_like, "freezeRelated": list(related)}
    return str(client.post(f"/api/projects/{project_id}/canaries", body)["id"])


@click.group()
def canary() -> None:
    """Canary secrets: decoys that freeze their project the moment they are read.

    Create one with 'sikker secret create --project P NAME --canary'. Route alerts
    with 'sikker audit stream add (webhook|email) --action "canary:*"'.
    """


@canary.command("list")
@click.option("--vault", "vault_id", type=VAULT, required=True, help="Vault id or name.")
@client_command
def canary_list(client: Client, as_json: bool, vault_id: str) -> None:
    """List a vault's canaries."""
    found = client.get(f"/api/vaults/{vault_id}/canaries")["canaries"]
    if as_json:
        emit_json(found)
        return
    table(
        ["ID", "NAME", "PROJECT", "LOOKS LIKE", "ENABLED", "FREEZES ALSO"],
        [
            (
                c["id"],
                c["name"],
                c["projectId"],
                c["looksLike"],
                "yes" if c["enabled"] else "no",
                "\n".join(c["freezeRelated"]) or "-",
            )
            for c in found
        ],
        ids=["ID", "PROJECT", "FREEZES ALSO"],
    )


@canary.command("show")
@click.argument("secret_id", metavar="CANARY", type=SECRET)
@client_command
def canary_show(client: Client, as_json: bool, secret_id: str) -> None:
    """Show a canary and its trips: which machine, from which IP, when."""
    found = client.get(f"/api/canaries/{secret_id}")
    if as_json:
        emit_json(found)
        return
    console.print(
        f"{found['id']} '{found['name']}' in {found['projectId']}, looks like {found['looksLike']}, "
        f"{'enabled' if found['enabled'] else 'disabled'}"
    )
    table(
        ["WHEN", "BY", "FROM", "FROZE"],
        [
            (
                when(t["time"]),
                f"{t['actorKind']}:{t['actorId']}",
                t["sourceIp"],
                "\n".join(t["frozenProjects"]),
            )
            for t in found["trips"]
        ],
        ids=["BY", "FROZE"],
    )


def _toggle(enabled: bool) -> click.Command:
    @client_command
    def command(client: Client, as_json: bool, secret_id: str) -> None:
        result = client.post(f"/api/canaries/{secret_id}/{'enable' if enabled else 'disable'}")
        emit_json(result) if as_json else console.print(
            f"{secret_id}: {'enabled' if enabled else 'disabled'}."
        )

    command.__doc__ = (
        "Arm a canary again."
        if enabled
        else "Disarm a canary (reads no longer freeze; audit keeps recording them)."
    )
    name = "enable" if enabled else "disable"
    return click.command(name)(click.argument("secret_id", metavar="CANARY", type=SECRET)(command))


canary.add_command(_toggle(True))
canary.add_command(_toggle(False))


@project.command("unfreeze")
@click.argument("project_id", metavar="PROJECT", type=PROJECT)
@click.option("--reason", required=True, help="Why it is safe (recorded in the audit log).")
@client_command
def project_unfreeze(client: Client, as_json: bool, project_id: str, reason: str) -> None:
    """Unfreeze a project frozen by a canary read, once the incident is handled."""
    result = client.post(f"/api/projects/{project_id}/unfreeze", {"reason": reason})
    emit_json(result) if as_json else console.print(f"{project_id} unfrozen.")
