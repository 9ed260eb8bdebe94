"""Dynamic secrets and leases: admin routes under /api, machine routes under /v1.

Passwords appear only in the machine plane's answers to the machine that holds the lease;
no admin route and no audit record ever carries one.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sikker.api import schema
from sikker.api.context import authed, authed_json, call, ok, services
from sikker.api.machine import signed
from sikker.core import dynamic
from sikker.core.audit import Actor
from sikker.core.dynamic import Definition, Lease
from sikker.core.model import Principal
from sikker.errors import InvalidInput

_TTL = schema.Field(int, min_value=1, max_value=dynamic.MAX_TTL_S)
_STATEMENTS = schema.Field(list, max_len=dynamic.MAX_STATEMENTS, multiline=True)
COMMON = {
    "host": schema.Field(str, max_len=255),
    "port": schema.Field(int, min_value=1, max_value=65535),
    "database": schema.Field(str, max_len=255),
    "adminSecret": schema.Field(str, max_len=64),
    "grantRole": schema.Field(str, max_len=1000),
    "defaultTtl": schema.Field(int, min_value=0, max_value=10 * dynamic.MAX_TTL_S),
    "maxTtl": schema.Field(int, min_value=0, max_value=10 * dynamic.MAX_TTL_S),
    "usernameTemplate": schema.Field(str, max_len=dynamic.MAX_TEMPLATE_LEN),
    "creationStatements": _STATEMENTS,
    "revocationStatements": _STATEMENTS,
    "maxLeasesPerMachine": schema.Field(int, min_value=1, max_value=100_000),
}
CREATE = COMMON | {
    "name": schema.Field(str, required=True, max_len=255),
    "engine": schema.Field(str, required=True, max_len=16),
    "host": schema.Field(str, required=True, max_len=255),
    "port": schema.Field(int, required=True, min_value=1, max_value=65535),
    "adminSecret": schema.Field(str, required=True, max_len=64),
    "grantRole": schema.Field(str, required=True, max_len=1000),
    "defaultTtl": schema.Field(int, required=True, min_value=0, max_value=10 * dynamic.MAX_TTL_S),
    "maxTtl": schema.Field(int, required=True, min_value=0, max_value=10 * dynamic.MAX_TTL_S),
}
TTL_BODY = {"ttl": _TTL}
REVOKE = {"reason": schema.Field(str, max_len=500), "sync": schema.Field(bool)}
REVOKE_MANY = REVOKE | {
    "dynamic": schema.Field(str, max_len=64),
    "machine": schema.Field(str, max_len=64),
    "project": schema.Field(str, max_len=64),
}
FORGET = {"reason": schema.Field(str, required=True, max_len=500)}
ORPHANS = {"dryRun": schema.Field(bool)}


def _statements(body: dict[str, Any]) -> None:
    for key in ("creationStatements", "revocationStatements"):
        if key in body and not all(isinstance(s, str) for s in body[key]):
            raise InvalidInput(f"{key!r} must be a list of strings")


def definition_json(d: Definition, live: int) -> dict[str, Any]:
    return {
        "id": d.id,
        "projectId": d.project_id,
        "vaultId": d.vault_id,
        "name": d.name,
        "kind": "dynamic",
        "engine": d.engine,
        "host": d.host,
        "port": d.port,
        "database": d.database,
        "adminSecret": d.admin_secret_id,
        "grantRole": d.grant_role,
        "defaultTtl": d.default_ttl_s,
        "maxTtl": d.max_ttl_s,
        "usernameTemplate": d.username_template,
        "creationStatements": list(d.creation_statements),
        "revocationStatements": list(d.revocation_statements),
        "maxLeasesPerMachine": d.max_leases_per_machine,
        "liveLeases": live,
        "createdAt": d.created_ms,
        "updatedAt": d.updated_ms,
    }


def lease_json(lease: Lease) -> dict[str, Any]:
    return {
        "id": lease.id,
        "vaultId": lease.vault_id,
        "projectId": lease.project_id,
        "dynamicSecretId": lease.dynamic_secret_id,
        "machineId": lease.machine_id,
        "username": lease.username,
        "state": lease.state,
        "createdAt": lease.created_ms,
        "expiresAt": lease.expires_ms,
        "maxExpiresAt": lease.max_expires_ms,
        "renewable": lease.renewable,
        "revokedAt": lease.revoked_ms,
        "revokeReason": lease.revoke_reason,
        "revokedBy": lease.revoked_by,
        "attempts": lease.attempts,
        "lastError": lease.last_error,
    }


# -- definitions -------------------------------------------------------------------------------
async def create_definition(request: Request) -> Response:
    """POST /api/projects/{project}/dynamic-secrets: a new dynamic secret (201)."""
    svc = services(request)

    def create(principal: Principal, who: Actor, body: dict[str, Any]) -> Definition:
        _statements(body)
        return svc.dynamic.create(principal, who, request.path_params["project"], body)

    d = await authed_json(request, CREATE, create)
    return ok(definition_json(d, 0), status=201)


async def list_definitions(request: Request) -> Response:
    """GET /api/projects/{project}/dynamic-secrets."""
    svc, project = services(request), request.path_params["project"]
    found = await authed(request, lambda p, _: svc.dynamic.list_definitions(p, project))
    return ok({"dynamicSecrets": [definition_json(d, live) for d, live in found]})


async def show_definition(request: Request) -> Response:
    """GET /api/dynamic-secrets/{id}."""
    svc, secret = services(request), request.path_params["id"]
    d, live = await authed(request, lambda p, _: svc.dynamic.get(p, secret))
    return ok(definition_json(d, live))


async def update_definition(request: Request) -> Response:
    """PUT /api/dynamic-secrets/{id}: change some fields (name and engine are fixed)."""
    svc = services(request)

    def update(principal: Principal, who: Actor, body: dict[str, Any]) -> tuple[Definition, int]:
        _statements(body)
        return svc.dynamic.update(principal, who, request.path_params["id"], body)

    d, live = await authed_json(request, COMMON, update)
    return ok(definition_json(d, live))


async def delete_definition(request: Request) -> Response:
    """DELETE /api/dynamic-secrets/{id}[?revoke=true]: 409 while leases are live, unless revoke."""
    svc, secret = services(request), request.path_params["id"]
    revoke = request.query_params.get("revoke", "false").lower() in ("1", "true", "yes")
    queued = await authed(request, lambda p, w: svc.dynamic.delete(p, w, secret, revoke))
    return ok({"deleted": request.path_params["id"], "revoked": queued})


async def orphans(request: Request) -> Response:
    """POST /api/dynamic-secrets/{id}/orphans {dryRun}: users with no live lease (dropped unless dry)."""
    svc, raw, secret = services(request), await request.body(), request.path_params["id"]

    def find(principal: Principal, who: Actor) -> tuple[list[str], list[str]]:
        return svc.dynamic.orphans(principal, who, secret, schema.parse(raw, ORPHANS).get("dryRun", True))

    found, dropped = await authed(request, find)
    return ok({"orphans": found, "dropped": dropped})


# -- leases (admin) --------------------------------------------------------------------------------
async def list_leases(request: Request) -> Response:
    """GET /api/vaults/{vault}/leases?dynamic=&machine=&project=&state=&limit=&cursor=."""
    svc = services(request)

    def query(principal: Principal, _: Actor) -> tuple[list[Lease], str | None]:
        q = request.query_params
        filters: dict[str, Any] = {"limit": schema.query_int(q, "limit", 100, 1, 1000) or 100}
        for param, key in (
            ("dynamic", "dynamic_secret_id"),
            ("machine", "machine_id"),
            ("project", "project_id"),
            ("state", "state"),
            ("cursor", "after"),
        ):
            value = q.get(param)
            if value:
                if len(value) > 64 or not value.isascii():
                    raise InvalidInput(f"{param} is not a valid value")
                filters[key] = value
        return svc.leases.list_leases(principal, request.path_params["vault"], filters)

    found, cursor = await authed(request, query)
    return ok({"leases": [lease_json(lease) for lease in found], "next": cursor})


async def show_lease(request: Request) -> Response:
    """GET /api/leases/{id}."""
    svc, lease_id = services(request), request.path_params["id"]
    return ok(lease_json(await authed(request, lambda p, _: svc.leases.get(p, lease_id))))


async def renew_lease(request: Request) -> Response:
    """POST /api/leases/{id}/renew {ttl?}: never past issue time + maxTtl."""
    svc, raw, lease_id = services(request), await request.body(), request.path_params["id"]

    def renew(principal: Principal, who: Actor) -> Lease:
        return svc.leases.renew_admin(principal, who, lease_id, schema.parse(raw, TTL_BODY).get("ttl"))

    lease = await authed(request, renew)
    return ok(lease_json(lease))


async def revoke_lease(request: Request) -> Response:
    """POST /api/leases/{id}/revoke {reason?, sync?}."""
    svc = services(request)

    def revoke(principal: Principal, who: Actor, body: dict[str, Any]) -> Lease:
        return svc.leases.revoke_admin(
            principal, who, request.path_params["id"], body.get("reason", ""), body.get("sync", False)
        )

    lease = await authed_json(request, REVOKE, revoke)
    return ok(lease_json(lease))


async def revoke_leases(request: Request) -> Response:
    """POST /api/vaults/{vault}/leases/revoke {dynamic?, machine?, project?, reason?, sync?}."""
    svc = services(request)

    def revoke(principal: Principal, who: Actor, body: dict[str, Any]) -> int:
        filters = {k: body[k] for k in ("dynamic", "machine", "project") if body.get(k)}
        return svc.leases.revoke_many(
            principal,
            who,
            request.path_params["vault"],
            filters,
            body.get("reason", ""),
            body.get("sync", False),
        )

    count = await authed_json(request, REVOKE_MANY, revoke)
    return ok({"revoked": count})


async def forget_lease(request: Request) -> Response:
    """POST /api/leases/{id}/forget {reason}: stop revoking (database gone for good)."""
    svc, raw, lease_id = services(request), await request.body(), request.path_params["id"]

    def forget(principal: Principal, who: Actor) -> Lease:
        return svc.leases.forget(principal, who, lease_id, schema.parse(raw, FORGET)["reason"])

    lease = await authed(request, forget)
    return ok(lease_json(lease))


# -- machine plane -----------------------------------------------------------------------------------
def _ttl_of(raw: bytes) -> Any:
    return lambda: schema.parse(raw, TTL_BODY).get("ttl")


async def machine_create_lease(request: Request) -> Response:
    """POST /v1/dynamic/{id}/leases {ttl?} -> a new database credential for this machine."""
    raw = await request.body()
    req = signed(request, raw)
    issued = await call(services(request).leases.create, req, request.path_params["id"], _ttl_of(raw))
    lease = issued.lease
    return ok(
        {
            "leaseId": lease.id,
            "username": lease.username,
            "password": issued.password,
            "expiresAt": lease.expires_ms,
            "maxExpiresAt": lease.max_expires_ms,
            "renewable": lease.expires_ms < lease.max_expires_ms,
        }
    )


async def machine_renew_lease(request: Request) -> Response:
    """POST /v1/leases/{id}/renew {ttl?}."""
    raw = await request.body()
    req = signed(request, raw)
    lease = await call(services(request).leases.renew_signed, req, request.path_params["id"], _ttl_of(raw))
    return ok(
        {
            "leaseId": lease.id,
            "expiresAt": lease.expires_ms,
            "maxExpiresAt": lease.max_expires_ms,
            "renewable": lease.renewable,
        }
    )


async def machine_revoke_lease(request: Request) -> Response:
    """DELETE /v1/leases/{id} -> {"revoked": true} (revocation queued, then attempted)."""
    req = signed(request, await request.body())
    await call(services(request).leases.revoke_signed, req, request.path_params["id"])
    return ok({"revoked": True})


ROUTES = [
    Route("/api/projects/{project}/dynamic-secrets", create_definition, methods=["POST"]),
    Route("/api/projects/{project}/dynamic-secrets", list_definitions, methods=["GET"]),
    Route("/api/dynamic-secrets/{id}", show_definition, methods=["GET"]),
    Route("/api/dynamic-secrets/{id}", update_definition, methods=["PUT"]),
    Route("/api/dynamic-secrets/{id}", delete_definition, methods=["DELETE"]),
    Route("/api/dynamic-secrets/{id}/orphans", orphans, methods=["POST"]),
    Route("/api/vaults/{vault}/leases", list_leases, methods=["GET"]),
    Route("/api/vaults/{vault}/leases/revoke", revoke_leases, methods=["POST"]),
    Route("/api/leases/{id}", show_lease, methods=["GET"]),
    Route("/api/leases/{id}/renew", renew_lease, methods=["POST"]),
    Route("/api/leases/{id}/revoke", revoke_lease, methods=["POST"]),
    Route("/api/leases/{id}/forget", forget_lease, methods=["POST"]),
    Route("/v1/dynamic/{id}/leases", machine_create_lease, methods=["POST"]),
    Route("/v1/leases/{id}/renew", machine_renew_lease, methods=["POST"]),
    Route("/v1/leases/{id}", machine_revoke_lease, methods=["DELETE"]),
]
