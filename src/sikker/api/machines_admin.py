"""Admin plane for machines: list and state changes, project membership, grants, enrollment tokens."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sikker.api import schema
from sikker.api.context import authenticate, call, ok, services
from sikker.core import values
from sikker.core.model import EnrollmentToken, Machine
from sikker.errors import InvalidInput, NotFound


def _machine(m: Machine, projects: list[str] | None = None) -> dict[str, Any]:
    body = {
        "id": m.id,
        "vaultId": m.vault_id,
        "name": m.name,
        "kind": m.kind,
        "approved": m.approved,
        "enabled": m.enabled,
        "revoked": m.revoked_ms is not None,
        "hostname": m.hostname,
        "allowedCidr": m.allowed_cidr,
        "enrollmentTokenId": m.enrollment_token_id,
        "createdAt": m.created_ms,
        "expiresAt": m.expires_ms,
    }
    if projects is not None:
        body["projectIds"] = projects
    return body


def _enrollment(t: EnrollmentToken) -> dict[str, Any]:
    return {
        "id": t.id,
        "vaultId": t.vault_id,
        "name": t.name,
        "projectIds": list(t.project_ids),
        "secretIds": list(t.secret_ids),
        "maxUses": t.max_uses,
        "uses": t.uses,
        "approval": t.approval,
        "machineLifetimeSeconds": t.machine_ttl_s,
        "hostnamePattern": t.hostname_pattern,
        "namePattern": t.name_pattern,
        "sourceCidr": t.source_cidr,
        "createdAt": t.created_ms,
        "expiresAt": t.expires_ms,
        "revokedAt": t.revoked_ms,
    }


async def list_machines(request: Request) -> Response:
    """Machines of a vault, with their project memberships."""
    principal, _ = await authenticate(request)
    found = await call(services(request).machines.list_machines, principal, request.path_params["vault"])
    return ok({"machines": [_machine(m, p) for m, p in found]})


MACHINE_CHANGES = ("approve", "disable", "enable", "revoke")


async def change_machine(request: Request) -> Response:
    """approve | disable | enable | revoke a machine; effective on its next request."""
    if request.path_params["change"] not in MACHINE_CHANGES:
        raise NotFound(f"no such machine action; use one of {', '.join(MACHINE_CHANGES)}")
    principal, who = await authenticate(request)
    machine = await call(
        services(request).machines.change_state,
        principal,
        who,
        request.path_params["machine"],
        request.path_params["change"],
    )
    return ok(_machine(machine))


RENAME_FIELDS = {"name": schema.Field(str, required=True, max_len=values.NAME_MAX)}
MEMBERSHIP_FIELDS = {"projectId": schema.Field(str, required=True, max_len=64)}


async def rename_machine(request: Request) -> Response:
    principal, who = await authenticate(request)
    body = schema.parse(await request.body(), RENAME_FIELDS)
    machine = await call(
        services(request).machines.rename, principal, who, request.path_params["machine"], body["name"]
    )
    return ok(_machine(machine))


async def add_membership(request: Request) -> Response:
    """Add a machine to a project (a prerequisite for grants on its secrets)."""
    principal, who = await authenticate(request)
    body = schema.parse(await request.body(), MEMBERSHIP_FIELDS)
    changed = await call(
        services(request).machines.set_membership,
        principal,
        who,
        request.path_params["machine"],
        body["projectId"],
        True,
    )
    return ok({"changed": changed})


async def remove_membership(request: Request) -> Response:
    principal, who = await authenticate(request)
    changed = await call(
        services(request).machines.set_membership,
        principal,
        who,
        request.path_params["machine"],
        request.path_params["project"],
        False,
    )
    return ok({"changed": changed})


GRANT_BODY = {"secretIds": schema.Field(list, required=True, max_len=1000)}


def _secret_ids(body: dict[str, Any]) -> list[str]:
    ids: list[str] = body["secretIds"]
    if not ids or not all(isinstance(i, str) for i in ids):
        raise InvalidInput("'secretIds' must be a non-empty list of secret ids")
    return ids


async def add_grants(request: Request) -> Response:
    """Grant a machine read access to secrets (one by one; no wildcards)."""
    principal, who = await authenticate(request)
    ids = _secret_ids(schema.parse(await request.body(), GRANT_BODY))
    changed = await call(
        services(request).machines.set_grants, principal, who, request.path_params["machine"], ids, True
    )
    return ok({"changed": changed})


async def remove_grants(request: Request) -> Response:
    principal, who = await authenticate(request)
    ids = _secret_ids(schema.parse(await request.body(), GRANT_BODY))
    changed = await call(
        services(request).machines.set_grants, principal, who, request.path_params["machine"], ids, False
    )
    return ok({"changed": changed})


async def machine_grants(request: Request) -> Response:
    principal, _ = await authenticate(request)
    found = await call(
        services(request).machines.grants_of_machine, principal, request.path_params["machine"]
    )
    return ok({"secretIds": found})


async def secret_grants(request: Request) -> Response:
    principal, _ = await authenticate(request)
    found = await call(services(request).machines.grants_of_secret, principal, request.path_params["secret"])
    return ok({"machineIds": found})


ENROLL_FIELDS = {
    "name": schema.Field(str, max_len=values.NAME_MAX),
    "projectIds": schema.Field(list, required=True, max_len=100),
    "secretIds": schema.Field(list, required=True, max_len=1000),
    "maxUses": schema.Field(int, min_value=1, max_value=10_000),
    "tokenLifetimeSeconds": schema.Field(int, min_value=60),
    "machineLifetimeSeconds": schema.Field(int, min_value=60),
    "approval": schema.Field(str, max_len=16),
    "hostnamePattern": schema.Field(str, max_len=255),
    "namePattern": schema.Field(str, max_len=255),
    "sourceCidr": schema.Field(str, max_len=64),
}


async def create_enrollment(request: Request) -> Response:
    """Create an enrollment token; its plaintext is returned once and stored only as a hash."""
    principal, who = await authenticate(request)
    body = schema.parse(await request.body(), ENROLL_FIELDS)
    for key in ("projectIds", "secretIds"):
        if not all(isinstance(i, str) for i in body[key]):
            raise InvalidInput(f"'{key}' must be a list of ids")
    token, plaintext = await call(
        lambda: services(request).machines.create_enrollment(
            principal,
            who,
            request.path_params["vault"],
            name=body.get("name", "enrollment"),
            project_ids=body["projectIds"],
            secret_ids=body["secretIds"],
            max_uses=body.get("maxUses", 1),
            token_ttl_s=body.get("tokenLifetimeSeconds", 600),
            machine_ttl_s=body.get("machineLifetimeSeconds"),
            approval=body.get("approval", "auto"),
            hostname_pattern=body.get("hostnamePattern"),
            name_pattern=body.get("namePattern"),
            source_cidr=body.get("sourceCidr"),
        )
    )
    return ok(_enrollment(token) | {"token": plaintext}, 201)


async def list_enrollments(request: Request) -> Response:
    principal, _ = await authenticate(request)
    found = await call(services(request).machines.list_enrollments, principal, request.path_params["vault"])
    return ok({"enrollmentTokens": [_enrollment(t) for t in found]})


async def revoke_enrollment(request: Request) -> Response:
    """Revoke an enrollment token; machines already enrolled with it keep working."""
    principal, who = await authenticate(request)
    await call(services(request).machines.revoke_enrollment, principal, who, request.path_params["token"])
    return ok({"revoked": request.path_params["token"]})


ROUTES = [
    Route("/api/vaults/{vault}/machines", list_machines, methods=["GET"]),
    Route("/api/machines/{machine}/rename", rename_machine, methods=["POST"]),
    Route("/api/machines/{machine}/projects", add_membership, methods=["POST"]),
    Route("/api/machines/{machine}/projects/{project}", remove_membership, methods=["DELETE"]),
    Route("/api/machines/{machine}/grants", add_grants, methods=["POST"]),
    Route("/api/machines/{machine}/grants", machine_grants, methods=["GET"]),
    Route("/api/machines/{machine}/grants/remove", remove_grants, methods=["POST"]),
    Route("/api/machines/{machine}/{change:str}", change_machine, methods=["POST"]),
    Route("/api/secrets/{secret}/grants", secret_grants, methods=["GET"]),
    Route("/api/vaults/{vault}/enrollment-tokens", create_enrollment, methods=["POST"]),
    Route("/api/vaults/{vault}/enrollment-tokens", list_enrollments, methods=["GET"]),
    Route("/api/enrollment-tokens/{token}", revoke_enrollment, methods=["DELETE"]),
]
