"""Admin commands: ``vault``, ``project``, ``secret`` and ``token``."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import click
import orjson

from sikker.cli.client import Client
from sikker.cli.options import client_command
from sikker.cli.output import console, emit_json, table, when
from sikker.errors import InvalidInput


def _created(result: dict[str, Any], as_json: bool) -> None:
    """``create`` commands print the new id (``--json``: ``{"id": ...}``)."""
    if as_json:
        emit_json({"id": result["id"]})
    else:
        click.echo(result["id"])


# -- vault ------------------------------------------------------------------------
@click.group()
def vault() -> None:
    """Create and list vaults."""


@vault.command("create")
@click.argument("name")
@client_command
def vault_create(client: Client, as_json: bool, name: str) -> None:
    """Create a vault; prints its id."""
    _created(client.post("/api/vaults", {"name": name}), as_json)


@vault.command("list")
@client_command
def vault_list(client: Client, as_json: bool) -> None:
    """List the vaults your token can see."""
    vaults = client.get("/api/vaults")["vaults"]
    if as_json:
        emit_json(vaults)
    else:
        table(["ID", "NAME", "CREATED"], [(v["id"], v["name"], when(v["createdAt"])) for v in vaults])


# -- project ----------------------------------------------------------------------
@click.group()
def project() -> None:
    """Create, list and delete projects."""


@project.command("create")
@click.option("--vault", "vault_id", required=True, help="Vault id.")
@click.argument("name")
@client_command
def project_create(client: Client, as_json: bool, vault_id: str, name: str) -> None:
    """Create a project in a vault; prints its id."""
    _created(client.post(f"/api/vaults/{vault_id}/projects", {"name": name}), as_json)


@project.command("list")
@click.option("--vault", "vault_id", required=True, help="Vault id.")
@client_command
def project_list(client: Client, as_json: bool, vault_id: str) -> None:
    """List the projects of a vault."""
    projects = client.get(f"/api/vaults/{vault_id}/projects")["projects"]
    if as_json:
        emit_json(projects)
    else:
        table(
            ["ID", "NAME", "KEY VERSION", "CREATED"],
            [(p["id"], p["name"], p["keyVersion"], when(p["createdAt"])) for p in projects],
        )


@project.command("delete")
@click.argument("project_id", metavar="PROJECT")
@client_command
def project_delete(client: Client, as_json: bool, project_id: str) -> None:
    """Delete an empty project."""
    result = client.delete(f"/api/projects/{project_id}")
    emit_json(result) if as_json else console.print(f"Deleted {project_id}.")


# -- secret -----------------------------------------------------------------------
def _value_body(value: str | None, value_file: str | None, fields: tuple[str, ...]) -> dict[str, Any]:
    given = sum(x is not None and x != () for x in (value, value_file, fields))
    if given != 1:
        raise InvalidInput("give exactly one of --value, --value-file or --field K=V")
    if fields:
        parsed: dict[str, str] = {}
        for item in fields:
            key, sep, val = item.partition("=")
            if not sep or not key:
                raise InvalidInput(f"--field takes KEY=VALUE, got {key or item[:20]!r}...")
            parsed[key] = val
        return {"fields": parsed}
    if value_file is not None:
        try:
            text = sys.stdin.read() if value_file == "-" else Path(value_file).read_text()
        except OSError as e:
            raise InvalidInput(f"cannot read {value_file}: {e.strerror}") from e
        return {"value": text}
    return {"value": value}


_value_options = [
    click.option("--value", default=None, help="The value (prefer --value-file: shell history keeps this)."),
    click.option("--value-file", default=None, help="Read the value from a file ('-' for stdin)."),
    click.option("--field", "fields", multiple=True, help="KEY=VALUE for a structured secret (repeat)."),
]


def value_options(fn: Any) -> Any:
    for option in reversed(_value_options):
        fn = option(fn)
    return fn


@click.group()
def secret() -> None:
    """Create, read, update, version, roll back, delete and restore secrets."""


@secret.command("create")
@click.option("--project", "project_id", required=True, help="Project id.")
@click.argument("name")
@value_options
@click.option(
    "--canary", is_flag=True, help="A decoy: the server makes the value; reading it freezes the project."
)
@click.option(
    "--looks-like",
    default="api-token",
    show_default=True,
    type=click.Choice(["aws-access-key", "postgres-url", "api-token", "password", "structured-db"]),
    help="--canary: the shape of the decoy value.",
)
@click.option(
    "--freeze-related", "related", multiple=True, help="--canary: also freeze this project (repeat)."
)
@client_command
def secret_create(
    client: Client,
    as_json: bool,
    project_id: str,
    name: str,
    value: str | None,
    value_file: str | None,
    fields: tuple[str, ...],
    canary: bool,
    looks_like: str,
    related: tuple[str, ...],
) -> None:
    """Create a secret (or, with --canary, a decoy); prints its id."""
    if canary:
        if value is not None or value_file is not None or fields:
            raise InvalidInput("a canary's value is made by the server: drop --value/--value-file/--field")
        from sikker.cli.canaries import create_canary

        _created({"id": create_canary(client, project_id, name, looks_like, related)}, as_json)
        return
    body = {"name": name} | _value_body(value, value_file, fields)
    _created(client.post(f"/api/projects/{project_id}/secrets", body), as_json)


@secret.command("get")
@click.argument("secret_id", metavar="SECRET")
@click.argument("field", required=False)
@click.option("--version", type=int, default=None, help="Read an older version.")
@client_command
def secret_get(client: Client, as_json: bool, secret_id: str, field: str | None, version: int | None) -> None:
    """Print a secret's value (or one FIELD of a structured secret)."""
    params = {"version": str(version)} if version else None
    result = client.get(f"/api/secrets/{secret_id}", params)
    if field is not None:
        fields = result.get("fields") or {}
        if field not in fields:
            raise InvalidInput(f"secret {secret_id} has no field {field!r}")
        emit_json({field: fields[field]}) if as_json else click.echo(fields[field])
    elif as_json:
        emit_json(result)
    elif "fields" in result:
        click.echo(orjson.dumps(result["fields"], option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(result["value"])


@secret.command("update")
@click.argument("secret_id", metavar="SECRET")
@value_options
@client_command
def secret_update(
    client: Client,
    as_json: bool,
    secret_id: str,
    value: str | None,
    value_file: str | None,
    fields: tuple[str, ...],
) -> None:
    """Write a new version of a secret."""
    result = client.put(f"/api/secrets/{secret_id}", _value_body(value, value_file, fields))
    emit_json(result) if as_json else console.print(f"{secret_id} is now at version {result['version']}.")


@secret.command("list")
@click.option("--project", "project_id", required=True, help="Project id.")
@click.option("--deleted", is_flag=True, help="List the trash instead.")
@client_command
def secret_list(client: Client, as_json: bool, project_id: str, deleted: bool) -> None:
    """List a project's secrets (names and versions, never values)."""
    params = {"deleted": "true"} if deleted else None
    secrets = client.get(f"/api/projects/{project_id}/secrets", params)["secrets"]
    if as_json:
        emit_json(secrets)
    else:
        table(
            ["ID", "NAME", "TYPE", "VERSION", "UPDATED"],
            [(s["id"], s["name"], s["type"], s["version"], when(s["updatedAt"])) for s in secrets],
        )


@secret.command("versions")
@click.argument("secret_id", metavar="SECRET")
@client_command
def secret_versions(client: Client, as_json: bool, secret_id: str) -> None:
    """List a secret's versions, newest first."""
    versions = client.get(f"/api/secrets/{secret_id}/versions")["versions"]
    if as_json:
        emit_json(versions)
    else:
        table(
            ["VERSION", "CREATED", "BY"],
            [(v["version"], when(v["createdAt"]), v["createdBy"]) for v in versions],
        )


@secret.command("rollback")
@click.argument("secret_id", metavar="SECRET")
@click.option("--version", type=int, required=True, help="The version to make current again.")
@client_command
def secret_rollback(client: Client, as_json: bool, secret_id: str, version: int) -> None:
    """Make an old version current again (written as a new version)."""
    result = client.post(f"/api/secrets/{secret_id}/rollback", {"version": version})
    emit_json(result) if as_json else console.print(
        f"{secret_id} is now at version {result['version']} (copy of version {version})."
    )


@secret.command("delete")
@click.argument("secret_id", metavar="SECRET")
@client_command
def secret_delete(client: Client, as_json: bool, secret_id: str) -> None:
    """Move a secret to the trash (restorable for 30 days)."""
    result = client.delete(f"/api/secrets/{secret_id}")
    emit_json(result) if as_json else console.print(f"{secret_id} moved to the trash.")


@secret.command("restore")
@click.argument("secret_id", metavar="SECRET")
@client_command
def secret_restore(client: Client, as_json: bool, secret_id: str) -> None:
    """Bring a secret back from the trash."""
    result = client.post(f"/api/secrets/{secret_id}/restore")
    emit_json(result) if as_json else console.print(f"{secret_id} restored.")


# -- token ------------------------------------------------------------------------
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """``90s``, ``15m``, ``12h``, ``30d`` -> seconds."""
    match = re.fullmatch(r"(\d{1,9})([smhd])", text.strip())
    if not match:
        raise InvalidInput(f"durations look like 90s, 15m, 12h or 30d, not {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


@click.group()
def token() -> None:
    """Create, list and revoke vault-scoped admin tokens (root token)."""


@token.command("create")
@click.option("--vault", "vault_id", required=True, help="The vault this token may manage.")
@click.option("--name", default="admin", show_default=True, help="A label for the token.")
@click.option("--ttl", default=None, help="Lifetime, e.g. 12h or 30d (default: no expiry).")
@client_command
def token_create(client: Client, as_json: bool, vault_id: str, name: str, ttl: str | None) -> None:
    """Create an admin token; its plaintext is printed once."""
    body: dict[str, Any] = {"vaultId": vault_id, "name": name}
    if ttl:
        body["ttlSeconds"] = parse_duration(ttl)
    result = client.post("/api/tokens", body)
    if as_json:
        emit_json({"id": result["id"], "token": result["token"]})
    else:
        click.echo(f"id:    {result['id']}\ntoken: {result['token']}")


@token.command("list")
@client_command
def token_list(client: Client, as_json: bool) -> None:
    """List tokens (never their plaintext)."""
    tokens = client.get("/api/tokens")["tokens"]
    if as_json:
        emit_json(tokens)
    else:
        table(
            ["ID", "KIND", "VAULT", "NAME", "EXPIRES", "REVOKED"],
            [
                (t["id"], t["kind"], t["vaultId"], t["name"], when(t["expiresAt"]), when(t["revokedAt"]))
                for t in tokens
            ],
        )


@token.command("revoke")
@click.argument("token_id", metavar="TOKEN")
@client_command
def token_revoke(client: Client, as_json: bool, token_id: str) -> None:
    """Revoke a token by id; it stops working at once."""
    result = client.delete(f"/api/tokens/{token_id}")
    emit_json(result) if as_json else console.print(f"Revoked {token_id}.")
