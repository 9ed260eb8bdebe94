"""Machine-side commands: read secrets as this machine (``get``, ``list``, ``export``, ``run``)
and enroll it in a vault (``machine bootstrap``). Requests are signed with the machine's
Ed25519 key from ``~/.sikkerkey`` (or ``$SIKKERKEY_HOME``), like the SikkerKey CLI's.
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sikker.cli import identity as identities
from sikker.cli import workload
from sikker.cli.dynamic_run import DynamicLease, LeasedSource, env_prefix, resolve_dynamic
from sikker.cli.environment import FORMATS, flatten_secret, merge, render
from sikker.cli.machine_client import MachineClient, check_api_url, check_id
from sikker.cli.options import (
    ADDR_FROM_FLAG,
    JSON_ERRORS_HELP,
    addr_source,
    ca_cert_option,
    json_option,
    resolve_token,
)
from sikker.cli.output import emit_json, table
from sikker.cli.supervisor import Source, supervise
from sikker.cli.workload import JwtSource, jwt_options
from sikker.errors import InvalidInput, NotFound, SikkerError

_EXIT_NOT_FOUND = 127  # what sh and env(1) use when the command does not exist
_EXIT_NOT_EXECUTABLE = 126


def warn(message: str) -> None:
    click.echo(f"sikker: warning: {message}", err=True)


def vault_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add --vault (which identity) and --ca-cert (the CA of a server with a private certificate)."""
    fn = ca_cert_option(fn)
    return click.option(
        "--vault",
        default=None,
        metavar="VAULT|PATH",
        help="Vault id or path to identity.json (env SIKKERKEY_VAULT; default: the only identity).",
    )(fn)


def open_client(vault: str | None, ca_cert: str | None = None) -> MachineClient:
    """A signed client for the identity ``--vault`` names (see ``identity.resolve``)."""
    identity, key = identities.load(identities.resolve(vault))
    return MachineClient(identity, key, ca_cert=ca_cert)


def resolve_project(client: MachineClient, project: str | None) -> str | None:
    """A project id as given, or the id of the one project with that name."""
    if project is None or project.startswith("proj_"):
        return project
    matches = [p for p in client.cli_projects() if p.get("projectName") == project]
    if not matches:
        raise NotFound(f"this machine belongs to no project named {project!r}")
    if len(matches) > 1:
        raise InvalidInput(f"several projects are named {project!r}: pass the project id instead")
    return str(matches[0]["projectId"])


def pick_field(secret_id: str, value: str, field: str) -> str:
    """One field of a structured secret's JSON value."""
    try:
        fields = json.loads(value)
    except ValueError:
        fields = None
    if not isinstance(fields, dict):
        raise InvalidInput(f"secret {secret_id} is not structured: omit FIELD to print its value")
    if field not in fields:
        raise NotFound(f"secret {secret_id} has no field {field!r} (fields: {', '.join(fields)})")
    picked = fields[field]
    return picked if isinstance(picked, str) else json.dumps(picked)


# -- reading ----------------------------------------------------------------------
@click.command("get")
@click.argument("secret_id", metavar="SECRET")
@click.argument("field", required=False)
@vault_option
@json_option()
def get_cmd(secret_id: str, field: str | None, vault: str | None, ca_cert: str | None, as_json: bool) -> None:
    """Print the value of SECRET; with FIELD, only that field of a structured secret.

    --json prints {"id": SECRET, "value": VALUE}, or {FIELD: VALUE}.
    """
    value = open_client(vault, ca_cert).get_secret(secret_id)
    picked = value if field is None else pick_field(secret_id, value, field)
    if as_json:
        emit_json({"id": secret_id, "value": picked} if field is None else {field: picked})
        return
    # Not click.echo: it strips escape sequences when stdout is not a terminal.
    sys.stdout.write(picked + "\n")


@click.command("list")
@vault_option
@json_option()
def list_cmd(vault: str | None, ca_cert: str | None, as_json: bool) -> None:
    """List the secrets this machine may read: id, name, type and project (never values)."""
    secrets = open_client(vault, ca_cert).cli_secrets()
    if as_json:
        emit_json(secrets)
        return
    table(
        ["ID", "NAME", "TYPE", "PROJECT"],
        [
            (
                s.get("id"),
                s.get("name"),
                s.get("type") or "secret",
                s.get("projectName") or s.get("projectId"),
            )
            for s in secrets
        ],
    )


@click.command("export")
@vault_option
@click.option("--project", default=None, help="Project id or name (default: every granted secret).")
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default=None, help="Output format [default: env]."
)
@json_option(help="Same as --format json; an error too, as JSON on stderr.")
def export_cmd(
    vault: str | None, ca_cert: str | None, project: str | None, fmt: str | None, as_json: bool
) -> None:
    """Print the granted secrets as environment variables; structured ones as NAME_FIELD.

    'env' prints sh lines for  eval "$(sikker export)";  'dotenv' prints a .env file;
    'json' (or --json) prints one object.
    """
    if as_json and fmt not in (None, "json"):
        raise InvalidInput(f"--json prints JSON: drop --format {fmt}")
    fmt = "json" if as_json else fmt or "env"
    client = open_client(vault, ca_cert)
    entries = client.export(resolve_project(client, project))
    sys.stdout.write(render(merge((flatten_secret(e) for e in entries), warn), fmt, warn))


# -- run --------------------------------------------------------------------------
class SecretSource:
    """The variables ``run`` injects, kept per secret so a change re-fetches only what changed."""

    def __init__(self, client: MachineClient, secret_ids: list[str] | None, project_id: str | None) -> None:
        self._client = client
        self._wanted = secret_ids
        self._project = project_id
        self._by_secret: dict[str, dict[str, str]] = {}
        self._quiet = False

    def ids(self) -> list[str]:
        return list(self._wanted if self._wanted is not None else self._by_secret)

    def env(self) -> dict[str, str]:
        merged = merge(self._by_secret.values(), (lambda _: None) if self._quiet else warn)
        self._quiet = True  # name clashes are reported once, not on every refresh
        return merged

    def poll(self, ids: list[str]) -> dict[str, Any]:
        return self._client.poll(ids)

    def load(self) -> None:
        self.refresh(self.ids())

    def refresh(self, changed: list[str]) -> None:
        """Re-read ``changed`` (``--all``: re-export); on any error nothing is replaced."""
        if self._wanted is None:
            # A secret missing from a new export keeps its last value, like a dropped watch.
            updates = {str(e["id"]): flatten_secret(e) for e in self._client.export(self._project)}
        else:
            names = {s.get("id"): s for s in self._client.list_secrets()}
            updates = {}
            for secret_id in changed:
                value = self._client.get_secret(secret_id)
                if secret_id not in names:
                    raise NotFound(f"secret {secret_id} is not in this machine's secret list")
                updates[secret_id] = flatten_secret({**names[secret_id], "value": value})
        self._by_secret.update(updates)


@click.command("run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@vault_option
@click.option("--secret", "secret_ids", multiple=True, metavar="ID", help="Secret to inject (repeatable).")
@click.option("--all", "all_secrets", is_flag=True, help="Inject every granted secret.")
@click.option(
    "--dynamic",
    default=None,
    metavar="ID",
    help="Lease a fresh database user from this dynamic secret (id or name) for the command's lifetime.",
)
@click.option(
    "--dynamic-env",
    default=None,
    metavar="PREFIX",
    help="With --dynamic: inject PREFIX_USERNAME, PREFIX_PASSWORD, PREFIX_LEASE_ID [default: its name].",
)
@click.option("--project", default=None, help="With --all: only this project (id or name).")
@click.option("--watch", is_flag=True, help="Restart the command when an injected secret changes.")
@click.option(
    "--interval", type=click.IntRange(min=10), default=15, show_default=True, help="Seconds between polls."
)
@click.option(
    "--url", envvar="SIKKERKEY_API_URL", default=None, help="With a JWT: server URL (env SIKKERKEY_API_URL)."
)
@jwt_options
@json_option(help=JSON_ERRORS_HELP, expose_value=False)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run_cmd(
    vault: str | None,
    ca_cert: str | None,
    secret_ids: tuple[str, ...],
    all_secrets: bool,
    dynamic: str | None,
    dynamic_env: str | None,
    project: str | None,
    watch: bool,
    interval: int,
    url: str | None,
    role: str | None,
    jwt_source: JwtSource,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND with secrets in its environment and exit with its exit code.

    \b
      sikker run --secret sk_... -- ./server
      sikker run --all --project api --watch -- ./server
      sikker run --vault V --role ci --jwt-file /var/run/token --all -- ./deploy
    With a JWT (--jwt-file, --jwt-env, --github-actions) this process logs in through the
    JWT role with a key held in memory only: no identity is written.

    \b
      sikker run --dynamic pg-ro -- ./migrate    # PG_RO_USERNAME, PG_RO_PASSWORD
    Signals (INT, TERM, HUP, QUIT) are passed on to COMMAND. A --dynamic lease is renewed
    while COMMAND runs and revoked when it ends.
    """
    if (secret_ids and all_secrets) or not (secret_ids or all_secrets or dynamic):
        raise InvalidInput("pass --secret ID (repeatable) or --all, not both (or only --dynamic)")
    if project and not all_secrets:
        raise InvalidInput("--project applies only with --all")
    if url and not role and addr_source("url") == ADDR_FROM_FLAG:
        raise InvalidInput("--url applies only with a JWT (--role); an identity names its server")
    if dynamic_env is not None and not dynamic:
        raise InvalidInput("--dynamic-env applies only with --dynamic")
    client = login_in_memory(url, vault, role, jwt_source, ca_cert) if role else open_client(vault, ca_cert)
    wanted = list(dict.fromkeys(check_id("secret", s) for s in secret_ids)) if secret_ids else None
    lease: DynamicLease | None = None
    try:
        secrets = SecretSource(
            client, wanted if wanted or all_secrets else [], resolve_project(client, project)
        )
        secrets.load()
        source: Source = secrets
        if dynamic:
            dynamic_id, name = resolve_dynamic(client, dynamic)
            lease = DynamicLease(client, dynamic_id, env_prefix(name, dynamic_env), warn)
            source = LeasedSource(secrets, lease.open(), warn)
        status = supervise(source, command, watch=watch, interval=interval, warn=warn)
    except FileNotFoundError:
        click.echo(f"sikker: command not found: {command[0]}", err=True)
        status = _EXIT_NOT_FOUND
    except PermissionError:
        click.echo(f"sikker: cannot execute {command[0]}: permission denied", err=True)
        status = _EXIT_NOT_EXECUTABLE
    finally:
        if lease is not None:
            lease.close()
        client.close()
    sys.exit(status)


# -- status and enrollment ----------------------------------------------------------
def identity_status(
    vault: str | None, transport: httpx.BaseTransport | None = None, ca_cert: str | None = None
) -> dict[str, Any]:
    """This machine's identity and whether the server accepts it (GET /v1/secrets).

    Raises only when no identity can be loaded; server or network trouble is reported in
    ``reachable`` (an HTTP answer arrived) and ``error``.
    """
    identity, key = identities.load(identities.resolve(vault))
    report: dict[str, Any] = {
        "machineId": identity.machine_id,
        "machineName": identity.machine_name,
        "vaultId": identity.vault_id,
        "apiUrl": identity.api_url,
        "reachable": False,
        "secrets": None,
        "error": None,
    }
    try:
        client = MachineClient(identity, key, transport=transport, ca_cert=ca_cert)
    except SikkerError as e:
        report["error"] = e.message
        return report
    report["apiUrl"] = client.base_url
    try:
        report["secrets"] = len(client.list_secrets())
        report["reachable"] = True
    except SikkerError as e:
        report["error"] = e.message
        report["reachable"] = not isinstance(e.__cause__, httpx.TransportError)
    finally:
        client.close()
    return report


def enroll(
    url: str,
    vault_id: str,
    token: str,
    name: str | None,
    public_key: Ed25519PublicKey,
    transport: httpx.BaseTransport | None = None,
    ca_cert: str | None = None,
) -> dict[str, Any]:
    """Register ``public_key`` with an enrollment token (unsigned: the token is the credential)."""
    body: dict[str, str] = {
        "token": token,
        "publicKey": workload.public_key_b64(public_key),
        "hostname": socket.gethostname() or "serverless",
        "kind": "standard",
    }
    if name:
        body["name"] = name
    return workload.register(url, vault_id, "enroll/register", body, transport=transport, ca_cert=ca_cert)


def login_in_memory(
    url: str | None, vault: str | None, role: str, source: JwtSource, ca_cert: str | None
) -> MachineClient:
    """A machine that exists only in this process: a fresh key, a JWT login, no files."""
    if not url:
        raise InvalidInput("logging in with a JWT needs the server URL: --url or SIKKERKEY_API_URL")
    if not vault:
        raise InvalidInput("logging in with a JWT needs --vault (the vault id)")
    key = Ed25519PrivateKey.generate()
    answer = workload.jwt_login(
        url, vault, role, workload.read_jwt(source), None, key.public_key(), ca_cert=ca_cert
    )
    api_url = answer.get("apiUrl") if isinstance(answer.get("apiUrl"), str) and answer["apiUrl"] else url
    identity = identities.Identity(
        machine_id=answer["machineId"],
        machine_name=str(answer.get("machineName") or ""),
        vault_id=identities.normalise_vault_id(answer["vaultId"]),
        api_url=str(api_url).rstrip("/"),
        private_key_path=Path(),  # the key never touches the disk
    )
    return MachineClient(identity, key, ca_cert=ca_cert)


@click.group("machine")
def machine_local() -> None:
    """Enroll this machine and manage its identity."""


@machine_local.command("bootstrap")
@click.option("--url", required=True, envvar="SIKKERKEY_API_URL", help="Server URL (env SIKKERKEY_API_URL).")
@click.option("--vault", "vault_id", required=True, help="Vault to enroll in.")
@click.option(
    "--token",
    envvar="SIKKERKEY_ENROLL_TOKEN",
    default=None,
    help="Enrollment token. Visible in the process list (ps): prefer the environment "
    "(SIKKERKEY_ENROLL_TOKEN) or --token-file.",
)
@click.option("--token-file", default=None, help="Read the enrollment token from this file ('-' for stdin).")
@click.option("--name", default=None, help="Machine name (the token's name pattern may override it).")
@jwt_options
@ca_cert_option
@json_option()
def bootstrap_command(
    url: str,
    vault_id: str,
    token: str | None,
    token_file: str | None,
    name: str | None,
    role: str | None,
    jwt_source: JwtSource,
    ca_cert: str | None,
    as_json: bool,
) -> None:
    """Enroll this machine with an enrollment token, or a JWT through a JWT role, and store
    its identity.

    The Ed25519 key is generated here and never leaves the machine; only its public half is
    sent. Enrolling again into the same vault replaces the stored identity.

    \b
      sikker machine bootstrap --url URL --vault V --token-file enroll.txt
      sikker machine bootstrap --url URL --vault V --role ci --jwt-file /var/run/token
    """
    private_key = Ed25519PrivateKey.generate()
    if role:
        if token or token_file:
            raise InvalidInput("give an enrollment token or a JWT role, not both")
        jwt = workload.read_jwt(jwt_source)
        answer = workload.jwt_login(url, vault_id, role, jwt, name, private_key.public_key(), ca_cert=ca_cert)
    else:
        token = resolve_token(token, token_file)
        if not token:
            raise InvalidInput(
                "give the enrollment token (SIKKERKEY_ENROLL_TOKEN, --token-file or --token) "
                "or a JWT role (--role with --jwt-file, --jwt-env or --github-actions)"
            )
        answer = enroll(url, vault_id, token, name, private_key.public_key(), ca_cert=ca_cert)
    api_url = answer.get("apiUrl") if isinstance(answer.get("apiUrl"), str) and answer["apiUrl"] else url
    machine_name = answer.get("machineName") if isinstance(answer.get("machineName"), str) else None
    machine_name = machine_name or name or socket.gethostname()
    path = identities.write(answer["vaultId"], answer["machineId"], machine_name, str(api_url), private_key)
    try:
        check_api_url(str(api_url))
    except InvalidInput as e:
        warn(f"the server's apiUrl cannot be used as is: {e.message}; set SIKKERKEY_API_URL")
    result = {
        "machineId": answer["machineId"],
        "machineName": machine_name,
        "vaultId": identities.normalise_vault_id(answer["vaultId"]),
        "apiUrl": str(api_url).rstrip("/"),
        "expiresAt": answer.get("expiresAt"),
        "identityPath": str(path),
    }
    if as_json:
        emit_json(result)
    else:
        click.echo(f"Enrolled machine {machine_name} ({answer['machineId']}) in {result['vaultId']}")
        click.echo(f"Identity: {path}")
