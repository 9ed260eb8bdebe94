"""People: ``sikker user``, ``sikker role``, ``sikker login`` / ``logout`` / ``whoami``.

Every step works without a prompt (passwords from a file or stdin), for scripts and tests.
"""

from __future__ import annotations

from typing import Any

import click

from sikker.cli import session
from sikker.cli.admin import parse_duration
from sikker.cli.client import Client
from sikker.cli.options import DEFAULT_ADDR, ca_cert_option, client_command, json_option, read_text_input
from sikker.cli.output import emit_json, table, when
from sikker.cli.refs import PROJECT, VAULT
from sikker.core import permissions
from sikker.errors import InvalidInput

ROLES = click.Choice(list(permissions.ROLES))
PASSWORD_FILE = "Read the password from this file ('-' for stdin); never give it as an argument."


def _password(path: str | None, confirm: bool) -> str:
    if path is not None:
        return read_text_input(path, "the password").rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=confirm))


def _user_row(u: dict[str, Any]) -> tuple[Any, ...]:
    return (
        u["id"],
        u["name"],
        u["email"],
        "disabled" if u["disabled"] else "active",
        "yes" if u["mfa"] else "no",
        when(u["createdAt"]),
    )


@click.group()
def user() -> None:
    """Manage people's accounts (root token), and your own TOTP and tokens."""


@user.command("create")
@click.argument("name")
@click.option("--email", required=True, help="The person's email address.")
@click.option("--password-file", default=None, help=PASSWORD_FILE)
@click.option("--sso-only", is_flag=True, help="No password: the person signs in with single sign-on.")
@client_command
def user_create(
    client: Client, as_json: bool, name: str, email: str, password_file: str | None, sso_only: bool
) -> None:
    """Create a user (names are unique ignoring case); prints the new id."""
    body: dict[str, Any] = {"name": name, "email": email}
    if not sso_only:
        body["password"] = _password(password_file, confirm=True)
    created = client.post("/api/users", body)
    emit_json(created) if as_json else click.echo(created["id"])


@user.command("list")
@client_command
def user_list(client: Client, as_json: bool) -> None:
    """List users."""
    users = client.get("/api/users")["users"]
    if as_json:
        emit_json(users)
    else:
        table(["ID", "NAME", "EMAIL", "STATE", "MFA", "CREATED"], [_user_row(u) for u in users])


@user.command("show")
@click.argument("name")
@client_command
def user_show(client: Client, as_json: bool, name: str) -> None:
    """Show one user (by name or id)."""
    found = client.get(f"/api/users/{name}")
    if as_json:
        emit_json(found)
    else:
        table(["ID", "NAME", "EMAIL", "STATE", "MFA", "CREATED"], [_user_row(found)])


def _change(change: str, help_text: str) -> click.Command:
    @click.argument("name")
    @client_command
    def command(client: Client, as_json: bool, name: str) -> None:
        result = client.post(f"/api/users/{name}/{change}")
        emit_json(result) if as_json else click.echo(f"{result['name']}: {change}d")

    command.__doc__ = help_text
    return user.command(change)(command)


_change("disable", "Disable a user: every session and token of theirs ends at once.")
_change("enable", "Enable a disabled user again.")


@user.command("delete")
@click.argument("name")
@client_command
def user_delete(client: Client, as_json: bool, name: str) -> None:
    """Delete a user, their sessions, tokens and role bindings (the audit log keeps their id)."""
    result = client.delete(f"/api/users/{name}")
    emit_json(result) if as_json else click.echo(f"deleted {name}")


@user.group("totp")
def totp() -> None:
    """Your second factor: enrol, then confirm with a first code."""


@totp.command("enrol")
@client_command
def totp_enrol(client: Client, as_json: bool) -> None:
    """Start TOTP enrolment: prints the otpauth:// URI (for a QR code) and the secret."""
    result = client.post("/api/users/me/totp")
    if as_json:
        emit_json(result)
    else:
        click.echo(
            f"Add this to your authenticator app, then run 'sikker user totp confirm CODE':\n{result['uri']}"
        )


@totp.command("confirm")
@click.argument("code")
@client_command
def totp_confirm(client: Client, as_json: bool, code: str) -> None:
    """Turn TOTP on with a first code; prints ten single-use recovery codes, once."""
    codes = client.post("/api/users/me/totp/confirm", {"code": code})["recoveryCodes"]
    if as_json:
        emit_json({"recoveryCodes": codes})
    else:
        click.echo("TOTP is on. Keep these recovery codes somewhere safe; each works once:")
        click.echo("\n".join(codes))


@user.command("token")
@click.option("--name", required=True, help="A label for the token.")
@click.option("--ttl", default="30d", show_default=True, help="Lifetime, e.g. 12h or 30d.")
@click.option("--role", "role_name", type=ROLES, default=None, help="At most what this role may do.")
@click.option("--vault", "vault_id", type=VAULT, default=None, help="Only in this vault (id or name).")
@click.option("--project", "project_id", type=PROJECT, default=None, help="Only in this project.")
@client_command
def user_token(
    client: Client,
    as_json: bool,
    name: str,
    ttl: str,
    role_name: str | None,
    vault_id: str | None,
    project_id: str | None,
) -> None:
    """Create a personal API token for scripts: your roles, optionally narrowed to a role and a
    vault or project; it ends with your account."""
    body: dict[str, Any] = {"name": name, "ttlSeconds": parse_duration(ttl)}
    given = {"role": role_name, "vaultId": vault_id, "projectId": project_id}
    body |= {key: value for key, value in given.items() if value is not None}
    result = client.post("/api/users/me/tokens", body)
    emit_json(result) if as_json else click.echo(result["token"])


@click.group()
def role() -> None:
    """Give people (or identity-provider groups) roles at a vault or a project (root token)."""


@role.command("bind")
@click.option("--user", "user_name", default=None, help="A user name or id.")
@click.option("--group", default=None, help="An identity-provider group (single sign-on).")
@click.option("--role", "role_name", type=ROLES, required=True)
@click.option("--vault", "vault_id", default=None, help="The vault the role applies to.")
@click.option("--project", "project_id", default=None, help="Or only this project.")
@client_command
def role_bind(
    client: Client,
    as_json: bool,
    user_name: str | None,
    group: str | None,
    role_name: str,
    vault_id: str | None,
    project_id: str | None,
) -> None:
    """Bind a role; prints the binding id."""
    body: dict[str, Any] = {"role": role_name}
    for key, value in (
        ("user", user_name),
        ("group", group),
        ("vaultId", vault_id),
        ("projectId", project_id),
    ):
        if value is not None:
            body[key] = value
    created = client.post("/api/role-bindings", body)
    emit_json(created) if as_json else click.echo(created["id"])


@role.command("list")
@click.option("--vault", "vault_id", default=None)
@client_command
def role_list(client: Client, as_json: bool, vault_id: str | None) -> None:
    """List role bindings."""
    rows = client.get("/api/role-bindings", {"vault": vault_id} if vault_id else None)["bindings"]
    if as_json:
        emit_json(rows)
    else:
        table(
            ["ID", "ROLE", "VAULT", "PROJECT", "USER", "GROUP"],
            [(b["id"], b["role"], b["vaultId"], b["projectId"], b["userId"], b["group"]) for b in rows],
        )


@role.command("unbind")
@click.argument("binding_id", metavar="BINDING")
@client_command
def role_unbind(client: Client, as_json: bool, binding_id: str) -> None:
    """Remove a role binding."""
    result = client.delete(f"/api/role-bindings/{binding_id}")
    emit_json(result) if as_json else click.echo(f"removed {binding_id}")


@click.command("login")
@click.option("--addr", envvar="SIKKER_ADDR", default=DEFAULT_ADDR, show_default=True, help="Server address.")
@click.option("--user", "user_name", default=None, help="Your user name (password sign-in).")
@click.option("--password-file", default=None, help=PASSWORD_FILE)
@click.option("--totp", "code", default=None, help="A TOTP or recovery code, if you use a second factor.")
@click.option("--oidc", "provider", default=None, help="Sign in through this single sign-on provider.")
@click.option("--no-browser", is_flag=True, help="With --oidc: print the URL instead of opening a browser.")
@click.option(
    "--device", is_flag=True, help="With --oidc: the device flow (a code to enter on another device)."
)
@click.option(
    "--callback-port", default=8250, show_default=True, help="With --oidc: the loopback callback's port."
)
@ca_cert_option
@json_option()
def login(
    addr: str,
    user_name: str | None,
    password_file: str | None,
    code: str | None,
    provider: str | None,
    no_browser: bool,
    device: bool,
    callback_port: int,
    ca_cert: str | None,
    as_json: bool,
) -> None:
    """Sign in with a password (and TOTP), or with --oidc through your identity provider. The
    session is kept in SIKKER_CONFIG_DIR (mode 0600) and used by every command where
    SIKKER_TOKEN is not set."""
    client = Client(addr, ca_cert=ca_cert)
    if provider is not None and device:
        result = _device_login(client, provider)
    elif provider is not None:
        result = _sso_login(client, provider, no_browser, callback_port)
    elif user_name is not None:
        body: dict[str, Any] = {"user": user_name, "password": _password(password_file, confirm=False)}
        if code:
            body["totp"] = code
        result = client.post("/api/auth/login", body)
    else:
        raise InvalidInput("give --user (password sign-in) or --oidc PROVIDER")
    path = session.save(addr, result["token"], result["user"]["name"], result["expiresAt"])
    if as_json:
        emit_json({"user": result["user"], "expiresAt": result["expiresAt"], "session": str(path)})
    else:
        click.echo(f"Signed in as {result['user']['name']} until {when(result['expiresAt'])}.")


def _device_login(client: Client, provider: str) -> Any:
    """Show the code and URL, then poll until the person approved at the provider."""
    import time

    started = client.post(f"/api/auth/oidc/{provider}/device")
    where = started.get("verificationUriComplete") or started["verificationUri"]
    click.echo(f"Enter the code {started['userCode']} at:\n{where}", err=True)
    while True:
        time.sleep(max(1, int(started["interval"])))
        result = client.post(f"/api/auth/oidc/{provider}/device/poll", {"handle": started["handle"]})
        if not result.get("pending"):
            return result


def _sso_login(client: Client, provider: str, no_browser: bool, port: int) -> Any:
    """Open the provider's sign-in page and wait for its redirect on a loopback callback."""
    from sikker.cli.callback import wait_for_callback

    redirect = f"http://127.0.0.1:{port}/oidc/callback"
    started = client.post(f"/api/auth/oidc/{provider}/start", {"redirectUri": redirect})
    query = wait_for_callback(port, started["url"], open_browser=not no_browser)
    return client.post(f"/api/auth/oidc/{provider}/finish", {"handle": started["handle"], "query": query})


@click.command("logout")
@client_command
def logout(client: Client, as_json: bool) -> None:
    """End your session on the server and forget it here."""
    if session.saved_token(client.addr) is None:
        raise InvalidInput("no saved session for this server")
    client.post("/api/auth/logout")
    session.forget()
    emit_json({"loggedOut": True}) if as_json else click.echo("Signed out.")


@click.command("whoami")
@client_command
def whoami(client: Client, as_json: bool) -> None:
    """Who the server sees: your user and roles, or the token's kind."""
    me = client.get("/api/auth/whoami")
    if as_json:
        emit_json(me)
        return
    click.echo(f"{me['kind']} {me['name'] or me['id']}")
    for b in me["bindings"]:
        click.echo(f"  {b['role']} at {b['projectId'] or b['vaultId']}")


@click.command("require-mfa")
@click.argument("vault_id", metavar="VAULT")
@click.option("--off", is_flag=True, help="No longer require a second factor.")
@client_command
def require_mfa(client: Client, as_json: bool, vault_id: str, off: bool) -> None:
    """Require people to sign in with a second factor to act in VAULT (root token)."""
    result = client.put(f"/api/vaults/{vault_id}/mfa", {"required": not off})
    emit_json(result) if as_json else click.echo(f"{vault_id}: MFA {'off' if off else 'required'}")
