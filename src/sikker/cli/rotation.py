"""``sikker secret rotate``, ``sikker secret rotation set|show|disable``, ``sikker secret manage``
(added to the ``secret`` group in ``cli/main.py``)."""

from __future__ import annotations

from typing import Any

import click

from sikker.cli.admin import parse_duration
from sikker.cli.client import Client
from sikker.cli.options import client_command
from sikker.cli.output import console, emit_json, table, when
from sikker.cli.refs import SECRET
from sikker.core import rotation as rotation_rules
from sikker.errors import InvalidInput

CHARSETS = ["symbols", "alphanumeric", "numbers", "uuid", "hex", "base64"]


@click.command("rotate")
@click.argument("secret_id", metavar="SECRET", type=SECRET)
@client_command
def secret_rotate(client: Client, as_json: bool, secret_id: str) -> None:
    """Rotate a secret now. A managed database credential gets a pending rotation that its
    agent applies; the live value changes when the agent confirms."""
    result = client.post(f"/api/secrets/{secret_id}/rotate")
    if as_json:
        emit_json(result)
    elif result["status"] == "pending":
        console.print(f"{secret_id}: rotation {result['rotation']} is waiting for its agent.")
    else:
        console.print(f"{secret_id} rotated: now at version {result['version']}.")


@click.group("rotation")
def rotation() -> None:
    """Rotation schedules."""


@rotation.command("set")
@click.argument("secret_id", metavar="SECRET", type=SECRET)
@click.option("--interval", default=None, help="Every 5m .. 366d (e.g. 1h, 30d).")
@click.option(
    "--cron",
    default=None,
    help="A five-field cron expression, UTC (e.g. '0 3 * * 1'); runs at least 5 minutes apart.",
)
@click.option("--length", type=int, default=32, show_default=True, help="Generated length (1-1024).")
@click.option("--charset", type=click.Choice(CHARSETS), default="symbols", show_default=True)
@click.option(
    "--field",
    "fields",
    multiple=True,
    help="Structured secrets: a field that rotates (repeat); the others stay.",
)
@client_command
def rotation_set(
    client: Client,
    as_json: bool,
    secret_id: str,
    interval: str | None,
    cron: str | None,
    length: int,
    charset: str,
    fields: tuple[str, ...],
) -> None:
    """Rotate SECRET on a schedule. Missed runs (server down) happen once at start."""
    if (interval is None) == (cron is None):
        raise click.UsageError("give exactly one of --interval or --cron")
    body: dict[str, Any] = {"length": length, "charset": charset}
    flag, value = ("--interval", interval) if interval is not None else ("--cron", cron)
    try:  # the server's rules, checked here to name the flag rather than the API field
        if interval is not None:
            body["intervalSeconds"] = parse_duration(interval)
        else:
            body["cron"] = cron
        rotation_rules.Schedule(body.get("intervalSeconds"), body.get("cron"))
    except InvalidInput as e:
        raise InvalidInput(f"{flag} {value}: {e.message}") from e
    if fields:
        body["fields"] = list(fields)
    result = client.put(f"/api/secrets/{secret_id}/rotation", body)
    emit_json(result) if as_json else console.print(
        f"{secret_id}: next rotation {when(result['nextDueAt'])}."
    )


@rotation.command("show")
@click.argument("secret_id", metavar="SECRET", type=SECRET)
@click.option(
    "--history",
    type=click.IntRange(1, 100),
    default=10,
    show_default=True,
    help="How many recent rotations to list.",
)
@client_command
def rotation_show(client: Client, as_json: bool, secret_id: str, history: int) -> None:
    """Show the schedule, the database binding, the agent's state and the recent rotations,
    newest first: when, trigger (schedule or manual), status and the version it made."""
    result = client.get(f"/api/secrets/{secret_id}/rotation", {"limit": str(history)})
    if as_json:
        emit_json(result)
        return
    policy, managed = result["policy"], result["managed"]
    if policy:
        every = (
            f"every {policy['intervalSeconds']} s" if policy["intervalSeconds"] else f"cron {policy['cron']}"
        )
        console.print(
            f"Schedule: {every}, {policy['length']} x {policy['charset']}"
            f"{', fields ' + ', '.join(policy['fields']) if policy['fields'] else ''}; "
            f"{'enabled' if policy['enabled'] else 'disabled'}; next {when(policy['nextDueAt'])}; "
            f"last {when(policy['lastRotatedAt'])}"
            f"{'; last error: ' + policy['lastError'] if policy['lastError'] else ''}"
        )
    else:
        console.print("Schedule: none")
    if managed:
        console.print(
            f"Database: {managed['provider']} {managed['host']}:{managed['port']}/{managed['database']}, "
            f"strategy {managed['strategy']}, agent {managed['agentStatus'] or 'never seen'}"
            f"{' (' + managed['agentError'] + ')' if managed['agentError'] else ''}"
        )
    if not result["rotations"]:
        console.print("Rotations: none yet")
        return
    table(
        ["WHEN", "TRIGGER", "STATUS", "VERSION", "ROTATION", "ERROR"],
        [
            (when(r["updatedAt"]), r["trigger"], r["status"], r["version"], r["id"], r["error"])
            for r in result["rotations"]
        ],
    )


@rotation.command("disable")
@click.argument("secret_id", metavar="SECRET", type=SECRET)
@client_command
def rotation_disable(client: Client, as_json: bool, secret_id: str) -> None:
    """Stop rotating SECRET on a schedule (rotate it by hand with 'sikker secret rotate')."""
    result = client.delete(f"/api/secrets/{secret_id}/rotation")
    emit_json(result) if as_json else console.print(f"{secret_id}: scheduled rotation disabled.")


@click.command("manage")
@click.argument("secret_id", metavar="SECRET", type=SECRET)
@click.option(
    "--provider",
    required=True,
    type=click.Choice(["postgresql", "mysql", "mariadb", "redis", "mongodb", "mssql"]),
    help="The database engine (mariadb: no dual strategy; mongodb and mssql were tested against fakes only).",
)
@click.option("--host", required=True)
@click.option("--port", type=int, required=True)
@click.option("--database", default="", help="Database name (Redis: the numeric db).")
@click.option("--admin-secret", required=True, help="Secret holding the admin username and password.")
@click.option(
    "--strategy",
    type=click.Choice(["single", "dual", "alternating"]),
    default="single",
    show_default=True,
    help="alternating = two users, zero downtime; dual = two passwords (Redis, MySQL 8.0.14+ only).",
)
@click.option("--alt-username", default=None, help="alternating: the second user.")
@click.option(
    "--grace",
    default="1h",
    show_default=True,
    help="How long the previous user (alternating) or password (dual) stays valid after a rotation.",
)
@client_command
def secret_manage(
    client: Client,
    as_json: bool,
    secret_id: str,
    provider: str,
    host: str,
    port: int,
    database: str,
    admin_secret: str,
    strategy: str,
    alt_username: str | None,
    grace: str,
) -> None:
    """Make SECRET (fields username, password) a live database credential rotated by 'sikker agent'."""
    body: dict[str, Any] = {
        "provider": provider,
        "host": host,
        "port": port,
        "database": database,
        "adminSecretId": admin_secret,
        "strategy": strategy,
        "graceSeconds": parse_duration(grace),
    }
    if alt_username:
        body["altUsername"] = alt_username
    result = client.put(f"/api/secrets/{secret_id}/managed", body)
    emit_json(result) if as_json else console.print(
        f"{secret_id} is managed: {provider}, strategy {strategy}. Grant it to the agent's machine."
    )
