"""Rotation routes: admin configuration under /api, the agent protocol under /v1."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sikker.api import schema
from sikker.api.context import authed, authed_json, call, ok, services
from sikker.api.machine import signed
from sikker.core import rotation
from sikker.core.audit import Actor
from sikker.core.model import Managed, Policy, Principal, Rotation
from sikker.errors import InvalidInput

POLICY_FIELDS = {
    "intervalSeconds": schema.Field(
        int, min_value=rotation.MIN_INTERVAL_S, max_value=rotation.MAX_INTERVAL_S
    ),
    "cron": schema.Field(str, max_len=120),
    "length": schema.Field(int, min_value=1, max_value=1024),
    "charset": schema.Field(str, max_len=16),
    "fields": schema.Field(list, max_len=100),
}
MANAGED_FIELDS = {
    "provider": schema.Field(str, required=True, max_len=16),
    "host": schema.Field(str, required=True, max_len=255),
    "port": schema.Field(int, required=True, min_value=1, max_value=65535),
    "database": schema.Field(str, max_len=255),
    "adminSecretId": schema.Field(str, required=True, max_len=64),
    "strategy": schema.Field(str, max_len=16),
    "altUsername": schema.Field(str, max_len=255),
    "graceSeconds": schema.Field(int, min_value=0),
}


def _policy(p: Policy | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {
        "intervalSeconds": p.interval_s,
        "cron": p.cron,
        "length": p.length,
        "charset": p.charset,
        "fields": p.fields,
        "enabled": p.enabled,
        "nextDueAt": p.next_due_ms,
        "lastRotatedAt": p.last_rotated_ms,
        "lastError": p.last_error,
    }


def _managed(m: Managed | None) -> dict[str, Any] | None:
    if m is None:
        return None
    return {
        "provider": m.provider,
        "host": m.host,
        "port": m.port,
        "database": m.database,
        "adminSecretId": m.admin_secret_id,
        "strategy": m.strategy,
        "baseUsername": m.base_username,
        "altUsername": m.alt_username,
        "graceSeconds": m.grace_s,
        "previousUsername": m.previous_username,
        "disablePreviousAt": m.disable_previous_at_ms,
        "agentStatus": m.agent_status,
        "agentError": m.agent_error,
        "agentSeenAt": m.agent_seen_ms,
    }


def _rotation(r: Rotation) -> dict[str, Any]:
    return {
        "id": r.id,
        "status": r.status,
        "trigger": r.trigger,
        "version": r.version,
        "error": r.error,
        "createdAt": r.created_ms,
        "updatedAt": r.updated_ms,
    }


async def set_policy(request: Request) -> Response:
    """Rotate a secret every N seconds or on a cron schedule, with a value generator."""
    svc = services(request)

    def configure(principal: Principal, who: Actor, body: dict[str, Any]) -> Policy:
        schedule = rotation.Schedule(body.get("intervalSeconds"), body.get("cron"))
        generator = rotation.Generator(body.get("length", 32), body.get("charset", "symbols"))
        fields = body.get("fields")
        if fields is not None and not all(isinstance(f, str) and f for f in fields):
            raise InvalidInput("'fields' must be a list of field names")
        return svc.rotation.set_policy(
            principal, who, request.path_params["secret"], schedule, generator, fields
        )

    policy = await authed_json(request, POLICY_FIELDS, configure)
    return ok(_policy(policy))


async def show_policy(request: Request) -> Response:
    """The schedule, the database binding and the most recent rotations (``?limit=``, 1-100,
    default 10), newest first."""
    svc, secret = services(request), request.path_params["secret"]

    def fetch(principal: Principal, _: Actor) -> tuple[Policy | None, Managed | None, list[Rotation]]:
        limit = schema.query_int(request.query_params, "limit", 10) or 10
        return svc.rotation.get_policy(principal, secret, limit)

    policy, managed, recent = await authed(request, fetch)
    return ok(
        {"policy": _policy(policy), "managed": _managed(managed), "rotations": [_rotation(r) for r in recent]}
    )


async def disable_policy(request: Request) -> Response:
    svc, secret = services(request), request.path_params["secret"]
    await authed(request, lambda p, w: svc.rotation.disable(p, w, secret))
    return ok({"disabled": request.path_params["secret"]})


async def rotate_now(request: Request) -> Response:
    """Rotate now (a managed secret gets a pending rotation for its agent)."""
    svc, secret = services(request), request.path_params["secret"]
    result = await authed(request, lambda p, w: svc.rotation.rotate_now(p, w, secret))
    return ok(result)


async def set_managed(request: Request) -> Response:
    """Bind a username/password secret to a database, rotated by `sikker agent`."""
    svc = services(request)

    def manage(principal: Principal, who: Actor, body: dict[str, Any]) -> Managed:
        return svc.rotation.manage(
            principal,
            who,
            request.path_params["secret"],
            provider=body["provider"],
            host=body["host"],
            port=body["port"],
            database=body.get("database", ""),
            admin_secret_id=body["adminSecretId"],
            strategy=body.get("strategy", "single"),
            alt_username=body.get("altUsername"),
            grace_s=body.get("graceSeconds", 3600),
        )

    managed = await authed_json(request, MANAGED_FIELDS, manage)
    return ok(_managed(managed))


# -- agent protocol (contract section 1.5) --------------------------------------------------------
async def sync_config(request: Request) -> Response:
    req = signed(request, await request.body())
    config = await call(services(request).rotation.sync_config, req, request.path_params["secret"])
    return ok(config)


HEARTBEAT = {
    "status": schema.Field(str, required=True, max_len=16),
    "error": schema.Field(str, max_len=2000, multiline=True),
}
FINISH = {
    "rotationId": schema.Field(str, required=True, max_len=64),
    "error": schema.Field(str, max_len=2000, multiline=True),
}


async def heartbeat(request: Request) -> Response:
    raw = await request.body()
    req = signed(request, raw)

    def body() -> tuple[str, str]:
        parsed = schema.parse(raw, HEARTBEAT)
        if parsed["status"] not in ("healthy", "error"):
            raise InvalidInput("status must be 'healthy' or 'error'")
        return parsed["status"], parsed.get("error", "")

    await call(services(request).rotation.heartbeat, req, request.path_params["secret"], body)
    return ok({"ok": True})


def _finish(confirmed: bool):  # type: ignore[no-untyped-def]
    async def handler(request: Request) -> Response:
        raw = await request.body()
        req = signed(request, raw)

        def body() -> tuple[str, str]:
            parsed = schema.parse(raw, FINISH)
            return parsed["rotationId"], parsed.get("error", "")

        await call(services(request).rotation.finish, req, request.path_params["secret"], body, confirmed)
        return ok({"ok": True})

    return handler


ROUTES = [
    Route("/api/secrets/{secret}/rotate", rotate_now, methods=["POST"]),
    Route("/api/secrets/{secret}/rotation", set_policy, methods=["PUT"]),
    Route("/api/secrets/{secret}/rotation", show_policy, methods=["GET"]),
    Route("/api/secrets/{secret}/rotation", disable_policy, methods=["DELETE"]),
    Route("/api/secrets/{secret}/managed", set_managed, methods=["PUT"]),
    Route("/v1/secret/{secret}/sync-config", sync_config, methods=["GET"]),
    Route("/v1/secret/{secret}/agent/heartbeat", heartbeat, methods=["POST"]),
    Route("/v1/secret/{secret}/agent/confirm-rotation", _finish(True), methods=["POST"]),
    Route("/v1/secret/{secret}/agent/reject-rotation", _finish(False), methods=["POST"]),
]
