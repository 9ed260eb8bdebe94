"""Workload identity over HTTP: JWT roles (admin plane, ``jwt_role:manage``) and the login a
workload makes with its platform's JWT (machine plane, unsigned: the JWT is the credential).

The login answers exactly like ``POST /v1/{vault}/enroll/register``; that route also takes a
JWT in its ``token`` field (api/machine.py) so that unmodified SDKs enroll with one.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sikker.api import schema
from sikker.api.context import authed, authed_json, call, ok, services
from sikker.core import ids
from sikker.core.jwt_roles import Check
from sikker.core.model import JwtRole, Machine
from sikker.errors import NotFound

# A JWT itself is refused above 8 KiB by the login (check "size", 401); the field is larger so
# that the refusal is audited rather than a 400.
TOKEN_MAX = 16 * 1024


def role_json(r: JwtRole) -> dict[str, Any]:
    """The role object of the API (null for unset fields)."""
    return {
        "id": r.id,
        "vaultId": r.vault_id,
        "name": r.name,
        "issuer": r.issuer,
        "discoveryUrl": r.discovery_url,
        "jwksUrl": r.jwks_url,
        "publicKeys": list(r.public_keys) if r.public_keys is not None else None,
        "boundAudiences": list(r.bound_audiences),
        "boundSubject": r.bound_subject,
        "boundClaims": {k: list(v) for k, v in r.bound_claims.items()}
        if r.bound_claims is not None
        else None,
        "nameClaim": r.name_claim,
        "projects": list(r.project_ids),
        "secrets": list(r.secret_ids),
        "machineTtl": r.machine_ttl_s,
        "sourceCidrs": list(r.source_cidrs) if r.source_cidrs is not None else None,
        "kubernetes": {"mode": r.kubernetes_mode, "cluster": r.kubernetes_cluster}
        if r.kubernetes_mode
        else None,
        "enabled": r.enabled,
        "createdAt": r.created_ms,
        "updatedAt": r.updated_ms,
    }


# wire name -> (service field, schema)
ROLE_FIELDS: dict[str, tuple[str, schema.Field]] = {
    "name": ("name", schema.Field(str, max_len=64)),
    "issuer": ("issuer", schema.Field(str, max_len=512)),
    "discoveryUrl": ("discovery_url", schema.Field(str, max_len=2048)),
    "jwksUrl": ("jwks_url", schema.Field(str, max_len=2048)),
    "publicKeys": ("public_keys", schema.Field(list, max_len=10, multiline=True)),
    "boundAudiences": ("bound_audiences", schema.Field(list, max_len=20)),
    "boundSubject": ("bound_subject", schema.Field(str, max_len=256)),
    "boundClaims": ("bound_claims", schema.Field(dict, max_len=32)),
    "nameClaim": ("name_claim", schema.Field(str, max_len=128)),
    "projects": ("projects", schema.Field(list, max_len=1000)),
    "secrets": ("secrets", schema.Field(list, max_len=1000)),
    "machineTtl": ("machine_ttl", schema.Field(int, min_value=60, max_value=86_400)),
    "sourceCidrs": ("source_cidrs", schema.Field(list, max_len=20)),
    "kubernetes": ("kubernetes", schema.Field(dict, max_len=2)),
    "enabled": ("enabled", schema.Field(bool)),
}
ROLE_BODY = {wire: spec for wire, (_, spec) in ROLE_FIELDS.items()}


def _spec(raw: bytes) -> dict[str, Any]:
    """The fields given (``null`` kept: it clears an optional field on update)."""
    body = schema.parse(raw, ROLE_BODY)
    nulls = {k for k, v in orjson.loads(raw or b"{}").items() if v is None} if raw.strip() else set()
    given = {ROLE_FIELDS[k][0]: v for k, v in body.items()}
    return given | {ROLE_FIELDS[k][0]: None for k in nulls}


async def create_role(request: Request) -> Response:
    """Create a JWT role in a vault."""
    svc, raw, vault = services(request), await request.body(), request.path_params["vault"]
    role = await authed(request, lambda p, w: svc.jwt_roles.create(p, w, vault, _spec(raw)))
    return ok(role_json(role), 201)


async def list_roles(request: Request) -> Response:
    """The JWT roles of a vault."""
    svc, vault = services(request), request.path_params["vault"]
    found = await authed(request, lambda p, _: svc.jwt_roles.list_roles(p, vault))
    return ok({"roles": [role_json(r) for r in found]})


async def show_role(request: Request) -> Response:
    """One JWT role."""
    svc, role_id = services(request), request.path_params["role"]
    role = await authed(request, lambda p, _: svc.jwt_roles.get(p, role_id))
    return ok(role_json(role))


async def update_role(request: Request) -> Response:
    """Change some fields of a role; a new key source drops its cached keys."""
    svc, raw, role_id = services(request), await request.body(), request.path_params["role"]
    role = await authed(request, lambda p, w: svc.jwt_roles.update(p, w, role_id, _spec(raw)))
    return ok(role_json(role))


async def delete_role(request: Request) -> Response:
    """Delete a role; every live machine it created is revoked with it."""
    svc, role_id = services(request), request.path_params["role"]
    await authed(request, lambda p, w: svc.jwt_roles.delete(p, w, role_id))
    return ok({"deleted": request.path_params["role"]})


def _toggle(enabled: bool):  # type: ignore[no-untyped-def]
    async def handler(request: Request) -> Response:
        """Enable or disable a role; disabling revokes every live machine it created."""
        svc, role_id = services(request), request.path_params["role"]
        role = await authed(request, lambda p, w: svc.jwt_roles.set_enabled(p, w, role_id, enabled))
        return ok(role_json(role))

    return handler


def _check(c: Check) -> dict[str, Any]:
    return {"check": c.check, "ok": c.ok, "reason": c.reason}


TEST_BODY = {"jwt": schema.Field(str, required=True, max_len=TOKEN_MAX)}


async def test_role(request: Request) -> Response:
    """Report each check of a login with this JWT; enrolls nothing and uses no jti."""
    svc, role_id = services(request), request.path_params["role"]
    found = await authed_json(
        request, TEST_BODY, lambda p, _, body: svc.jwt_roles.test(p, role_id, body["jwt"])
    )
    return ok({"ok": all(c.ok for c in found), "checks": [_check(c) for c in found]})


LOGIN_BODY = {
    "role": schema.Field(str, required=True, max_len=64),
    "jwt": schema.Field(str, required=True, max_len=TOKEN_MAX),
    "publicKey": schema.Field(str, required=True, max_len=64),
    "hostname": schema.Field(str, max_len=255),
    "name": schema.Field(str, max_len=255),
}


def enrollment_answer(machine: Machine, api_url: str) -> dict[str, Any]:
    """What an enrollment answers (the SikkerKey wire contract's keys, nothing more)."""
    answer: dict[str, Any] = {
        "machineId": machine.id,
        "machineName": machine.name,
        "vaultId": machine.vault_id,
    }
    if machine.expires_ms is not None:
        answer["expiresAt"] = machine.expires_ms
    answer["apiUrl"] = api_url
    return answer


async def login(request: Request) -> Response:
    """POST /v1/{vault}/auth/jwt/login {role, jwt, publicKey, hostname?, name?}: enroll an
    ephemeral machine with a workload's JWT."""
    vault_id = request.path_params["vault"]
    if not ids.is_valid("vault", vault_id):
        raise NotFound("vault not found")
    body = schema.parse(await request.body(), LOGIN_BODY)
    svc = services(request)
    machine = await call(
        svc.jwt.login,
        vault_id,
        body["role"],
        body["jwt"],
        body["publicKey"],
        body.get("hostname") or "workload",
        body.get("name"),
        request.client.host if request.client else "",
        request.headers.get("user-agent", "")[:256],
    )
    return ok(enrollment_answer(machine, svc.deps.settings.url))


ROUTES = [
    Route("/api/vaults/{vault}/jwt-roles", create_role, methods=["POST"]),
    Route("/api/vaults/{vault}/jwt-roles", list_roles, methods=["GET"]),
    Route("/api/jwt-roles/{role}", show_role, methods=["GET"]),
    Route("/api/jwt-roles/{role}", update_role, methods=["PUT"]),
    Route("/api/jwt-roles/{role}", delete_role, methods=["DELETE"]),
    Route("/api/jwt-roles/{role}/disable", _toggle(False), methods=["POST"]),
    Route("/api/jwt-roles/{role}/enable", _toggle(True), methods=["POST"]),
    Route("/api/jwt-roles/{role}/test", test_role, methods=["POST"]),
    Route("/v1/{vault}/auth/jwt/login", login, methods=["POST"]),
]
