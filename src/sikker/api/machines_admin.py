"""Admin plane for machines: list and state changes, project membership, grants, enrollment tokens."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sikker.api import schema
from sikker.api.context import authed, authed_json, ok, services
from sikker.core import values
from sikker.core.audit import Actor
from sikker.core.model import EnrollmentToken, Machine, Principal
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
    svc, vault = services(request), request.path_params["vault"]
    found = await authed(request, lambda p, _: svc.machines.list_machines(p, vault))
    return ok({"machines": [_machine(m, p) for m, p in found]})


MACHINE_CHANGES = ("approve", "disable", "enable", "revoke")


async def change_machine(request: Request) -> Response:
    """approve | disable | enable | revoke a machine; effective on its next request."""
    if request.path_params["change"] not in MACHINE_CHANGES:
        raise NotFound(f"no such machine action; use one of {', '.join(MACHINE_CHANGES)}")
    svc, machine_id, change = services(request), request.path_params["machine"], request.path_params["change"]
    machine = await authed(request, lambda p, w: svc.machines.change_state(p, w, machine_id, change))
    return ok(_machine(machine))


RENAME_FIELDS = {"name": schema.Field(str, required=True, max_len=values.NAME_MAX)}
MEMBERSHIP_FIELDS = {"projectId": schema.Field(str, required=True, max_len=64)}


async def rename_machine(request: Request) -> Response:
    svc, raw, machine_id = services(request), await request.body(), request.path_params["machine"]

    def rename(principal: Principal, who: Actor) -> Machine:
        return svc.machines.rename(principal, who, machine_id, schema.parse(raw, RENAME_FIELDS)["name"])

    machine = await authed(request, rename)
    return ok(_machine(machine))


async def add_membership(request: Request) -> Response:
    """Add a machine to a project (a prerequisite for grants on its secrets)."""
    svc, raw, machine_id = services(request), await request.body(), request.path_params["machine"]

    def add(principal: Principal, who: Actor) -> bool:
        project = schema.parse(raw, MEMBERSHIP_FIELDS)["projectId"]
        return svc.machines.set_membership(principal, who, machine_id, project, True)

    changed = await authed(request, add)
    return ok({"changed": changed})


async def remove_membership(request: Request) -> Response:
    svc, machine_id = services(request), request.path_params["machine"]
    project = request.path_params["project"]
    changed = await authed(
        request, lambda p, w: svc.machines.set_membership(p, w, machine_id, project, False)
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
    svc, raw, machine_id = services(request), await request.body(), request.path_params["machine"]

    def grant(principal: Principal, who: Actor) -> int:
        ids = _secret_ids(schema.parse(raw, GRANT_BODY))
        return svc.machines.set_grants(principal, who, machine_id, ids, True)

    changed = await authed(request, grant)
    return ok({"changed": changed})


async def remove_grants(request: Request) -> Response:
    svc, raw, machine_id = services(request), await request.body(), request.path_params["machine"]

    def ungrant(principal: Principal, who: Actor) -> int:
        ids = _secret_ids(schema.parse(raw, GRANT_BODY))
        return svc.machines.set_grants(principal, who, machine_id, ids, False)

    changed = await authed(request, ungrant)
    return ok({"changed": changed})


async def machine_grants(request: Request) -> Response:
    svc, machine_id = services(request), request.path_params["machine"]
    found = await authed(request, lambda p, _: svc.machines.grants_of_machine(p, machine_id))
    return ok({"secretIds": found})


async def secret_grants(request: Request) -> Response:
    svc, secret = services(request), request.path_params["secret"]
    found = await authed(request, lambda p, _: svc.machines.grants_of_secret(p, secret))
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
    svc = services(request)

    def create(principal: Principal, who: Actor, body: dict[str, Any]) -> tuple[EnrollmentToken, str]:
        for key in ("projectIds", "secretIds"):
            if not all(isinstance(i, str) for i in body[key]):
                raise InvalidInput(f"'{key}' must be a list of ids")
        return svc.machines.create_enrollment(
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

    token, plaintext = await authed_json(request, ENROLL_FIELDS, create)
    return ok(_enrollment(token) | {"token": plaintext}, 201)


async def list_enrollments(request: Request) -> Response:
    svc, vault = services(request), request.path_params["vault"]
    found = await authed(request, lambda p, _: svc.machines.list_enrollments(p, vault))
    return ok({"enrollmentTokens": [_enrollment(t) for t in found]})


async def revoke_enrollment(request: Request) -> Response:
    """Revoke an enrollment token; machines already enrolled with it keep working."""
    svc, token = services(request), request.path_params["token"]
    await authed(request, lambda p, w: svc.machines.revoke_enrollment(p, w, token))
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
