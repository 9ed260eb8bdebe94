"""Machine plane /v1: the SikkerKey wire contract, byte for byte.

Success is always exactly HTTP 200 with exactly the keys the contract lists
(strict clients reject unknown keys). Errors are ``{"error": "..."}``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from sikker.api import schema
from sikker.api.context import call, ok, services
from sikker.api.scripts import bootstrap_script, identity_head
from sikker.core import ids
from sikker.core.audit import Action
from sikker.core.model import GrantedSecret
from sikker.core.signing import SignedRequest
from sikker.errors import InvalidInput, NotFound

HEADER_LIMITS = {b"x-machine-id": 64, b"x-timestamp": 12, b"x-nonce": 128, b"x-signature": 128}
WANTED = frozenset({*HEADER_LIMITS, b"user-agent"})


def signed(request: Request, body: bytes) -> SignedRequest:
    return signed_from_scope(request.scope, body)


def signed_from_scope(scope: Scope, body: bytes) -> SignedRequest:
    """Collect what verification needs: bounded signature headers, the raw path and raw body.

    Malformed headers and query strings are refused by the service, so that the
    refusal is audited like any other."""
    headers = dict.fromkeys(WANTED, "")
    for name, value in reversed(scope["headers"]):  # the first of repeated headers wins
        if name in WANTED:
            headers[name] = value.decode("latin-1")
    raw_path = scope.get("raw_path") or scope["path"].encode()
    client = scope.get("client")
    return SignedRequest(
        method=scope["method"],
        path=raw_path.decode("latin-1").split("?", 1)[0],
        query=scope.get("query_string", b""),
        body=body,
        machine_id=headers[b"x-machine-id"][:64].strip().lower(),
        timestamp=headers[b"x-timestamp"][:16],
        nonce=headers[b"x-nonce"][:128],
        signature=headers[b"x-signature"][:128],
        malformed=[
            n.decode()
            for n, limit in HEADER_LIMITS.items()
            if not headers[n] or len(headers[n]) > limit or not headers[n].isascii()
        ],
        source_ip=client[0] if client else "",
        user_agent=headers[b"user-agent"][:256],
    )


def _list_entry(s: GrantedSecret) -> dict[str, Any]:
    return {"id": s.id, "name": s.name, "fieldNames": s.field_names, "projectId": s.project_id}


async def get_secret(request: Request) -> Response:
    """GET /v1/secret/{id} -> {"value": "..."}."""
    req = signed(request, await request.body())
    value = await call(services(request).plane.read, req, request.path_params["secret"])
    return ok({"value": value})


async def list_secrets(request: Request) -> Response:
    """GET /v1/secrets -> metadata of every secret granted to the machine."""
    req = signed(request, await request.body())
    found = await call(services(request).plane.readable, req, lambda: None, Action.MACHINE_SECRET_LIST)
    return ok({"secrets": [_list_entry(s) for s in found]})


PROJECT_BODY = {"projectId": schema.Field(str, max_len=64), "applicationId": schema.Field(str, max_len=64)}


def _project_id(raw: bytes, required: bool) -> str | None:
    body = schema.parse(raw, PROJECT_BODY)
    project_id = body.get("projectId")
    if project_id is None and body.get("applicationId") is not None:
        raise InvalidInput("applications are not supported by this server; use projectId")
    if project_id is None and required:
        raise InvalidInput("missing field 'projectId'")
    return project_id


async def list_by_project(request: Request) -> Response:
    """POST /v1/secrets/list {"projectId"} -> the granted secrets of one project."""
    raw = await request.body()
    req = signed(request, raw)
    found = await call(
        services(request).plane.readable, req, lambda: _project_id(raw, True), Action.MACHINE_SECRET_LIST
    )
    return ok({"secrets": [_list_entry(s) for s in found]})


async def export(request: Request) -> Response:
    """POST /v1/secrets/export [{"projectId"}] -> every granted secret with its value."""
    raw = await request.body()
    req = signed(request, raw)
    found = await call(services(request).plane.export, req, lambda: _project_id(raw, False))
    return ok(
        {
            "secrets": [
                {"id": s.id, "name": s.name, "value": value, "fieldNames": s.field_names}
                for s, value in found
            ]
        }
    )


POLL_BODY = {"watch": schema.Field(list, required=True, max_len=1000)}


def _watch(raw: bytes) -> list[str]:
    watch: list[str] = schema.parse(raw, POLL_BODY)["watch"]
    if not all(isinstance(w, str) and 0 < len(w) <= 64 for w in watch):
        raise InvalidInput("'watch' must be a list of secret ids")
    return watch


async def poll(request: Request) -> Response:
    """POST /v1/secrets/poll {"watch": [...]} -> only the secrets that changed."""
    raw = await request.body()
    req = signed(request, raw)
    changes = await call(services(request).plane.poll, req, lambda: _watch(raw))
    return ok({"changes": {sid: {"status": status} for sid, status in changes.items()}})


async def cli_projects(request: Request) -> Response:
    """GET /v1/cli/projects (enriched CLI surface)."""
    req = signed(request, await request.body())
    found = await call(services(request).plane.projects, req)
    return ok(
        {
            "projects": [
                {"projectId": pid, "projectName": name, "applicationId": "", "applicationName": ""}
                for pid, name in found
            ]
        }
    )


# The contract's type tags; a dynamic secret is the official CLI's "leased-secret".
_TYPES = {"structured": "structured", "dynamic": "leased-secret"}


async def cli_secrets(request: Request) -> Response:
    """GET /v1/cli/secrets (enriched CLI surface, with type tags)."""
    req = signed(request, await request.body())
    found = await call(services(request).plane.readable, req, lambda: None, Action.MACHINE_SECRET_LIST)
    return ok(
        {
            "secrets": [
                _list_entry(s)
                | {
                    "projectName": s.project_name,
                    "applicationId": "",
                    "applicationName": "",
                    "type": _TYPES.get(s.kind, "secret"),
                }
                for s in found
            ]
        }
    )


ENROLL_BODY = {
    "token": schema.Field(str, required=True, max_len=256),
    "publicKey": schema.Field(str, required=True, max_len=64),
    "hostname": schema.Field(str, max_len=255),
    "name": schema.Field(str, max_len=255),
    "kind": schema.Field(str, max_len=16),
}


async def enroll(request: Request) -> Response:
    """POST /v1/{vaultId}/enroll/register (unsigned: the enrollment token is the credential)."""
    vault_id = request.path_params["vault"]
    if not ids.is_valid("vault", vault_id):
        raise NotFound("vault not found")
    body = schema.parse(await request.body(), ENROLL_BODY)
    kind = body.get("kind", "ephemeral")
    if kind not in ("ephemeral", "standard"):
        raise InvalidInput("kind must be 'ephemeral' or 'standard'")
    svc = services(request)
    machine = await call(
        svc.plane.enroll,
        vault_id,
        body["token"],
        body["publicKey"],
        body.get("hostname") or "serverless",
        body.get("name"),
        kind,
        request.client.host if request.client else "",
        request.headers.get("user-agent", "")[:256],
    )
    response: dict[str, Any] = {
        "machineId": machine.id,
        "machineName": machine.name,
        "vaultId": machine.vault_id,
    }
    if machine.expires_ms is not None:
        response["expiresAt"] = machine.expires_ms
    response["apiUrl"] = svc.deps.settings.url
    return ok(response)


async def bootstrap(request: Request) -> Response:
    """GET /v1/bootstrap/{token}: a POSIX sh script that enrolls this host (openssl + curl)."""
    token = request.path_params["token"]
    svc = services(request)
    vault_id = await call(svc.machines.enrollment_vault, token)
    script = bootstrap_script(svc.deps.settings.url, vault_id, token)
    return Response(script, media_type="text/x-shellscript")


BOOTSTRAP_BODY = {
    "publicKey": schema.Field(str, required=True, max_len=64),
    "hostname": schema.Field(str, max_len=255),
}


async def bootstrap_enroll(request: Request) -> Response:
    """POST /v1/bootstrap/{token}: the bootstrap script enrolls here (a standard machine).

    The answer is the server's part of identity.json as one line of JSON, so that the
    script writes it without parsing anything."""
    token = request.path_params["token"]
    body = schema.parse(await request.body(), BOOTSTRAP_BODY)
    svc = services(request)
    vault_id = await call(svc.machines.enrollment_vault, token)
    machine = await call(
        svc.plane.enroll,
        vault_id,
        token,
        body["publicKey"],
        body.get("hostname") or "unknown",
        None,
        "standard",
        request.client.host if request.client else "",
        request.headers.get("user-agent", "")[:256],
    )
    head = identity_head(machine.id, machine.name, machine.vault_id, svc.deps.settings.url)
    return Response(head, media_type="application/json")


ROUTES = [
    Route("/v1/secret/{secret}", get_secret, methods=["GET"]),
    Route("/v1/secrets", list_secrets, methods=["GET"]),
    Route("/v1/secrets/list", list_by_project, methods=["POST"]),
    Route("/v1/secrets/export", export, methods=["POST"]),
    Route("/v1/secrets/poll", poll, methods=["POST"]),
    Route("/v1/cli/projects", cli_projects, methods=["GET"]),
    Route("/v1/cli/secrets", cli_secrets, methods=["GET"]),
    Route("/v1/{vault}/enroll/register", enroll, methods=["POST"]),
    Route("/v1/bootstrap/{token}", bootstrap, methods=["GET"]),
    Route("/v1/bootstrap/{token}", bootstrap_enroll, methods=["POST"]),
]
