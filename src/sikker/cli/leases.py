"""``sikker lease``: the leases of dynamic secrets (list, show, renew, revoke, forget).

Lease commands never print a password: the server does not return one outside the lease's
creation by its machine, and these commands print only what the admin API answers.
"""

from __future__ import annotations

from typing import Any

import click

from sikker.cli.admin import parse_duration
from sikker.cli.client import Client
from sikker.cli.options import client_command
from sikker.cli.output import console, emit_json, table, when
from sikker.cli.refs import DYNAMIC, PROJECT, VAULT
from sikker.errors import InvalidInput, NotFound

STATES = ["creating", "active", "revoking", "revoked", "forgotten", "failed"]
VAULT_HELP = "Vault id or name (default: the vault of --dynamic/--project/--machine, or your only vault)."
LIST_PAGE = 200


def find_vault(
    client: Client, vault: str | None, dynamic: str | None, project: str | None, machine: str | None
) -> str:
    """The vault the lease routes need: --vault, else the vault of what the filter names,
    else the one vault the token sees."""
    if vault:
        return vault
    if dynamic:
        return str(client.get(f"/api/dynamic-secrets/{dynamic}")["vaultId"])
    vaults = [str(v["id"]) for v in client.get("/api/vaults")["vaults"]]
    if project:
        for vault_id in vaults:
            projects = client.get(f"/api/vaults/{vault_id}/projects")["projects"]
            if any(p["id"] == project for p in projects):
                return vault_id
        raise NotFound(f"no vault you can see holds project {project}")
    if machine:
        for vault_id in vaults:
            machines = client.get(f"/api/vaults/{vault_id}/machines")["machines"]
            if any(m["id"] == machine for m in machines):
                return vault_id
        raise NotFound(f"no vault you can see holds machine {machine}")
    if len(vaults) != 1:
        raise InvalidInput("give --vault (or --dynamic, --project or --machine): you can see several vaults")
    return vaults[0]


def _filters(dynamic: str | None, project: str | None, machine: str | None) -> dict[str, str]:
    given = {"dynamic": dynamic, "project": project, "machine": machine}
    return {k: v for k, v in given.items() if v}


def _until(lease: dict[str, Any]) -> str:
    if lease["state"] in ("revoked", "forgotten"):
        return f"{lease['state']} {when(lease.get('revokedAt'))}"
    return when(lease.get("expiresAt"))


@click.group()
def lease() -> None:
    """Leases of dynamic secrets: who holds which database user, until when."""


def filter_options(fn: Any) -> Any:
    fn = click.option("--machine", default=None, metavar="MACHINE", help="Only this machine's leases (id).")(
        fn
    )
    fn = click.option("--project", type=PROJECT, default=None, help="Only leases of this project.")(fn)
    fn = click.option("--dynamic", type=DYNAMIC, default=None, help="Only leases of this dynamic secret.")(fn)
    return click.option("--vault", type=VAULT, default=None, help=VAULT_HELP)(fn)


@lease.command("list")
@filter_options
@click.option("--state", type=click.Choice(STATES), default=None, help="Only leases in this state.")
@click.option(
    "--limit", type=click.IntRange(1, 10_000), default=LIST_PAGE, show_default=True, help="At most this many."
)
@client_command
def lease_list(
    client: Client,
    as_json: bool,
    vault: str | None,
    dynamic: str | None,
    project: str | None,
    machine: str | None,
    state: str | None,
    limit: int,
) -> None:
    """List leases, newest first: machine, database user, state and when each ends."""
    vault_id = find_vault(client, vault, dynamic, project, machine)
    params = _filters(dynamic, project, machine) | ({"state": state} if state else {})
    leases: list[dict[str, Any]] = []
    cursor: str | None = None
    while len(leases) < limit:
        page = params | {"limit": str(min(LIST_PAGE, limit - len(leases)))}
        if cursor:
            page["cursor"] = cursor
        result = client.get(f"/api/vaults/{vault_id}/leases", page)
        leases.extend(result["leases"])
        cursor = result.get("next")
        if not cursor or not result["leases"]:
            break
    if as_json:
        emit_json(leases)
        return
    table(
        ["ID", "DYNAMIC", "MACHINE", "USERNAME", "STATE", "UNTIL"],
        [
            (x["id"], x["dynamicSecretId"], x["machineId"], x["username"], x["state"], _until(x))
            for x in leases
        ],
        ids=["ID", "DYNAMIC", "MACHINE"],
    )


@lease.command("show")
@click.argument("lease_id", metavar="LEASE")
@client_command
def lease_show(client: Client, as_json: bool, lease_id: str) -> None:
    """Show one lease: its user, state, expiry, renewals left and revocation attempts."""
    x = client.get(f"/api/leases/{lease_id}")
    if as_json:
        emit_json(x)
        return
    rows = [
        ("ID", x["id"]),
        ("DYNAMIC", x["dynamicSecretId"]),
        ("PROJECT", x["projectId"]),
        ("MACHINE", x["machineId"]),
        ("USERNAME", x["username"]),
        ("STATE", x["state"]),
        ("CREATED", when(x.get("createdAt"))),
        ("EXPIRES", when(x.get("expiresAt"))),
        ("MAX EXPIRES", when(x.get("maxExpiresAt"))),
        ("RENEWABLE", "yes" if x.get("renewable") else "no"),
    ]
    if x.get("revokedAt") or x.get("revokeReason"):
        rows += [
            ("REVOKED", when(x.get("revokedAt"))),
            ("REASON", x.get("revokeReason") or "-"),
            ("BY", x.get("revokedBy") or "-"),
        ]
    if x.get("attempts") or x.get("lastError"):
        rows += [("ATTEMPTS", x.get("attempts")), ("LAST ERROR", x.get("lastError") or "-")]
    table(["FIELD", "VALUE"], rows, ids=["VALUE"])


@lease.command("renew")
@click.argument("lease_id", metavar="LEASE")
@click.option("--ttl", default=None, help="New TTL from now (e.g. 1h); default: the dynamic secret's.")
@client_command
def lease_renew(client: Client, as_json: bool, lease_id: str, ttl: str | None) -> None:
    """Push a lease's expiry out; never beyond its issue time plus the max TTL."""
    body = {"ttl": parse_duration(ttl)} if ttl else {}
    result = client.post(f"/api/leases/{lease_id}/renew", body)
    emit_json(result) if as_json else console.print(
        f"{lease_id} now expires {when(result.get('expiresAt'))} (max {when(result.get('maxExpiresAt'))})."
    )


@lease.command("revoke")
@click.argument("lease_id", metavar="[LEASE]", required=False)
@filter_options
@click.option("--reason", default=None, help="Why (kept in the lease and the audit record).")
@click.option(
    "--sync",
    is_flag=True,
    help="Attempt the revocations now and wait (a bulk revoke waits for at most 100); default: queue them.",
)
@client_command
def lease_revoke(
    client: Client,
    as_json: bool,
    lease_id: str | None,
    vault: str | None,
    dynamic: str | None,
    project: str | None,
    machine: str | None,
    reason: str | None,
    sync: bool,
) -> None:
    """Revoke one lease, or every live lease of --dynamic, --machine or --project.

    The user loses its login, its sessions are terminated, then it is dropped. Without --sync
    the revocation is queued for the sweeper (within one lease_sweep_interval_seconds); a
    failed attempt is retried with backoff until the database answers (the lease stays
    'revoking': 'sikker lease show' has its attempts and last error).
    """
    filters = _filters(dynamic, project, machine)
    if bool(lease_id) == bool(filters):
        raise InvalidInput("give a LEASE, or one or more of --dynamic, --machine, --project")
    body: dict[str, Any] = {"sync": sync} | ({"reason": reason} if reason else {})
    if lease_id:
        result = client.post(f"/api/leases/{lease_id}/revoke", body)
        if as_json:
            emit_json(result)
        else:
            console.print(f"{lease_id}: {result.get('state', 'revoking')}.")
        return
    vault_id = find_vault(client, vault, dynamic, project, machine)
    result = client.post(f"/api/vaults/{vault_id}/leases/revoke", body | filters)
    emit_json(result) if as_json else console.print(f"Revoked {result['revoked']} lease(s).")


@lease.command("forget")
@click.argument("lease_id", metavar="LEASE")
@click.option("--reason", required=True, help="Why the user cannot be revoked (audited).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@client_command
def lease_forget(client: Client, as_json: bool, lease_id: str, reason: str, yes: bool) -> None:
    """Stop trying to revoke a lease whose database is gone for good.

    Sikker no longer drops the user: if the database comes back, the user may still exist.
    This is a critical audit event. Use it only when the database was destroyed.
    """
    if not reason.strip():
        raise InvalidInput("--reason cannot be empty")
    if not yes:
        click.confirm(
            f"Forget lease {lease_id}? Sikker will stop revoking its database user", abort=True, err=True
        )
    result = client.post(f"/api/leases/{lease_id}/forget", {"reason": reason})
    emit_json(result) if as_json else console.print(f"{lease_id}: forgotten.")
