"""Operator routes under /api/sys: status, health, init, unseal, seal, key rotation."""

from __future__ import annotations

from dataclasses import asdict

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sikker import __version__
from sikker.api import schema
from sikker.api.context import actor, authenticate, call, ok, services
from sikker.api.errors import json_error
from sikker.core import permissions
from sikker.errors import Unauthenticated
from sikker.service.base import require


def _status_body(request: Request) -> dict[str, object]:
    status = services(request).seal.status()
    return asdict(status) | {"version": __version__}


async def status(request: Request) -> Response:
    """Seal state and unseal progress; always answered, sealed or not."""
    return ok(await call(_status_body, request))


async def health(request: Request) -> Response:
    """200 when unsealed and serving; 503 otherwise (for load balancers)."""
    body = await call(_status_body, request)
    if not body["initialized"] or body["sealed"]:
        return json_error(503, "sealed" if body["initialized"] else "not initialised")
    return ok({"status": "ok"})


INIT_FIELDS = {
    "shares": schema.Field(int, min_value=1, max_value=255),
    "threshold": schema.Field(int, min_value=1, max_value=255),
}


async def init(request: Request) -> Response:
    """Initialise once: returns the unseal shares (default 5, threshold 3) and the root token,
    never again. A server with a seal key file has no shares: it answers where its key is
    (``sealKeyFile``, the path, never the key) and refuses ``shares``/``threshold``."""
    body = schema.parse(await request.body(), INIT_FIELDS)
    svc = services(request)
    result = await call(svc.seal.init, body.get("shares"), body.get("threshold"), actor(request))
    return ok({"shares": result.shares, "rootToken": result.root_token, "sealKeyFile": result.key_location})


UNSEAL_FIELDS = {"share": schema.Field(str, max_len=1024), "reset": schema.Field(bool)}


async def unseal(request: Request) -> Response:
    """Submit one unseal share, or ``{"reset": true}`` (root token) to start over.

    Throttled per source address and audited, accepted or not (see SealService)."""
    svc = services(request)
    await call(svc.seal.admit, actor(request))
    body = schema.parse(await request.body(), UNSEAL_FIELDS)
    if body.get("reset"):
        try:
            principal, who = await authenticate(request)
        except Unauthenticated:
            principal, who = None, actor(request)
        state = await call(svc.seal.reset_progress, principal, who)
    elif "share" in body:
        state = await call(svc.seal.submit_share, body["share"], actor(request))
    else:
        return json_error(400, 'send {"share": "..."} or {"reset": true}')
    return ok(asdict(state))


async def seal(request: Request) -> Response:
    """Seal the server: forget the root key until the next unseal. Root token only."""
    principal, who = await authenticate(request)
    require(principal, permissions.SEAL_MANAGE, None)
    await call(services(request).seal.seal, who)
    return ok({"sealed": True})


ROTATE_FIELDS = {"projectId": schema.Field(str, max_len=64)}


async def rotate_keys(request: Request) -> Response:
    """New project key versions (all projects, or one), then rewrap every data key."""
    principal, who = await authenticate(request)
    body = schema.parse(await request.body(), ROTATE_FIELDS)
    report = await call(services(request).keys.rotate, principal, who, body.get("projectId"))
    return ok({"projects": report.projects, "rewrapped": report.rewrapped})


# Routes answered while sealed.
UNSEALED_NOT_REQUIRED = {
    "/api/sys/status",
    "/api/sys/health",
    "/api/sys/init",
    "/api/sys/unseal",
    "/api/openapi.json",  # api/openapi.py: describes the API, holds nothing of the store
}

ROUTES = [
    Route("/api/sys/status", status, methods=["GET"]),
    Route("/api/sys/health", health, methods=["GET"]),
    Route("/api/sys/init", init, methods=["POST"]),
    Route("/api/sys/unseal", unseal, methods=["POST"]),
    Route("/api/sys/seal", seal, methods=["POST"]),
    Route("/api/sys/rotate-keys", rotate_keys, methods=["POST"]),
]
