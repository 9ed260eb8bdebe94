"""Canary routes (admin plane): create, list, show with trips, enable/disable; unfreeze."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sikker.api import schema
from sikker.api.admin import _secret
from sikker.api.context import authenticate, call, ok, services
from sikker.core import values
from sikker.core.model import Canary, Trip

CREATE_FIELDS = {
    "name": schema.Field(str, required=True, max_len=values.NAME_MAX),
    "looksLike": schema.Field(str, max_len=32),
    "freezeRelated": schema.Field(list, max_len=100),
}


def _canary(c: Canary, name: str, project_id: str) -> dict[str, Any]:
    return {
        "id": c.secret_id,
        "name": name,
        "projectId": project_id,
        "looksLike": c.looks_like,
        "enabled": c.enabled,
        "freezeRelated": c.related_project_ids,
        "createdAt": c.created_ms,
    }


def _trip(t: Trip) -> dict[str, Any]:
    return {
        "time": t.time_ms,
        "projectId": t.project_id,
        "actorKind": t.actor_kind,
        "actorId": t.actor_id,
        "sourceIp": t.source_ip,
        "frozenProjects": t.frozen_projects,
    }


async def create(request: Request) -> Response:
    """A canary: a realistic decoy that freezes its project when anyone reads it."""
    principal, who = await authenticate(request)
    body = schema.parse(await request.body(), CREATE_FIELDS)
    secret = await call(
        services(request).canaries.create,
        principal,
        who,
        request.path_params["project"],
        body["name"],
        body.get("looksLike", "api-token"),
        body.get("freezeRelated"),
    )
    return ok(_secret(secret), 201)


async def list_canaries(request: Request) -> Response:
    principal, _ = await authenticate(request)
    found = await call(services(request).canaries.list_canaries, principal, request.path_params["vault"])
    return ok({"canaries": [_canary(c, n, p) for c, n, p in found]})


async def show(request: Request) -> Response:
    """A canary and its trip history: which machine, from which IP, when."""
    principal, _ = await authenticate(request)
    canary, secret, trips = await call(
        services(request).canaries.show, principal, request.path_params["secret"]
    )
    return ok(_canary(canary, secret.name, secret.project_id) | {"trips": [_trip(t) for t in trips]})


def _toggle(enabled: bool):  # type: ignore[no-untyped-def]
    async def handler(request: Request) -> Response:
        principal, who = await authenticate(request)
        await call(
            services(request).canaries.set_enabled, principal, who, request.path_params["secret"], enabled
        )
        return ok({"id": request.path_params["secret"], "enabled": enabled})

    return handler


UNFREEZE_FIELDS = {"reason": schema.Field(str, required=True, max_len=500, multiline=True)}


async def unfreeze(request: Request) -> Response:
    """Unfreeze a project after investigating a canary trip (a reason is required and audited)."""
    principal, who = await authenticate(request)
    body = schema.parse(await request.body(), UNFREEZE_FIELDS)
    await call(
        services(request).canaries.unfreeze, principal, who, request.path_params["project"], body["reason"]
    )
    return ok({"unfrozen": request.path_params["project"]})


ROUTES = [
    Route("/api/projects/{project}/canaries", create, methods=["POST"]),
    Route("/api/projects/{project}/unfreeze", unfreeze, methods=["POST"]),
    Route("/api/vaults/{vault}/canaries", list_canaries, methods=["GET"]),
    Route("/api/canaries/{secret}", show, methods=["GET"]),
    Route("/api/canaries/{secret}/enable", _toggle(True), methods=["POST"]),
    Route("/api/canaries/{secret}/disable", _toggle(False), methods=["POST"]),
]
