"""``sikker jwt-role``: JWT roles, through which workloads enroll with the JWT their platform
gives them (GitHub Actions, GitLab CI, Kubernetes, any OIDC issuer).

A role names an issuer, where its keys come from, the audiences, subject and claims a token
must carry, and what the machine it creates may read (docs/operator/workload-identity.md).
"""

from __future__ import annotations

from typing import Any

import click

from sikker.cli.client import Client
from sikker.cli.jwt_role_options import CLEARABLE, role_body, role_options
from sikker.cli.options import client_command
from sikker.cli.output import console, emit_json, table, when
from sikker.cli.refs import VAULT
from sikker.cli.workload import JwtSource, read_jwt, refuse_jwt_argument
from sikker.errors import InvalidInput, NotFound, VerificationFailed

ROLE_ARG_HELP = "ROLE is a role id, or its name with --vault."


def role_ref(client: Client, role: str, vault_id: str | None) -> str:
    """A role id as given, or the id of the role with that name in ``--vault``."""
    if vault_id is None:
        return role
    roles = client.get(f"/api/vaults/{vault_id}/jwt-roles")["roles"]
    found = [r for r in roles if role in (r["id"], r["name"])]
    if not found:
        raise NotFound(f"no JWT role named {role!r} in vault {vault_id} ('sikker jwt-role list')")
    return str(found[0]["id"])


def _duration(seconds: Any) -> str:
    """900 -> 15m: the units ``--machine-ttl`` takes."""
    if not isinstance(seconds, int) or seconds <= 0:
        return "-"
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _state(r: dict[str, Any]) -> str:
    return "enabled" if r.get("enabled", True) else "disabled"


def _keys(r: dict[str, Any]) -> str:
    if r.get("discoveryUrl"):
        return f"discovery {r['discoveryUrl']}"
    if r.get("jwksUrl"):
        return f"jwks {r['jwksUrl']}"
    return f"{len(r.get('publicKeys') or [])} public key(s)"


def _claims(r: dict[str, Any]) -> str:
    claims = r.get("boundClaims") or {}
    return "\n".join(f"{k}={'|'.join(str(v) for v in vs)}" for k, vs in claims.items()) or "-"


@click.group("jwt-role")
def jwt_role() -> None:
    """JWT roles: workloads enroll with their platform's JWT (docs/operator/workload-identity.md)."""


vault_required = click.option("--vault", "vault_id", type=VAULT, required=True, help="Vault id or name.")
vault_for_names = click.option(
    "--vault", "vault_id", type=VAULT, default=None, help="The role's vault: to give ROLE by name."
)


@jwt_role.command("create")
@vault_required
@click.argument("name")
@role_options(create=True)
@client_command
def jwt_role_create(client: Client, as_json: bool, vault_id: str, name: str, **options: Any) -> None:
    """Create a JWT role NAME in a vault.

    \b
      sikker jwt-role create --vault acme deploy \\
        --issuer https://token.actions.githubusercontent.com \\
        --discovery-url https://token.actions.githubusercontent.com/.well-known/openid-configuration \\
        --bound-audience sikker --bound-subject 'repo:acme/api:ref:refs/heads/main' \\
        --project acme/payments --secret acme/payments/DB_URL --machine-ttl 15m
    """
    body = role_body(**options)
    tokenreview = (body.get("kubernetes") or {}).get("mode") == "tokenreview"
    if not tokenreview and not any(k in body for k in ("discoveryUrl", "jwksUrl", "publicKeys")):
        raise InvalidInput(
            "give where the keys come from: --discovery-url, --jwks-url or --public-key-file "
            "(or --kubernetes-mode tokenreview)"
        )
    result = client.post(f"/api/vaults/{vault_id}/jwt-roles", {"name": name, **body})
    emit_json(result) if as_json else console.print(f"Created JWT role {result['name']} ({result['id']}).")


@jwt_role.command("update")
@click.argument("role", metavar="ROLE")
@vault_for_names
@click.option("--name", "new_name", default=None, help="Rename the role.")
@role_options(create=False)
@click.option(
    "--clear",
    "clear",
    multiple=True,
    type=click.Choice(sorted(CLEARABLE)),
    help="Remove a setting (repeat).",
)
@client_command
def jwt_role_update(
    client: Client,
    as_json: bool,
    role: str,
    vault_id: str | None,
    new_name: str | None,
    clear: tuple[str, ...],
    **options: Any,
) -> None:
    """Change ROLE: only the options given; a list option given replaces the whole list.
    Changing the key source drops the server's cached keys. ROLE is a role id, or its name
    with --vault."""
    body = role_body(**options)
    for item in clear:
        key, empty = CLEARABLE[item]
        if key in body:
            raise InvalidInput(f"--clear {item} and a new value for it: give one")
        body[key] = empty
    if new_name is not None:
        body["name"] = new_name
    if not body:
        raise InvalidInput("nothing to change: give an option to update")
    role_id = role_ref(client, role, vault_id)
    result = client.put(f"/api/jwt-roles/{role_id}", body)
    emit_json(result) if as_json else console.print(f"Updated JWT role {result['name']} ({result['id']}).")


@jwt_role.command("list")
@vault_required
@client_command
def jwt_role_list(client: Client, as_json: bool, vault_id: str) -> None:
    """List the JWT roles of a vault."""
    roles = client.get(f"/api/vaults/{vault_id}/jwt-roles")["roles"]
    if as_json:
        emit_json(roles)
        return
    table(
        ["ID", "NAME", "ISSUER", "AUDIENCES", "SUBJECT", "TTL", "STATE"],
        [
            (
                r["id"],
                r["name"],
                r["issuer"],
                "\n".join(r.get("boundAudiences") or []),
                r.get("boundSubject") or "-",
                _duration(r.get("machineTtl")),
                _state(r),
            )
            for r in roles
        ],
    )


@jwt_role.command("show")
@click.argument("role", metavar="ROLE")
@vault_for_names
@client_command
def jwt_role_show(client: Client, as_json: bool, role: str, vault_id: str | None) -> None:
    """Show a JWT role: issuer, keys, bindings, grants. ROLE is a role id, or its name with
    --vault."""
    r = client.get(f"/api/jwt-roles/{role_ref(client, role, vault_id)}")
    if as_json:
        emit_json(r)
        return
    kubernetes = r.get("kubernetes") or {}
    rows = [
        ("id", r["id"]),
        ("name", r["name"]),
        ("vault", r.get("vaultId")),
        ("state", _state(r)),
        ("issuer", r["issuer"]),
        ("keys", _keys(r)),
        ("audiences", "\n".join(r.get("boundAudiences") or [])),
        ("subject", r.get("boundSubject") or "-"),
        ("claims", _claims(r)),
        ("name claim", r.get("nameClaim") or "-"),
        ("projects", "\n".join(r.get("projects") or []) or "-"),
        ("secrets", "\n".join(r.get("secrets") or []) or "-"),
        ("machine ttl", _duration(r.get("machineTtl"))),
        ("source cidrs", "\n".join(r.get("sourceCidrs") or []) or "-"),
        ("kubernetes", " ".join(f"{k}={v}" for k, v in kubernetes.items()) or "-"),
        ("created", when(r.get("createdAt"))),
        ("updated", when(r.get("updatedAt"))),
    ]
    table(["FIELD", "VALUE"], rows, ids=["FIELD"])


def _role_action(action: str, help_text: str, method: str = "post") -> click.Command:
    @click.argument("role", metavar="ROLE")
    @vault_for_names
    @client_command
    def command(client: Client, as_json: bool, role: str, vault_id: str | None) -> None:
        role_id = role_ref(client, role, vault_id)
        path = f"/api/jwt-roles/{role_id}" + ("" if action == "delete" else f"/{action}")
        result = client.delete(path) if method == "delete" else client.post(path)
        if as_json:
            emit_json(result)
        else:
            console.print(f"JWT role {role_id}: {action}d.")

    command.__doc__ = f"{help_text} {ROLE_ARG_HELP}"
    return click.command(action)(command)


jwt_role.add_command(
    _role_action("delete", "Delete a JWT role; every machine it created is revoked.", method="delete")
)
jwt_role.add_command(
    _role_action("disable", "Disable a JWT role: no logins, and every machine it created is revoked.")
)
jwt_role.add_command(_role_action("enable", "Enable a disabled JWT role (revoked machines stay revoked)."))


@jwt_role.command("test")
@click.argument("role", metavar="ROLE")
@vault_for_names
@click.option("--jwt-file", default=None, metavar="PATH", help="The JWT to test, from this file.")
@click.option("--jwt-env", default=None, metavar="VAR", help="The JWT to test, from this variable.")
@refuse_jwt_argument
@client_command
def jwt_role_test(
    client: Client,
    as_json: bool,
    role: str,
    vault_id: str | None,
    jwt_file: str | None,
    jwt_env: str | None,
) -> None:
    """Check a JWT against ROLE, check by check, without enrolling anything; exits 8 when a
    check fails. ROLE is a role id, or its name with --vault."""
    if bool(jwt_file) == bool(jwt_env):
        raise InvalidInput("give the JWT with --jwt-file or --jwt-env (one of them)")
    jwt = read_jwt(JwtSource(jwt_file=jwt_file, jwt_env=jwt_env))
    result = client.post(f"/api/jwt-roles/{role_ref(client, role, vault_id)}/test", {"jwt": jwt})
    checks = result.get("checks") or []
    if as_json:
        emit_json(result)
    else:
        table(
            ["CHECK", "RESULT", "REASON"],
            [(c["check"], "pass" if c["ok"] else "FAIL", c.get("reason") or "-") for c in checks],
            ids=["CHECK"],
        )
    if not result.get("ok"):
        failed = [c["check"] for c in checks if not c["ok"]]
        raise VerificationFailed(f"the token fails: {', '.join(failed) or 'the role'}")
