"""``sikker dynamic``: definitions of dynamic database secrets (users minted per lease).

A dynamic secret names a database, the admin secret the server logs in with, the NOLOGIN
group role every minted user joins and the lease TTLs. Machines lease from it (``sikker run
--dynamic``, ``POST /v1/dynamic/{id}/leases``); ``sikker lease`` manages the leases.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from sikker.cli.admin import PROJECT_HELP, parse_duration
from sikker.cli.client import Client
from sikker.cli.options import client_command, read_text_input
from sikker.cli.output import console, emit_json, table, when
from sikker.cli.refs import DYNAMIC, PROJECT, SECRET
from sikker.errors import InvalidInput

ENGINES = ["postgresql", "mysql", "redis", "mongodb", "mssql"]
STATEMENTS_HELP = (
    "File ('-' for stdin) with one SQL statement per line (PostgreSQL, MySQL/MariaDB); "
    "replaces the engine's own statements. See docs/operator/dynamic-secrets.md."
)


def parse_statements(text: str) -> list[str]:
    """One statement per line. Blank lines and ``--`` comment lines are skipped, and a
    trailing ``;`` is dropped (the server runs each list item as one statement and refuses
    semicolons inside one). A file with no statement is an error."""
    statements = []
    for line in text.splitlines():
        statement = line.strip()
        if not statement or statement.startswith("--"):
            continue
        statements.append(statement[:-1].rstrip() if statement.endswith(";") else statement)
    statements = [s for s in statements if s]
    if not statements:
        raise InvalidInput("the statements file holds no statement")
    return statements


def _statements(path: str | None, flag: str) -> list[str] | None:
    if path is None:
        return None
    try:
        return parse_statements(read_text_input(path, flag))
    except InvalidInput as e:
        raise InvalidInput(f"{flag} {path}: {e.message}") from e


def _duration(text: str | None, flag: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except InvalidInput as e:
        raise InvalidInput(f"{flag}: {e.message}") from e


def definition_options(create: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options ``create`` and ``update`` share; required ones only when creating."""

    def add(fn: Callable[..., Any]) -> Callable[..., Any]:
        options = [
            click.option(
                "--max-leases-per-machine",
                type=click.IntRange(min=1),
                default=None,
                help="Live leases one machine may hold at once.",
            ),
            click.option("--revocation-statements", default=None, metavar="FILE", help=STATEMENTS_HELP),
            click.option("--creation-statements", default=None, metavar="FILE", help=STATEMENTS_HELP),
            click.option(
                "--username-template",
                default=None,
                help="How minted user names are built (the server checks it; default: its own).",
            ),
            click.option(
                "--max-ttl",
                required=create,
                default=None,
                help="No lease outlives its issue by more (24h).",
            ),
            click.option(
                "--default-ttl", required=create, default=None, help="A lease's TTL when none is asked (1h)."
            ),
            click.option(
                "--grant-role",
                required=create,
                default=None,
                help="The NOLOGIN group role (Redis: ACL rules) every minted user gets.",
            ),
            click.option(
                "--admin-secret",
                type=SECRET,
                required=create,
                default=None,
                help="Structured secret (fields username, password) the server logs in with to mint users.",
            ),
            click.option("--database", default=None, help="Database name (Redis: the numeric db)."),
            click.option("--port", type=click.IntRange(1, 65535), required=create, default=None),
            click.option("--host", required=create, default=None),
            click.option("--engine", type=click.Choice(ENGINES), required=create, default=None),
        ]
        for option in options:
            fn = option(fn)
        return fn

    return add


def definition_body(**given: Any) -> dict[str, Any]:
    """The API body for the options given (None: not given, left out)."""
    body: dict[str, Any] = {
        "engine": given.get("engine"),
        "host": given.get("host"),
        "port": given.get("port"),
        "database": given.get("database"),
        "adminSecret": given.get("admin_secret"),
        "grantRole": given.get("grant_role"),
        "defaultTtl": _duration(given.get("default_ttl"), "--default-ttl"),
        "maxTtl": _duration(given.get("max_ttl"), "--max-ttl"),
        "usernameTemplate": given.get("username_template"),
        "creationStatements": _statements(given.get("creation_statements"), "--creation-statements"),
        "revocationStatements": _statements(given.get("revocation_statements"), "--revocation-statements"),
        "maxLeasesPerMachine": given.get("max_leases_per_machine"),
    }
    body = {k: v for k, v in body.items() if v is not None}
    if "defaultTtl" in body and "maxTtl" in body and body["defaultTtl"] > body["maxTtl"]:
        raise InvalidInput("--default-ttl cannot be longer than --max-ttl")
    return body


def _ttl(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _describe(d: dict[str, Any]) -> None:
    where = f"{d['host']}:{d['port']}" + (f"/{d['database']}" if d.get("database") else "")
    lines = [
        ("ID", d["id"]),
        ("NAME", d["name"]),
        ("PROJECT", d["projectId"]),
        ("ENGINE", d["engine"]),
        ("DATABASE", where),
        ("ADMIN SECRET", d["adminSecret"]),
        ("GRANT ROLE", d["grantRole"]),
        ("TTL", f"default {_ttl(d['defaultTtl'])}, max {_ttl(d['maxTtl'])}"),
        ("USERNAME TEMPLATE", d.get("usernameTemplate") or "-"),
        ("MAX LEASES/MACHINE", d.get("maxLeasesPerMachine") or "-"),
        ("LIVE LEASES", d.get("liveLeases", "-")),
        ("UPDATED", when(d.get("updatedAt"))),
    ]
    table(["FIELD", "VALUE"], lines, ids=["VALUE"])
    for key, label in (("creationStatements", "Creation"), ("revocationStatements", "Revocation")):
        if d.get(key):
            console.print(f"{label} statements:")
            for statement in d[key]:
                console.print(f"  {statement}")


@click.group()
def dynamic() -> None:
    """Dynamic database secrets: a fresh user per lease, revoked when the lease ends."""


@dynamic.command("create")
@click.option("--project", "project_id", type=PROJECT, required=True, help=PROJECT_HELP)
@click.argument("name")
@definition_options(create=True)
@client_command
def dynamic_create(client: Client, as_json: bool, project_id: str, name: str, **options: Any) -> None:
    """Define dynamic secret NAME in a project; prints its id.

    \b
      sikker dynamic create --project acme/payments pg-ro --engine postgresql \\
        --host 127.0.0.1 --port 5432 --database app --admin-secret acme/payments/PG_ADMIN \\
        --grant-role app_readonly --default-ttl 1h --max-ttl 24h
    Grant it to a machine ('sikker grant') like any secret; the machine then leases.
    """
    body = {"name": name, **definition_body(**options)}
    result = client.post(f"/api/projects/{project_id}/dynamic-secrets", body)
    emit_json(result) if as_json else console.print(result["id"])


@dynamic.command("list")
@click.option("--project", "project_id", type=PROJECT, required=True, help=PROJECT_HELP)
@client_command
def dynamic_list(client: Client, as_json: bool, project_id: str) -> None:
    """List the dynamic secrets of a project with their live lease counts."""
    found = client.get(f"/api/projects/{project_id}/dynamic-secrets")["dynamicSecrets"]
    if as_json:
        emit_json(found)
        return
    table(
        ["ID", "NAME", "ENGINE", "DATABASE", "ROLE", "TTL", "LEASES"],
        [
            (
                d["id"],
                d["name"],
                d["engine"],
                f"{d['host']}:{d['port']}" + (f"/{d['database']}" if d.get("database") else ""),
                d["grantRole"],
                f"{_ttl(d['defaultTtl'])} (max {_ttl(d['maxTtl'])})",
                d.get("liveLeases", "-"),
            )
            for d in found
        ],
    )


@dynamic.command("show")
@click.argument("dynamic_id", metavar="DYNAMIC", type=DYNAMIC)
@client_command
def dynamic_show(client: Client, as_json: bool, dynamic_id: str) -> None:
    """Show one dynamic secret: database, role, TTLs, statements, live leases."""
    result = client.get(f"/api/dynamic-secrets/{dynamic_id}")
    emit_json(result) if as_json else _describe(result)


@dynamic.command("update")
@click.argument("dynamic_id", metavar="DYNAMIC", type=DYNAMIC)
@definition_options(create=False)
@client_command
def dynamic_update(client: Client, as_json: bool, dynamic_id: str, **options: Any) -> None:
    """Change what is given; the rest stays. Live leases keep the statements they were
    created with (each lease revokes with its own snapshot)."""
    body = definition_body(**options)
    if not body:
        raise InvalidInput("nothing to change: give at least one option")
    result = client.put(f"/api/dynamic-secrets/{dynamic_id}", body)
    emit_json(result) if as_json else console.print(f"{dynamic_id} updated.")


@dynamic.command("delete")
@click.argument("dynamic_id", metavar="DYNAMIC", type=DYNAMIC)
@click.option(
    "--revoke-leases", is_flag=True, help="Revoke its live leases first (without it: refused while any live)."
)
@client_command
def dynamic_delete(client: Client, as_json: bool, dynamic_id: str, revoke_leases: bool) -> None:
    """Delete a dynamic secret. Refused (exit 5) while it has live leases, unless --revoke-leases."""
    params = {"revoke": "true"} if revoke_leases else None
    result = client.request("DELETE", f"/api/dynamic-secrets/{dynamic_id}", params=params)
    revoked = f"; {result['revoked']} live lease(s) revoked" if result.get("revoked") else ""
    emit_json(result) if as_json else console.print(f"{dynamic_id} deleted{revoked}.")


@dynamic.command("orphans")
@click.argument("dynamic_id", metavar="DYNAMIC", type=DYNAMIC)
@click.option("--drop", is_flag=True, help="Drop them (default: only list them).")
@client_command
def dynamic_orphans(client: Client, as_json: bool, dynamic_id: str, drop: bool) -> None:
    """List the database users with Sikker's name prefix that no live lease accounts for;
    with --drop, drop them. The listing is a dry run and changes nothing."""
    result = client.post(f"/api/dynamic-secrets/{dynamic_id}/orphans", {"dryRun": not drop})
    if as_json:
        emit_json(result)
        return
    orphans, dropped = result.get("orphans") or [], result.get("dropped") or []
    if drop:
        console.print(f"Dropped {len(dropped)} orphaned user(s)." + "".join(f"\n  {u}" for u in dropped))
    elif orphans:
        console.print(
            f"{len(orphans)} orphaned user(s) (dry run; --drop drops them):"
            + "".join(f"\n  {u}" for u in orphans)
        )
    else:
        console.print("No orphaned users.")
