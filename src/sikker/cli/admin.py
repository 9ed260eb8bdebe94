"""Admin commands: ``vault``, ``project``, ``secret`` and ``token``."""

from __future__ import annotations

import re
from typing import Any

import click
import orjson

from sikker.cli.client import Client
from sikker.cli.options import client_command, read_text_input, stacked
from sikker.cli.output import console, emit_json, table, when
from sikker.cli.refs import PROJECT, SECRET, VAULT
from sikker.core.permissions import ROLES
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
    """Create and list vaults. Where a command takes a vault, its name works too."""


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
    """Create, list and delete projects.

    PROJECT is an id (proj_...), VAULT/NAME, or a name only one vault has; with --vault, a
    name in that vault.
    """


@project.command("create")
@click.option("--vault", "vault_id", type=VAULT, required=True, help="Vault id or name.")
@click.argument("name")
@client_command
def project_create(client: Client, as_json: bool, vault_id: str, name: str) -> None:
    """Create a project in a vault; prints its id."""
    _created(client.post(f"/api/vaults/{vault_id}/projects", {"name": name}), as_json)


@project.command("list")
@click.option("--vault", "vault_id", type=VAULT, required=True, help="Vault id or name.")
@client_command
def project_list(client: Client, as_json: bool, vault_id: str) -> None:
    """List the projects of a vault."""
    projects = client.get(f"/api/vaults/{vault_id}/projects")["projects"]
    if as_json:
        emit_json(projects)
    else:
        table(
            ["ID", "NAME", "KEY VERSION", "FROZEN", "CREATED"],
            [
                (p["id"], p["name"], p["keyVersion"], frozen(p["frozenAt"]), when(p["createdAt"]))
                for p in projects
            ],
        )


def frozen(ms: int | None) -> str:
    """A project's freeze state for people: 'no', or since when (a canary was read)."""
    return "no" if ms is None else f"since {when(ms)}"


@project.command("delete")
@click.argument("project_id", metavar="PROJECT", type=PROJECT)
@client_command
def project_delete(client: Client, as_json: bool, project_id: str) -> None:
    """Delete an empty project."""
    result = client.delete(f"/api/projects/{project_id}")
    emit_json(result) if as_json else console.print(f"Deleted {project_id}.")


# -- secret -----------------------------------------------------------------------
PROJECT_HELP = "Project: id, VAULT/NAME, or a name only one vault has."

# What people see: the SikkerKey word for a one-string secret (the machine API's "type"),
# where the admin API says "standard" (kept in --json for the scripts that read it).
_TYPE_WORDS = {"standard": "secret"}


def type_word(kind: str) -> str:
    """The word the CLI shows for a secret type: 'secret' or 'structured'."""
    return _TYPE_WORDS.get(kind, kind)


FIELD_HELP = (
    "KEY=VALUE of a structured secret (repeat). Visible to other users in the process list "
    "(ps) and kept in shell history: give secret fields with --field-file or --fields-file."
)
FIELD_FILE_HELP = "KEY=PATH: the field's value is the whole file, read verbatim ('-' for stdin; repeat)."
FIELDS_FILE_HELP = (
    "Read fields from a file ('-' for stdin): a JSON object of strings, or KEY=VALUE lines "
    "(blank lines and # comments skipped; the first '=' splits, nothing is unquoted)."
)


def _value_body(
    value: str | None,
    value_file: str | None,
    fields: tuple[str, ...],
    field_files: tuple[str, ...] = (),
    fields_file: str | None = None,
) -> dict[str, Any]:
    structured = bool(fields or field_files or fields_file)
    given = sum(x is not None for x in (value, value_file)) + structured
    if given != 1:
        raise InvalidInput(
            "give exactly one of --value, --value-file or fields (--field, --field-file, --fields-file)"
        )
    if structured:
        return {"fields": _fields(fields, field_files, fields_file)}
    if value_file is not None:
        return {"value": read_text_input(value_file, "the value")}
    return {"value": value}


def _fields(fields: tuple[str, ...], field_files: tuple[str, ...], fields_file: str | None) -> dict[str, str]:
    """Every field, from --fields-file, then --field, then --field-file; a key only once."""
    stdin_users = [p for p in field_files if p.partition("=")[2] == "-"] + (
        [fields_file] if fields_file == "-" else []
    )
    if len(stdin_users) > 1:
        raise InvalidInput("only one of --field-file and --fields-file can read stdin ('-')")
    parsed: dict[str, str] = {}

    def add(key: str, val: str, option: str) -> None:
        if not key:
            raise InvalidInput(f"{option} needs a field name before '='")
        if key in parsed:
            raise InvalidInput(f"field {key} given twice")
        parsed[key] = val

    if fields_file is not None:
        for key, val in parse_fields(read_text_input(fields_file, "fields")).items():
            add(key, val, "--fields-file")
    for item in fields:
        key, sep, val = item.partition("=")
        if not sep:
            raise InvalidInput(f"--field takes KEY=VALUE, got {key[:20]!r}...")
        add(key, val, "--field")
    for item in field_files:
        key, sep, path = item.partition("=")
        if not sep or not path:
            raise InvalidInput(f"--field-file takes KEY=PATH, got {item[:40]!r}")
        add(key, read_text_input(path, f"field {key}"), "--field-file")
    return parsed


def parse_fields(text: str) -> dict[str, str]:
    """A JSON object of strings, or KEY=VALUE lines; never echoes a value in an error."""
    if text.lstrip().startswith("{"):
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as e:
            raise InvalidInput("the fields file is not valid JSON") from e
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise InvalidInput("a JSON fields file must hold one object of string values")
        return dict(data)
    parsed: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, val = line.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"line {number} of the fields file is not KEY=VALUE")
        if key.strip() in parsed:
            raise InvalidInput(f"field {key.strip()} given twice in the fields file")
        parsed[key.strip()] = val
    return parsed


_value_options = [
    click.option(
        "--value",
        default=None,
        help="The value (visible in the process list and shell history: prefer --value-file).",
    ),
    click.option("--value-file", default=None, help="Read the value from a file ('-' for stdin)."),
    click.option("--field", "fields", multiple=True, help=FIELD_HELP),
    click.option("--field-file", "field_files", multiple=True, metavar="KEY=PATH", help=FIELD_FILE_HELP),
    click.option("--fields-file", default=None, metavar="FILE|-", help=FIELDS_FILE_HELP),
]


value_options = stacked(_value_options)


@click.group()
def secret() -> None:
    """Create, read, update, version, roll back, delete and restore secrets.

    SECRET is an id (sk_...) or a path: VAULT/PROJECT/NAME, or PROJECT/NAME. The TYPE of a
    secret is 'secret' (one string) or 'structured' (string fields), as on the machine side;
    --json keeps the admin API's value, 'standard' for 'secret'.
    """


@secret.command("create")
@click.option("--project", "project_id", type=PROJECT, required=True, help=PROJECT_HELP)
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
    "--freeze-related",
    "related",
    type=PROJECT,
    multiple=True,
    help="--canary: also freeze this project (id or VAULT/NAME; repeat).",
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
    field_files: tuple[str, ...],
    fields_file: str | None,
    canary: bool,
    looks_like: str,
    related: tuple[str, ...],
) -> None:
    """Create a secret (or, with --canary, a decoy); prints its id."""
    if canary:
        if value is not None or value_file is not None or fields or field_files or fields_file:
            raise InvalidInput("a canary's value is made by the server: drop the value and field options")
        from sikker.cli.canaries import create_canary

        _created({"id": create_canary(client, project_id, name, looks_like, related)}, as_json)
        return
    body = {"name": name} | _value_body(value, value_file, fields, field_files, fields_file)
    _created(client.post(f"/api/projects/{project_id}/secrets", body), as_json)


@secret.command("get")
@click.argument("secret_id", metavar="SECRET", type=SECRET)
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
@click.argument("secret_id", metavar="SECRET", type=SECRET)
@value_options
@client_command
def secret_update(
    client: Client,
    as_json: bool,
    secret_id: str,
    value: str | None,
    value_file: str | None,
    fields: tuple[str, ...],
    field_files: tuple[str, ...],
    fields_file: str | None,
) -> None:
    """Write a new version of a secret (a structured one: all its fields, as given)."""
    body = _value_body(value, value_file, fields, field_files, fields_file)
    result = client.put(f"/api/secrets/{secret_id}", body)
    emit_json(result) if as_json else console.print(f"{secret_id} is now at version {result['version']}.")


@secret.command("list")
@click.option("--project", "project_id", type=PROJECT, required=True, help=PROJECT_HELP)
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
            [(s["id"], s["name"], type_word(s["type"]), s["version"], when(s["updatedAt"])) for s in secrets],
        )


@secret.command("versions")
@click.argument("secret_id", metavar="SECRET", type=SECRET)
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
            ids=["BY"],
        )


@secret.command("rollback")
@click.argument("secret_id", metavar="SECRET", type=SECRET)
@click.option("--version", type=int, required=True, help="The version to make current again.")
@client_command
def secret_rollback(client: Client, as_json: bool, secret_id: str, version: int) -> None:
    """Make an old version current again (written as a new version)."""
    result = client.post(f"/api/secrets/{secret_id}/rollback", {"version": version})
    emit_json(result) if as_json else console.print(
        f"{secret_id} is now at version {result['version']} (copy of version {version})."
    )


@secret.command("delete")
@click.argument("secret_id", metavar="SECRET", type=SECRET)
@client_command
def secret_delete(client: Client, as_json: bool, secret_id: str) -> None:
    """Move a secret to the trash (restorable for 30 days)."""
    result = client.delete(f"/api/secrets/{secret_id}")
    emit_json(result) if as_json else console.print(f"{secret_id} moved to the trash.")


@secret.command("restore")
@click.argument("secret_id", metavar="SECRET", type=SECRET)
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
@click.option(
    "--vault", "vault_id", type=VAULT, required=True, help="The vault this token may manage (id or name)."
)
@click.option(
    "--project", "project_id", type=PROJECT, default=None, help="Bind the token to one project of the vault."
)
@click.option(
    "--role",
    type=click.Choice(list(ROLES)),
    default="admin",
    show_default=True,
    help="What the token may do (docs/operator/identity.md).",
)
@click.option("--name", default="admin", show_default=True, help="A label for the token.")
@click.option("--ttl", default=None, help="Lifetime, e.g. 12h or 30d (default: no expiry).")
@client_command
def token_create(
    client: Client,
    as_json: bool,
    vault_id: str,
    project_id: str | None,
    role: str,
    name: str,
    ttl: str | None,
) -> None:
    """Create an admin token with a role at a vault (or one project); its plaintext is printed once."""
    body: dict[str, Any] = {"vaultId": vault_id, "name": name, "role": role}
    if project_id:
        body["projectId"] = project_id
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
            ids=["ID", "VAULT"],
        )


@token.command("revoke")
@click.argument("token_id", metavar="TOKEN")
@client_command
def token_revoke(client: Client, as_json: bool, token_id: str) -> None:
    """Revoke a token by id; it stops working at once."""
    result = client.delete(f"/api/tokens/{token_id}")
    emit_json(result) if as_json else console.print(f"Revoked {token_id}.")
