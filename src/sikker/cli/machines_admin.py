"""Admin commands for the machine plane: ``machine``, ``grant`` and ``enroll-token``."""

from __future__ import annotations

from typing import Any

import click

from sikker.cli.admin import PROJECT_HELP, parse_duration
from sikker.cli.client import Client
from sikker.cli.options import client_command
from sikker.cli.output import console, emit_json, table, when
from sikker.cli.refs import PROJECT, SECRET, VAULT


def _state(m: dict[str, Any]) -> str:
    if m["revoked"]:
        return "revoked"
    if not m["approved"]:
        return "pending"
    return "enabled" if m["enabled"] else "disabled"


@click.group()
def machine() -> None:
    """List, approve, disable, enable, revoke, rename machines; manage project membership."""


@machine.command("list")
@click.option("--vault", "vault_id", type=VAULT, required=True, help="Vault id or name.")
@client_command
def machine_list(client: Client, as_json: bool, vault_id: str) -> None:
    """List the machines of a vault."""
    machines = client.get(f"/api/vaults/{vault_id}/machines")["machines"]
    if as_json:
        emit_json(machines)
        return
    table(
        ["ID", "NAME", "KIND", "STATE", "PROJECTS", "EXPIRES"],
        [
            (
                m["id"],
                m["name"],
                m["kind"],
                _state(m),
                "\n".join(m["projectIds"]) or "-",
                when(m["expiresAt"]),
            )
            for m in machines
        ],
        ids=["ID", "PROJECTS"],
    )


def _state_command(change: str, help_text: str) -> click.Command:
    @client_command
    def command(client: Client, as_json: bool, machine_id: str) -> None:
        result = client.post(f"/api/machines/{machine_id}/{change}")
        emit_json(result) if as_json else console.print(f"{machine_id}: {_state(result)}.")

    command.__doc__ = help_text
    return click.command(change)(click.argument("machine_id", metavar="MACHINE")(command))


machine.add_command(_state_command("approve", "Approve a pending machine."))
machine.add_command(_state_command("disable", "Disable a machine (403 on its next request)."))
machine.add_command(_state_command("enable", "Enable a disabled machine."))
machine.add_command(_state_command("revoke", "Revoke a machine for good (401 on its next request)."))


@machine.command("rename")
@click.argument("machine_id", metavar="MACHINE")
@click.argument("name")
@client_command
def machine_rename(client: Client, as_json: bool, machine_id: str, name: str) -> None:
    """Rename a machine."""
    result = client.post(f"/api/machines/{machine_id}/rename", {"name": name})
    emit_json(result) if as_json else console.print(f"{machine_id} is now '{result['name']}'.")


@machine.command("add")
@click.option("--project", "project_id", type=PROJECT, required=True, help=PROJECT_HELP)
@click.argument("machine_id", metavar="MACHINE")
@client_command
def machine_add(client: Client, as_json: bool, project_id: str, machine_id: str) -> None:
    """Add a machine to a project (then grant it secrets with 'sikker grant add')."""
    result = client.post(f"/api/machines/{machine_id}/projects", {"projectId": project_id})
    emit_json(result) if as_json else console.print(f"{machine_id} is in {project_id}.")


@machine.command("remove")
@click.option("--project", "project_id", type=PROJECT, required=True, help=PROJECT_HELP)
@click.argument("machine_id", metavar="MACHINE")
@client_command
def machine_remove(client: Client, as_json: bool, project_id: str, machine_id: str) -> None:
    """Take a machine out of a project; its reads there stop at once."""
    result = client.delete(f"/api/machines/{machine_id}/projects/{project_id}")
    emit_json(result) if as_json else console.print(f"{machine_id} removed from {project_id}.")


SECRET_HELP = "Secret: id or [VAULT/]PROJECT/NAME (repeat)."


@click.group()
def grant() -> None:
    """Grant machines read access to individual secrets."""


@grant.command("add")
@click.option("--machine", "machine_id", required=True, help="Machine id.")
@click.option("--secret", "secret_ids", type=SECRET, required=True, multiple=True, help=SECRET_HELP)
@client_command
def grant_add(client: Client, as_json: bool, machine_id: str, secret_ids: tuple[str, ...]) -> None:
    """Grant a machine read access to secrets."""
    result = client.post(f"/api/machines/{machine_id}/grants", {"secretIds": list(secret_ids)})
    emit_json(result) if as_json else console.print(f"{result['changed']} grant(s) added.")


@grant.command("remove")
@click.option("--machine", "machine_id", required=True, help="Machine id.")
@click.option("--secret", "secret_ids", type=SECRET, required=True, multiple=True, help=SECRET_HELP)
@client_command
def grant_remove(client: Client, as_json: bool, machine_id: str, secret_ids: tuple[str, ...]) -> None:
    """Remove grants; the machine's next read of those secrets is refused."""
    result = client.post(f"/api/machines/{machine_id}/grants/remove", {"secretIds": list(secret_ids)})
    emit_json(result) if as_json else console.print(f"{result['changed']} grant(s) removed.")


@grant.command("list")
@click.option("--machine", "machine_id", default=None, help="List the secrets a machine may read.")
@click.option(
    "--secret", "secret_id", type=SECRET, default=None, help="List the machines that may read a secret."
)
@client_command
def grant_list(client: Client, as_json: bool, machine_id: str | None, secret_id: str | None) -> None:
    """List grants of a machine (--machine) or of a secret (--secret)."""
    if (machine_id is None) == (secret_id is None):
        raise click.UsageError("give exactly one of --machine or --secret")
    if machine_id:
        found = client.get(f"/api/machines/{machine_id}/grants")["secretIds"]
    else:
        found = client.get(f"/api/secrets/{secret_id}/grants")["machineIds"]
    if as_json:
        emit_json(found)
    else:
        for item in found:
            click.echo(item)


@click.group("enroll-token")
def enroll_token() -> None:
    """Enrollment tokens: how machines join a vault."""


@enroll_token.command("create")
@click.option("--vault", "vault_id", type=VAULT, required=True, help="Vault id or name.")
@click.option(
    "--project",
    "project_ids",
    type=PROJECT,
    multiple=True,
    help="Project the machines join: id, VAULT/NAME or a name in --vault (repeat).",
)
@click.option(
    "--secret",
    "secret_ids",
    type=SECRET,
    multiple=True,
    help="Secret the machines are granted: id, [VAULT/]PROJECT/NAME or a name in the one --project (repeat).",
)
@click.option("--name", default="enrollment", show_default=True, help="A label.")
@click.option("--max-uses", default=1, show_default=True, help="How many machines may enroll (<= 10000).")
@click.option("--token-ttl", default="10m", show_default=True, help="How long the token is valid.")
@click.option("--machine-ttl", default=None, help="Lifetime of enrolled machines (default: none).")
@click.option("--hostname-pattern", default=None, help="Regex the machine's hostname must match.")
@click.option("--name-pattern", default=None, help="Name template, e.g. 'worker-{uuid8}'.")
@click.option("--source-cidr", default=None, help="Only enroll (and read) from this CIDR.")
@click.option(
    "--approval",
    type=click.Choice(["auto", "manual"]),
    default="auto",
    show_default=True,
    help="Long-lived machines start approved (auto) or pending (manual).",
)
@client_command
def enroll_token_create(
    client: Client,
    as_json: bool,
    vault_id: str,
    project_ids: tuple[str, ...],
    secret_ids: tuple[str, ...],
    name: str,
    max_uses: int,
    token_ttl: str,
    machine_ttl: str | None,
    hostname_pattern: str | None,
    name_pattern: str | None,
    source_cidr: str | None,
    approval: str,
) -> None:
    """Create an enrollment token; the plaintext is printed once."""
    body: dict[str, Any] = {
        "name": name,
        "projectIds": list(project_ids),
        "secretIds": list(secret_ids),
        "maxUses": max_uses,
        "tokenLifetimeSeconds": parse_duration(token_ttl),
        "approval": approval,
        "hostnamePattern": hostname_pattern,
        "namePattern": name_pattern,
        "sourceCidr": source_cidr,
    }
    if machine_ttl:
        body["machineLifetimeSeconds"] = parse_duration(machine_ttl)
    result = client.post(f"/api/vaults/{vault_id}/enrollment-tokens", body)
    if as_json:
        emit_json({"id": result["id"], "token": result["token"]})
    else:
        click.echo(f"id:    {result['id']}\ntoken: {result['token']}")


@enroll_token.command("list")
@click.option("--vault", "vault_id", type=VAULT, required=True, help="Vault id or name.")
@client_command
def enroll_token_list(client: Client, as_json: bool, vault_id: str) -> None:
    """List enrollment tokens (never their plaintext)."""
    found = client.get(f"/api/vaults/{vault_id}/enrollment-tokens")["enrollmentTokens"]
    if as_json:
        emit_json(found)
        return
    table(
        ["ID", "NAME", "USES", "EXPIRES", "REVOKED"],
        [
            (t["id"], t["name"], f"{t['uses']}/{t['maxUses']}", when(t["expiresAt"]), when(t["revokedAt"]))
            for t in found
        ],
    )


@enroll_token.command("revoke")
@click.argument("token_id", metavar="TOKEN")
@client_command
def enroll_token_revoke(client: Client, as_json: bool, token_id: str) -> None:
    """Revoke an enrollment token (enrolled machines keep working)."""
    result = client.delete(f"/api/enrollment-tokens/{token_id}")
    emit_json(result) if as_json else console.print(f"Revoked {token_id}.")
