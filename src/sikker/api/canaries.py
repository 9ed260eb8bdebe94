"""Canary routes (admin plane): create, list, show with trips, enable/disable; unfreeze."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sikker.api import schema
from sikker.api.admin import _secret
from sikker.api.context import authed, authed_json, ok, services
from sikker.core import values
from sikker.core.audit import Actor
from sikker.core.model import Canary, Principal, Secret, Trip

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
    svc = services(request)

    def plant(principal: Principal, who: Actor, body: dict[str, Any]) -> Secret:
        return svc.canaries.create(
            principal,
            who,
            request.path_params["project"],
            body["name"],
            body.get("looksLike", "api-token"),
            body.get("freezeRelated"),
        )

    secret = await authed_json(request, CREATE_FIELDS, plant)
    return ok(_secret(secret), 201)


async def list_canaries(request: Request) -> Response:
    svc, vault = services(request), request.path_params["vault"]
    found = await authed(request, lambda p, _: svc.canaries.list_canaries(p, vault))
    return ok({"canaries": [_canary(c, n, p) for c, n, p in found]})


async def show(request: Request) -> Response:
    """A canary and its trip history: which machine, from which IP, when."""
    svc, secret_id = services(request), request.path_params["secret"]
    canary, secret, trips = await authed(request, lambda p, _: svc.canaries.show(p, secret_id))
    return ok(_canary(canary, secret.name, secret.project_id) | {"trips": [_trip(t) for t in trips]})


def _toggle(enabled: bool):  # type: ignore[no-untyped-def]
    async def handler(request: Request) -> Response:
        svc, secret = services(request), request.path_params["secret"]
        await authed(request, lambda p, w: svc.canaries.set_enabled(p, w, secret, enabled))
        return ok({"id": request.path_params["secret"], "enabled": enabled})

    return handler


UNFREEZE_FIELDS = {"reason": schema.Field(str, required=True, max_len=500, multiline=True)}


async def unfreeze(request: Request) -> Response:
    """Unfreeze a project after investigating a canary trip (a reason is required and audited)."""
    svc, raw, project = services(request), await request.body(), request.path_params["project"]

    def thaw(principal: Principal, who: Actor) -> None:
        svc.canaries.unfreeze(principal, who, project, schema.parse(raw, UNFREEZE_FIELDS)["reason"])

    await authed(request, thaw)
    return ok({"unfrozen": request.path_params["project"]})


ROUTES = [
    Route("/api/projects/{project}/canaries", create, methods=["POST"]),
    Route("/api/projects/{project}/unfreeze", unfreeze, methods=["POST"]),
    Route("/api/vaults/{vault}/canaries", list_canaries, methods=["GET"]),
    Route("/api/canaries/{secret}", show, methods=["GET"]),
    Route("/api/canaries/{secret}/enable", _toggle(True), methods=["POST"]),
    Route("/api/canaries/{secret}/disable", _toggle(False), methods=["POST"]),
]
