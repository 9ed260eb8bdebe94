"""Admin plane: vaults, projects, secrets and admin tokens, under /api/."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sikker.api import schema
from sikker.api.context import authed, authed_json, ok, services
from sikker.core import values
from sikker.core.audit import Actor
from sikker.core.model import Principal, Project, Secret, Token, Vault
from sikker.errors import InvalidInput
from sikker.service.secrets import Revealed

NAME = schema.Field(str, required=True, max_len=values.NAME_MAX)
NAME_FIELDS = {"name": NAME}


def _vault(v: Vault) -> dict[str, Any]:
    return {"id": v.id, "name": v.name, "createdAt": v.created_ms}


def _project(p: Project) -> dict[str, Any]:
    return {
        "id": p.id,
        "vaultId": p.vault_id,
        "name": p.name,
        "keyVersion": p.key_version,
        "frozenAt": p.frozen_ms,
        "createdAt": p.created_ms,
    }


def _secret(s: Secret) -> dict[str, Any]:
    return {
        "id": s.id,
        "projectId": s.project_id,
        "vaultId": s.vault_id,
        "name": s.name,
        "type": s.kind,
        "version": s.current_version,
        "createdAt": s.created_ms,
        "updatedAt": s.updated_ms,
        "deletedAt": s.deleted_ms,
    }


def _token(t: Token) -> dict[str, Any]:
    return {
        "id": t.id,
        "kind": t.kind,
        "vaultId": t.vault_id,
        "role": t.role if t.kind != "root" else None,
        "projectId": t.project_id,
        "name": t.name,
        "createdAt": t.created_ms,
        "expiresAt": t.expires_ms,
        "revokedAt": t.revoked_ms,
    }


def _revealed(r: Revealed) -> dict[str, Any]:
    body = _secret(r.secret) | {"version": r.version}
    if r.value.kind == "structured":
        body["fields"] = orjson.loads(r.value.plaintext)
    else:
        body["value"] = r.value.plaintext.decode()
    return body


# -- vaults ---------------------------------------------------------------------
async def create_vault(request: Request) -> Response:
    """Create a vault (root token only)."""
    svc = services(request)
    vault = await authed_json(
        request, NAME_FIELDS, lambda p, w, body: svc.vaults.create_vault(p, w, body["name"])
    )
    return ok(_vault(vault), 201)


async def list_vaults(request: Request) -> Response:
    """The vaults this token may see."""
    svc = services(request)
    vaults = await authed(request, lambda p, _: svc.vaults.list_vaults(p))
    return ok({"vaults": [_vault(v) for v in vaults]})


# -- projects -------------------------------------------------------------------
async def create_project(request: Request) -> Response:
    """Create a project in a vault; it gets its own master key."""
    svc, vault = services(request), request.path_params["vault"]
    project = await authed_json(
        request, NAME_FIELDS, lambda p, w, body: svc.vaults.create_project(p, w, vault, body["name"])
    )
    return ok(_project(project), 201)


async def list_projects(request: Request) -> Response:
    svc, vault = services(request), request.path_params["vault"]
    projects = await authed(request, lambda p, _: svc.vaults.list_projects(p, vault))
    return ok({"projects": [_project(p) for p in projects]})


async def delete_project(request: Request) -> Response:
    """Delete an empty project (its trash is purged with it)."""
    svc, project = services(request), request.path_params["project"]
    await authed(request, lambda p, w: svc.vaults.delete_project(p, w, project))
    return ok({"deleted": request.path_params["project"]})


# -- secrets --------------------------------------------------------------------
VALUE_FIELDS = {
    "value": schema.Field(str, opaque=True),
    "fields": schema.Field(dict, max_len=values.MAX_FIELDS, opaque=True),
}
CREATE_SECRET_FIELDS = {"name": NAME} | VALUE_FIELDS
ROLLBACK_FIELDS = {"version": schema.Field(int, required=True, min_value=1)}


def _value(body: dict[str, Any], max_bytes: int) -> values.SecretValue:
    if ("value" in body) == ("fields" in body):
        raise InvalidInput("send exactly one of 'value' (a string) or 'fields' (an object of strings)")
    if "value" in body:
        return values.standard(body["value"], max_bytes)
    return values.structured(body["fields"], max_bytes)


async def create_secret(request: Request) -> Response:
    """Create a secret (version 1) in a project."""
    svc = services(request)

    def create(principal: Principal, who: Actor, body: dict[str, Any]) -> Secret:
        value = _value(body, svc.deps.settings.max_value_bytes)
        return svc.secrets.create(principal, who, request.path_params["project"], body["name"], value)

    secret = await authed_json(request, CREATE_SECRET_FIELDS, create)
    return ok(_secret(secret), 201)


async def list_secrets(request: Request) -> Response:
    """Secret metadata in a project (``?deleted=true`` lists the trash). Never values."""
    svc, project = services(request), request.path_params["project"]
    deleted = request.query_params.get("deleted", "false") == "true"
    secrets = await authed(request, lambda p, _: svc.secrets.list_secrets(p, project, deleted))
    return ok({"secrets": [_secret(s) for s in secrets]})


async def get_secret(request: Request) -> Response:
    """Read a secret's value (current, or ``?version=N``); audited before it is sent."""
    svc = services(request)

    def reveal(principal: Principal, who: Actor) -> Revealed:
        version = schema.query_int(request.query_params, "version", minimum=1, maximum=schema.INT_MAX)
        return svc.secrets.reveal(principal, who, request.path_params["secret"], version)

    revealed = await authed(request, reveal)
    return ok(_revealed(revealed))


async def update_secret(request: Request) -> Response:
    """Write a new version of a secret."""
    svc = services(request)

    def update(principal: Principal, who: Actor, body: dict[str, Any]) -> int:
        value = _value(body, svc.deps.settings.max_value_bytes)
        return svc.secrets.update(principal, who, request.path_params["secret"], value)

    version = await authed_json(request, VALUE_FIELDS, update)
    return ok({"id": request.path_params["secret"], "version": version})


async def list_versions(request: Request) -> Response:
    svc, secret = services(request), request.path_params["secret"]
    versions = await authed(request, lambda p, _: svc.secrets.versions(p, secret))
    return ok(
        {
            "versions": [
                {
                    "version": v.version,
                    "createdAt": v.created_ms,
                    "createdBy": v.created_by,
                    "fieldNames": v.field_names,
                }
                for v in versions
            ]
        }
    )


async def rollback_secret(request: Request) -> Response:
    """Make an old version current again (as a new version)."""
    svc, secret = services(request), request.path_params["secret"]
    version = await authed_json(
        request, ROLLBACK_FIELDS, lambda p, w, body: svc.secrets.rollback(p, w, secret, body["version"])
    )
    return ok({"id": request.path_params["secret"], "version": version})


async def delete_secret(request: Request) -> Response:
    """Move a secret to the trash (restorable for the trash period)."""
    svc, secret = services(request), request.path_params["secret"]
    await authed(request, lambda p, w: svc.secrets.delete(p, w, secret))
    return ok({"deleted": request.path_params["secret"]})


async def restore_secret(request: Request) -> Response:
    svc, secret = services(request), request.path_params["secret"]
    await authed(request, lambda p, w: svc.secrets.restore(p, w, secret))
    return ok({"restored": request.path_params["secret"]})


# -- admin tokens ---------------------------------------------------------------
TOKEN_FIELDS = {
    "vaultId": schema.Field(str, required=True, max_len=64),
    "name": schema.Field(str, max_len=values.NAME_MAX),
    "ttlSeconds": schema.Field(int, min_value=60),
    "role": schema.Field(str, max_len=16),
    "projectId": schema.Field(str, max_len=64),
}


async def create_token(request: Request) -> Response:
    """Create an admin token with a role (default ``admin``) at one vault, or at one project
    of it (``projectId``); root token only. The plaintext is shown once."""
    svc = services(request)

    def create(principal: Principal, who: Actor, body: dict[str, Any]) -> tuple[Token, str]:
        return svc.tokens.create_admin(
            principal,
            who,
            body["vaultId"],
            body.get("name", "admin"),
            body.get("ttlSeconds"),
            body.get("role", "admin"),
            body.get("projectId"),
        )

    token, plaintext = await authed_json(request, TOKEN_FIELDS, create)
    return ok(_token(token) | {"token": plaintext}, 201)


async def list_tokens(request: Request) -> Response:
    svc = services(request)
    tokens = await authed(request, lambda p, _: svc.tokens.list_tokens(p))
    return ok({"tokens": [_token(t) for t in tokens]})


async def revoke_token(request: Request) -> Response:
    svc, token = services(request), request.path_params["token"]
    await authed(request, lambda p, w: svc.tokens.revoke(p, w, token))
    return ok({"revoked": request.path_params["token"]})


ROUTES = [
    Route("/api/vaults", create_vault, methods=["POST"]),
    Route("/api/vaults", list_vaults, methods=["GET"]),
    Route("/api/vaults/{vault}/projects", create_project, methods=["POST"]),
    Route("/api/vaults/{vault}/projects", list_projects, methods=["GET"]),
    Route("/api/projects/{project}", delete_project, methods=["DELETE"]),
    Route("/api/projects/{project}/secrets", create_secret, methods=["POST"]),
    Route("/api/projects/{project}/secrets", list_secrets, methods=["GET"]),
    Route("/api/secrets/{secret}", get_secret, methods=["GET"]),
    Route("/api/secrets/{secret}", update_secret, methods=["PUT"]),
    Route("/api/secrets/{secret}", delete_secret, methods=["DELETE"]),
    Route("/api/secrets/{secret}/versions", list_versions, methods=["GET"]),
    Route("/api/secrets/{secret}/rollback", rollback_secret, methods=["POST"]),
    Route("/api/secrets/{secret}/restore", restore_secret, methods=["POST"]),
    Route("/api/tokens", create_token, methods=["POST"]),
    Route("/api/tokens", list_tokens, methods=["GET"]),
    Route("/api/tokens/{token}", revoke_token, methods=["DELETE"]),
]
